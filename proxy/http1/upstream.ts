// The fast path's side of an HTTP/1.1 upstream: a keep-alive pool of connections per endpoint
// (one lives inside each upstream/http1.ts pool, so the shared UpstreamPools still own, show,
// retire and close it) that writes a request head the caller already built, relays the body
// bytes the caller hands it, and parses only the response head and its framing.
import { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { isProxyError, proxyErrors, type ProxyError } from '../http/errors.js';
import type { HeaderMap } from '../http/headers.js';
import type { UpstreamRequest, UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import { ChunkedDecoder, MAX_HEAD_BYTES, parseResponseHead, persistent, responseFraming, type Framing, type ResponseHead } from './parser.js';

/** Marks an UpstreamRequest as the fast path's: the HTTP/1.1 pool sends it with RawPool. */
export const RAW = Symbol('weft.http1.raw');

/** What the fast path hands the pool for one request (the exchange implements it). */
export interface RawRequest {
  /** The endpoint, so that the pool can be found again without the shared pools (lanes). */
  readonly target: UpstreamTarget;
  /** The request head and the body bytes at hand; called when a connection takes the request
   *  (again on a replay, so it must return the same bytes then). */
  takeHead(): Buffer | string;
  /** The request went out on `conn`: the rest of the body goes through conn.writeBody. */
  sent(conn: UpstreamConnection): void;
  /** The request is a HEAD: its response has no body, whatever its fields say. */
  readonly noResponseBody: boolean;
  /** Everything is in the head and the method is idempotent: it may be sent again on a fresh
   *  connection when a reused one turns out to be closed before any response byte. */
  readonly replayable: boolean;
  /** Set when the exchange gave up (client gone, timeout) before a connection took it. */
  readonly cancelled: unknown;
}

export type RawUpstreamRequest = UpstreamRequest & { readonly [RAW]: RawRequest };

/** Where the response body goes once the exchange has the head (the exchange implements it). */
export interface BodySink {
  /** Body bytes (de-chunked). False: stop until `resume()`. */
  onBodyData(chunk: Buffer): boolean;
  /** The body is complete; `trailers` from a chunked body (unfiltered). */
  onBodyEnd(trailers: HeaderMap | undefined): void;
  /** The upstream failed in the middle of the body. */
  onBodyError(err: ProxyError): void;
}

/** What the pools and telemetry see of a response body: its end / error / close events and
 *  `errored` (the fast path takes the bytes through BodySink, never through a stream). */
class RawBody extends EventEmitter {
  errored: Error | null = null;
  constructor(private readonly conn: UpstreamConnection) {
    super();
  }
  destroy(): void {
    this.conn.abort(proxyErrors.upstreamReset(this.conn.pool.address, new Error('response body abandoned')));
  }
}

/** An upstream response at its head; `start` begins the body. */
export class RawResponse implements UpstreamResponse {
  readonly endStream = false;
  readonly headers: HeaderMap;
  readonly status: number;
  /** Made when first asked for (the shared pools do; a lane request usually never does). */
  private rawBody: RawBody | undefined;
  private outcome: 'end' | 'abandoned' | Error | undefined;
  private trailerMap: HeaderMap = {};

  constructor(
    readonly head: ResponseHead,
    readonly framing: Framing,
    readonly conn: UpstreamConnection,
  ) {
    this.status = head.status;
    this.headers = head.headers;
  }

  get body(): Readable {
    if (!this.rawBody) {
      this.rawBody = new RawBody(this.conn);
      if (this.outcome instanceof Error) this.rawBody.errored = this.outcome;
    }
    return this.rawBody as unknown as Readable;
  }

  trailers(): HeaderMap {
    return this.trailerMap;
  }

  /** Starts delivering the body to `sink`, at once for what already arrived. */
  start(sink: BodySink): void {
    this.conn.startBody(sink);
  }

  /** @internal The body is over: complete, failed with `err`, or abandoned by the caller. */
  ended(how: 'end' | 'abandoned' | Error, trailers?: HeaderMap): void {
    if (trailers) this.trailerMap = trailers;
    this.outcome = how;
    const body = this.rawBody;
    if (!body) return;
    if (how instanceof Error) {
      body.errored = how;
      if (body.listenerCount('error') > 0) body.emit('error', how);
    } else if (how === 'end') {
      body.emit('end');
    }
    body.emit('close');
  }
}

const enum State {
  Idle,
  Waiting,
  Body,
  Closed,
}

/** How a request sent through a lane learns its outcome (the exchange itself: no closures). */
export interface RawOutcome {
  /** The response head arrived. */
  onUpstreamHead(r: RawResponse): void;
  /** No response head: connect failure, reset, or the exchange's own cancel reason. */
  onUpstreamFailed(err: unknown): void;
}

interface Job {
  readonly req: RawRequest;
  /** A promise's resolve / reject, or a lane request's RawOutcome methods. */
  readonly resolve: (r: RawResponse) => void;
  readonly reject: (err: unknown) => void;
  readonly outcome: RawOutcome | undefined;
  /** Already replayed once after a stale connection. */
  replayed: boolean;
}

/** One keep-alive connection to the endpoint; carries one request at a time. */
export class UpstreamConnection {
  private state = State.Idle;
  private job: Job | undefined;
  private pending: Buffer | undefined;
  private response: RawResponse | undefined;
  private sink: BodySink | undefined;
  private remaining = 0;
  private chunked: ChunkedDecoder | undefined;
  private failure: ProxyError | undefined;
  private requestDone = false;
  /** The server closed a close-delimited body; complete once what is buffered is delivered. */
  private eof = false;
  private bytesIn = 0;
  private sinkOk = true;
  private drainWaiter: (() => void) | undefined;
  /** Requests this connection has completed (0: a fresh connection). */
  uses = 0;
  /** When it last went idle (Date.now()), for the keep-alive sweep. */
  idleSince = 0;

  constructor(
    readonly socket: Duplex,
    readonly pool: RawPool,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('drain', this.onDrain);
  }

  get idle(): boolean {
    return this.state === State.Idle;
  }

  /** Sends `job`'s request; its promise settles at the response head. */
  send(job: Job): void {
    this.state = State.Waiting;
    this.job = job;
    this.requestDone = false;
    this.eof = false;
    this.bytesIn = 0;
    const head = job.req.takeHead();
    if (typeof head === 'string') this.socket.write(head, 'latin1');
    else this.socket.write(head);
    job.req.sent(this);
  }

  /** Request body bytes (already framed by the caller). False: wait for `onceDrained`. */
  writeBody(chunk: Buffer | string): boolean {
    if (this.state === State.Closed || this.job === undefined) return true;
    return typeof chunk === 'string' ? this.socket.write(chunk, 'latin1') : this.socket.write(chunk);
  }

  /** The caller has written the whole request. */
  requestComplete(): void {
    this.requestDone = true;
  }

  onceDrained(cb: () => void): void {
    this.drainWaiter = cb;
  }

  /** The sink can take more body bytes again (it returned false before). */
  resume(): void {
    this.sinkOk = true;
    if (this.state === State.Body && this.pending) {
      const buf = this.pending;
      this.pending = undefined;
      this.feed(buf, 0);
    }
    if (this.state === State.Body && this.eof && this.sinkOk && !this.pending) return this.complete(undefined, 0);
    if (this.sinkOk) this.socket.resume();
  }

  /** The caller gives up on the current request (client gone, timeout): the connection is
   *  closed, a waiting promise rejected with `reason`, a body abandoned (not failed). */
  abort(reason: unknown): void {
    this.close(reason, true);
  }

  /** The pool closes: whatever the connection carries fails with `reason`. */
  fail(reason: unknown): void {
    this.close(reason);
  }

  /** @internal RawResponse.start */
  startBody(sink: BodySink): void {
    this.sink = sink;
    if (this.failure) return sink.onBodyError(this.failure);
    const buf = this.pending;
    this.pending = undefined;
    if (this.framing() === 'none') return this.complete(buf, 0);
    if (buf) this.feed(buf, 0);
    if (this.state === State.Body && this.eof && this.sinkOk && !this.pending) this.complete(undefined, 0);
  }

  private framing(): Framing {
    return this.response?.framing ?? 'none';
  }

  private onData = (chunk: Buffer): void => {
    this.bytesIn += chunk.length;
    try {
      switch (this.state) {
        case State.Waiting:
          return this.readHead(this.pending ? Buffer.concat([this.pending, chunk]) : chunk);
        case State.Body:
          if (!this.sink || !this.sinkOk) {
            this.pending = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
            return;
          }
          return this.feed(chunk, 0);
        default:
          // Bytes nobody asked for: the connection can no longer be trusted.
          this.close(proxyErrors.upstreamReset(this.pool.address, new Error('unsolicited bytes on an idle connection')));
      }
    } catch (err) {
      // A bug (here or in what the sink did with the bytes): the request fails as internal.
      this.close(proxyErrors.internal(err));
    }
  };

  private readHead(buf: Buffer): void {
    let head: ResponseHead | undefined;
    for (;;) {
      try {
        head = parseResponseHead(buf);
      } catch (err) {
        return this.close(proxyErrors.upstreamReset(this.pool.address, new Error(`malformed response: ${(err as Error).message}`)));
      }
      if (!head) {
        if (buf.length > MAX_HEAD_BYTES) return this.close(proxyErrors.upstreamReset(this.pool.address, new Error('response head too large')));
        this.pending = buf;
        return;
      }
      if (head.status >= 200) break;
      // 1xx (100 Continue, 103 Early Hints): informational, not forwarded (as undici does);
      // 101 was never asked for.
      if (head.status === 101) return this.close(proxyErrors.upstreamReset(this.pool.address, new Error('unexpected 101 Switching Protocols')));
      buf = buf.subarray(head.size);
    }
    const job = this.job!;
    const framing = responseFraming(head, job.req.noResponseBody);
    this.state = State.Body;
    this.pending = buf.length > head.size ? buf.subarray(head.size) : undefined;
    this.remaining = framing === 'length' ? head.contentLength : 0;
    this.chunked = framing === 'chunked' ? new ChunkedDecoder() : undefined;
    this.sink = undefined;
    this.sinkOk = true;
    this.response = new RawResponse(head, framing, this);
    job.resolve(this.response);
  }

  private feed(buf: Buffer, start: number): void {
    const sink = this.sink!;
    switch (this.framing()) {
      case 'length': {
        const take = Math.min(this.remaining, buf.length - start);
        if (take > 0) this.sinkOk = sink.onBodyData(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take)) && this.sinkOk;
        this.remaining -= take;
        if (this.remaining === 0) return this.complete(buf, start + take);
        break;
      }
      case 'chunked': {
        const decoder = this.chunked!;
        let end: number;
        try {
          end = decoder.decode(buf, start, this.onChunk);
        } catch (err) {
          return this.close(proxyErrors.upstreamReset(this.pool.address, new Error(`malformed chunked body: ${(err as Error).message}`)));
        }
        if (decoder.done) return this.complete(buf, end);
        break;
      }
      case 'close':
        if (buf.length > start) this.sinkOk = sink.onBodyData(start === 0 ? buf : buf.subarray(start)) && this.sinkOk;
        break;
      case 'none':
        return this.complete(buf, start);
    }
    if (!this.sinkOk) this.socket.pause();
  }

  private onChunk = (data: Buffer): void => {
    this.sinkOk = this.sink!.onBodyData(data) && this.sinkOk;
  };

  /** The response ended at buf[next]; anything after it was never asked for. */
  private complete(buf: Buffer | undefined, next: number): void {
    const response = this.response!;
    const sink = this.sink!;
    const extra = buf !== undefined && buf.length > next;
    const reusable = !extra && !this.eof && this.requestDone && response.framing !== 'close' && persistent(response.head);
    const trailers = this.chunked?.trailers;
    this.state = State.Idle;
    this.job = undefined;
    this.response = undefined;
    this.sink = undefined;
    this.chunked = undefined;
    this.pending = undefined;
    this.drainWaiter = undefined;
    this.uses++;
    if (!this.sinkOk) {
      this.sinkOk = true;
      this.socket.resume();
    }
    // Back to the pool first: the sink's end may start the client's next request at once.
    this.pool.release(this, reusable);
    response.ended('end', trailers);
    sink.onBodyEnd(trailers);
  }

  private onEnd = (): void => {
    if (this.state === State.Body && this.framing() === 'close') {
      // The end of a close-delimited body; what is still buffered is delivered first.
      this.eof = true;
      if (this.sink && this.sinkOk && !this.pending) this.complete(undefined, 0);
      return;
    }
    this.close(proxyErrors.upstreamReset(this.pool.address, new Error('connection closed before the response was complete')));
  };

  private onError = (err: Error): void => {
    this.close(proxyErrors.upstreamReset(this.pool.address, err));
  };

  private onClose = (): void => {
    if (this.eof && this.state === State.Body) return; // finishes from the buffer (see onEnd)
    this.close(proxyErrors.upstreamReset(this.pool.address, new Error('connection closed before the response was complete')));
  };

  private onDrain = (): void => {
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
  };

  /** Closes the connection if it is idle (the pool's keep-alive sweep). */
  expire(): void {
    if (this.state === State.Idle) this.close(undefined);
  }

  /** Ends the connection; fails whatever it was carrying with `reason` (`byCaller`: the
   *  caller gave up, so a body is abandoned rather than failed). */
  private close(reason: unknown, byCaller = false): void {
    if (this.state === State.Closed) return;
    const state = this.state;
    const job = this.job;
    this.state = State.Closed;
    this.job = undefined;
    this.drainWaiter = undefined;
    this.socket.destroy();
    this.pool.forget(this);
    if (state === State.Waiting && job) {
      // A reused connection the server had closed before reading our request: try once more on
      // a fresh one, if the request allows it (everything in the head, idempotent).
      if (this.uses > 0 && this.bytesIn === 0 && job.req.replayable && !job.replayed && job.req.cancelled === undefined && isProxyError(reason, 'upstream_reset')) {
        job.replayed = true;
        this.pool.dispatch(job, true);
        return;
      }
      job.reject(reason);
    } else if (state === State.Body) {
      const err = isProxyError(reason) ? reason : proxyErrors.upstreamReset(this.pool.address, reason);
      this.response?.ended(byCaller ? 'abandoned' : err);
      if (byCaller) return;
      if (this.sink) this.sink.onBodyError(err);
      else this.failure = err;
    }
  }
}

export interface RawPoolOptions {
  /** `host:port`, for errors. */
  readonly address: string;
  /** Opens a connected socket (TLS handshake done) through the endpoint's transport. */
  readonly connect: () => Promise<Duplex>;
  /** At most this many connections (the cluster's max_connections); undefined: no limit. */
  readonly maxConnections: number | undefined;
  /** Idle connections are closed after this long (below the server's keep-alive timeout). */
  readonly keepAliveTimeoutMs: number;
}

function settleHead(this: Job, r: RawResponse): void {
  this.outcome!.onUpstreamHead(r);
}

function settleFailed(this: Job, err: unknown): void {
  this.outcome!.onUpstreamFailed(err);
}

/** The pools with idle connections to look at, and the one timer that does (no socket timers:
 *  refreshing them on every read and write costs more than a sweep). */
const sweeping = new Set<RawPool>();
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 250;

function sweepIdle(): void {
  const now = Date.now();
  for (const pool of sweeping) pool.expireIdle(now);
  if (sweeping.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/**
 * Lanes: the raw pool of each target the shared pools made one for. A request may go straight to
 * it (callbacks, no promise chain through UpstreamPools) while the pools have seen a request for
 * that target recently enough to keep the pool theirs (not idle, not swept); otherwise it goes
 * through UpstreamPools, which refreshes the lane.
 */
const lanes = new WeakMap<UpstreamTarget, RawPool>();

/** The pool a request for `target` may use directly at `now` (performance.now()), if any. */
export function laneFor(target: UpstreamTarget, now: number): RawPool | undefined {
  const pool = lanes.get(target);
  return pool !== undefined && pool.usable && now - pool.viaPoolsAt < pool.keepAliveTimeoutMs ? pool : undefined;
}

/** The connections to one endpoint. Requests beyond maxConnections wait, in order. */
export class RawPool {
  readonly address: string;
  readonly keepAliveTimeoutMs: number;
  /** performance.now() of the last request that came through the shared pools. */
  viaPoolsAt = -Infinity;
  private readonly idleConns: UpstreamConnection[] = [];
  private readonly conns = new Set<UpstreamConnection>();
  private readonly waiting: Job[] = [];
  private connecting = 0;
  private closed = false;

  constructor(private readonly opts: RawPoolOptions) {
    this.address = opts.address;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs;
  }

  get usable(): boolean {
    return !this.closed;
  }

  /** Sends `req` for the shared pools; resolves at the response head. Rejects with
   *  upstream_connect / upstream_reset ProxyErrors, or with `req.cancelled` when the exchange
   *  gave up first. Keeps the target's lane open. */
  request(req: RawRequest): Promise<RawResponse> {
    this.viaPoolsAt = performance.now();
    lanes.set(req.target, this);
    return new Promise<RawResponse>((resolve, reject) => this.dispatch({ req, resolve, reject, outcome: undefined, replayed: false }, false));
  }

  /** The same through a lane: `outcome` hears once, as the promise would settle. */
  send(req: RawRequest, outcome: RawOutcome): void {
    this.dispatch({ req, resolve: settleHead, reject: settleFailed, outcome, replayed: false }, false);
  }

  /** @internal Gives `job` a connection: an idle one (unless `fresh`), a new one, or a place in line. */
  dispatch(job: Job, fresh: boolean): void {
    if (this.closed) return job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
    if (job.req.cancelled !== undefined) return job.reject(job.req.cancelled);
    const idle = fresh ? undefined : this.idleConns.pop();
    if (idle) return idle.send(job);
    const max = this.opts.maxConnections;
    if (max !== undefined && this.conns.size + this.connecting >= max) {
      this.waiting.push(job);
      return;
    }
    this.open(job);
  }

  private open(job: Job): void {
    this.connecting++;
    this.opts.connect().then(
      (socket) => {
        this.connecting--;
        if (this.closed) {
          socket.destroy();
          return job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
        }
        const conn = new UpstreamConnection(socket, this);
        this.conns.add(conn);
        if (job.req.cancelled !== undefined) {
          job.reject(job.req.cancelled);
          return this.release(conn, true);
        }
        conn.send(job);
      },
      (err: unknown) => {
        this.connecting--;
        job.reject(isProxyError(err) ? err : proxyErrors.upstreamConnect(this.address, err));
        this.next();
      },
    );
  }

  /** @internal A connection finished a request: reuse it, or close it. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    if (!reusable || this.closed) return conn.abort(undefined);
    for (let job = this.waiting.shift(); job; job = this.waiting.shift()) {
      if (job.req.cancelled !== undefined) {
        job.reject(job.req.cancelled);
        continue;
      }
      return conn.send(job);
    }
    conn.idleSince = Date.now();
    this.idleConns.push(conn);
    if (!sweeping.has(this)) {
      sweeping.add(this);
      sweeper ??= setInterval(sweepIdle, SWEEP_MS).unref();
    }
  }

  /** @internal Closes connections idle for keepAliveTimeoutMs (oldest first in the stack). */
  expireIdle(now: number): void {
    while (this.idleConns.length > 0 && now - this.idleConns[0]!.idleSince >= this.keepAliveTimeoutMs) this.idleConns[0]!.expire();
    if (this.idleConns.length === 0) sweeping.delete(this);
  }

  /** @internal A connection closed: it leaves the pool, and its slot may open another. */
  forget(conn: UpstreamConnection): void {
    if (!this.conns.delete(conn)) return;
    const i = this.idleConns.indexOf(conn);
    if (i >= 0) this.idleConns.splice(i, 1);
    this.next();
  }

  /** A connection slot freed up: open one for the first live waiter. */
  private next(): void {
    const max = this.opts.maxConnections;
    while (this.waiting.length > 0 && (max === undefined || this.conns.size + this.connecting < max)) {
      const job = this.waiting.shift()!;
      if (job.req.cancelled !== undefined) {
        job.reject(job.req.cancelled);
        continue;
      }
      this.open(job);
      return;
    }
  }

  /** Requests running or waiting. */
  get busy(): boolean {
    return this.connecting > 0 || this.waiting.length > 0 || this.conns.size > this.idleConns.length;
  }

  get connections(): number {
    return this.conns.size;
  }

  close(): void {
    this.closed = true;
    sweeping.delete(this);
    for (const job of this.waiting.splice(0)) job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
    for (const conn of [...this.conns]) conn.fail(proxyErrors.upstreamReset(this.address, new Error('upstream pool closed')));
    this.conns.clear();
    this.idleConns.length = 0;
  }
}
