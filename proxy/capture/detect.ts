// Protocol detection on captured connections: a pure classifier of the first bytes (HTTP/1.x
// request line, HTTP/2 prior-knowledge preface, TLS ClientHello, anything else = TCP) and a
// sniffer that reads them with a short deadline, so server-first protocols (MySQL, SMTP), whose
// clients say nothing until greeted, fall back to TCP after that deadline at most.
import type net from 'node:net';

export type Detected = 'http1' | 'http2' | 'tls' | 'tcp';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The longest HTTP/1 request line we wait for before calling the bytes TCP. */
export const MAX_REQUEST_LINE = 8192;
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/** RFC 9110 token characters (a method is a token). */
function isTchar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x21 || (c >= 0x23 && c <= 0x27) || c === 0x2a || c === 0x2b || c === 0x2d || c === 0x2e ||
    c === 0x5e || c === 0x5f || c === 0x60 || c === 0x7c || c === 0x7e
  );
}

/**
 * What the first bytes of a connection are, or undefined when they do not tell yet (read more).
 * HTTP/1 needs a whole request line `METHOD SP target SP HTTP/1.x CRLF` (Envoy's http_inspector
 * is as strict); the HTTP/2 preface must match byte for byte; TLS is a handshake record header.
 */
export function classify(b: Buffer): Detected | undefined {
  if (b.length === 0) return undefined;
  // TLS: ContentType handshake (22), legacy version 3.x.
  if (b[0] === 0x16) {
    if (b.length < 3) return undefined;
    return b[1] === 0x03 && b[2]! <= 0x04 ? 'tls' : 'tcp';
  }
  // HTTP/2 prior knowledge.
  const n = Math.min(b.length, H2_PREFACE.length);
  if (b.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) return n === H2_PREFACE.length ? 'http2' : undefined;
  return classifyHttp1(b);
}

function classifyHttp1(b: Buffer): Detected | undefined {
  let i = 0;
  // Method: 1..32 token characters, then one space.
  while (i < b.length && i <= 32 && isTchar(b[i]!)) i++;
  if (i === b.length) return i <= 32 ? undefined : 'tcp';
  if (i === 0 || b[i] !== SP) return 'tcp';
  i++;
  // Request target: visible characters up to the next space.
  const targetStart = i;
  while (i < b.length && b[i]! > SP && b[i]! < 0x7f) i++;
  if (i === b.length) return i >= MAX_REQUEST_LINE ? 'tcp' : undefined;
  if (i === targetStart || b[i] !== SP) return 'tcp';
  i++;
  // Version: HTTP/1.0 or HTTP/1.1, then CRLF (a bare LF is tolerated, as node:http does).
  const version = 'HTTP/1.';
  for (let k = 0; k < version.length; k++, i++) {
    if (i === b.length) return undefined;
    if (b[i] !== version.charCodeAt(k)) return 'tcp';
  }
  if (i === b.length) return undefined;
  if (b[i] !== 0x30 && b[i] !== 0x31) return 'tcp';
  i++;
  if (i === b.length) return undefined;
  if (b[i] === LF) return 'http1';
  if (b[i] !== CR) return 'tcp';
  i++;
  if (i === b.length) return undefined;
  return b[i] === LF ? 'http1' : 'tcp';
}

export interface Sniffed {
  /** `tcp` also when the deadline passed or the client half-closed before the bytes told. */
  readonly kind: Detected;
  /** Everything read so far, not yet delivered to anyone. */
  readonly head: Buffer;
  /** The client already half-closed (sent FIN): nothing more will come. */
  readonly ended: boolean;
  /** The deadline decided (the client said nothing conclusive in time). */
  readonly timedOut: boolean;
}

/**
 * Reads from `socket` until `classify` decides, the deadline passes, or the client ends. The
 * socket is left paused with no data listener; the bytes read are in `head` (the caller
 * unshifts them for node:http, or writes them upstream first). Resolves undefined when the
 * socket closed or failed before a decision.
 */
export function sniff(socket: net.Socket, timeoutMs: number): Promise<Sniffed | undefined> {
  return new Promise((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (out: Sniffed | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onClose);
      socket.pause();
      resolve(out);
    };
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const kind = classify(head) ?? (head.length >= MAX_REQUEST_LINE ? 'tcp' : undefined);
      if (kind) finish({ kind, head, ended: false, timedOut: false });
    };
    const onEnd = () => finish({ kind: classify(head) ?? 'tcp', head, ended: true, timedOut: false });
    const onClose = () => finish(undefined);
    const timer = setTimeout(() => finish({ kind: 'tcp', head, ended: false, timedOut: true }), timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onClose);
  });
}
