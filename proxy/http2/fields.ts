// Header fields as the HTTP/2 engine carries them (name, value, name, value…; lower-case names,
// pseudo-headers first) and the HeaderMap the rest of the data path works on: one pass each way,
// with http/headers.ts's rules for what a proxy must not forward.
import { connectionNamed, isHopByHop, requestId, type HeaderMap } from '../http/headers.js';

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

/** A listener adjustment (a HeaderMap in, a HeaderMap out) that can also make its edit on a
 *  plain forward's field list, in place, from index `from` (after the pseudo-headers): the lean
 *  path then keeps the list. Returns the one value it added (checked before sending), if any. */
export type FieldAdjust = ((headers: HeaderMap) => HeaderMap) & {
  fields: (fields: string[], from: number) => string | undefined;
};

/** The adjustment's field-list edit, when it has one. */
export function fieldEditOf(adjust: ((headers: HeaderMap) => HeaderMap) | undefined): FieldAdjust['fields'] | undefined {
  return (adjust as Partial<FieldAdjust> | undefined)?.fields;
}

/** A field value HTTP/2 cannot carry (invalidField's rule for values). */
export function invalidValue(value: string): boolean {
  return BAD_VALUE.test(value);
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

// ---- the lean path's heads as field lists --------------------------------------------------
// A plain forward (no header rule of the route, no listener adjustment) edits the decoded list
// itself: the HeaderMap helpers above copy the fields into an object two or three times per
// request, which was most of the lean path's garbage. Each function below keeps the rules of
// the http/headers.ts function it stands for (the tests hold them to the same output).

/** The names the `connection` fields of `fields` list (lower-case), or undefined. */
function connectionTokens(fields: readonly string[]): Set<string> | undefined {
  let named: Set<string> | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'connection') continue;
    named ??= new Set();
    for (const t of fields[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
  }
  return named;
}

function hasToken(value: string, token: string): boolean {
  for (const t of value.split(',')) if (t.trim().toLowerCase() === token) return true;
  return false;
}

/**
 * upstreamRequestHeaders on the field list: `out` (the upstream pseudo-headers) followed by the
 * client's end-to-end fields (no hop-by-hop ones, none Connection names, `te` only as one
 * `te: trailers`), then `x-forwarded-proto` and `x-request-id` when the client sent none.
 */
export function upstreamRequestFields(fields: readonly string[], scheme: string, out: string[]): string[] {
  const named = connectionTokens(fields);
  let te = false;
  let proto = false;
  let id = false;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 0x3a || isHopByHop(name) || (named !== undefined && named.has(name))) continue;
    const value = fields[i + 1]!;
    if (name === 'te') {
      if (!te && hasToken(value, 'trailers')) {
        te = true;
        out.push('te', 'trailers');
      }
      continue;
    }
    if (name === 'x-forwarded-proto') proto = true;
    else if (name === 'x-request-id') id = true;
    out.push(name, value);
  }
  if (!proto) out.push('x-forwarded-proto', scheme);
  if (!id) out.push('x-request-id', requestId());
  return out;
}

/** The response head for the client from the upstream's fields (:status first, as the engine
 *  validated): fieldsToHeaderMap(…, true)'s rules, with responsePrefix's Date when none came. */
export function responseFieldList(status: number, fields: readonly string[]): string[] {
  const named = connectionTokens(fields);
  let date = false;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'date') {
      date = true;
      break;
    }
  }
  const out = date ? [':status', statusText(status)] : [':status', statusText(status), 'date', dateValue()];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 0x3a || isHopByHop(name) || name === 'te' || (named !== undefined && named.has(name))) continue;
    out.push(name, fields[i + 1]!);
  }
  return out;
}

/** forwardableTrailers on the field list: no hop-by-hop field, none Connection names, no
 *  `te`, no `content-length` (trailers carry no pseudo-header: the engine refused those). */
export function forwardableTrailerFields(fields: readonly string[]): string[] {
  const named = connectionTokens(fields);
  const out: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (isHopByHop(name) || name === 'te' || name === 'content-length' || (named !== undefined && named.has(name))) continue;
    out.push(name, fields[i + 1]!);
  }
  return out;
}
