// Header plumbing shared by both listeners: reading raw headers into one map shape, removing
// hop-by-hop headers (RFC 9110 §7.6.1), and the headers a proxy adds. Pure functions.
import { randomFillSync } from 'node:crypto';

/** Lower-case names, no pseudo-headers; repeated headers become arrays. The shape undici,
 *  node:http and node:http2 all accept, and the one applyHeaderMutations works on. */
export type HeaderMap = Record<string, string | string[]>;

/** Hop-by-hop headers: meaningful for one connection only, never forwarded. `te` is handled
 *  apart (its `trailers` value is end-to-end for gRPC). `expect` is answered by the proxy. */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'transfer-encoding',
  'upgrade',
  'trailer',
  'http2-settings',
  'expect',
  'host',
]);

/** Builds a HeaderMap from Node's flat `rawHeaders` list ([name, value, name, value, ...]). */
export function readRawHeaders(raw: readonly string[]): HeaderMap {
  const out: HeaderMap = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name.startsWith(':')) continue;
    const value = raw[i + 1]!;
    const cur = out[name];
    if (cur === undefined) out[name] = value;
    else if (Array.isArray(cur)) cur.push(value);
    else out[name] = [cur, value];
  }
  return out;
}

/** Normalises Node's IncomingHttpHeaders-like objects (http2 response headers, undici headers). */
export function fromNodeHeaders(h: Record<string, string | string[] | number | undefined>): HeaderMap {
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':')) continue;
    out[k.toLowerCase()] = typeof v === 'number' ? String(v) : v;
  }
  return out;
}

export function firstValue(h: Readonly<HeaderMap>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export function allValues(h: Readonly<HeaderMap>, name: string): readonly string[] {
  const v = h[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** Whether `name` (lower-case) is hop-by-hop by itself (RFC 9110 §7.6.1; `te` apart). */
export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/** The field names `Connection` makes hop-by-hop, or undefined when there is no Connection. */
export function connectionNamed(h: Readonly<HeaderMap>): Set<string> | undefined {
  if (h.connection === undefined) return undefined;
  const named = new Set<string>();
  for (const v of allValues(h, 'connection')) for (const t of v.split(',')) named.add(t.trim().toLowerCase());
  return named;
}

/** Copy without hop-by-hop headers, including any named in `Connection`. Keeps `te: trailers`.
 *  Called once or twice per request: no Set unless a Connection header names fields. */
export function withoutHopByHop(h: Readonly<HeaderMap>): HeaderMap {
  const named = connectionNamed(h);
  const out: HeaderMap = {};
  for (const k in h) {
    if (HOP_BY_HOP.has(k) || named?.has(k)) continue;
    if (k === 'te') {
      const keep = allValues(h, 'te').some((x) => x.split(',').some((t) => t.trim().toLowerCase() === 'trailers'));
      if (keep) out.te = 'trailers';
      continue;
    }
    out[k] = h[k]!;
  }
  return out;
}

/**
 * Headers for the upstream request, before the route's mutations: the client's end-to-end
 * headers, `x-forwarded-proto` (the downstream scheme) and `x-request-id` when absent.
 * The authority is not in the map: each protocol sends it its own way (Host / :authority).
 */
export function upstreamRequestHeaders(incoming: Readonly<HeaderMap>, scheme: 'http' | 'https'): HeaderMap {
  const out = withoutHopByHop(incoming);
  if (out['x-forwarded-proto'] === undefined) out['x-forwarded-proto'] = scheme;
  if (out['x-request-id'] === undefined) out['x-request-id'] = requestId();
  return out;
}

// ---- x-request-id: a random (version 4) UUID, as crypto.randomUUID makes, without its
// intermediate strings: random bytes from a pool, hex into one buffer, one string out.
const POOL = 256 * 16;
const random = Buffer.alloc(POOL);
let taken = POOL;
const text = Buffer.alloc(36, 0x2d); // the dashes stay; the hex digits are written over the rest
/** Each byte's two hex digits (character codes). */
const HEX_HIGH = new Uint8Array(256);
const HEX_LOW = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  HEX_HIGH[b] = '0123456789abcdef'.charCodeAt(b >> 4);
  HEX_LOW[b] = '0123456789abcdef'.charCodeAt(b & 0xf);
}
/** Where each of the 16 bytes' digits go in `text` (8-4-4-4-12). */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

/** A random UUID (RFC 9562 version 4), lower-case hex. */
export function requestId(): string {
  if (taken === POOL) {
    randomFillSync(random);
    taken = 0;
  }
  const at = taken;
  taken += 16;
  random[at + 6] = (random[at + 6]! & 0x0f) | 0x40; // version 4
  random[at + 8] = (random[at + 8]! & 0x3f) | 0x80; // variant 10
  for (let i = 0; i < 16; i++) {
    const b = random[at + i]!;
    const p = AT[i]!;
    text[p] = HEX_HIGH[b]!;
    text[p + 1] = HEX_LOW[b]!;
  }
  return text.toString('latin1', 0, 36);
}

/** Headers for the downstream response, before the route's mutations. */
export function downstreamResponseHeaders(upstream: Readonly<HeaderMap>): HeaderMap {
  const out = withoutHopByHop(upstream);
  delete out.te;
  return out;
}

/** Trailers safe to forward: no pseudo-headers, no hop-by-hop, no content framing. */
export function forwardableTrailers(t: Readonly<HeaderMap>): HeaderMap {
  const out = withoutHopByHop(t);
  delete out['content-length'];
  delete out.te;
  return out;
}

/** gRPC requests get gRPC-shaped error answers (trailers-only with grpc-status). */
export function isGrpc(h: Readonly<HeaderMap>): boolean {
  return isGrpcType(firstValue(h, 'content-type'));
}

/** Whether a content-type value is gRPC's. */
export function isGrpcType(ct: string | undefined): boolean {
  return ct !== undefined && /^application\/grpc(\+|;|$)/i.test(ct);
}

// ---- heads carried as field lists (name, value, name, value…), as the HTTP/2 engine has them ----

/** Removes every `name` field from `fields` at or after index `from` (in place). */
export function removeFields(fields: string[], from: number, name: string): void {
  let w = from;
  for (let r = from; r + 1 < fields.length; r += 2) {
    if (fields[r] === name) continue;
    if (w !== r) {
      fields[w] = fields[r]!;
      fields[w + 1] = fields[r + 1]!;
    }
    w += 2;
  }
  if (w !== fields.length) fields.length = w;
}

/** The first value of `name` at or after index `from`, or undefined. */
export function fieldValue(fields: readonly string[], from: number, name: string): string | undefined {
  for (let i = from; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}
