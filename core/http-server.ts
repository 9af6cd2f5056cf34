// A tiny JSON/text HTTP endpoint server for admin and monitoring ports (127.0.0.1 by default).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (url: URL, req: http.IncomingMessage) =>
  | { status: number; body: unknown; contentType?: string }
  | Promise<{ status: number; body: unknown; contentType?: string }>;

export interface EndpointServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

/** Serves `routes` (exact paths; GET, and POST where a handler accepts it). */
export async function serveEndpoints(
  host: string,
  port: number,
  routes: Record<string, Handler>,
): Promise<EndpointServer> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const handler = routes[url.pathname];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no such endpoint: ${url.pathname}\navailable: ${Object.keys(routes).join(' ')}\n`);
      return;
    }
    Promise.resolve()
      .then(() => handler(url, req))
      .then(({ status, body, contentType }) => {
        const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2) + '\n';
        res.writeHead(status, { 'content-type': contentType ?? (typeof body === 'string' ? 'text/plain' : 'application/json') });
        res.end(text);
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // Exclusive: in a worker of a --concurrency sidecar, this port is the worker's own.
    server.listen({ port, host, exclusive: true }, () => resolve());
  });
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** `/ready` and `/healthz/ready`: 200 `ready`, or 503 with every reason it is not. */
export function readinessAnswer(r: { readonly ready: boolean; readonly reasons: readonly string[] }): { status: number; body: string } {
  return { status: r.ready ? 200 : 503, body: r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n` };
}
