// Request facts: request-target forms (RFC 9112 §3.2), authority precedence, header plumbing.
import { describe, expect, it } from 'vitest';
import { parseRequestTarget, splitAuthority } from './facts.js';
import { downstreamResponseHeaders, readRawHeaders, upstreamRequestHeaders, withoutHopByHop } from './headers.js';

describe('parseRequestTarget', () => {
  it.each([
    ['/a/b?c=d', { absolute: false, path: '/a/b?c=d' }],
    ['*', { absolute: false, path: '*' }],
    ['http://Svc.NS:8080/p?q', { absolute: true, scheme: 'http', authority: 'svc.ns:8080', path: '/p?q' }],
    ['http://svc', { absolute: true, scheme: 'http', authority: 'svc', path: '/' }],
    ['http://svc?x=1', { absolute: true, scheme: 'http', authority: 'svc', path: '/?x=1' }],
    ['HTTPS://user:pw@host/x#frag', { absolute: true, scheme: 'https', authority: 'host', path: '/x' }],
    ['http://svc/a/../b', { absolute: true, scheme: 'http', authority: 'svc', path: '/a/../b' }],
  ])('%s', (target, expected) => {
    expect(parseRequestTarget(target)).toEqual(expected);
  });

  it('rejects what is not a request-target', () => {
    expect(parseRequestTarget('ftp://x/')).toBeUndefined();
    expect(parseRequestTarget('http:///nohost')).toBeUndefined();
  });
});

describe('splitAuthority', () => {
  it.each([
    ['svc', 80, { host: 'svc', port: 80 }],
    ['svc:9080', 80, { host: 'svc', port: 9080 }],
    ['[::1]:81', 80, { host: '::1', port: 81 }],
    ['svc:0', 80, undefined],
    ['svc:99999', 80, undefined],
  ])('%s', (a, d, expected) => {
    expect(splitAuthority(a, d)).toEqual(expected);
  });
});

describe('headers', () => {
  it('reads raw headers into lower-case names, repeated ones as arrays, no pseudo-headers', () => {
    expect(readRawHeaders([':path', '/', 'Set-Cookie', 'a', 'set-cookie', 'b', 'X-One', '1'])).toEqual({ 'set-cookie': ['a', 'b'], 'x-one': '1' });
  });

  it('drops hop-by-hop headers, including those named by Connection, and keeps te: trailers', () => {
    const h = withoutHopByHop({
      connection: 'keep-alive, x-private',
      'keep-alive': 'timeout=5',
      'x-private': 'secret',
      'transfer-encoding': 'chunked',
      upgrade: 'h2c',
      host: 'svc',
      te: 'trailers, deflate',
      'x-kept': 'yes',
    });
    expect(h).toEqual({ te: 'trailers', 'x-kept': 'yes' });
    expect(withoutHopByHop({ te: 'gzip' })).toEqual({});
  });

  it('adds x-forwarded-proto and x-request-id only when absent', () => {
    const fresh = upstreamRequestHeaders({ accept: '*/*' }, 'http');
    expect(fresh['x-forwarded-proto']).toBe('http');
    expect(fresh['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(upstreamRequestHeaders({ 'x-forwarded-proto': 'https', 'x-request-id': 'r1' }, 'http')).toMatchObject({ 'x-forwarded-proto': 'https', 'x-request-id': 'r1' });
  });

  it('cleans response headers for any downstream protocol', () => {
    expect(downstreamResponseHeaders({ connection: 'close', 'content-length': '3', 'x-a': '1', te: 'trailers' })).toEqual({ 'content-length': '3', 'x-a': '1' });
  });
});
