// HTTP/1.1 upstream: an undici Pool per endpoint with keep-alive, whose sockets come from the
// UpstreamTransport (so TLS and identity checks are the transport's job, not undici's); beside
// it, for the fast path's requests (marked RAW), the byte-level pool of proxy/http1/upstream.ts
// over the same transport, so both are owned, shown, retired and closed as one pool.
import { createRequire } from 'node:module';
import type { Dispatcher, Pool as UndiciPool } from 'undici';
import type { Readable } from 'node:stream';
import type { UpstreamTransport } from '../transport/index.js';
import { isProxyError, proxyErrors, type ProxyError } from '../http/errors.js';
import { fromNodeHeaders, type HeaderMap } from '../http/headers.js';
import { RAW, RawPool, type RawUpstreamRequest } from '../http1/upstream.js';
import type { UpstreamRequest, UpstreamResponse, UpstreamTarget } from './types.js';

// undici's index loads every dispatcher, fetch, WebSocket and Node's own bundled undici: ~3.3 MiB
// of heap in every sidecar, for one class and one method. So both come from their own modules:
// the Pool class, and `request`, which the index would install on every dispatcher's prototype
// and which we call on our pool instead. And only on the first request that needs them: a sidecar
// whose HTTP/1.1 requests all take the fast path never loads undici (~1 MiB of heap).
// http1.test.ts checks they are the very ones undici exports, so an upgrade that moves them
// fails there, not in production.
const fromUndici = createRequire(import.meta.url);
type Pool = UndiciPool;
interface UndiciParts {
  readonly Pool: typeof UndiciPool;
  readonly request: (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;
}
let undici: UndiciParts | undefined;

/** undici's Pool class and `request` method, loaded on first use. */
export function undiciParts(): UndiciParts {
  return (undici ??= {
    Pool: fromUndici('undici/lib/dispatcher/pool.js') as typeof UndiciPool,
    request: fromUndici('undici/lib/api/api-request.js') as UndiciParts['request'],
  });
}

export interface Http1Options {
  /** How long an idle keep-alive socket is kept (undici keepAliveTimeout). */
  readonly keepAliveTimeoutMs: number;
}

export class Http1Upstream {
  /** undici's pool, for requests off the fast path; made on the first such request. */
  private pool: Pool | undefined;
  private readonly openPool: () => Pool;
  private readonly address: string;
  /** The fast path's connections; made on its first request. */
  private raw: RawPool | undefined;
  private readonly openRaw: () => RawPool;

  constructor(target: UpstreamTarget, transport: UpstreamTransport, opts: Http1Options) {
    this.address = `${target.host}:${target.port}`;
    const connectTarget = {
      host: target.host,
      port: target.port,
      identity: target.identity,
      targetPort: target.targetPort,
      alpn: ['http/1.1'],
      connectTimeoutMs: target.connectTimeoutMs,
      tunnel: target.tunnel,
      authority: target.authority,
    };
    this.openPool = () =>
      (this.pool ??= new (undiciParts().Pool)(`http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`, {
        connections: target.maxConnections ?? null,
        pipelining: 1,
        keepAliveTimeout: opts.keepAliveTimeoutMs,
        // The route decides timeouts (and a streaming body may legitimately be slow).
        headersTimeout: 0,
        bodyTimeout: 0,
        connect: (_opts, callback) => {
          transport.connect(connectTarget).then(
            (socket) => callback(null, socket),
            // Marked here, where we still know it is a connect failure: undici hands this very
            // error to the waiting requests.
            (err: unknown) => callback(proxyErrors.upstreamConnect(this.address, err), null),
          );
        },
      }));
    this.openRaw = () =>
      (this.raw ??= new RawPool({
        address: this.address,
        connect: () => transport.connect(connectTarget),
        maxConnections: target.maxConnections,
        keepAliveTimeoutMs: opts.keepAliveTimeoutMs,
      }));
  }

  request(req: UpstreamRequest): Promise<UpstreamResponse> {
    // The fast path's requests: straight to its pool's promise (no async frame on its hot path).
    const raw = (req as Partial<RawUpstreamRequest>)[RAW];
    if (raw) return this.openRaw().request(raw);
    return this.requestWithUndici(req);
  }

  private async requestWithUndici(req: UpstreamRequest): Promise<UpstreamResponse> {
    let data: Dispatcher.ResponseData;
    try {
      data = await undiciParts().request.call(this.openPool(), {
        method: req.method as 'GET',
        path: req.path,
        headers: { ...req.headers, host: req.authority },
        body: req.body,
        signal: req.signal,
      });
    } catch (err) {
      throw classifyHttp1Error(err, this.address);
    }
    const trailers = data.trailers as HeaderMap;
    return {
      status: data.statusCode,
      // undici's own object: lower-case names, string values, no pseudo-headers (no copy).
      headers: data.headers as HeaderMap,
      body: data.body as unknown as Readable,
      endStream: false,
      trailers: () => fromNodeHeaders(trailers),
    };
  }

  /** Requests running or waiting on this pool. */
  get busy(): boolean {
    const stats = this.pool?.stats;
    return (stats !== undefined && stats.running + stats.pending + stats.queued > 0) || this.raw?.busy === true;
  }

  get connections(): number {
    return (this.pool?.stats.connected ?? 0) + (this.raw?.connections ?? 0);
  }

  async close(): Promise<void> {
    this.raw?.close();
    await this.pool?.destroy().catch(() => {});
  }
}

/** undici's errors before response headers → the data path's kinds. */
export function classifyHttp1Error(err: unknown, address: string): ProxyError | unknown {
  if (isProxyError(err)) return err;
  const code = (err as { code?: string } | undefined)?.code;
  switch (code) {
    case 'UND_ERR_ABORTED':
    case 'ABORT_ERR':
      return err; // our own abort: the caller knows why (timeout, client gone)
    case 'UND_ERR_INVALID_ARG':
      return proxyErrors.badRequest((err as Error).message);
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return proxyErrors.upstreamConnect(address, err);
    default:
      if ((err as Error | undefined)?.name === 'AbortError') return err;
      return proxyErrors.upstreamReset(address, err);
  }
}
