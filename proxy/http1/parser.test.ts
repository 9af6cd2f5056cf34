// The HTTP/1.1 parser against tables: valid heads and what they mean, malformed and ambiguous
// ones (request smuggling) refused, chunked bodies fed whole and byte by byte.
import { describe, expect, it } from 'vitest';
import { isProxyError } from '../http/errors.js';
import { ChunkedDecoder, parseRequestHead, parseResponseHead, persistent, requestFraming, responseFraming } from './parser.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('request heads', () => {
  it.each([
    ['minimal', 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'GET', target: '/', headers: { host: 'a' }, framing: 'none' }],
    ['names lower-cased, values trimmed', 'GET /x?y=1 HTTP/1.1\r\nHOST:  a:80 \r\nX-Thing:\tv \t\r\n\r\n', { target: '/x?y=1', headers: { host: 'a:80', 'x-thing': 'v' } }],
    ['repeated fields become arrays', 'GET / HTTP/1.1\r\nHost: a\r\nCookie: x=1\r\ncookie: y=2\r\n\r\n', { headers: { host: 'a', cookie: ['x=1', 'y=2'] } }],
    ['empty value', 'GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n', { headers: { host: 'a', 'x-empty': '' } }],
    ['obs-text in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n', { headers: { host: 'a', x: 'caf\xe9' } }],
    ['Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello', { contentLength: 5, framing: 'length', size: 47 }],
    ['Content-Length 0 has no body', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n', { contentLength: 0, framing: 'none' }],
    ['identical Content-Length values: one field', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n', { contentLength: 3, headers: { host: 'a', 'content-length': '3' } }],
    ['identical Content-Length list: one value', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n', { contentLength: 3, headers: { host: 'a', 'content-length': '3' } }],
    ['chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n', { chunked: true, framing: 'chunked' }],
    ['absolute-form', 'GET http://svc.ns:8080/p HTTP/1.1\r\n\r\n', { target: 'http://svc.ns:8080/p', headers: {} }],
    ['leading empty lines skipped', '\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'GET', size: 31 }],
    ['Connection: close', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n', { close: true, keepAlive: true }],
    ['custom method token', 'PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n', { method: 'PURGE' }],
  ])('%s', (_name, raw, expected) => {
    const head = parseRequestHead(b(raw));
    expect(head).toBeDefined();
    const { framing, ...rest } = expected as Record<string, unknown>;
    expect(head).toMatchObject(rest);
    if (framing) expect(requestFraming(head!)).toBe(framing);
    expect(head!.unusual).toBeUndefined();
  });

  it.each([
    ['HTTP/1.0', 'GET / HTTP/1.0\r\nHost: a\r\n\r\n', 'HTTP/1.0'],
    ['other codings before chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 'transfer codings'],
    ['non-ASCII target', 'GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 'non-ASCII'],
  ])('valid but left to node:http: %s', (_name, raw, why) => {
    expect(parseRequestHead(b(raw))?.unusual).toContain(why);
  });

  it.each([
    ['Upgrade', 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', 'upgrade'],
    ['Expect', 'PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n', 'expect'],
  ])('flags what node:http answers itself: %s', (_name, raw, flag) => {
    expect(parseRequestHead(b(raw))).toMatchObject({ [flag]: true });
  });

  it('waits for the rest of an incomplete head', () => {
    expect(parseRequestHead(b('GET / HTTP/1.1\r\nHost: a\r\n'))).toBeUndefined();
    expect(parseRequestHead(b('GET / HTT'))).toBeUndefined();
    expect(parseRequestHead(b(''))).toBeUndefined();
  });

  it.each([
    // Smuggling: two parsers must never disagree on where this message ends.
    ['Content-Length and Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n', 'both Content-Length and Transfer-Encoding'],
    ['Transfer-Encoding then Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n', 'both'],
    ['conflicting Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n', 'conflicting'],
    ['conflicting Content-Length list', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 5\r\n\r\n', 'conflicting'],
    ['signed Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\n', 'invalid Content-Length'],
    ['hex Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x4\r\n\r\n', 'invalid Content-Length'],
    ['empty Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n', 'invalid Content-Length'],
    ['huge Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n', 'invalid Content-Length'],
    ['Transfer-Encoding not ending in chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'must end in chunked'],
    ['Transfer-Encoding identity', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n', 'must end in chunked'],
    ['chunked twice', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 'more than once'],
    ['empty coding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n', 'empty element'],
    ['obs-fold', 'GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n', 'obs-fold'],
    ['whitespace before the first field', 'GET / HTTP/1.1\r\n Host: a\r\n\r\n', 'obs-fold'],
    ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost : a\r\n\r\n', 'field name'],
    ['Transfer-Encoding with whitespace before the colon', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\n', 'field name'],
    ['no colon', 'GET / HTTP/1.1\r\nHost a\r\n\r\n', 'field name'],
    ['empty name', 'GET / HTTP/1.1\r\n: a\r\n\r\n', 'without a name'],
    ['bare LF ending lines', 'GET / HTTP/1.1\nHost: a\n\n', 'bare LF'],
    ['bare LF inside the head', 'GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n', 'invalid character'],
    ['bare CR inside a value', 'GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n', 'bare CR'],
    ['NUL in a value', 'GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n', 'invalid character'],
    ['two Host fields', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'more than one Host'],
    ['double space in the request-line', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 'request-line'],
    ['tab in the request-line', 'GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n', 'invalid method'],
    ['space in the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 'HTTP version'],
    ['control byte in the target', 'GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n', 'request-target'],
    ['bad version', 'GET / HTTP/1.x\r\nHost: a\r\n\r\n', 'version'],
    ['HTTP/2.0 in a request-line', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 'version'],
    ['lower-case version', 'GET / http/1.1\r\nHost: a\r\n\r\n', 'version'],
    ['missing version', 'GET /\r\nHost: a\r\n\r\n', 'request-line'],
  ])('refuses %s with 400', (_name, raw, why) => {
    let err: unknown;
    try {
      parseRequestHead(b(raw));
    } catch (e) {
      err = e;
    }
    expect(isProxyError(err, 'bad_request')).toBe(true);
    expect((err as Error).message).toContain(why);
  });
});

describe('known names and remembered values', () => {
  // Known names come out as constants and a known name's last short value is reused when the
  // bytes repeat: whatever the order, the result must be what the bytes say.
  it('reads each head for itself: repeated, changed and case-varied fields, methods and targets', () => {
    const seq: [string, Record<string, unknown>][] = [
      ['GET /a HTTP/1.1\r\nHost: one\r\nUser-Agent: x\r\n\r\n', { method: 'GET', target: '/a', headers: { host: 'one', 'user-agent': 'x' } }],
      ['GET /a HTTP/1.1\r\nHost: one\r\nUser-Agent: x\r\n\r\n', { method: 'GET', target: '/a', headers: { host: 'one', 'user-agent': 'x' } }],
      ['POST /b HTTP/1.1\r\nHOST: onf\r\nuser-AGENT: y\r\nContent-Length: 0\r\n\r\n', { method: 'POST', target: '/b', headers: { host: 'onf', 'user-agent': 'y', 'content-length': '0' } }],
      ['GET /a HTTP/1.1\r\nhost: one\r\n\r\n', { target: '/a', headers: { host: 'one' } }],
      ['GET /ab HTTP/1.1\r\nHost: on\r\n\r\n', { target: '/ab', headers: { host: 'on' } }],
      ['Get /a HTTP/1.1\r\nHost: ONE\r\n\r\n', { method: 'Get', headers: { host: 'ONE' } }],
      ['GETS /a HTTP/1.1\r\nHost: one\r\n\r\n', { method: 'GETS' }],
    ];
    for (const [raw, expected] of seq) {
      const head = parseRequestHead(b(raw))!;
      expect(head).toMatchObject(expected);
      expect(Object.keys(head.headers)).toEqual(Object.keys(expected.headers ?? head.headers));
    }
  });

  it('tells near-misses of known names apart (one byte off, longer, shorter, other tchars)', () => {
    const head = parseRequestHead(
      b('GET / HTTP/1.1\r\nHost: a\r\nHosts: b\r\nHos: c\r\nHost-: d\r\nX-Request-Ie: e\r\nContent_Length: 7\r\nTE~: f\r\nTe^: g\r\n\r\n'),
    )!;
    expect(head.headers).toEqual({ host: 'a', hosts: 'b', hos: 'c', 'host-': 'd', 'x-request-ie': 'e', content_length: '7', 'te~': 'f', 'te^': 'g' });
    expect(head.contentLength).toBe(-1);
  });

  it('keeps long values and long targets whole (not remembered, still read)', () => {
    const long = 'v'.repeat(500);
    const path = `/${'p'.repeat(300)}`;
    for (let i = 0; i < 2; i++) {
      const head = parseRequestHead(b(`GET ${path} HTTP/1.1\r\nHost: a\r\nCookie: ${long}${i}\r\n\r\n`))!;
      expect(head.target).toBe(path);
      expect(head.headers.cookie).toBe(`${long}${i}`);
    }
  });

  it('reads the same fields from responses, whatever came before', () => {
    for (const [raw, headers] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nhi', { 'content-length': '2', 'content-type': 'text/plain' }],
      ['HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plaim\r\n\r\nhi!', { 'content-length': '3', 'content-type': 'text/plaim' }],
      ['HTTP/1.1 200 OK\r\nCONTENT-TYPE: text/plain\r\nContent-Length: 2\r\n\r\nhi', { 'content-type': 'text/plain', 'content-length': '2' }],
    ] as const) {
      expect(parseResponseHead(b(raw))!.headers).toEqual(headers);
    }
  });
});

describe('response heads', () => {
  it.each([
    ['with Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', false, { status: 200, framing: 'length', persistent: true }],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', false, { framing: 'chunked' }],
    ['no length: until close', 'HTTP/1.1 200 OK\r\n\r\n', false, { framing: 'close' }],
    ['TE not ending in chunked: until close', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', false, { framing: 'close' }],
    ['204 has no body', 'HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n', false, { status: 204, framing: 'none' }],
    ['304 has no body', 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n', false, { framing: 'none' }],
    ['an answer to HEAD has no body', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n', true, { framing: 'none' }],
    ['empty reason phrase', 'HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n', false, { status: 404, framing: 'none' }],
    ['no reason phrase at all', 'HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n', false, { status: 503 }],
    ['HTTP/1.0 closes by default', 'HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n', false, { persistent: false }],
    ['HTTP/1.0 keep-alive', 'HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n', false, { persistent: true }],
    ['Connection: close', 'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n', false, { persistent: false }],
    ['100 Continue is a head of its own', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n', false, { status: 100, framing: 'none', size: 25 }],
  ])('%s', (_name, raw, toHead, expected) => {
    const head = parseResponseHead(b(raw))!;
    const { framing, persistent: p, ...rest } = expected as Record<string, unknown>;
    expect(head).toMatchObject(rest);
    if (framing) expect(responseFraming(head, toHead)).toBe(framing);
    if (p !== undefined) expect(persistent(head)).toBe(p);
  });

  it.each([
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['conflicting lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n'],
    ['two-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['status below 100', 'HTTP/1.1 099 Odd\r\n\r\n'],
    ['no space after the status', 'HTTP/1.1 200OK\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n\tb\r\n\r\n'],
    ['not HTTP', 'SSH-2.0-OpenSSH\r\n\r\n'],
  ])('refuses %s', (_name, raw) => {
    expect(() => parseResponseHead(b(raw))).toThrow();
  });
});

/** Feeds `raw` to a decoder in pieces of `step` bytes; returns the data, trailers and what is left over. */
function decodeChunked(raw: string, step: number): { data: string; trailers: unknown; rest: string } {
  const d = new ChunkedDecoder();
  const all = b(raw);
  let data = '';
  for (let i = 0; i < all.length; i += step) {
    const piece = all.subarray(i, Math.min(all.length, i + step));
    const end = d.decode(piece, 0, (c) => (data += c.toString('latin1')));
    if (d.done) return { data, trailers: d.trailers, rest: piece.subarray(end).toString('latin1') + all.subarray(i + step).toString('latin1') };
  }
  return { data, trailers: undefined, rest: '' };
}

describe('chunked bodies', () => {
  it.each([
    ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 'hello', {}],
    ['several chunks, hex sizes', 'a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n', '0123456789abcdefghij', {}],
    ['leading zeros', '0005\r\nhello\r\n000\r\n\r\n', 'hello', {}],
    ['chunk extensions are dropped', '5;name=value;x="q"\r\nhello\r\n0;last\r\n\r\n', 'hello', {}],
    ['whitespace before an extension', '5 ;ext\r\nhello\r\n0\r\n\r\n', 'hello', {}],
    ['trailers', '5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n', 'hello', { 'x-checksum': 'abc', 'x-other': '1' }],
    ['empty body', '0\r\n\r\n', '', {}],
  ])('%s, whole and byte by byte', (_name, raw, data, trailers) => {
    for (const step of [raw.length + 10, 1, 3]) {
      const out = decodeChunked(raw + 'NEXT', step);
      expect(out).toEqual({ data, trailers, rest: 'NEXT' });
    }
  });

  it.each([
    ['a size with 0x', '0x5\r\nhello\r\n0\r\n\r\n'],
    ['a negative size', '-5\r\nhello\r\n0\r\n\r\n'],
    ['no size', '\r\nhello\r\n0\r\n\r\n'],
    ['a space before the size', ' 5\r\nhello\r\n0\r\n\r\n'],
    ['whitespace after the size without an extension', '5 \r\nhello\r\n0\r\n\r\n'],
    ['a size that overflows', 'fffffffffffffffff\r\n'],
    ['a size line ended by LF alone', '5\nhello\r\n0\r\n\r\n'],
    ['data longer than its size', '5\r\nhello!\r\n0\r\n\r\n'],
    ['data not followed by CRLF', '5\r\nhelloXX0\r\n\r\n'],
    ['a control byte in an extension', '5;a\x01b\r\nhello\r\n0\r\n\r\n'],
    ['a bare LF in the trailers', '0\r\nX: a\nY: b\r\n\r\n'],
    ['obs-fold in the trailers', '0\r\nX: a\r\n b\r\n\r\n'],
  ])('refuses %s', (_name, raw) => {
    for (const step of [raw.length, 1]) expect(() => decodeChunked(raw, step)).toThrow(/chunk|invalid|bare|obs-fold|trailer|CRLF/);
  });

  it('refuses an endless extension and an endless trailer section', () => {
    expect(() => decodeChunked(`5;${'a'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`, 100)).toThrow(/extension/);
    expect(() => decodeChunked(`0\r\nX: ${'a'.repeat(20_000)}`, 1000)).toThrow(/trailer/);
  });
});
