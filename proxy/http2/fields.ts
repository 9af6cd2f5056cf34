// Header fields as the HTTP/2 engine carries them (name, value, name, value…; lower-case names,
// pseudo-headers first) and the HeaderMap the rest of the data path works on: one pass each way,
// with http/headers.ts's rules for what a proxy must not forward.
import { connectionNamed, isHopByHop, type HeaderMap } from '../http/headers.js';

/**
 * The fields as a HeaderMap: pseudo-headers left out, repeated names as arrays. `response`: a
 * response head's fields for the client (downstreamResponseHeaders' rules: no hop-by-hop
 * fields, none named by Connection, no `te`).
 */
export function fieldsToHeaderMap(fields: readonly string[], response: boolean): HeaderMap {
  const out: HeaderMap = {};
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 0x3a) continue;
    const value = fields[i + 1]!;
    const cur = out[name];
    if (cur === undefined) out[name] = value;
    else if (Array.isArray(cur)) cur.push(value);
    else out[name] = [cur, value];
  }
  if (!response) return out;
  const named = connectionNamed(out);
  for (const name in out) if (isHopByHop(name) || name === 'te' || named?.has(name)) delete out[name];
  return out;
}

/** `prefix` (the pseudo-headers) followed by the map's fields, arrays as repeated fields. */
export function headerMapToFields(h: Readonly<HeaderMap>, prefix: string[]): string[] {
  const out = prefix;
  for (const name in h) {
    const v = h[name]!;
    if (typeof v === 'string') out.push(name, v);
    else for (const x of v) out.push(name, x);
  }
  return out;
}

let date: string | undefined;

/** The Date value for now, made once a second (as node:http2 adds one to each response). */
export function dateValue(): string {
  if (date === undefined) {
    const now = new Date();
    date = now.toUTCString();
    setTimeout(() => (date = undefined), 1000 - now.getMilliseconds()).unref();
  }
  return date;
}

/** A response head's first fields: :status, and Date when `h` (the fields that follow) has
 *  none — node:http2 adds one to every response the generic path sends. */
export function responsePrefix(status: number, h: Readonly<HeaderMap>): string[] {
  return h.date === undefined ? [':status', statusText(status), 'date', dateValue()] : [':status', statusText(status)];
}

/** A response head as one list of fields (tests, and heads made whole). */
export function responseFields(status: number, h: Readonly<HeaderMap>): string[] {
  return headerMapToFields(h, responsePrefix(status, h));
}

const STATUS_TEXT: string[] = [];

function statusText(status: number): string {
  return status >= 100 && status < 600 ? (STATUS_TEXT[status] ??= String(status)) : String(status);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
const BAD_VALUE = /[\0\r\n]|[^\0-\xff]/;
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/** The first field HTTP/2 cannot carry (RFC 9113 §8.2: lower-case token names, no
 *  connection-specific field, `te` only as `trailers`; no NUL, CR, LF; one byte per
 *  character here), or undefined. */
export function invalidField(h: Readonly<HeaderMap>): string | undefined {
  for (const name in h) {
    if (!TOKEN.test(name) || CONNECTION_SPECIFIC.has(name)) return name;
    const v = h[name]!;
    if (name === 'te' && v !== 'trailers') return name;
    if (typeof v === 'string') {
      if (BAD_VALUE.test(v)) return name;
    } else {
      for (const x of v) if (BAD_VALUE.test(x)) return name;
    }
  }
  return undefined;
}
