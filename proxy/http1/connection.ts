// One keep-alive HTTP/1.1 connection of the fast path's upstream pool (upstream.ts): writes a
// request head the caller built, lets the caller relay body bytes, parses only the response head
// and its framing, and hands the body bytes to the caller's sink as they come.
import { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { isProxyError, proxyErrors, type ProxyError } from '../http/errors.js';
import type { HeaderMap } from '../http/headers.js';
import type { UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import { ChunkedDecoder, MAX_HEAD_BYTES, parseResponseHead, persistent, responseFraming, type Framing, type ResponseHead } from './parser.js';
import { holdUntilTurnEnd } from './turn.js';
import type { RawPool } from './upstream.js';

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

/** @internal One request handed to the pool, until its head or its failure. */
export interface Job {
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
  /** When it last went idle (the sweep's Date.now() clock, see upstream.ts), for the keep-alive sweep. */
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
    holdUntilTurnEnd(this.socket);
    if (typeof head === 'string') this.socket.write(head, 'latin1');
    else this.socket.write(head);
    job.req.sent(this);
  }

  /** Request body bytes (already framed by the caller). False: wait for `onceDrained`. */
  writeBody(chunk: Buffer | string): boolean {
    if (this.state === State.Closed || this.job === undefined) return true;
    holdUntilTurnEnd(this.socket);
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
