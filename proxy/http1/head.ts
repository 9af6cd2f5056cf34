// Writing HTTP/1.1 heads as the fast path sends them: the upstream request head, the downstream
// response head (the upstream's fields minus hop-by-hop ones, plus what node:http would add:
// Date, Connection, Keep-Alive, chunked framing) and complete local answers. Strings are latin1;
// a value that could break the head (CR, LF, NUL, >0xff) is dropped, never written.
import { STATUS_CODES } from 'node:http';
import type { HeaderMutation } from '../../api/domain.js';
import { applyHeaderMutations } from '../route/headers.js';
import { connectionNamed, downstreamResponseHeaders, isHopByHop, type HeaderMap } from '../http/headers.js';

const UNSAFE_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
const TOKEN_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * `name: value\r\n` for every field of `h` (arrays: one line per value). `checked`: names and
 * values that did not come from parser.ts or the proxy itself (route mutations) are checked, and
 * a field that could break the head is left out.
 */
export function fieldLines(h: Readonly<HeaderMap>, checked: boolean): string {
  let out = '';
  for (const name in h) {
    const v = h[name]!;
    if (checked && !TOKEN_NAME.test(name)) continue;
    if (typeof v === 'string') {
      if (!checked || !UNSAFE_VALUE.test(v)) out += `${name}: ${v}\r\n`;
    } else {
      for (const x of v) if (!checked || !UNSAFE_VALUE.test(x)) out += `${name}: ${x}\r\n`;
    }
  }
  return out;
}

/**
 * The upstream request head. `headers` are the final end-to-end fields (no Host, no framing);
 * `chunked` adds Transfer-Encoding (a Content-Length, when the client sent one, is among the
 * fields already). `checked`: see fieldLines.
 */
export function requestHead(method: string, path: string, authority: string, headers: Readonly<HeaderMap>, chunked: boolean, checked: boolean): string {
  return `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n${fieldLines(headers, checked)}${chunked ? 'transfer-encoding: chunked\r\n' : ''}\r\n`;
}

const statusLines = new Map<number, string>();

/** `HTTP/1.1 200 OK\r\n`, with node:http's reason phrases. */
export function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    if (statusLines.size < 1000) statusLines.set(status, line);
  }
  return line;
}

let dateLine: string | undefined;

/** `Date: ...\r\n` for now. Cached until the end of the current second, as node:http caches
 *  its own (no clock read per response). */
export function dateField(): string {
  if (dateLine === undefined) {
    const now = new Date();
    dateLine = `Date: ${now.toUTCString()}\r\n`;
    setTimeout(() => (dateLine = undefined), 1000 - now.getMilliseconds()).unref();
  }
  return dateLine;
}

/** How the downstream connection goes on after a response, as the head announces it. */
export interface ConnectionField {
  /** The connection stays open for the next request. */
  readonly keepAlive: boolean;
  /** Seconds an idle connection is kept (Keep-Alive: timeout=N), as node:http announces. */
  readonly idleSeconds: number;
}

const CLOSE_FIELDS = 'Connection: close\r\n';
let keepAliveFields = '';
let keepAliveSeconds = NaN;

function connectionFields(c: ConnectionField): string {
  if (!c.keepAlive) return CLOSE_FIELDS;
  // One listener's idle timeout in practice: the text is made once, not per response.
  if (c.idleSeconds !== keepAliveSeconds) {
    keepAliveSeconds = c.idleSeconds;
    keepAliveFields = `Connection: keep-alive\r\nKeep-Alive: timeout=${c.idleSeconds}\r\n`;
  }
  return keepAliveFields;
}

/**
 * The downstream response head for an upstream response: its fields minus hop-by-hop ones
 * (and any the upstream's Connection names), the route's response mutations, `extra` fields
 * (the decision record), then Date when absent, Connection, and chunked framing when asked.
 * Without mutations the upstream's fields are written as they are (parsed, so safe), uncopied.
 */
export function responseHead(
  status: number,
  upstream: Readonly<HeaderMap>,
  mutations: readonly HeaderMutation[],
  extra: Readonly<HeaderMap> | undefined,
  connection: ConnectionField,
  chunked: boolean,
): string {
  let out = statusLine(status);
  let date: boolean;
  if (mutations.length > 0) {
    const fields = applyHeaderMutations(downstreamResponseHeaders(upstream), mutations);
    out += fieldLines(fields, true);
    date = fields.date !== undefined;
  } else {
    const named = connectionNamed(upstream);
    date = false;
    for (const name in upstream) {
      if (isHopByHop(name) || name === 'te' || named?.has(name)) continue;
      if (name === 'date') date = true;
      const v = upstream[name]!;
      if (typeof v === 'string') out += `${name}: ${v}\r\n`;
      else for (const x of v) out += `${name}: ${x}\r\n`;
    }
  }
  if (extra) out += fieldLines(extra, true);
  if (!date) out += dateField();
  out += connectionFields(connection);
  if (chunked) out += 'Transfer-Encoding: chunked\r\n';
  return out + '\r\n';
}

/** A complete local answer (an error the proxy makes itself): head and body, as node:http
 *  would write sendLocal()'s. No body bytes for a HEAD request. */
export function localAnswer(status: number, headers: Readonly<HeaderMap>, body: string, head: boolean, connection: ConnectionField): Buffer {
  const buf = Buffer.from(body, 'utf8');
  const fields: HeaderMap = { ...headers, 'content-length': String(buf.length) };
  if (buf.length === 0 && headers['content-type'] === undefined) delete fields['content-type'];
  const text = statusLine(status) + fieldLines(fields, true) + dateField() + connectionFields(connection) + '\r\n';
  return head || buf.length === 0 ? Buffer.from(text, 'latin1') : Buffer.concat([Buffer.from(text, 'latin1'), buf]);
}

/** The framing of one chunk of a chunked body: size line, then the data, then CRLF. */
export function chunkHeader(size: number): string {
  return `${size.toString(16)}\r\n`;
}

export const CHUNK_END = '\r\n';
export const LAST_CHUNK = '0\r\n\r\n';

/** The last chunk with a trailer section (already filtered). */
export function lastChunk(trailers: Readonly<HeaderMap> | undefined): string {
  if (!trailers) return LAST_CHUNK;
  const lines = fieldLines(trailers, false);
  return lines === '' ? LAST_CHUNK : `0\r\n${lines}\r\n`;
}
