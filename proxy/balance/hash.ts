// Hashing for the consistent-hash policies: a 32-bit string hash (FNV-1a with a murmur-style
// final mix, so nearby keys spread over the whole ring) and the request's hash for a cluster's
// hash key (a header, a cookie, or the client's address).
import type { HashKey } from '../../api/domain.js';
import { firstValue, type HeaderMap } from '../http/headers.js';

/** A well-mixed unsigned 32-bit hash of a string. */
export function hash32(s: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche: FNV alone leaves the high bits of short, similar keys close together.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The request's hash for `key`, or undefined when the request has no value for it (then a
 * consistent-hash balancer picks at random, as Envoy does without a hash).
 */
export function requestHash(key: HashKey, headers: Readonly<HeaderMap>, sourceAddress: string | undefined): number | undefined {
  switch (key.kind) {
    case 'header': {
      const v = firstValue(headers, key.name);
      return v === undefined ? undefined : hash32(v);
    }
    case 'cookie': {
      const v = cookieValue(firstValue(headers, 'cookie'), key.name);
      return v === undefined ? undefined : hash32(v);
    }
    case 'source-ip':
      return sourceAddress === undefined ? undefined : hash32(stripV4Mapped(sourceAddress));
  }
}

/** The value of cookie `name` in a Cookie header (`a=1; b=2`), if present. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  let start = 0;
  while (start < header.length) {
    let end = header.indexOf(';', start);
    if (end < 0) end = header.length;
    const eq = header.indexOf('=', start);
    if (eq > start && eq < end && header.slice(start, eq).trim() === name) return header.slice(eq + 1, end).trim();
    start = end + 1;
  }
  return undefined;
}

/** `::ffff:10.0.0.1` and `10.0.0.1` are one client. */
function stripV4Mapped(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
