// The fast path's connection handler: reads HTTP/1.1 requests off a client connection as
// bytes, one at a time in order (keep-alive, pipelining-safe), asks the listener whether each
// may go the fast way (a plain forward), and runs it as an Exchange. The first request it will
// not take — Upgrade, CONNECT, Expect, HTTP/1.0, anything but a forward plan — hands the
// connection to node:http before a byte of that request was consumed, for good.
import http from 'node:http';
import type net from 'node:net';
import { isProxyError, proxyErrors } from '../http/errors.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { LiveSet } from '../http/live-set.js';
import { writeRawAnswer } from '../http/respond.js';
import { Exchange, type Downstream, type ExchangeEnv, type FastForward } from './exchange.js';
import { ChunkedDecoder, MAX_HEAD_BYTES, parseRequestHead, requestFraming, type RequestHead } from './parser.js';
import { releaseNow } from './turn.js';

/** The listener's part: may this request go the fast way? undefined hands it to node:http.
 *  Called once per request with its parsed head; must not throw, must not do I/O. */
export type FastDecide = (head: RequestHead, conn: ConnectionInfo, socket: net.Socket) => FastForward | undefined;

/** The frontend's part (proxy/http/frontend.ts): its request count, drain, and node:http. */
export interface FastPathHost {
  /** The listener is draining. */
  closing(): boolean;
  requestStarted(): void;
  requestEnded(): void;
  /** node:http takes the connection from here on; `unread` are bytes read but not consumed. */
  handOff(socket: net.Socket, unread: Buffer | undefined): void;
}

export interface FastPathOptions {
  readonly decide: FastDecide;
  readonly env: ExchangeEnv;
  /** A connection idle this long between requests is closed (the frontend's keep-alive). */
  readonly idleTimeoutMs: number;
}

export interface FastPath {
  /** Serves an HTTP/1.1 connection; `initial`: bytes already read from it (protocol sniffing). */
  serve(socket: net.Socket, info: ConnectionInfo, host: FastPathHost, initial?: Buffer): void;
}

/** Methods node:http knows (it answers 400 to others): anything else is its business. */
const METHODS: ReadonlySet<string> = new Set(http.METHODS);
/** Pipelined bytes held while a request is in flight before the client is paused. */
const MAX_PIPELINED = 64 * 1024;

export function createFastPath(opts: FastPathOptions): FastPath {
  // Idle connections are found by a sweep rather than socket timers, whose refresh on every read
  // and write costs more; `clock` is the sweep's coarse time, stamped on each connection's use.
  const conns = new LiveSet<FastConnection>();
  const clock = { now: Date.now() };
  const every = Math.max(10, Math.min(1000, Math.floor(opts.idleTimeoutMs / 4)));
  let timer: NodeJS.Timeout | undefined;
  const sweep = () => {
    clock.now = Date.now();
    for (const c of conns.values()) c.expireIfIdle(clock.now - opts.idleTimeoutMs);
    if (conns.size === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const gone = (c: FastConnection) => conns.delete(c);
  return {
    serve(socket, info, host, initial) {
      const c = new FastConnection(socket, info, host, opts, clock, gone);
      conns.add(c);
      if (!timer) {
        clock.now = Date.now();
        timer = setInterval(sweep, every).unref();
      }
      c.start(initial);
    },
  };
}

class FastConnection implements Downstream {
  /** Its place among the listener's connections (LiveSet). */
  liveSlot = -1;
  /** Bytes read and not consumed: the start of the next request(s). */
  private pending: Buffer | undefined;
  private exchange: Exchange | undefined;
  /** The current request's body is still arriving. */
  private receiving = false;
  private bodyLeft = 0;
  private chunked: ChunkedDecoder | undefined;
  private bodyPaused = false;
  private pipelinePaused = false;
  private ended = false;
  private closed = false;
  private parsing = false;
  private again = false;
  private controller: AbortController | undefined;
  /** The sweep clock when the connection was last used. */
  private lastActive: number;

  constructor(
    readonly socket: net.Socket,
    readonly info: ConnectionInfo,
    private readonly host: FastPathHost,
    private readonly opts: FastPathOptions,
    private readonly clock: { readonly now: number },
    private readonly gone: (c: FastConnection) => void,
  ) {
    this.lastActive = clock.now;
  }

  /** Closes the connection when no request is in flight and nothing came since `before`
   *  (the frontend's keep-alive timeout; a head that never completes counts as nothing). */
  expireIfIdle(before: number): void {
    if (!this.exchange && this.lastActive < before) this.socket.destroy();
  }

  start(initial: Buffer | undefined): void {
    const s = this.socket;
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onClose);
    s.on('drain', this.onDrain);
    if (initial && initial.length > 0) this.onData(initial);
    s.resume();
  }

  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }

  closing(): boolean {
    return this.host.closing();
  }

  pause(): void {
    this.bodyPaused = true;
    this.socket.pause();
  }

  resume(): void {
    this.bodyPaused = false;
    if (!this.pipelinePaused && !this.closed) this.socket.resume();
  }

  private onData = (chunk: Buffer): void => {
    if (this.closed) return;
    this.lastActive = this.clock.now;
    try {
      if (this.receiving) {
        const used = this.feedBody(chunk, 0);
        if (used < chunk.length) this.keep(chunk.subarray(used));
        return;
      }
      this.keep(chunk);
      if (!this.exchange) this.next();
    } catch (err) {
      // A bug, not the client's doing: this connection ends, the process goes on.
      this.opts.env.deps.log.error('HTTP/1.1 fast path failed; closing the client connection', { client: this.info.remoteAddress, error: err });
      this.socket.destroy();
    }
  };

  private keep(bytes: Buffer): void {
    this.pending = this.pending ? Buffer.concat([this.pending, bytes]) : bytes;
    if (this.exchange && this.pending.length > MAX_PIPELINED && !this.pipelinePaused) {
      this.pipelinePaused = true;
      this.socket.pause();
    }
  }

  /** Feeds the current request's body from buf[start..]; returns where the body ended. */
  private feedBody(buf: Buffer, start: number): number {
    const exchange = this.exchange!;
    let end: number;
    if (this.chunked) {
      try {
        end = this.chunked.decode(buf, start, this.onBodyData);
      } catch (err) {
        this.badBody(err);
        return buf.length;
      }
      if (!this.chunked.done) return end;
    } else {
      const take = Math.min(this.bodyLeft, buf.length - start);
      exchange.body(start === 0 && take === buf.length ? buf : buf.subarray(start, start + take));
      this.bodyLeft -= take;
      end = start + take;
      if (this.bodyLeft > 0) return end;
    }
    this.receiving = false;
    this.chunked = undefined;
    exchange.bodyEnd();
    return end;
  }

  private onBodyData = (data: Buffer): void => {
    this.exchange?.body(data);
  };

  /** Broken chunked framing in the middle of a request: 400 if nothing was answered yet, and
   *  the connection ends; the upstream side of the exchange is cancelled. */
  private badBody(err: unknown): void {
    this.receiving = false;
    this.chunked = undefined;
    this.ended = true;
    this.pending = undefined;
    const exchange = this.exchange;
    releaseNow(this.socket); // what was written before goes first, even if the answer is a reset
    if (exchange && !exchange.headersSent) writeRawAnswer(this.socket, isProxyError(err) ? proxyErrors.badRequest(`malformed HTTP/1.1 request body (${err.body.replace(/^bad request: /, '')})`) : err);
    else this.socket.destroy();
    exchange?.downstreamGone();
  }

  /** Takes the next request from `pending`, if the connection is free for one. */
  private next(): void {
    if (this.parsing) {
      this.again = true;
      return;
    }
    this.parsing = true;
    try {
      do {
        this.again = false;
        if (this.exchange || !this.pending || this.closed) return;
        this.take(this.pending);
      } while (this.again);
    } finally {
      this.parsing = false;
    }
  }

  private take(buf: Buffer): void {
    let head: RequestHead | undefined;
    try {
      head = parseRequestHead(buf);
    } catch (err) {
      // Malformed or ambiguous (smuggling): 400 and close, as node:http does with what llhttp refuses.
      this.detach();
      releaseNow(this.socket);
      writeRawAnswer(this.socket, isProxyError(err) ? proxyErrors.badRequest(`malformed HTTP/1.1 request (${err.body.replace(/^bad request: /, '')})`) : err);
      return;
    }
    if (!head) {
      if (buf.length > MAX_HEAD_BYTES) this.handOff(); // node:http answers 431
      return;
    }
    if (head.size > MAX_HEAD_BYTES || head.unusual !== undefined || head.upgrade || head.expect || head.method === 'CONNECT' || !METHODS.has(head.method)) {
      return this.handOff();
    }
    let fwd: FastForward | undefined;
    try {
      fwd = this.opts.decide(head, this.info, this.socket);
    } catch {
      fwd = undefined; // whatever went wrong, node:http's path says it properly
    }
    if (!fwd) return this.handOff();
    this.begin(head, fwd, buf);
  }

  private begin(head: RequestHead, fwd: FastForward, buf: Buffer): void {
    const framing = requestFraming(head);
    const rest = buf.length > head.size ? buf.subarray(head.size) : undefined;
    this.pending = undefined;
    const exchange = new Exchange(this.opts.env, this, fwd, head, framing);
    this.exchange = exchange;
    this.host.requestStarted();
    this.receiving = framing !== 'none';
    this.bodyLeft = framing === 'length' ? head.contentLength : 0;
    this.chunked = framing === 'chunked' ? new ChunkedDecoder() : undefined;
    // The body bytes at hand first, so that they leave with the upstream head.
    if (rest) {
      const used = this.receiving ? this.feedBody(rest, 0) : 0;
      if (used < rest.length) this.keep(rest.subarray(used));
    }
    exchange.start();
  }

  exchangeDone(keepAlive: boolean): void {
    this.exchange = undefined;
    this.lastActive = this.clock.now;
    this.host.requestEnded();
    if (this.closed) return;
    if (!keepAlive || this.ended || this.host.closing() || this.receiving) {
      this.detach();
      this.socket.destroySoon();
      return;
    }
    if (this.pipelinePaused) {
      this.pipelinePaused = false;
      if (!this.bodyPaused) this.socket.resume();
    }
    if (this.pending) this.next();
  }

  /** node:http takes over, with what was read and not consumed. */
  private handOff(): void {
    const unread = this.pending;
    this.pending = undefined;
    this.detach();
    this.host.handOff(this.socket, unread);
  }

  /** The fast path lets go of the socket (its listeners, not the socket itself). */
  private detach(): void {
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onClose);
    s.removeListener('drain', this.onDrain);
    this.closed = true;
    this.gone(this);
  }

  private onDrain = (): void => {
    this.exchange?.downstreamDrained();
  };

  private onEnd = (): void => {
    this.ended = true;
    if (!this.exchange) {
      releaseNow(this.socket); // the last response may still be held (turn.ts)
      this.socket.destroy();
    }
  };

  private onClose = (): void => {
    this.closed = true;
    this.gone(this);
    this.controller?.abort(new Error('client connection closed'));
    this.exchange?.downstreamGone();
  };
}
