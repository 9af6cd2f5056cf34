// The HBONE wire conventions that need no sockets: which CONNECT authorities are accepted, how
// addresses are written back, and which reasons survive as a header value.
import { describe, expect, it } from 'vitest';
import { formatAuthority, headerSafe, parseAuthority } from './stream.js';

describe('parseAuthority', () => {
  it.each([
    ['10.1.2.3:8080', { host: '10.1.2.3', port: 8080 }],
    ['127.0.0.1:1', { host: '127.0.0.1', port: 1 }],
    ['[fd00::1]:9080', { host: 'fd00::1', port: 9080 }],
    ['[::ffff:10.0.0.1]:443', { host: '::ffff:10.0.0.1', port: 443 }],
    ['10.1.2.3:0', undefined],
    ['10.1.2.3:65536', undefined],
    ['10.1.2.3', undefined],
    ['256.1.2.3:80', undefined],
    ['fd00::1:80', undefined], // IPv6 without brackets is ambiguous
    ['[fd00::zz]:80', undefined],
    ['ratings.apps.svc:9080', undefined],
    ['10.1.2.3:80/x', undefined],
    ['', undefined],
    [undefined, undefined],
  ] as const)('%s → %j', (authority, expected) => {
    expect(parseAuthority(authority)).toEqual(expected);
  });
});

describe('formatAuthority and headerSafe', () => {
  it('brackets IPv6 and round-trips through parseAuthority', () => {
    expect(formatAuthority('fd00::1', 80)).toBe('[fd00::1]:80');
    expect(parseAuthority(formatAuthority('10.0.0.1', 15008))).toEqual({ host: '10.0.0.1', port: 15008 });
  });

  it('keeps a reason on one printable line', () => {
    expect(headerSafe('connect ECONNREFUSED\r\n10.0.0.1:80 — gone')).toBe('connect ECONNREFUSED  10.0.0.1:80   gone');
    expect(headerSafe('x'.repeat(600))).toHaveLength(512);
  });
});
