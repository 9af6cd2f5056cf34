// One HTTP/2 stream of a connection (connection.ts): what its owner may do with it — send a head,
// body bytes (copied straight into a DATA frame when flow control allows, else queued), trailers,
// a reset; credit back what it consumed — and the StreamHandler it answers to.
import type { HeaderMap } from '../http/headers.js';
import type { H2Connection } from './connection.js';
import { Flag, Frame, type Output } from './frames.js';

/** What a stream's owner hears. Each method is called on the connection's read path; none may throw. */
export interface StreamHandler {
  /** The request (server) or final response (client) head: name, value… pseudo-headers first.
   *  `endStream`: nothing follows. */
  onHead(stream: H2Stream, fields: string[], endStream: boolean): void;
  /** Body bytes, buf[start, end) (never empty; valid during the call only — keep a copy or a
   *  subarray). The handler calls stream.consumed(end - start) once it is done with them. */
  onData(stream: H2Stream, buf: Buffer, start: number, end: number): void;
  /** The peer's side ended: with trailers (a HEADERS block), or after the last DATA. */
  onEnd(stream: H2Stream, trailers: string[] | undefined): void;
  /** The stream is over: `code` 0 when both sides ended; else how it was reset (`byPeer`:
   *  RST_STREAM or GOAWAY from the peer; otherwise we reset it or the connection was lost). */
  onClose(stream: H2Stream, code: number, byPeer: boolean): void;
  /** Data queued by write() drained below the high-water mark. */
  onWritable(stream: H2Stream): void;
  /** Client: an informational (1xx) head before the final one; absent: ignored. */
  onInformational?(stream: H2Stream, fields: string[]): void;
}

/** write() returns false once this much is queued on a stream (onWritable follows). */
const HIGH_WATER = 64 * 1024;

export class H2Stream {
  handler: StreamHandler | undefined;
  /** Free for the handler's own use (the exchange it belongs to). */
  context: unknown;
  sendWindow: number;
  /** What the peer may still send us on this stream. */
  recvWindow: number;
  /** Consumed and not yet credited back. */
  private unacked = 0;
  private queue: Buffer[] | undefined;
  queued = 0;
  /** @internal In the connection's list of streams with something to send / to tell writable. */
  inSendable = false;
  inWritable = false;
  /** END_STREAM goes out after the queue. */
  private ending = false;
  private trailers: string[] | undefined;
  localEnded = false;
  remoteEnded = false;
  headSent = false;
  headReceived = false;
  closed = false;
  /** Client: an informational (1xx) head came, not the final one yet. */
  private waitingHead = true;
  /** Server: the request's Content-Length, bytes still due (-1: none given). */
  contentLeft = -1;
  /** Buffered in onData and not consumed yet (credited when the stream closes). */
  outstanding = 0;
  /** Server: a CONNECT tunnel (RFC 9113 §8.5), whose END_STREAM is a half-close like TCP's FIN:
   *  the client's side stays open after ours ended (no RST_STREAM NO_ERROR, see maybeClose). */
  tunnel = false;

  constructor(
    readonly conn: H2Connection,
    /** 0 until a client stream's HEADERS go out. */
    public id: number,
  ) {
    this.sendWindow = conn.peerInitialWindow;
    this.recvWindow = conn.localStreamWindow;
  }

  /** Sends the head (response, or request for a client stream): `fields`, then `map`'s;
   *  `endStream`: no body. */
  sendHead(fields: string[], endStream: boolean, map?: Readonly<HeaderMap>): void {
    if (this.closed || this.headSent) return;
    this.headSent = true;
    if (endStream) this.localEnded = true;
    this.conn.sendHeaders(this, fields, endStream, map);
    if (endStream) this.conn.maybeClose(this);
  }

  /** Server: an informational (1xx) head, before the final one (100-continue, 103). */
  sendInformational(fields: string[]): void {
    if (this.closed || this.headSent) return;
    this.conn.sendHeaders(this, fields, false);
  }

  /**
   * Body bytes buf[start, end), copied out at once (a DATA frame now) when nothing waits and flow
   * control allows, else queued (a subarray: `buf` must not change). False once more than the
   * high-water mark waits (onWritable follows).
   */
  writeFrom(buf: Buffer, start: number, end: number): boolean {
    if (this.closed || this.localEnded || this.ending || end <= start) return !this.closed;
    const n = end - start;
    if (this.queued === 0 && this.headSent && this.id !== 0 && this.conn.sendNow(this, buf, start, end)) {
      this.sendWindow -= n;
      return true;
    }
    return this.write(buf.subarray(start, end));
  }

  /** Queues body bytes; false once more than the high-water mark waits (onWritable follows). */
  write(chunk: Buffer): boolean {
    if (this.closed || this.localEnded || this.ending) return false;
    if (chunk.length > 0) {
      (this.queue ??= []).push(chunk);
      this.queued += chunk.length;
      this.conn.wantsToSend(this);
    }
    return this.queued < HIGH_WATER;
  }

  /** Ends our side after what is queued (END_STREAM on the last DATA frame). */
  end(): void {
    if (this.closed || this.localEnded || this.ending) return;
    this.ending = true;
    this.conn.wantsToSend(this);
  }

  /** Ends our side with trailers, after what is queued. */
  endWithTrailers(fields: string[]): void {
    if (this.closed || this.localEnded || this.ending) return;
    this.ending = true;
    this.trailers = fields;
    this.conn.wantsToSend(this);
  }

  /** RST_STREAM now; what is queued is dropped. */
  reset(code: number): void {
    if (this.closed) return;
    this.conn.resetStream(this, code, false);
  }

  /** The handler is done with `n` bytes it was given: they may be credited back. (Once the
   *  stream is closed, whatever it still held was credited then.) */
  consumed(n: number): void {
    if (this.closed) return;
    this.outstanding -= n;
    this.conn.credit(n);
    if (this.remoteEnded) return;
    this.unacked += n;
    if (this.unacked >= this.conn.localStreamWindow / 2) {
      this.recvWindow += this.unacked;
      this.conn.windowUpdate(this.id, this.unacked);
      this.unacked = 0;
    }
  }

  /** @internal The connection sends what flow control allows; true when something is left. */
  pump(out: Output, maxFrame: number): boolean {
    const queue = this.queue;
    while (queue !== undefined && queue.length > 0) {
      const allowed = Math.min(this.sendWindow, this.conn.sendWindow, maxFrame);
      if (allowed <= 0) return true;
      let chunk = queue[0]!;
      if (chunk.length > allowed) {
        queue[0] = chunk.subarray(allowed);
        chunk = chunk.subarray(0, allowed);
      } else {
        queue.shift();
      }
      this.queued -= chunk.length;
      this.sendWindow -= chunk.length;
      this.conn.sendWindow -= chunk.length;
      const last = queue.length === 0 && this.ending && this.trailers === undefined;
      out.frameHeader(chunk.length, Frame.Data, last ? Flag.EndStream : 0, this.id);
      out.payload(chunk);
      if (last) this.ending = false;
      if (last) this.finishLocal();
      if (this.queued < HIGH_WATER && this.queued + chunk.length >= HIGH_WATER) this.conn.notifyWritable(this);
      if (this.conn.congested) return queue.length > 0 || this.ending;
    }
    if (this.ending) {
      this.ending = false;
      if (this.trailers) {
        const t = this.trailers;
        this.trailers = undefined;
        this.conn.sendHeaders(this, t, true);
      } else {
        out.frameHeader(0, Frame.Data, Flag.EndStream, this.id);
      }
      this.finishLocal();
    }
    return false;
  }

  private finishLocal(): void {
    this.localEnded = true;
    this.conn.maybeClose(this);
  }

  /** @internal */
  dropQueue(): void {
    this.queue = undefined;
    this.queued = 0;
    this.ending = false;
    this.trailers = undefined;
  }

  /** Our side ended, or its end is queued behind the body. */
  get finishing(): boolean {
    return this.localEnded || this.ending;
  }

  /** @internal Client: a head arrived; true when it is the final (non-1xx) one. */
  finalHead(status: number): boolean {
    if (!this.waitingHead) return false;
    if (status >= 100 && status < 200) return false;
    this.waitingHead = false;
    return true;
  }

  get waitingForHead(): boolean {
    return this.waitingHead;
  }
}

/**
 * Two streams relaying each other's body bytes (a client's stream and its upstream's, or a
 * bridged one's), flow control carried through: bytes go to the other stream and are credited
 * back to their sender once it took them — at once, or when the other stream was full, at its
 * onWritable (the owner's StreamHandler passes that on to `writable`). Bytes the other stream can
 * no longer take (gone, or its side ended) are credited and dropped.
 */
export class StreamPipe {
  /** Bytes from `a` (from `b`) written to the other side and not credited yet. */
  private heldFromA = 0;
  private heldFromB = 0;

  constructor(
    public a: H2Stream,
    /** Undefined until it exists (an upstream stream whose connection is being made). */
    public b: H2Stream | undefined,
  ) {}

  /** buf[start, end) that `from` (a or b) sent, to the other stream. */
  relay(from: H2Stream, buf: Buffer, start: number, end: number): void {
    const n = end - start;
    const fromA = from === this.a;
    const to = fromA ? this.b : this.a;
    if (to === undefined || to.closed || to.localEnded) return from.consumed(n);
    if (to.writeFrom(buf, start, end)) from.consumed(n);
    else if (fromA) this.heldFromA += n;
    else this.heldFromB += n;
  }

  /** `s` drained: what its sender waited for is credited. */
  writable(s: H2Stream): void {
    if (s === this.b) {
      const n = this.heldFromA;
      this.heldFromA = 0;
      if (n > 0) this.a.consumed(n);
    } else if (s === this.a) {
      const n = this.heldFromB;
      this.heldFromB = 0;
      if (n > 0 && this.b !== undefined) this.b.consumed(n);
    }
  }
}
