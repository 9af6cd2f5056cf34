// HTTP/1.1 message syntax over Buffers, strict per RFC 9112: request and response heads, and the
// body framers (Content-Length, chunked, close-delimited). Pure: bytes in, values out. Anything
// that could let two parsers disagree on where a message ends (smuggling) is an error, never
// repaired: CL with TE, bad or repeated lengths, bad chunk sizes, obs-fold, bare CR or LF.
import { proxyErrors, type ProxyError } from '../http/errors.js';
import type { HeaderMap } from '../http/headers.js';

/** Largest head accepted (node:http's default --max-http-header-size; it answers 431 beyond). */
export const MAX_HEAD_BYTES = 16 * 1024;
/** Largest trailer section of a chunked body. */
const MAX_TRAILER_BYTES = 16 * 1024;
/** Longest chunk-size (hex digits, leading zeros included) and chunk-ext of one chunk. */
const MAX_SIZE_DIGITS = 16;
const MAX_EXT_BYTES = 1024;

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;

// Byte classes: 1 = tchar (RFC 9110 §5.6.2), 2 = field-vchar / SP / HTAB / obs-text.
const TOKEN = 1;
const VALUE = 2;
const CLASS = new Uint8Array(256);
for (let b = 0x21; b <= 0xff; b++) if (b !== 0x7f) CLASS[b] = VALUE;
CLASS[SP] = VALUE;
CLASS[HTAB] = VALUE;
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
  const i = c.charCodeAt(0);
  CLASS[i] = CLASS[i]! | TOKEN;
}

/** Byte → its lower-case form (A-Z only; every other byte maps to itself). */
const LOWER = new Uint8Array(256);
for (let b = 0; b < 256; b++) LOWER[b] = b >= 0x41 && b <= 0x5a ? b + 0x20 : b;

// ---- interned field names, remembered values -------------------------------------------------
// Most field lines of most messages carry one of a few dozen names, and many repeat their last
// value (Host, Content-Type, Server, a fixed Content-Length...). A known name is found by a hash
// of its lower-cased bytes taken while its characters are checked anyway, and yields a constant
// string: no allocation, no lower-casing, and a key V8 has already internalized when it is
// stored in the header map. A known name's last value (up to VALUE_MEMO_BYTES) is kept and
// reused when the bytes are the same. Pure as before: the same bytes always give equal strings.

/** Longest value remembered per known name. */
const VALUE_MEMO_BYTES = 64;
const NAME_SLOTS = 256; // a power of two, well above the number of names below

interface KnownName {
  readonly name: string;
  readonly hash: number;
  /** The name's last value, if short. */
  last: string | undefined;
}

function nameHash(h: number, lowerByte: number): number {
  return (Math.imul(h, 31) + lowerByte) | 0;
}

const KNOWN_NAMES: readonly string[] = [
  'host', 'user-agent', 'accept', 'accept-encoding', 'accept-language', 'accept-ranges', 'age', 'authorization',
  'cache-control', 'connection', 'content-encoding', 'content-language', 'content-length', 'content-type',
  'cookie', 'date', 'etag', 'expect', 'expires', 'forwarded', 'if-match', 'if-modified-since', 'if-none-match',
  'keep-alive', 'last-modified', 'link', 'location', 'origin', 'pragma', 'proxy-connection', 'range', 'referer',
  'server', 'set-cookie', 'strict-transport-security', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'vary',
  'via', 'www-authenticate', 'x-content-type-options', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto',
  'x-forwarded-client-cert', 'x-request-id', 'x-real-ip', 'x-envoy-attempt-count', 'x-envoy-original-path',
  'x-weft-source-workload', 'x-weft-debug', 'x-weft-decision', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid',
  'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'grpc-status', 'grpc-message', 'grpc-encoding',
  'grpc-accept-encoding', 'grpc-timeout', 'access-control-allow-origin', 'content-disposition', 'content-range',
  'retry-after', 'x-powered-by', 'x-frame-options',
];

/** Open addressing by hash, linear probing; every name above is always found. */
const nameSlots: (KnownName | undefined)[] = new Array<KnownName | undefined>(NAME_SLOTS).fill(undefined);
for (const name of KNOWN_NAMES) {
  let h = 0;
  for (let i = 0; i < name.length; i++) h = nameHash(h, name.charCodeAt(i));
  let i = h & (NAME_SLOTS - 1);
  while (nameSlots[i] !== undefined) i = (i + 1) & (NAME_SLOTS - 1);
  nameSlots[i] = { name, hash: h, last: undefined };
}

/** The known name whose lower-case form is buf[p, q) lower-cased (hash `h`), or undefined. */
function knownName(buf: Buffer, p: number, q: number, h: number): KnownName | undefined {
  const len = q - p;
  for (let i = h & (NAME_SLOTS - 1); ; i = (i + 1) & (NAME_SLOTS - 1)) {
    const k = nameSlots[i];
    if (k === undefined) return undefined;
    if (k.hash !== h || k.name.length !== len) continue;
    let j = 0;
    while (j < len && LOWER[buf[p + j]!] === k.name.charCodeAt(j)) j++;
    if (j === len) return k;
  }
}

/** buf[s, e) as a latin1 string, reusing `last` when the bytes are the same. */
function sameOrSlice(buf: Buffer, s: number, e: number, last: string | undefined): string {
  if (last !== undefined && last.length === e - s) {
    let i = 0;
    while (i < last.length && buf[s + i] === last.charCodeAt(i)) i++;
    if (i === last.length) return last;
  }
  return buf.toString('latin1', s, e);
}

/** The method as a constant when it is one of the usual ones (no allocation). */
const COMMON_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS'];
function methodOf(buf: Buffer, s: number, e: number): string {
  for (const m of COMMON_METHODS) {
    if (m.length !== e - s) continue;
    let i = 0;
    while (i < m.length && buf[s + i] === m.charCodeAt(i)) i++;
    if (i === m.length) return m;
  }
  return buf.toString('latin1', s, e);
}

/** The last request-target, reused when the next one has the same bytes (a client polling one
 *  path, a health check); only short ones are kept. */
let lastTarget: string | undefined;

/** What both kinds of head carry. */
export interface MessageHead {
  /** Lower-case names, values as sent (OWS trimmed); repeated fields become arrays. */
  readonly headers: HeaderMap;
  /** Bytes from the start of the buffer to the end of the head (CRLF CRLF included). */
  readonly size: number;
  /** HTTP/1.x minor version. */
  readonly minor: number;
  /** Content-Length, or -1 when absent. */
  readonly contentLength: number;
  /** Transfer-Encoding ends in chunked. */
  readonly chunked: boolean;
  /** Transfer-Encoding is present (whatever its codings). */
  readonly transferEncoding: boolean;
  /** `Connection: close`. */
  readonly close: boolean;
  /** `Connection: keep-alive` (what keeps an HTTP/1.0 connection open). */
  readonly keepAlive: boolean;
}

export interface RequestHead extends MessageHead {
  readonly method: string;
  readonly target: string;
  /** An Upgrade or Expect field: node:http's business (101 / 100-continue). */
  readonly upgrade: boolean;
  readonly expect: boolean;
  /** A valid request this parser leaves to node:http, and why (HTTP/1.0, other codings, ...). */
  readonly unusual: string | undefined;
}

export interface ResponseHead extends MessageHead {
  readonly status: number;
}

/** How a message body is delimited (RFC 9112 §6.3). */
export type Framing = 'none' | 'length' | 'chunked' | 'close';

function bad(what: string): ProxyError {
  return proxyErrors.badRequest(what);
}

/** Mutable state while a head's field lines are read. */
interface Fields {
  headers: HeaderMap;
  contentLength: number;
  te: string | undefined;
  close: boolean;
  keepAlive: boolean;
  upgrade: boolean;
  expect: boolean;
  hosts: number;
}

/**
 * Where the head starting at `from` ends (just past its first CR LF CR LF), or -1 while
 * incomplete. Throws on a bare LF in an incomplete head, so a client that ends lines with LF
 * alone is told at once. (Scanned in JavaScript: heads are short, and a native indexOf call
 * costs more than the loop.)
 */
function headEnd(buf: Buffer, from: number): number {
  const n = buf.length;
  for (let i = from + 3; i < n; i++) {
    if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) return i + 1;
  }
  for (let i = from; i < n; i++) {
    if (buf[i] === LF && (i === from || buf[i - 1] !== CR)) throw bad('bare LF in the message head');
  }
  return -1;
}

/** The first CR in buf[p, end), or `end`. */
function crAt(buf: Buffer, p: number, end: number): number {
  while (p < end && buf[p] !== CR) p++;
  return p;
}

/** Skips the empty lines a client may send before a request-line (RFC 9112 §2.2). */
function skipEmptyLines(buf: Buffer): number {
  let p = 0;
  while (p + 1 < buf.length && buf[p] === CR && buf[p + 1] === LF) p += 2;
  return p;
}

/** `HTTP/1.x` at buf[p..p+8) → x; throws otherwise (HTTP/2.0 and friends never get here). */
function version(buf: Buffer, p: number, end: number, what: string): number {
  if (
    end - p !== 8 || buf[p] !== 0x48 || buf[p + 1] !== 0x54 || buf[p + 2] !== 0x54 || buf[p + 3] !== 0x50 ||
    buf[p + 4] !== 0x2f || buf[p + 6] !== 0x2e
  ) {
    throw bad(`invalid HTTP version in the ${what}`);
  }
  const major = buf[p + 5]! - 0x30;
  const minor = buf[p + 7]! - 0x30;
  if (major !== 1 || minor < 0 || minor > 9) throw bad(`unsupported HTTP version ${buf.toString('latin1', p, end)}`);
  return minor;
}

/** Reads the field lines in buf[p, end) where `end` is the head's last CRLF CRLF + 2. */
function readFields(buf: Buffer, p: number, end: number, f: Fields): void {
  const headers = f.headers;
  // `end` is just past the last line's CR LF; the line ends are checked below, none is missed.
  const last = end - 1;
  while (p < end) {
    const le = crAt(buf, p, last);
    if (le >= last || buf[le + 1] !== LF) throw bad('bare CR in a field line');
    const first = buf[p]!;
    if (first === SP || first === HTAB) throw bad('obs-fold (a field line starting with whitespace)');
    // Field name: one or more tchars, then ':' at once (no whitespace before it, §5.1).
    let q = p;
    let upper = false;
    let h = 0;
    for (; q < le; q++) {
      const b = buf[q]!;
      if ((CLASS[b]! & TOKEN) === 0) break;
      if (b >= 0x41 && b <= 0x5a) upper = true;
      h = nameHash(h, LOWER[b]!);
    }
    if (q === p || q === le || buf[q] !== 0x3a) throw bad(q === le || q === p ? 'a field line without a name and colon' : 'invalid character in a field name');
    const known = knownName(buf, p, q, h);
    let name: string;
    if (known) name = known.name;
    else {
      name = buf.toString('latin1', p, q);
      if (upper) name = name.toLowerCase();
    }
    // Field value: OWS trimmed; CTLs (NUL, CR, LF, ...) are not allowed.
    let vs = q + 1;
    let ve = le;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    for (let i = vs; i < ve; i++) if ((CLASS[buf[i]!]! & VALUE) === 0) throw bad(`invalid character in the value of ${name}`);
    let value: string;
    if (known && ve - vs <= VALUE_MEMO_BYTES) value = known.last = sameOrSlice(buf, vs, ve, known.last);
    else value = buf.toString('latin1', vs, ve);
    p = le + 2;
    switch (name) {
      case 'content-length': {
        // Repeated identical lengths are one length: the message is sent on with a single field.
        const repeated = f.contentLength >= 0;
        f.contentLength = contentLength(value, f.contentLength);
        if (repeated) continue;
        if (value !== String(f.contentLength)) {
          headers[name] = String(f.contentLength);
          continue;
        }
        break;
      }
      case 'transfer-encoding':
        f.te = f.te === undefined ? value : `${f.te},${value}`;
        break;
      case 'connection':
        connectionTokens(value, f);
        break;
      case 'upgrade':
        f.upgrade = true;
        break;
      case 'expect':
        f.expect = true;
        break;
      case 'host':
        f.hosts++;
        break;
      case '__proto__':
        continue; // not a header anyone sends; never let it near an object's prototype
    }
    const cur = headers[name];
    if (cur === undefined) headers[name] = value;
    else if (typeof cur === 'string') headers[name] = [cur, value];
    else cur.push(value);
  }
}

/** A Content-Length value (possibly a list, possibly repeated): identical values or an error. */
function contentLength(value: string, seen: number): number {
  // The usual case first: one run of digits.
  let n = value.length > 0 && value.length <= 15 ? 0 : -1;
  for (let i = 0; n >= 0 && i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    n = d >= 0 && d <= 9 ? n * 10 + d : -1;
  }
  if (n >= 0) {
    if (seen >= 0 && n !== seen) throw bad('conflicting Content-Length values');
    return n;
  }
  n = -1;
  for (const part of value.split(',')) {
    const v = part.trim();
    if (!/^\d{1,15}$/.test(v)) throw bad(`invalid Content-Length ${JSON.stringify(value)}`);
    const x = Number(v);
    if ((n >= 0 && x !== n) || (seen >= 0 && x !== seen)) throw bad('conflicting Content-Length values');
    n = x;
  }
  return n;
}

function connectionTokens(value: string, f: Fields): void {
  for (const t of value.split(',')) {
    const token = t.trim().toLowerCase();
    if (token === 'close') f.close = true;
    else if (token === 'keep-alive') f.keepAlive = true;
    else if (token === 'upgrade') f.upgrade = true;
  }
}

/** The transfer codings, lower-case, in order; throws on an empty element. */
function codings(te: string): string[] {
  const out = te.split(',').map((c) => c.trim().toLowerCase());
  if (out.some((c) => c === '')) throw bad('empty element in Transfer-Encoding');
  return out;
}

function newFields(): Fields {
  return { headers: {}, contentLength: -1, te: undefined, close: false, keepAlive: false, upgrade: false, expect: false, hosts: 0 };
}

/**
 * Parses the request head at the start of `buf`, or returns undefined while it is incomplete.
 * Throws a bad_request ProxyError for anything malformed or ambiguous (answer 400 and close).
 */
export function parseRequestHead(buf: Buffer): RequestHead | undefined {
  const start = skipEmptyLines(buf);
  const size = headEnd(buf, start);
  if (size < 0) return undefined;
  const lineEnd = crAt(buf, start, size);
  if (buf[lineEnd + 1] !== LF) throw bad('bare CR in the request-line');
  // method SP request-target SP HTTP-version: single spaces, nothing else.
  let p = start;
  while (p < lineEnd && (CLASS[buf[p]!]! & TOKEN) !== 0) p++;
  if (p === start || buf[p] !== SP) throw bad('invalid method in the request-line');
  const method = methodOf(buf, start, p);
  const ts = ++p;
  let ascii = true;
  for (; p < lineEnd; p++) {
    const b = buf[p]!;
    if (b === SP) break;
    if (b < 0x21 || b === 0x7f) throw bad('invalid character in the request-target');
    if (b > 0x7e) ascii = false;
  }
  if (p === ts || p === lineEnd) throw bad('malformed request-line');
  const target = sameOrSlice(buf, ts, p, lastTarget);
  if (p - ts <= VALUE_MEMO_BYTES) lastTarget = target;
  const minor = version(buf, p + 1, lineEnd, 'request-line');

  const f = newFields();
  readFields(buf, lineEnd + 2, size - 2, f);
  let unusual: string | undefined = ascii ? undefined : 'a request-target with non-ASCII bytes';
  let chunked = false;
  if (f.te !== undefined) {
    if (f.contentLength >= 0) throw bad('both Content-Length and Transfer-Encoding');
    const cs = codings(f.te);
    if (cs[cs.length - 1] !== 'chunked') throw bad('Transfer-Encoding of a request must end in chunked');
    if (cs.indexOf('chunked') !== cs.length - 1) throw bad('chunked applied more than once');
    if (cs.length > 1) unusual = `transfer codings ${f.te}`;
    chunked = true;
  }
  if (f.hosts > 1) throw bad('more than one Host field');
  if (minor !== 1) unusual = `HTTP/1.${minor}`;
  return {
    method, target, minor, headers: f.headers, size, contentLength: f.contentLength, chunked, transferEncoding: f.te !== undefined,
    close: f.close, keepAlive: f.keepAlive, upgrade: f.upgrade, expect: f.expect, unusual,
  };
}

/**
 * Parses the response head at the start of `buf`, or undefined while incomplete. Throws a
 * ProxyError (bad_request kind; the caller makes it an upstream failure) when malformed.
 */
export function parseResponseHead(buf: Buffer): ResponseHead | undefined {
  const size = headEnd(buf, 0);
  if (size < 0) return undefined;
  const lineEnd = crAt(buf, 0, size);
  if (buf[lineEnd + 1] !== LF) throw bad('bare CR in the status-line');
  // HTTP-version SP 3DIGIT SP [reason-phrase]; the SP before an empty reason may be missing.
  if (lineEnd < 12 || buf[8] !== SP) throw bad('malformed status-line');
  const minor = version(buf, 0, 8, 'status-line');
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw bad('malformed status code');
    status = status * 10 + d;
  }
  if (status < 100 || (lineEnd > 12 && buf[12] !== SP)) throw bad('malformed status-line');
  for (let i = 13; i < lineEnd; i++) if ((CLASS[buf[i]!]! & VALUE) === 0) throw bad('invalid character in the reason-phrase');
  const f = newFields();
  readFields(buf, lineEnd + 2, size - 2, f);
  let chunked = false;
  if (f.te !== undefined) {
    if (f.contentLength >= 0) throw bad('both Content-Length and Transfer-Encoding');
    const cs = codings(f.te);
    chunked = cs[cs.length - 1] === 'chunked';
    if (chunked && cs.indexOf('chunked') !== cs.length - 1) throw bad('chunked applied more than once');
  }
  return {
    status, minor, headers: f.headers, size, contentLength: f.contentLength, chunked, transferEncoding: f.te !== undefined,
    close: f.close, keepAlive: f.keepAlive,
  };
}

/** The framing of a request body. */
export function requestFraming(h: RequestHead): Framing {
  if (h.chunked) return 'chunked';
  return h.contentLength > 0 ? 'length' : 'none';
}

/** The framing of a response body; `toHead`: it answers a HEAD request. */
export function responseFraming(h: ResponseHead, toHead: boolean): Framing {
  if (toHead || h.status < 200 || h.status === 204 || h.status === 304) return 'none';
  if (h.transferEncoding) return h.chunked ? 'chunked' : 'close';
  if (h.contentLength >= 0) return h.contentLength > 0 ? 'length' : 'none';
  return 'close';
}

/** Whether the connection may carry another message after this one (RFC 9112 §9.3). */
export function persistent(h: MessageHead): boolean {
  return h.minor >= 1 ? !h.close : h.keepAlive && !h.close;
}

// ---- chunked bodies ----------------------------------------------------------------------------

const enum S {
  Size,
  Ext,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  Trailer,
  Done,
}

function hexValue(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  if (b >= 0x61 && b <= 0x66) return b - 0x57;
  if (b >= 0x41 && b <= 0x46) return b - 0x37;
  return -1;
}

/**
 * An incremental decoder of a chunked body (RFC 9112 §7.1): feed it bytes as they arrive, it
 * hands over the data of each chunk and stops exactly at the end of the message. The trailer
 * section is read but kept apart (`trailers`). Chunk extensions are checked and dropped.
 */
export class ChunkedDecoder {
  private state = S.Size;
  private remaining = 0;
  private digits = 0;
  private extBytes = 0;
  /** Inside a chunk-ext: the ';' that must follow any whitespace after the size was seen. */
  private semicolon = false;
  private trailer: Buffer | undefined;
  /** The trailer fields, once `done` (an empty map when there were none). */
  trailers: HeaderMap | undefined;
  /** Body data bytes decoded so far. */
  bytes = 0;

  get done(): boolean {
    return this.state === S.Done;
  }

  /**
   * Decodes from buf[start..]; calls `onData` with each run of chunk data (a view of `buf`).
   * Returns the offset just past the last byte that belonged to this body: `buf.length` unless
   * the body ended inside `buf`. Throws a bad_request ProxyError on a framing error.
   */
  decode(buf: Buffer, start: number, onData: (data: Buffer) => void): number {
    let p = start;
    const n = buf.length;
    while (p < n) {
      switch (this.state) {
        case S.Size: {
          const b = buf[p]!;
          const v = hexValue(b);
          if (v >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) throw bad('chunk size too long');
            this.remaining = this.remaining * 16 + v;
            if (this.remaining > Number.MAX_SAFE_INTEGER) throw bad('chunk size too large');
            p++;
          } else if (this.digits === 0) {
            throw bad('invalid chunk size');
          } else if (b === CR) {
            this.state = S.SizeLf;
            p++;
          } else if (b === 0x3b || b === SP || b === HTAB) {
            this.state = S.Ext; // BWS ";" chunk-ext
            this.extBytes = 0;
            this.semicolon = false;
          } else {
            throw bad('invalid chunk size');
          }
          break;
        }
        case S.Ext: {
          const b = buf[p]!;
          if (++this.extBytes > MAX_EXT_BYTES) throw bad('chunk extension too long');
          if (b === CR && this.semicolon) {
            this.state = S.SizeLf;
          } else if (b === 0x3b) {
            this.semicolon = true;
          } else if ((CLASS[b]! & VALUE) === 0 || (!this.semicolon && b !== SP && b !== HTAB)) {
            throw bad('invalid chunk extension');
          }
          p++;
          break;
        }
        case S.SizeLf:
          if (buf[p] !== LF) throw bad('chunk size line not ended by CRLF');
          p++;
          this.digits = 0;
          this.state = this.remaining === 0 ? S.Trailer : S.Data;
          break;
        case S.Data: {
          const take = Math.min(this.remaining, n - p);
          onData(buf.subarray(p, p + take));
          this.bytes += take;
          this.remaining -= take;
          p += take;
          if (this.remaining === 0) this.state = S.DataCr;
          break;
        }
        case S.DataCr:
          if (buf[p] !== CR) throw bad('chunk data not followed by CRLF');
          p++;
          this.state = S.DataLf;
          break;
        case S.DataLf:
          if (buf[p] !== LF) throw bad('chunk data not followed by CRLF');
          p++;
          this.state = S.Size;
          break;
        case S.Trailer:
          return this.readTrailer(buf, p);
        case S.Done:
          return p;
      }
    }
    return p;
  }

  /** The trailer section: `CRLF` alone, or field lines then `CRLF`. Buffered until complete. */
  private readTrailer(buf: Buffer, p: number): number {
    const prev = this.trailer?.length ?? 0;
    const all = this.trailer ? Buffer.concat([this.trailer, buf.subarray(p)]) : buf.subarray(p);
    if (all.length >= 2 && all[0] === CR && all[1] === LF) return this.finish({}, p + 2 - prev);
    if (all.length >= 1 && all[0] !== CR && (all[0] === LF || all[0] === SP || all[0] === HTAB)) throw bad('malformed trailer section');
    const end = headEnd(all, 0);
    if (end < 0) {
      if (all.length > MAX_TRAILER_BYTES) throw bad('trailer section too large');
      this.trailer = Buffer.from(all); // a copy: `buf` is not ours to keep
      return buf.length;
    }
    const f = newFields();
    readFields(all, 0, end - 2, f);
    return this.finish(f.headers, p + end - prev);
  }

  private finish(trailers: HeaderMap, next: number): number {
    this.trailers = trailers;
    this.trailer = undefined;
    this.state = S.Done;
    return next;
  }
}
