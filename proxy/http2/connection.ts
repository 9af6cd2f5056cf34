// One HTTP/2 connection (RFC 9113) over a socket, as client or server: the frame reader, HPACK,
// SETTINGS, PING, GOAWAY, RST_STREAM, CONTINUATION, and flow control both ways. Streams are
// driven by a StreamHandler (callbacks, no events, no closures per stream); what a stream
// carries is the handler's business. Frames produced while handling one read leave together, in
// one write, on the next tick. Received DATA is credited back to the peer (WINDOW_UPDATE) only
// when the handler says it is consumed, so a slow consumer holds its sender back.
import type { Duplex } from 'node:stream';
import type { HeaderMap } from '../http/headers.js';
import { HpackError } from './hpack-error.js';
import { blockBound, HpackDecoder, HpackEncoder } from './hpack.js';
import {
  ConnectionError, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, Flag, Frame, FRAME_HEADER, H2Error, MAX_MAX_FRAME_SIZE, MAX_WINDOW, Output,
  PREFACE, Setting,
} from './frames.js';
import { H2Stream, type StreamHandler } from './stream.js';
import { StreamTable } from './stream-table.js';
import { contentLength, requestProblem, responseStatus } from './validate.js';

export { H2Stream, type StreamHandler } from './stream.js';

export interface ConnectionOptions {
  readonly role: 'client' | 'server';
  /** Server: a new stream's request head, already validated (RFC 9113 §8.3.1). The callee sets
   *  stream.handler (or resets the stream). */
  readonly onStream?: (stream: H2Stream, fields: string[], endStream: boolean) => void;
  /** The connection is closed (socket gone); every stream was told first. */
  readonly onClose?: (err: Error | undefined) => void;
  /** Client: the peer sent GOAWAY (no new streams here). */
  readonly onGoaway?: (code: number) => void;
  /** The peer's SETTINGS were applied (the first: the connection is open; see peerMaxConcurrentStreams). */
  readonly onSettings?: () => void;
  /** Most concurrent streams the peer may open (server). Default 1000. */
  readonly maxConcurrentStreams?: number;
  /** Our per-stream receive window. Default 256 KiB. */
  readonly streamWindow?: number;
  /** Our connection receive window: the most a connection buffers for its streams. Default 1 MiB. */
  readonly connectionWindow?: number;
  /** Largest header list we accept (RFC 9113 §6.5.2), in HPACK bytes. Default 64 KiB. */
  readonly maxHeaderListSize?: number;
}

/** Stop producing DATA while this much is waiting in the socket and our output. */
const SOCKET_HIGH_WATER = 1024 * 1024;
/** A header block (HEADERS + CONTINUATION) larger than this ends the connection. */
const MAX_HEADER_BLOCK = 256 * 1024;

const enum State {
  /** Server: waiting for the client preface. */
  Preface,
  /** Waiting for the peer's first SETTINGS. */
  Settings,
  Open,
  Closed,
}

/** A header block being assembled from HEADERS and CONTINUATION frames. */
interface Pending {
  readonly stream: number;
  readonly flags: number;
  readonly parts: Buffer[];
  size: number;
}

function ignoreStream(): void {}
const DETACHED: StreamHandler = { onHead: ignoreStream, onData: (s, _b, start, end) => s.consumed(end - start), onEnd: ignoreStream, onClose: ignoreStream, onWritable: ignoreStream };

export class H2Connection {
  readonly role: 'client' | 'server';
  /** Open streams by id (stream-table.ts says why not a Map). */
  readonly streams = new StreamTable<H2Stream>();
  /** Peer's settings. */
  peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private peerMaxStreams = Infinity;
  /** Ours. */
  readonly localStreamWindow: number;
  private readonly localConnWindow: number;
  private readonly localMaxStreams: number;
  private readonly maxHeaderList: number;
  /** Connection-level send window (the peer's receive window for us). */
  sendWindow = DEFAULT_WINDOW;
  private recvWindow = DEFAULT_WINDOW;
  private connUnacked = 0;

  private readonly decoder = new HpackDecoder();
  private readonly encoder = new HpackEncoder();
  private readonly out = new Output();
  private state: State;
  private buffered: Buffer | undefined;
  private pending: Pending | undefined;
  /** Highest stream id the peer opened (server) / we opened (client). */
  private lastPeerStream = 0;
  private nextStreamId = 1;
  /** Client: streams whose HEADERS wait for a concurrency slot. */
  private readonly waiting: { stream: H2Stream; fields: string[]; endStream: boolean; map: Readonly<HeaderMap> | undefined }[] = [];
  private openLocal = 0;
  /** Streams with something to send, and streams to tell they may write again (arrays with a
   *  flag on each stream, not Sets: they fill and empty on every flush). */
  private sendable: H2Stream[] = [];
  private writable: H2Stream[] = [];
  private flushQueued = false;
  congested = false;
  /** GOAWAY received (client: no new streams) / sent (server: draining). */
  goawayReceived = false;
  private goawaySent = false;
  private closing = false;
  private closeError: Error | undefined;

  constructor(
    readonly socket: Duplex,
    private readonly opts: ConnectionOptions,
  ) {
    this.role = opts.role;
    this.localStreamWindow = opts.streamWindow ?? 256 * 1024;
    this.localConnWindow = opts.connectionWindow ?? 1024 * 1024;
    this.localMaxStreams = opts.maxConcurrentStreams ?? 1000;
    this.maxHeaderList = opts.maxHeaderListSize ?? 64 * 1024;
    this.state = this.role === 'server' ? State.Preface : State.Settings;
  }

  /** Starts reading and sends our preface. `initial`: bytes already read from the socket. */
  start(initial?: Buffer): void {
    const s = this.socket;
    if (this.role === 'client') {
      const b = this.out.reserve(PREFACE.length);
      PREFACE.copy(b, this.out.at);
      this.out.advance(PREFACE.length);
    }
    this.sendSettings();
    s.on('data', this.onData);
    s.on('error', this.onSocketError);
    s.on('close', this.onSocketClose);
    s.on('end', this.onSocketEnd);
    s.on('drain', this.onDrain);
    if (initial && initial.length > 0) this.onData(initial);
    s.resume();
  }

  /** Client: a new connection may take new streams. */
  get usable(): boolean {
    return this.state !== State.Closed && !this.goawayReceived && !this.closing && this.nextStreamId < MAX_WINDOW;
  }

  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (Infinity until it says). */
  get peerMaxConcurrentStreams(): number {
    return this.peerMaxStreams;
  }

  /** The socket is gone, or going (every stream was closed). */
  get closed(): boolean {
    return this.state === State.Closed;
  }

  get activeStreams(): number {
    return this.streams.size + this.waiting.length;
  }

  /** Client: opens a stream and sends its request head — `fields` (the pseudo-headers first),
   *  then `map`'s — or queues it while the peer's concurrency limit is reached. */
  request(fields: string[], endStream: boolean, handler: StreamHandler, map?: Readonly<HeaderMap>): H2Stream {
    const stream = new H2Stream(this, 0);
    stream.handler = handler;
    if (this.openLocal < this.peerMaxStreams) this.open(stream, fields, endStream, map);
    else this.waiting.push({ stream, fields, endStream, map });
    return stream;
  }

  private open(stream: H2Stream, fields: string[], endStream: boolean, map: Readonly<HeaderMap> | undefined): void {
    stream.id = this.nextStreamId;
    this.nextStreamId += 2;
    this.streams.set(stream.id, stream);
    this.openLocal++;
    stream.sendHead(fields, endStream, map);
    // A body written while it waited for its slot goes out after the head.
    if (stream.inSendable) this.scheduleFlush();
  }

  /** Server: GOAWAY (no new streams); the connection closes once the open ones finish. */
  drain(): void {
    if (this.state === State.Closed) return;
    this.closing = true;
    if (!this.goawaySent) this.goaway(H2Error.NoError, 'draining');
    if (this.streams.size === 0) this.finishClose();
  }

  /** Ends the connection now: GOAWAY(code) if it is still open, then the socket. */
  destroy(code: number = H2Error.NoError, err?: Error): void {
    if (this.state === State.Closed) return;
    if (!this.goawaySent) this.goaway(code, err?.message ?? '');
    this.closeError ??= err;
    this.flush();
    this.socket.end();
    this.teardown(err);
  }

  // ---- reading ---------------------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    let buf = chunk;
    if (this.buffered) {
      buf = Buffer.concat([this.buffered, chunk]);
      this.buffered = undefined;
    }
    try {
      const used = this.read(buf);
      if (used < buf.length && this.state !== State.Closed) this.buffered = buf.subarray(used);
    } catch (err) {
      if (err instanceof ConnectionError) this.destroy(err.code, err);
      else if (err instanceof HpackError) this.destroy(H2Error.CompressionError, err);
      else this.destroy(H2Error.InternalError, err as Error);
    }
    this.scheduleFlush();
  };

  /** Handles every complete frame in `buf`; returns the bytes used. */
  private read(buf: Buffer): number {
    let p = 0;
    if (this.state === State.Preface) {
      const n = Math.min(buf.length, PREFACE.length);
      if (!buf.subarray(0, n).equals(PREFACE.subarray(0, n))) throw new ConnectionError(H2Error.ProtocolError, 'invalid connection preface');
      if (n < PREFACE.length) return 0;
      p = PREFACE.length;
      this.state = State.Settings;
    }
    while (this.state !== State.Closed && buf.length - p >= FRAME_HEADER) {
      const length = (buf[p]! << 16) | (buf[p + 1]! << 8) | buf[p + 2]!;
      if (length > DEFAULT_MAX_FRAME_SIZE) throw new ConnectionError(H2Error.FrameSizeError, `frame of ${length} bytes exceeds SETTINGS_MAX_FRAME_SIZE`);
      if (buf.length - p < FRAME_HEADER + length) break;
      const type = buf[p + 3]!;
      const flags = buf[p + 4]!;
      const id = buf.readUInt32BE(p + 5) & 0x7fffffff;
      const start = p + FRAME_HEADER;
      p = start + length;
      this.frame(type, flags, id, buf, start, p);
    }
    return p;
  }

  /** One frame: its payload is buf[start, end) (no Buffer made for it unless it is DATA). */
  private frame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (this.pending && type !== Frame.Continuation) throw new ConnectionError(H2Error.ProtocolError, 'header block interrupted by another frame');
    if (this.state === State.Settings && type !== Frame.Settings) throw new ConnectionError(H2Error.ProtocolError, 'the first frame must be SETTINGS');
    const length = end - start;
    switch (type) {
      case Frame.Data:
        return this.onDataFrame(flags, id, buf, start, end);
      case Frame.Headers:
        return this.onHeadersFrame(flags, id, buf, start, end);
      case Frame.Continuation:
        return this.onContinuation(flags, id, buf.subarray(start, end));
      case Frame.Priority:
        if (id === 0) throw new ConnectionError(H2Error.ProtocolError, 'PRIORITY on stream 0');
        if (length !== 5) this.streamError(id, H2Error.FrameSizeError);
        return;
      case Frame.RstStream:
        if (id === 0) throw new ConnectionError(H2Error.ProtocolError, 'RST_STREAM on stream 0');
        if (length !== 4) throw new ConnectionError(H2Error.FrameSizeError, 'RST_STREAM payload must be 4 bytes');
        return this.onRstStream(id, buf.readUInt32BE(start));
      case Frame.Settings:
        return this.onSettings(flags, id, buf, start, end);
      case Frame.PushPromise:
        throw new ConnectionError(H2Error.ProtocolError, 'PUSH_PROMISE is not accepted');
      case Frame.Ping:
        if (id !== 0) throw new ConnectionError(H2Error.ProtocolError, 'PING on a stream');
        if (length !== 8) throw new ConnectionError(H2Error.FrameSizeError, 'PING payload must be 8 bytes');
        if ((flags & Flag.Ack) === 0) {
          this.out.frameHeader(8, Frame.Ping, Flag.Ack, 0);
          this.out.payload(Buffer.from(buf.subarray(start, end)));
        }
        return;
      case Frame.Goaway:
        if (id !== 0) throw new ConnectionError(H2Error.ProtocolError, 'GOAWAY on a stream');
        if (length < 8) throw new ConnectionError(H2Error.FrameSizeError, 'GOAWAY too short');
        return this.onGoaway(buf.readUInt32BE(start) & 0x7fffffff, buf.readUInt32BE(start + 4));
      case Frame.WindowUpdate:
        if (length !== 4) throw new ConnectionError(H2Error.FrameSizeError, 'WINDOW_UPDATE payload must be 4 bytes');
        return this.onWindowUpdate(id, buf.readUInt32BE(start) & 0x7fffffff);
      default:
        return; // unknown frame types are ignored (§4.1)
    }
  }

  /** The content of a frame whose PADDED flag may be set: buf[start, unpaddedEnd) from `start`
   *  after the pad length (returned), `unpaddedEnd` in `this.cut`. */
  private cut = 0;
  private unpad(flags: number, buf: Buffer, start: number, end: number): number {
    this.cut = end;
    if ((flags & Flag.Padded) === 0) return start;
    if (end - start < 1) throw new ConnectionError(H2Error.FrameSizeError, 'padded frame without its pad length');
    const pad = buf[start]!;
    if (pad >= end - start) throw new ConnectionError(H2Error.ProtocolError, 'padding longer than the frame');
    this.cut = end - pad;
    return start + 1;
  }

  private onDataFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new ConnectionError(H2Error.ProtocolError, 'DATA on stream 0');
    const length = end - start;
    this.recvWindow -= length;
    if (this.recvWindow < 0) throw new ConnectionError(H2Error.FlowControlError, 'DATA beyond the connection window');
    const from = this.unpad(flags, buf, start, end);
    const to = this.cut;
    const stream = this.streams.get(id);
    if (!stream) {
      // A stream that is over: frames the peer sent before it knew are ignored (§5.1, after
      // RST_STREAM), their bytes still counted against the connection window.
      this.credit(length);
      if (this.isIdle(id)) throw new ConnectionError(H2Error.ProtocolError, `DATA on idle stream ${id}`);
      return;
    }
    if (stream.remoteEnded) {
      this.credit(length);
      return this.streamError(id, H2Error.StreamClosed);
    }
    stream.recvWindow -= length;
    if (stream.recvWindow < 0) {
      this.credit(length);
      return this.streamError(id, H2Error.FlowControlError);
    }
    if (!stream.headReceived) {
      this.credit(length);
      return this.streamError(id, H2Error.ProtocolError);
    }
    // Padding is ours to credit at once; the data, once the handler consumed it.
    const size = to - from;
    if (size < length) this.credit(length - size);
    const last = (flags & Flag.EndStream) !== 0;
    if (stream.contentLeft >= 0) {
      stream.contentLeft -= size;
      if (stream.contentLeft < 0 || (last && stream.contentLeft !== 0)) {
        this.credit(size);
        return this.streamError(id, H2Error.ProtocolError); // body length differs from Content-Length (§8.1.1)
      }
    }
    if (size > 0) {
      stream.outstanding += size;
      (stream.handler ?? DETACHED).onData(stream, buf, from, to);
    }
    if (last && !stream.closed) this.remoteEnd(stream, undefined);
  }

  private onHeadersFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new ConnectionError(H2Error.ProtocolError, 'HEADERS on stream 0');
    let from = this.unpad(flags, buf, start, end);
    const to = this.cut;
    if (flags & Flag.Priority) {
      if (to - from < 5) throw new ConnectionError(H2Error.FrameSizeError, 'HEADERS too short for its priority');
      from += 5;
    }
    if (flags & Flag.EndHeaders) return this.headerBlock(id, flags, buf, from, to);
    this.pending = { stream: id, flags, parts: [Buffer.from(buf.subarray(from, to))], size: to - from };
  }

  private onContinuation(flags: number, id: number, payload: Buffer): void {
    const p = this.pending;
    if (!p || p.stream !== id) throw new ConnectionError(H2Error.ProtocolError, 'CONTINUATION without a header block in progress');
    p.size += payload.length;
    if (p.size > MAX_HEADER_BLOCK) throw new ConnectionError(H2Error.EnhanceYourCalm, 'header block too large');
    p.parts.push(Buffer.from(payload));
    if ((flags & Flag.EndHeaders) === 0) return;
    this.pending = undefined;
    const block = Buffer.concat(p.parts);
    this.headerBlock(id, p.flags, block, 0, block.length);
  }

  /** A complete header block, buf[start, end), for stream `id`; `flags` are its HEADERS frame's. */
  private headerBlock(id: number, flags: number, buf: Buffer, start: number, end: number): void {
    // Decoded whatever becomes of the stream: the HPACK state is the connection's.
    const fields = this.decoder.decodeFields(buf, start, end);
    const last = (flags & Flag.EndStream) !== 0;
    let stream = this.streams.get(id);
    if (!stream) {
      if (this.role === 'client' || !this.isIdle(id)) {
        // A stream that is over (its late frames are ignored) — or, from a server, one we
        // never opened.
        if (this.role === 'client' && (id >= this.nextStreamId || id % 2 === 0)) throw new ConnectionError(H2Error.ProtocolError, `HEADERS on stream ${id} that was never opened`);
        return;
      }
      if (id % 2 === 0) throw new ConnectionError(H2Error.ProtocolError, `client stream ${id} must be odd`);
      this.lastPeerStream = id;
      if (this.closing) return; // after our GOAWAY: ignored (§6.8)
      if (this.streams.size >= this.localMaxStreams) return this.streamError(id, H2Error.RefusedStream);
      const problem = requestProblem(fields, this.maxHeaderList);
      if (problem !== undefined) return this.streamError(id, H2Error.ProtocolError);
      stream = new H2Stream(this, id);
      stream.headReceived = true;
      stream.contentLeft = contentLength(fields);
      this.streams.set(id, stream);
      if (last) stream.remoteEnded = true;
      this.opts.onStream?.(stream, fields, last);
      if (!stream.handler && !stream.closed) stream.reset(H2Error.RefusedStream);
      if (last && !stream.closed) this.maybeClose(stream);
      return;
    }
    if (stream.remoteEnded) return this.streamError(id, H2Error.StreamClosed);
    if (!stream.headReceived || (this.role === 'client' && stream.waitingForHead)) {
      // The response head (client), possibly after informational ones.
      const status = this.role === 'client' ? responseStatus(fields) : -1;
      if (status < 0) return this.streamError(id, H2Error.ProtocolError);
      if (!stream.finalHead(status)) {
        if (last) return this.streamError(id, H2Error.ProtocolError);
        stream.handler?.onInformational?.(stream, fields);
        return;
      }
      stream.headReceived = true;
      (stream.handler ?? DETACHED).onHead(stream, fields, last);
      if (last && !stream.closed) this.remoteEnd(stream, undefined);
      return;
    }
    // Trailers: END_STREAM, and no pseudo-header (§8.1).
    if (!last || fields.some((_, i) => i % 2 === 0 && fields[i]!.charCodeAt(0) === 0x3a)) return this.streamError(id, H2Error.ProtocolError);
    this.remoteEnd(stream, fields);
  }

  private remoteEnd(stream: H2Stream, trailers: string[] | undefined): void {
    stream.remoteEnded = true;
    (stream.handler ?? DETACHED).onEnd(stream, trailers);
    this.maybeClose(stream);
  }

  private onRstStream(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (!stream) {
      if (this.isIdle(id)) throw new ConnectionError(H2Error.ProtocolError, `RST_STREAM on idle stream ${id}`);
      return;
    }
    this.close(stream, code, true);
  }

  private onSettings(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new ConnectionError(H2Error.ProtocolError, 'SETTINGS on a stream');
    if (flags & Flag.Ack) {
      if (end !== start) throw new ConnectionError(H2Error.FrameSizeError, 'SETTINGS ACK with a payload');
      return;
    }
    if ((end - start) % 6 !== 0) throw new ConnectionError(H2Error.FrameSizeError, 'SETTINGS payload not a multiple of 6');
    if (this.state === State.Settings) this.state = State.Open;
    for (let i = start; i < end; i += 6) {
      const key = buf.readUInt16BE(i);
      const value = buf.readUInt32BE(i + 2);
      switch (key) {
        case Setting.HeaderTableSize:
          this.encoder.setMaxSize(value);
          break;
        case Setting.EnablePush:
          if (value > 1) throw new ConnectionError(H2Error.ProtocolError, 'SETTINGS_ENABLE_PUSH must be 0 or 1');
          break;
        case Setting.MaxConcurrentStreams:
          this.peerMaxStreams = value;
          break;
        case Setting.InitialWindowSize: {
          if (value > MAX_WINDOW) throw new ConnectionError(H2Error.FlowControlError, 'SETTINGS_INITIAL_WINDOW_SIZE too large');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FlowControlError, 'stream window overflow');
            if (delta > 0 && s.queued > 0) this.wantsToSend(s);
          }
          break;
        }
        case Setting.MaxFrameSize:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) throw new ConnectionError(H2Error.ProtocolError, 'SETTINGS_MAX_FRAME_SIZE out of range');
          this.peerMaxFrame = value;
          break;
        default:
          break; // MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
      }
    }
    this.out.frameHeader(0, Frame.Settings, Flag.Ack, 0);
    this.openWaiting();
    this.opts.onSettings?.();
  }

  private onGoaway(last: number, code: number): void {
    this.goawayReceived = true;
    this.opts.onGoaway?.(code);
    if (this.role === 'client') {
      // Streams past `last` were never processed: refused, so they may be tried elsewhere.
      for (const s of this.streams.values()) if (s.id > last) this.close(s, H2Error.RefusedStream, true);
      for (const w of this.waiting.splice(0)) this.close(w.stream, H2Error.RefusedStream, true);
    }
    if (this.streams.size === 0) this.finishClose();
    else this.closing = true;
  }

  private onWindowUpdate(id: number, increment: number): void {
    if (id === 0) {
      if (increment === 0) throw new ConnectionError(H2Error.ProtocolError, 'WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FlowControlError, 'connection window overflow');
      for (const s of this.streams.values()) if (s.queued > 0) this.markSendable(s);
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) {
      if (this.isIdle(id)) throw new ConnectionError(H2Error.ProtocolError, `WINDOW_UPDATE on idle stream ${id}`);
      return;
    }
    if (increment === 0) return this.streamError(id, H2Error.ProtocolError);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.streamError(id, H2Error.FlowControlError);
    if (stream.queued > 0) this.wantsToSend(stream);
  }

  /** A stream id the peer could still open (or, for a client, we have not used yet). */
  private isIdle(id: number): boolean {
    const peerInitiated = this.role === 'server' ? id % 2 === 1 : id % 2 === 0;
    return peerInitiated ? id > this.lastPeerStream : id >= this.nextStreamId;
  }

  // ---- writing ---------------------------------------------------------------------------------

  /** @internal DATA right now, copied: `stream` has nothing queued and the windows allow. */
  sendNow(stream: H2Stream, buf: Buffer, start: number, end: number): boolean {
    const n = end - start;
    if (this.congested || n > this.sendWindow || n > stream.sendWindow || n > this.peerMaxFrame || this.state === State.Closed) return false;
    this.sendWindow -= n;
    this.out.frameHeader(n, Frame.Data, 0, stream.id);
    const b = this.out.reserve(n);
    buf.copy(b, this.out.at, start, end);
    this.out.advance(n);
    this.scheduleFlush();
    return true;
  }

  /** @internal HEADERS (+ CONTINUATION) for a stream, in order with its other frames. */
  sendHeaders(stream: H2Stream, fields: string[], endStream: boolean, map?: Readonly<HeaderMap>): void {
    const bound = blockBound(fields, map);
    const scratch = this.out.reserve(FRAME_HEADER + bound);
    const start = this.out.at;
    const end = this.encoder.encode(fields, scratch, start + FRAME_HEADER, map);
    const length = end - start - FRAME_HEADER;
    const max = this.peerMaxFrame;
    const flagsEnd = endStream ? Flag.EndStream : 0;
    if (length <= max) {
      writeFrameHeader(scratch, start, length, Frame.Headers, flagsEnd | Flag.EndHeaders, stream.id);
      this.out.advance(FRAME_HEADER + length);
    } else {
      // Split: HEADERS then CONTINUATION frames, each at most `max` bytes of the block.
      const block = Buffer.from(scratch.subarray(start + FRAME_HEADER, end));
      let off = 0;
      let type = Frame.Headers;
      while (off < block.length) {
        const n = Math.min(max, block.length - off);
        const last = off + n === block.length;
        this.out.frameHeader(n, type, (type === Frame.Headers ? flagsEnd : 0) | (last ? Flag.EndHeaders : 0), stream.id);
        this.out.payload(block.subarray(off, off + n));
        off += n;
        type = Frame.Continuation;
      }
    }
    this.scheduleFlush();
  }

  /** @internal */
  wantsToSend(stream: H2Stream): void {
    this.markSendable(stream);
    this.scheduleFlush();
  }

  private markSendable(stream: H2Stream): void {
    if (stream.inSendable) return;
    stream.inSendable = true;
    this.sendable.push(stream);
  }

  /** @internal */
  notifyWritable(stream: H2Stream): void {
    if (stream.inWritable) return;
    stream.inWritable = true;
    this.writable.push(stream);
  }

  /** @internal Received bytes consumed: the connection window opens again. */
  credit(n: number): void {
    this.connUnacked += n;
    if (this.connUnacked >= this.localConnWindow / 2 && this.state !== State.Closed) {
      this.recvWindow += this.connUnacked;
      this.windowUpdate(0, this.connUnacked);
      this.connUnacked = 0;
    }
  }

  /** @internal */
  windowUpdate(id: number, increment: number): void {
    this.out.frameHeader(4, Frame.WindowUpdate, 0, id);
    this.out.uint32(increment);
    this.scheduleFlush();
  }

  /** @internal */
  resetStream(stream: H2Stream, code: number, byPeer: boolean): void {
    if (stream.id !== 0 && !byPeer) {
      this.out.frameHeader(4, Frame.RstStream, 0, stream.id);
      this.out.uint32(code);
      this.scheduleFlush();
    }
    this.close(stream, code, byPeer);
  }

  /** @internal Closes a stream whose both sides ended. A server whose response is complete
   *  before the request tells the client to stop sending (RST_STREAM NO_ERROR after the last
   *  frame, RFC 9113 §8.1), as node:http2 does; a tunnel's client goes on sending. */
  maybeClose(stream: H2Stream): void {
    if (stream.closed || !stream.localEnded) return;
    if (stream.remoteEnded) return this.close(stream, H2Error.NoError, false);
    if (this.role === 'server' && !stream.tunnel) this.resetStream(stream, H2Error.NoError, false);
  }

  private close(stream: H2Stream, code: number, byPeer: boolean): void {
    if (stream.closed) return;
    stream.closed = true;
    stream.dropQueue(); // (left in sendable/writable: skipped there once closed)
    if (stream.id !== 0 && this.streams.get(stream.id) === stream) {
      this.streams.delete(stream.id);
      if (stream.id % 2 === (this.role === 'client' ? 1 : 0)) this.openLocal--;
    } else {
      const i = this.waiting.findIndex((w) => w.stream === stream);
      if (i >= 0) this.waiting.splice(i, 1);
    }
    // Data never consumed still counts against the connection window: credit it.
    if (stream.outstanding > 0) {
      this.credit(stream.outstanding);
      stream.outstanding = 0;
    }
    (stream.handler ?? DETACHED).onClose(stream, code, byPeer);
    this.openWaiting();
    if (this.closing && this.streams.size === 0 && this.waiting.length === 0) this.finishClose();
  }

  private openWaiting(): void {
    while (this.waiting.length > 0 && this.openLocal < this.peerMaxStreams && this.usable) {
      const w = this.waiting.shift()!;
      if (!w.stream.closed) this.open(w.stream, w.fields, w.endStream, w.map);
    }
  }

  private streamError(id: number, code: H2Error): void {
    const stream = this.streams.get(id);
    if (stream) return this.resetStream(stream, code, false);
    this.out.frameHeader(4, Frame.RstStream, 0, id);
    this.out.uint32(code);
    this.scheduleFlush();
  }

  private sendSettings(): void {
    const entries: [number, number][] = [
      [Setting.InitialWindowSize, this.localStreamWindow],
      [Setting.MaxHeaderListSize, this.maxHeaderList],
    ];
    if (this.role === 'client') entries.push([Setting.EnablePush, 0]);
    else entries.push([Setting.MaxConcurrentStreams, this.localMaxStreams]);
    this.out.frameHeader(entries.length * 6, Frame.Settings, 0, 0);
    const b = this.out.reserve(entries.length * 6);
    let p = this.out.at;
    for (const [k, v] of entries) {
      b.writeUInt16BE(k, p);
      b.writeUInt32BE(v, p + 2);
      p += 6;
    }
    this.out.advance(entries.length * 6);
    // The connection window starts at 65,535 whatever the settings say; open it up.
    const bump = this.localConnWindow - DEFAULT_WINDOW;
    if (bump > 0) {
      this.recvWindow += bump;
      this.windowUpdate(0, bump);
    }
    this.scheduleFlush();
  }

  private goaway(code: number, debug: string): void {
    this.goawaySent = true;
    const text = Buffer.from(debug.slice(0, 256), 'utf8');
    this.out.frameHeader(8 + text.length, Frame.Goaway, 0, 0);
    this.out.uint32(this.lastPeerStream);
    this.out.uint32(code);
    if (text.length > 0) this.out.payload(text);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushQueued || this.state === State.Closed) return;
    this.flushQueued = true;
    // A client connection (to an upstream) carries the requests of many client connections,
    // each read in its own I/O callback: it writes once they all ran. A server connection writes
    // right after the callback that made its frames.
    if (this.role === 'client') setImmediate(flushConnection, this);
    else process.nextTick(flushConnection, this);
  }

  /** Writes what is waiting: DATA that flow control allows, after the frames already queued. */
  flush(): void {
    this.flushQueued = false;
    if (this.state === State.Closed) return;
    if (!this.congested && this.sendable.length > 0) {
      const list = this.sendable;
      this.sendable = [];
      for (let i = 0; i < list.length; i++) {
        const s = list[i]!;
        // Waiting for a concurrency slot (its HEADERS go first), blocked by flow control, or
        // cut short by congestion: kept for the next flush.
        const keep = !s.closed && (s.id === 0 || this.congested || s.pump(this.out, this.peerMaxFrame));
        if (keep) this.sendable.push(s);
        else s.inSendable = false;
      }
    }
    if (this.out.size > 0) {
      const parts = this.out.take();
      const s = this.socket;
      let ok: boolean;
      if (parts.length === 1) ok = s.write(parts[0]!);
      else {
        s.cork();
        for (let i = 0; i < parts.length - 1; i++) s.write(parts[i]!);
        ok = s.write(parts[parts.length - 1]!);
        s.uncork();
      }
      if (!ok || s.writableLength > SOCKET_HIGH_WATER) this.congested = true;
    }
    if (this.writable.length > 0) {
      const ready = this.writable;
      this.writable = [];
      for (const st of ready) {
        st.inWritable = false;
        if (!st.closed) (st.handler ?? DETACHED).onWritable(st);
      }
    }
  }

  private readonly onDrain = (): void => {
    if (!this.congested) return;
    this.congested = false;
    if (this.sendable.length > 0) this.scheduleFlush();
  };

  private readonly onSocketError = (err: Error): void => {
    this.closeError ??= err;
  };

  private readonly onSocketEnd = (): void => {
    // The peer closed its side: nothing more will arrive. Streams still open are lost.
    if (this.state !== State.Closed) this.destroy(H2Error.NoError, this.closeError);
  };

  private readonly onSocketClose = (): void => {
    this.teardown(this.closeError ?? new Error('connection closed'));
  };

  /** No stream left after GOAWAY: close the connection. */
  private finishClose(): void {
    if (this.state === State.Closed) return;
    this.flush();
    this.socket.end();
    this.teardown(undefined);
  }

  private teardown(err: Error | undefined): void {
    if (this.state === State.Closed) return;
    this.state = State.Closed;
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('drain', this.onDrain);
    this.buffered = undefined;
    for (const w of this.waiting.splice(0)) this.close(w.stream, H2Error.Cancel, false);
    for (const stream of this.streams.values()) this.close(stream, H2Error.Cancel, false);
    this.opts.onClose?.(err);
    // A socket that does not close by itself after end() (a peer that never answers FIN).
    setTimeout(destroySocket, 5000, s).unref();
  }
}

function flushConnection(conn: H2Connection): void {
  conn.flush();
}

function destroySocket(s: Duplex): void {
  if (!s.destroyed) s.destroy();
}

function writeFrameHeader(b: Buffer, at: number, length: number, type: Frame, flags: number, stream: number): void {
  b[at] = (length >>> 16) & 0xff;
  b[at + 1] = (length >>> 8) & 0xff;
  b[at + 2] = length & 0xff;
  b[at + 3] = type;
  b[at + 4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, at + 5);
}
