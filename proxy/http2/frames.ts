// HTTP/2 framing (RFC 9113 §4, §6): frame types, flags, error codes, settings, and the output
// buffer a connection writes its frames into — small frames packed into one slab so a tick's
// frames leave in one write, large DATA payloads passed by reference (never copied).

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const enum Frame {
  Data = 0x0,
  Headers = 0x1,
  Priority = 0x2,
  RstStream = 0x3,
  Settings = 0x4,
  PushPromise = 0x5,
  Ping = 0x6,
  Goaway = 0x7,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}

export const enum Flag {
  EndStream = 0x1,
  Ack = 0x1,
  EndHeaders = 0x4,
  Padded = 0x8,
  Priority = 0x20,
}

/** RFC 9113 §7. */
export const enum H2Error {
  NoError = 0x0,
  ProtocolError = 0x1,
  InternalError = 0x2,
  FlowControlError = 0x3,
  SettingsTimeout = 0x4,
  StreamClosed = 0x5,
  FrameSizeError = 0x6,
  RefusedStream = 0x7,
  Cancel = 0x8,
  CompressionError = 0x9,
  ConnectError = 0xa,
  EnhanceYourCalm = 0xb,
  InadequateSecurity = 0xc,
  Http11Required = 0xd,
}

export const enum Setting {
  HeaderTableSize = 0x1,
  EnablePush = 0x2,
  MaxConcurrentStreams = 0x3,
  InitialWindowSize = 0x4,
  MaxFrameSize = 0x5,
  MaxHeaderListSize = 0x6,
}

export const FRAME_HEADER = 9;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;
export const MAX_MAX_FRAME_SIZE = 16_777_215;
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 2 ** 31 - 1;

/** A connection error (GOAWAY with `code`) raised while reading frames. */
export class ConnectionError extends Error {
  constructor(
    readonly code: H2Error,
    message: string,
  ) {
    super(message);
    this.name = 'Http2ConnectionError';
  }
}

/** Payloads up to this size are copied into the slab; larger ones go out by reference. */
const COPY_LIMIT = 1024;
const SLAB = 64 * 1024;

/**
 * Frames waiting to be written. Headers and small payloads are packed into a slab; a region
 * handed to the socket is never written again (the next frames go after it, or into a new slab).
 */
export class Output {
  private slab: Buffer = Buffer.allocUnsafe(SLAB);
  private start = 0;
  private pos = 0;
  private parts: Buffer[] = [];
  /** Bytes waiting. */
  size = 0;

  /** Room for `n` contiguous bytes at `pos`; returns the slab to write into. */
  reserve(n: number): Buffer {
    if (this.slab.length - this.pos < n) {
      this.cut();
      this.slab = Buffer.allocUnsafe(Math.max(SLAB, n));
      this.start = this.pos = 0;
    }
    return this.slab;
  }

  get at(): number {
    return this.pos;
  }

  /** Marks `n` bytes written at `at`. */
  advance(n: number): void {
    this.pos += n;
    this.size += n;
  }

  frameHeader(length: number, type: Frame, flags: number, stream: number): void {
    const b = this.reserve(FRAME_HEADER);
    let p = this.pos;
    b[p++] = (length >>> 16) & 0xff;
    b[p++] = (length >>> 8) & 0xff;
    b[p++] = length & 0xff;
    b[p++] = type;
    b[p++] = flags;
    b.writeUInt32BE(stream & 0x7fffffff, p);
    this.advance(FRAME_HEADER);
  }

  /** A payload after its frame header: copied when small, by reference when large. */
  payload(data: Buffer): void {
    if (data.length <= COPY_LIMIT) {
      const b = this.reserve(data.length);
      data.copy(b, this.pos);
      this.advance(data.length);
      return;
    }
    this.cut();
    this.parts.push(data);
    this.size += data.length;
  }

  uint32(v: number): void {
    const b = this.reserve(4);
    b.writeUInt32BE(v >>> 0, this.pos);
    this.advance(4);
  }

  /** Everything waiting, in order; the output is empty after. */
  take(): Buffer[] {
    this.cut();
    const parts = this.parts;
    this.parts = [];
    this.size = 0;
    return parts;
  }

  private cut(): void {
    if (this.pos > this.start) {
      this.parts.push(this.slab.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}
