// Test support for the data path (imported by *.test.ts only): a config builder, echo backends
// (HTTP/1.1 and h2c) that report what they received, and small clients. Real sockets on
// 127.0.0.1, port 0.
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type {
  Cluster, Endpoint, ForwardAction, HeaderMutation, Listener, Mirror, RetryPolicy, Route, RouteConfig, VirtualHost,
} from '../../api/domain.js';
import { NO_HEADER_MUTATION } from '../../api/domain.js';
import type { Logger } from '../../core/log.js';
import type { ProxyConfig } from '../state/types.js';
import type { InboundTransport } from '../transport/index.js';
import { plainInboundTransport } from '../transport/plain.js';

export { eventually } from '../../test/support/eventually.js';

/**
 * A plaintext inbound transport that reports what MeshTls would from a client certificate and
 * the SNI: the peer proved `peer` and asked for `targetPort`.
 */
export function fakeMtlsInbound(peer: string, targetPort: number): InboundTransport {
  return {
    secure: true,
    createServer: (onSocket) => plainInboundTransport.createServer(onSocket),
    peerIdentity: () => peer,
    targetPort: () => targetPort,
  };
}

/** A logger that drops everything (tests assert on behaviour, not on log lines). */
export const silentLog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silentLog };

// ---- Config builder ------------------------------------------------------------------------

export function endpoint(host: string, port: number, more: Partial<Endpoint> = {}): Endpoint {
  return { host, port, weight: 1, healthy: true, ...more };
}

export function cluster(name: string, more: Partial<Cluster> = {}): Cluster {
  return { name, discovery: 'EDS', edsServiceName: name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, protocol: 'http1', ...more };
}

export function retryPolicy(retryOn: string[], numRetries: number, more: Partial<RetryPolicy> = {}): RetryPolicy {
  return { retryOn: new Set(retryOn), numRetries, retriableStatusCodes: new Set(), backoffBaseMs: 5, backoffMaxMs: 20, ...more };
}

export function forwardTo(
  backends: readonly (string | { cluster: string; weight: number })[],
  more: Partial<Omit<ForwardAction, 'kind' | 'backends' | 'totalWeight'>> & { mirrors?: readonly Mirror[] } = {},
): ForwardAction {
  const bs = backends.map((b) => (typeof b === 'string' ? { cluster: b, weight: 1 } : b));
  return {
    kind: 'forward',
    backends: bs.map((b) => ({ ...b, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION })),
    totalWeight: bs.reduce((a, b) => a + b.weight, 0),
    mirrors: [],
    clusterNotFoundStatus: 503,
    ...more,
  };
}

export function route(name: string, action: Route['action'], more: { prefix?: string; requestHeaders?: HeaderMutation; responseHeaders?: HeaderMutation } = {}): Route {
  return {
    name,
    match: { path: { kind: 'prefix', value: more.prefix ?? '/' }, headers: [], query: [], grpc: false },
    action,
    requestHeaders: more.requestHeaders ?? NO_HEADER_MUTATION,
    responseHeaders: more.responseHeaders ?? NO_HEADER_MUTATION,
  };
}

export function vhost(name: string, domains: readonly string[], routes: readonly Route[]): VirtualHost {
  return { name, domains, routes, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION };
}

/** Every name form of a Service, with and without its port (as the control plane sends). */
export function serviceDomains(svc: string, ns: string, port: number): string[] {
  const names = [`${svc}.${ns}.svc.cluster.local`, `${svc}.${ns}.svc`, `${svc}.${ns}`, svc];
  return [...names, ...names.map((n) => `${n}:${port}`)];
}

let generation = 0;

export function buildConfig(parts: {
  routes?: readonly RouteConfig[];
  clusters?: readonly Cluster[];
  endpoints?: Readonly<Record<string, readonly Endpoint[]>>;
  listeners?: readonly Listener[];
}): ProxyConfig {
  return {
    generation: ++generation,
    listeners: new Map((parts.listeners ?? []).map((l) => [l.name, l])),
    routes: new Map((parts.routes ?? []).map((r) => [r.name, r])),
    clusters: new Map((parts.clusters ?? []).map((c) => [c.name, c])),
    endpoints: new Map(Object.entries(parts.endpoints ?? {}).map(([k, v]) => [k, { clusterName: k, endpoints: v }])),
    secrets: new Map(),
    versions: new Map(),
  };
}

// ---- Echo backends -------------------------------------------------------------------------

export interface EchoReport {
  readonly server: string;
  readonly method: string;
  readonly path: string;
  readonly authority: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly protocol: string;
  readonly bodyBytes: number;
  readonly bodySha256: string;
  readonly remotePort: number | undefined;
}

export interface Echo {
  readonly port: number;
  readonly name: string;
  /** Every request seen, in order. */
  readonly seen: EchoReport[];
  /** Body bytes received so far by requests still in progress (streaming checks). */
  readonly bytesInFlight: { value: number };
  /** Responses whose connection/stream closed before they finished (the proxy gave up). */
  readonly aborted: { value: number };
  /** Lets `/hold` responses finish. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Behaviours by path: `/slow?ms=N` waits; `/status/NNN` answers that status; `/download?bytes=N`
 * streams N bytes; `/reset-mid-body` sends headers and 64 KiB then resets; `/reset` resets at
 * once; `/trailers` answers with trailers; `/hold` streams one chunk, then waits for release();
 * anything else echoes an EchoReport as JSON (the body is hashed as it streams, never kept).
 */
function echoHandler(name: string, seen: EchoReport[], bytesInFlight: { value: number }, holds: Array<() => void>, aborted: { value: number }) {
  return (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    res.once('close', () => {
      if (!res.writableFinished) aborted.value++;
    });
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      bytesInFlight.value += c.length;
      hash.update(c);
    });
    const h2 = req.httpVersionMajor === 2;
    const reset = () => {
      if (h2) (res as http2.Http2ServerResponse).stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else (req as http.IncomingMessage).socket.destroy();
    };
    if (url.pathname === '/reset') return reset();
    req.on('end', () => {
      bytesInFlight.value -= bytes;
      const report: EchoReport = {
        server: name,
        method: req.method ?? '',
        path: req.url ?? '',
        authority: h2 ? (req as http2.Http2ServerRequest).authority : req.headers.host,
        headers: { ...req.headers },
        protocol: req.httpVersion,
        bodyBytes: bytes,
        bodySha256: hash.digest('hex'),
        remotePort: req.socket?.remotePort,
      };
      seen.push(report);
      const w = res as http.ServerResponse;
      if (url.pathname === '/slow') {
        setTimeout(() => {
          w.writeHead(200, { 'content-type': 'application/json' });
          w.end(JSON.stringify(report));
        }, Number(url.searchParams.get('ms') ?? 500));
        return;
      }
      if (url.pathname.startsWith('/status/')) {
        w.writeHead(Number(url.pathname.slice(8)), { 'x-echo-server': name });
        w.end(JSON.stringify(report));
        return;
      }
      if (url.pathname === '/download') {
        let left = Number(url.searchParams.get('bytes') ?? 0);
        w.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
        const chunk = Buffer.alloc(64 * 1024, 7);
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!w.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void w.once('drain', pump);
          }
          w.end();
        };
        return pump();
      }
      if (url.pathname === '/reset-mid-body') {
        w.writeHead(200, { 'content-type': 'application/octet-stream' });
        w.write(Buffer.alloc(64 * 1024, 1));
        setTimeout(reset, 50);
        return;
      }
      if (url.pathname === '/trailers') {
        w.writeHead(200, { 'content-type': 'application/grpc' });
        w.write('payload');
        w.addTrailers({ 'grpc-status': '0', 'x-trailer': 'yes' });
        w.end();
        return;
      }
      if (url.pathname === '/hold') {
        w.writeHead(200, { 'content-type': 'text/plain' });
        w.write('first;');
        holds.push(() => w.end('last'));
        return;
      }
      w.writeHead(200, { 'content-type': 'application/json', 'x-echo-server': name });
      w.end(JSON.stringify(report));
    });
  };
}

/** An HTTP/1.1 echo (with WebSocket-style Upgrade echo: 101, then every byte back). */
export async function startEchoH1(name = 'echo-h1'): Promise<Echo> {
  const seen: EchoReport[] = [];
  const bytesInFlight = { value: 0 };
  const holds: Array<() => void> = [];
  const aborted = { value: 0 };
  const server = http.createServer(echoHandler(name, seen, bytesInFlight, holds, aborted));
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    seen.push({
      server: name, method: req.method ?? '', path: req.url ?? '', authority: req.headers.host, headers: { ...req.headers },
      protocol: req.httpVersion, bodyBytes: 0, bodySha256: '', remotePort: socket.remotePort,
    });
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade ?? ''}\r\nconnection: Upgrade\r\nx-echo-server: ${name}\r\n\r\n`);
    if (head.length) socket.write(head);
    socket.pipe(socket);
    socket.on('error', () => {});
  });
  return listenEcho(server, name, seen, bytesInFlight, holds, aborted);
}

/** An h2c (prior knowledge) echo. */
export async function startEchoH2(name = 'echo-h2'): Promise<Echo> {
  const seen: EchoReport[] = [];
  const bytesInFlight = { value: 0 };
  const holds: Array<() => void> = [];
  const aborted = { value: 0 };
  const server = http2.createServer({}, echoHandler(name, seen, bytesInFlight, holds, aborted));
  return listenEcho(server, name, seen, bytesInFlight, holds, aborted);
}

async function listenEcho(
  server: net.Server, name: string, seen: EchoReport[], bytesInFlight: { value: number }, holds: Array<() => void>, aborted: { value: number },
): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    name,
    seen,
    bytesInFlight,
    aborted,
    release: () => holds.splice(0).forEach((f) => f()),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A server that accepts connections and never answers (to exercise timeouts). */
export async function startBlackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A port nothing listens on (bound, then closed). */
export async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

// ---- Clients -------------------------------------------------------------------------------

export interface SimpleResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  readonly trailers?: Record<string, string | string[] | undefined>;
}

/** One HTTP/2 (h2c prior knowledge) request on an existing session. */
export function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':method': 'GET', ':path': '/', ...headers }, { endStream: body === undefined });
    let status = 0;
    let rh: Record<string, string | string[] | undefined> = {};
    let trailers: Record<string, string | string[] | undefined> | undefined;
    const chunks: Buffer[] = [];
    s.on('response', (h) => {
      status = Number(h[':status']);
      rh = h as typeof rh;
    });
    s.on('trailers', (t) => (trailers = t as typeof trailers));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve({ status, headers: rh, body: Buffer.concat(chunks).toString(), trailers }));
    s.on('error', reject);
    if (body !== undefined) s.end(body);
  });
}

/** Sends raw bytes and collects everything until the server closes or `until` matches. */
export function rawExchange(port: number, data: string, until?: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.on('data', (d) => {
      text += d.toString('latin1');
      if (until?.(text)) {
        sock.destroy();
        resolve(text);
      }
    });
    sock.on('end', () => resolve(text));
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
    sock.write(data);
  });
}
