// Echo apps for routing tests: each answers with what it saw (its name, method, path, host,
// headers, protocol) and records every request, so a test can tell which backend a route chose,
// what the filters did, and how many mirrored copies arrived. HTTP/1.1, or h2c only.
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type net from 'node:net';

/** What an echo app answers (JSON) and records. */
export interface Echoed {
  readonly name: string;
  readonly method: string;
  /** Path with query, as received. */
  readonly path: string;
  /** Host (HTTP/1.1) or :authority (HTTP/2). */
  readonly host: string;
  /** Lower-case names; repeated headers as node joins them (`, `), set-cookie as a list. */
  readonly headers: Record<string, string | string[] | undefined>;
  /** '1.1' or '2.0'. */
  readonly protocol: string;
  /** Request body size and SHA-256 (hex). */
  readonly bytes: number;
  readonly sha256: string;
  /** Date.now() when the request body ended. */
  readonly at: number;
}

export interface EchoApp {
  readonly name: string;
  readonly port: number;
  /** Every request seen, in arrival order (recorded when the request body has ended). */
  readonly seen: Echoed[];
  /** Requests whose path starts with `prefix`. */
  count(prefix?: string): number;
  close(): Promise<void>;
}

/**
 * Request headers that steer the echo app, so one app serves every test:
 * - `x-echo-status: 503` answers that status;
 * - `x-echo-fail: N` with `x-echo-key: K`: the first N requests with key K fail as
 *   `x-echo-fail-status` says (a status, default 503; `reset`; `delay:<ms>`), later ones
 *   succeed (retries);
 * - `x-echo-delay-ms: 300` waits before answering headers (timeouts);
 * - `x-echo-response-headers: {"name":"value" | ["v1","v2"]}` adds response headers;
 * - `x-echo-reset: 1` destroys the connection without an answer (connection errors).
 * Requests whose path starts with `holdPrefix` are recorded and never answered.
 */
export async function startEcho(name: string, opts: { h2c?: boolean; holdPrefix?: string } = {}): Promise<EchoApp> {
  const seen: Echoed[] = [];
  const failures = new Map<string, number>();
  const sockets = new Set<net.Socket | http2.ServerHttp2Session>();

  const handle = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      const h2 = req.httpVersionMajor === 2;
      const headers: Record<string, string | string[] | undefined> = {};
      for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith(':')) headers[k] = v;
      const echoed: Echoed = {
        name,
        method: req.method ?? '',
        path: req.url ?? '',
        host: (h2 ? (req as http2.Http2ServerRequest).authority : req.headers.host) ?? '',
        headers,
        protocol: req.httpVersion,
        bytes,
        sha256: hash.digest('hex'),
        at: Date.now(),
      };
      seen.push(echoed);
      const header = (n: string) => {
        const v = req.headers[n];
        return Array.isArray(v) ? v[0] : v;
      };
      let status = Number(header('x-echo-status') ?? 200);
      let delay = Number(header('x-echo-delay-ms') ?? 0);
      let reset = header('x-echo-reset') === '1';
      const key = header('x-echo-key');
      const fail = Number(header('x-echo-fail') ?? 0);
      if (key !== undefined && fail > 0) {
        const n = (failures.get(key) ?? 0) + 1;
        failures.set(key, n);
        if (n <= fail) {
          // A number is a status; `reset` drops the connection; `delay:<ms>` answers late.
          const how = header('x-echo-fail-status') ?? '503';
          if (how === 'reset') reset = true;
          else if (how.startsWith('delay:')) delay = Number(how.slice(6));
          else status = Number(how);
        }
      }
      if (reset) {
        if (h2) (res as http2.Http2ServerResponse).stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        else req.socket.destroy();
        return;
      }
      if (opts.holdPrefix !== undefined && echoed.path.startsWith(opts.holdPrefix)) return; // never answered
      const extra = JSON.parse(header('x-echo-response-headers') ?? '{}') as Record<string, string | string[]>;
      const answer = () => {
        if (res.writableEnded || res.destroyed) return;
        const body = JSON.stringify(echoed);
        res.writeHead(status, { ...extra, 'content-type': 'application/json', 'x-echo-name': name });
        res.end(body);
      };
      if (delay > 0) setTimeout(answer, delay).unref();
      else answer();
    });
  };

  let server: http.Server | http2.Http2Server;
  if (opts.h2c) {
    const s = http2.createServer();
    s.on('request', handle);
    s.on('session', (session) => {
      sockets.add(session);
      session.once('close', () => sockets.delete(session));
    });
    server = s;
  } else {
    const s = http.createServer(handle);
    s.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server = s;
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    seen,
    count: (prefix = '') => seen.filter((e) => e.path.startsWith(prefix)).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** The answer to one request made through a sidecar. */
export interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly body: string;
  /** The echo app's report, when the answer came from one. */
  readonly echo: Echoed | undefined;
}

export interface CallOptions {
  readonly method?: string;
  /** Header values may repeat: an array sends the header once per value. */
  readonly headers?: Record<string, string | string[]>;
  readonly body?: string | Buffer;
  /** Send the request in absolute-form (as an HTTP_PROXY client does). Default origin-form. */
  readonly absolute?: boolean;
  /** A Host header other than `host` (with `absolute`: the target names one host, Host another). */
  readonly hostHeader?: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** One HTTP/1.1 request to a sidecar's outbound listener for `http://<host><path>`. */
export function call(outbound: string, host: string, path = '/', opts: CallOptions = {}): Promise<Answer> {
  const proxy = new URL(outbound);
  return new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      {
        host: proxy.hostname,
        port: proxy.port,
        method: opts.method ?? 'GET',
        path: opts.absolute ? `http://${host}${path}` : path,
        headers: { host: opts.hostHeader ?? host, ...opts.headers },
        agent,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          let echo: Echoed | undefined;
          if (res.headers['x-echo-name'] !== undefined) {
            try {
              echo = JSON.parse(body) as Echoed;
            } catch {
              echo = undefined;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body, echo });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** `count` requests (in batches of `parallel`), returned in order. Bounded by count. */
export async function callMany(count: number, parallel: number, one: (i: number) => Promise<Answer>): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, count - start) }, (_, k) => one(start + k)));
    out.push(...batch);
  }
  return out;
}

/** Which echo app answered each request, counted by name (non-echo answers under `HTTP <status>`). */
export function tally(answers: readonly Answer[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of answers) {
    const k = a.echo?.name ?? `HTTP ${a.status}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}
