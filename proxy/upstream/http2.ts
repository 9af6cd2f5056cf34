// HTTP/2 upstream: one ClientHttp2Session per endpoint, its socket from the UpstreamTransport,
// every request a stream on it. A session that got GOAWAY, closed or failed is replaced on the
// next request; streams already running on it finish (GOAWAY) or fail (close). Beside it, for
// the lean HTTP/2 path (proxy/http2), a connection of Weft's own HTTP/2 engine to the same
// endpoint, over the same transport, so both are owned, shown, retired and closed as one pool:
// the pools connect it (a request marked H2_CONNECT), the lean path then opens its streams on it
// straight through the target's lane while the pools keep it theirs.
import http2 from 'node:http2';
import type net from 'node:net';
import { Readable } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { UpstreamTransport } from '../transport/index.js';
import { isProxyError, proxyErrors } from '../http/errors.js';
import { fromNodeHeaders, type HeaderMap } from '../http/headers.js';
import { H2Connection, type H2Stream, type StreamHandler } from '../http2/connection.js';
import type { UpstreamRequest, UpstreamResponse, UpstreamTarget } from './types.js';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;
/** session.request() errors meaning the session is unusable (rather than the request invalid). */
const SESSION_GONE: ReadonlySet<string> = new Set(['ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

/** Marks an UpstreamRequest that only asks for the endpoint's engine connection (the lean path):
 *  it resolves, with a headers-only response of status 0, once the connection is up. Nothing
 *  is sent; it carries no telemetry (its headers are not the request's). */
export const H2_CONNECT = Symbol('weft.http2.connect');

export type H2ConnectRequest = UpstreamRequest & { readonly [H2_CONNECT]: UpstreamTarget };

/** A lane stays open this long after the last connect that came through the pools, so the
 *  pools keep seeing the endpoint in use (their idle sweep, their `lastUsed`). */
const LANE_MS = 1000;

/** Lanes: the upstream of each target the lean path reached through the pools. */
const lanes = new WeakMap<UpstreamTarget, Http2Upstream>();

/** The upstream whose engine connection a lean request for `target` may open its stream on at
 *  `now` (performance.now()): up, and used through the pools recently. */
export function h2LaneFor(target: UpstreamTarget, now: number): Http2Upstream | undefined {
  const up = lanes.get(target);
  return up !== undefined && now - up.viaPoolsAt < LANE_MS && up.engineReady ? up : undefined;
}

const EMPTY_BODY = new Readable({ read() {} }).resume();

/** What an H2_CONNECT request resolves with. */
const CONNECTED: UpstreamResponse = Object.freeze({ status: 0, headers: {}, body: EMPTY_BODY, endStream: true, trailers: () => ({}) });

export class Http2Upstream {
  private session: http2.ClientHttp2Session | undefined;
  private connecting: Promise<http2.ClientHttp2Session> | undefined;
  private engine: H2Connection | undefined;
  private engineConnecting: Promise<H2Connection> | undefined;
  private active = 0;
  private closed = false;
  readonly address: string;
  /** performance.now() of the last H2_CONNECT that came through the pools. */
  viaPoolsAt = -Infinity;

  constructor(
    private readonly target: UpstreamTarget,
    private readonly transport: UpstreamTransport,
    private readonly log: Logger,
  ) {
    this.address = `${target.host}:${target.port}`;
  }

  get busy(): boolean {
    return this.active > 0 || (this.engine !== undefined && this.engine.activeStreams > 0);
  }

  get connections(): number {
    return (this.session && !this.session.closed && !this.session.destroyed ? 1 : 0) + (this.engine?.usable ? 1 : 0);
  }

  /** The engine connection is up and takes new streams. */
  get engineReady(): boolean {
    return !this.closed && this.engine !== undefined && this.engine.usable;
  }

  /**
   * Opens a stream on the engine connection (a lane: `engineReady` was true) and sends its
   * request head (`fields`, then `map`'s); `handler` hears the rest. Undefined when the connection went away meanwhile
   * (nothing was sent: connect again through the pools).
   */
  open(fields: string[], endStream: boolean, handler: StreamHandler, map?: Readonly<HeaderMap>): H2Stream | undefined {
    const engine = this.engine;
    if (this.closed || !engine?.usable) return undefined;
    return engine.request(fields, endStream, handler, map);
  }

  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const target = (req as Partial<H2ConnectRequest>)[H2_CONNECT];
    if (target) {
      this.viaPoolsAt = performance.now();
      lanes.set(target, this);
      await this.getEngine();
      return CONNECTED;
    }
    const headers: http2.OutgoingHttpHeaders = {
      ...req.headers,
      ':method': req.method,
      ':path': req.path,
      ':authority': req.authority,
      ':scheme': req.scheme,
    };
    let stream: http2.ClientHttp2Stream | undefined;
    for (let attempt = 0; !stream; attempt++) {
      const session = await this.getSession(req.signal);
      try {
        stream = session.request(headers, { endStream: req.body === null, signal: req.signal });
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        if (!SESSION_GONE.has(code)) throw proxyErrors.badRequest((err as Error).message); // invalid header name/value
        // The session closed or got GOAWAY between our check and the request: nothing was
        // sent, so one fresh session may be tried.
        if (this.session === session) this.session = undefined;
        if (attempt > 0) throw proxyErrors.upstreamRefusedStream(this.address, err);
      }
    }
    this.active++;
    stream.once('close', () => this.active--);
    // Failures are reported through the promise below or to whoever reads the body; a stream
    // error nobody is listening for any more must not crash the process.
    stream.on('error', () => {});
    writeBody(stream, req.body);

    let trailers: HeaderMap = {};
    stream.on('trailers', (t) => (trailers = fromNodeHeaders(t)));
    return new Promise<UpstreamResponse>((resolve, reject) => {
      const onError = (err: Error) => {
        stream.removeListener('close', onClose);
        reject(this.classify(err, stream));
      };
      const onClose = () => {
        stream.removeListener('error', onError);
        reject(this.classify(undefined, stream));
      };
      stream.once('error', onError);
      stream.once('close', onClose);
      stream.once('response', (h, flags) => {
        stream.removeListener('error', onError);
        stream.removeListener('close', onClose);
        resolve({
          status: Number(h[':status']),
          headers: fromNodeHeaders(h),
          body: stream,
          endStream: (flags & NGHTTP2_FLAG_END_STREAM) !== 0,
          trailers: () => trailers,
        });
      });
    });
  }

  private classify(err: Error | undefined, stream: http2.ClientHttp2Stream): unknown {
    if (err && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR')) return err;
    const code = (err as { code?: string } | undefined)?.code;
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM || code === 'ERR_HTTP2_GOAWAY_SESSION') {
      return proxyErrors.upstreamRefusedStream(this.address, err);
    }
    return proxyErrors.upstreamReset(this.address, err ?? new Error(`stream closed with code ${stream.rstCode ?? 'unknown'}`));
  }

  private usable(s: http2.ClientHttp2Session | undefined): s is http2.ClientHttp2Session {
    return s !== undefined && !s.closed && !s.destroyed;
  }

  private async getSession(signal: AbortSignal): Promise<http2.ClientHttp2Session> {
    if (this.closed) throw proxyErrors.upstreamConnect(this.address, new Error('pool closed'));
    if (this.usable(this.session)) return this.session;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    // A request that gives up waiting must not cancel the shared connect.
    return abortable(this.connecting, signal);
  }

  /** The engine connection, made when there is none. Not abortable: the lean path's requests
   *  wait for it as one (a client that leaves just drops its request). */
  private async getEngine(): Promise<H2Connection> {
    if (this.closed) throw proxyErrors.upstreamConnect(this.address, new Error('pool closed'));
    if (this.engineReady) return this.engine!;
    this.engineConnecting ??= this.connectEngine().finally(() => (this.engineConnecting = undefined));
    return this.engineConnecting;
  }

  private async connectEngine(): Promise<H2Connection> {
    const socket = await this.connectSocket();
    const engine: H2Connection = new H2Connection(socket, {
      role: 'client',
      // GOAWAY: no new streams here; running ones finish. close: gone.
      onGoaway: () => this.forgetEngine(engine),
      onClose: (err) => {
        this.forgetEngine(engine);
        if (err) this.log.debug('upstream h2 connection closed', { upstream: this.address, err });
      },
    });
    engine.start();
    this.engine = engine;
    return engine;
  }

  private forgetEngine(engine: H2Connection): void {
    if (this.engine === engine) this.engine = undefined;
  }

  /** A connected socket (TLS handshake done) through the endpoint's transport, ALPN h2. */
  private async connectSocket(): Promise<net.Socket> {
    let socket: net.Socket;
    try {
      socket = await this.transport.connect({
        host: this.target.host,
        port: this.target.port,
        identity: this.target.identity,
        targetPort: this.target.targetPort,
        alpn: ['h2'],
        connectTimeoutMs: this.target.connectTimeoutMs,
        tunnel: this.target.tunnel,
        authority: this.target.authority,
      });
    } catch (err) {
      throw isProxyError(err) ? err : proxyErrors.upstreamConnect(this.address, err);
    }
    if (this.closed) {
      socket.destroy();
      throw proxyErrors.upstreamConnect(this.address, new Error('pool closed'));
    }
    return socket;
  }

  private async connect(): Promise<http2.ClientHttp2Session> {
    const socket = await this.connectSocket();
    const session = http2.connect(`http://${this.address}`, { createConnection: () => socket });
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    // GOAWAY: no new streams here; running ones finish. close/error: gone.
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('error', (err) => {
      forget();
      this.log.debug('upstream h2 session error', { upstream: this.address, err });
    });
    this.session = session;
    return session;
  }

  async close(): Promise<void> {
    this.closed = true;
    const engine = this.engine;
    this.engine = undefined;
    if (engine) {
      // GOAWAY: streams still running finish; cut after a second like the session's.
      engine.drain();
      setTimeout(() => engine.destroy(), 1000).unref();
    }
    const s = this.session;
    this.session = undefined;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      // Streams still running when the pool is closed for good are cut.
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 1000).unref();
    });
  }
}

function writeBody(stream: http2.ClientHttp2Stream, body: Readable | Buffer | null): void {
  if (body === null) return;
  if (Buffer.isBuffer(body)) {
    stream.end(body);
    return;
  }
  body.pipe(stream);
  // pipe() neither forwards errors nor ends on an aborted source: cancel the stream instead.
  body.once('error', () => {
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  });
  body.once('close', () => {
    if (!body.readableEnded && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  });
  stream.once('close', () => body.unpipe(stream));
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
