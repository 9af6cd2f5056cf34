// Header validation for HTTP/2 heads (RFC 9113 §8.2, §8.3): what makes a request or a response
// head malformed, and the Content-Length a request body must match (§8.1.1).

const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);
/** Request pseudo-headers, each a bit (which ones a head has: no Set per request). */
const REQUEST_PSEUDO: ReadonlyMap<string, number> = new Map([[':method', 1], [':scheme', 2], [':authority', 4], [':path', 8], [':protocol', 16]]);

/** Why a request head is malformed, or undefined. */
export function requestProblem(fields: readonly string[], maxListSize: number): string | undefined {
  let regular = false;
  let method: string | undefined;
  let path: string | undefined;
  let size = 0;
  let seen = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    const value = fields[i + 1]!;
    size += name.length + value.length + 32;
    if (name.charCodeAt(0) === 0x3a) {
      if (regular) return 'pseudo-header after a regular field';
      const bit = REQUEST_PSEUDO.get(name);
      if (bit === undefined) return `unknown pseudo-header ${name}`;
      if (seen & bit) return `repeated ${name}`;
      seen |= bit;
      if (bit === 1) method = value;
      else if (bit === 8) path = value;
    } else {
      regular = true;
      const p = fieldProblem(name, value);
      if (p) return p;
    }
  }
  if (size > maxListSize) return 'header list too large';
  if (method === undefined) return 'no :method';
  if (method === 'CONNECT' && (seen & 16) === 0) return seen & (2 | 8) ? 'CONNECT with :scheme or :path' : undefined;
  if ((seen & 2) === 0 || path === undefined || path === '') return 'missing :scheme or :path';
  return undefined;
}

/** The :status of a response head, or -1 when it is malformed. */
export function responseStatus(fields: readonly string[]): number {
  let status = -1;
  let regular = false;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.charCodeAt(0) === 0x3a) {
      if (regular || name !== ':status' || status >= 0) return -1;
      const v = fields[i + 1]!;
      status = v.length === 3 && /^[1-9]\d\d$/.test(v) ? Number(v) : -2;
      if (status < 0) return -1;
    } else {
      regular = true;
      if (fieldProblem(name, fields[i + 1]!)) return -1;
    }
  }
  return status;
}

function fieldProblem(name: string, value: string): string | undefined {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return `upper-case field name ${name}`;
    if (c <= 0x20 || c === 0x7f || c === 0x3a) return `invalid field name ${JSON.stringify(name)}`;
  }
  if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
  if (name === 'te' && value !== 'trailers') return 'te other than trailers';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) return `invalid value for ${name}`;
  }
  return undefined;
}

export function contentLength(fields: readonly string[]): number {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === 'content-length') {
      const v = fields[i + 1]!;
      return /^\d{1,15}$/.test(v) ? Number(v) : -1;
    }
  }
  return -1;
}
