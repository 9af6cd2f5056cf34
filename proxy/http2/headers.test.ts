// The header plumbing of the lean HTTP/2 path: a request's facts from its HTTP/2 head (the same
// reading compat's requests get, and readHttp2Fields' on the field list), and fields to and from
// the HeaderMap the data path works on.
import { describe, expect, it } from 'vitest';
import { isProxyError } from '../http/errors.js';
import { readHttp2Fields, readHttp2Request, requestHeader, singleRequestHeader, type RequestInfo } from '../http/facts.js';
import { downstreamResponseHeaders, fromNodeHeaders, requestId, upstreamRequestHeaders } from '../http/headers.js';
import { fieldsToHeaderMap, headerMapToFields, invalidField, responseFields } from './fields.js';

describe('readHttp2Request', () => {
  const raw = (h: Record<string, string>) => Object.entries(h).flat();

  it('reads :authority (over Host), :path, :scheme and the fields, repeated ones as arrays', () => {
    const h = { ':method': 'POST', ':path': '/a?b', ':scheme': 'https', ':authority': 'Svc.NS:8080', host: 'other', 'x-a': '1' };
    const info = readHttp2Request(h, [...raw(h), 'x-a', '2'], false);
    expect(info).toMatchObject({ method: 'POST', path: '/a?b', scheme: 'https', authority: 'svc.ns:8080', httpVersion: 2, absoluteForm: false });
    expect(info.headers).toEqual({ host: 'other', 'x-a': ['1', '2'] });
    expect(info.facts.header(':authority')).toBe('svc.ns:8080');
  });

  it('falls back to Host, to the connection for the scheme, and to GET and /', () => {
    const h = { host: 'svc' };
    expect(readHttp2Request(h, raw(h), true)).toMatchObject({ method: 'GET', path: '/', scheme: 'https', authority: 'svc' });
    expect(readHttp2Request(h, raw(h), false).scheme).toBe('http');
  });

  it('recognises gRPC by content-type', () => {
    const h = { ':authority': 'svc', 'content-type': 'application/grpc+proto' };
    expect(readHttp2Request(h, raw(h), false).grpc).toBe(true);
  });

  it('refuses CONNECT and a request without an authority as bad requests', () => {
    for (const h of [{ ':method': 'CONNECT', ':authority': 'svc:443' }, { ':path': '/' }] as Record<string, string>[]) {
      let err: unknown;
      try {
        readHttp2Request(h, raw(h), false);
      } catch (e) {
        err = e;
      }
      expect(isProxyError(err, 'bad_request')).toBe(true);
    }
  });
});

describe('fields <-> HeaderMap (fields.ts)', () => {
  it.each<[string, string[]]>([
    ['plain fields', [':status', '200', 'content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2']],
    ['hop-by-hop, what Connection names, and te', [':status', '204', 'connection', 'x-private, keep-alive', 'x-private', '1', 'keep-alive', 'timeout=5', 'te', 'trailers', 'transfer-encoding', 'chunked', 'upgrade', 'h2c', 'x-kept', 'yes']],
  ])('a response head (%s) loses what downstreamResponseHeaders drops', (_name, fields) => {
    const node: Record<string, string | string[]> = {};
    for (let i = 0; i < fields.length; i += 2) {
      const cur = node[fields[i]!];
      node[fields[i]!] = cur === undefined ? fields[i + 1]! : ([] as string[]).concat(cur, fields[i + 1]!);
    }
    expect(fieldsToHeaderMap(fields, true)).toEqual(downstreamResponseHeaders(fromNodeHeaders(node)));
  });

  it('keeps every field of a request (pseudo-headers aside), repeated ones as arrays, and back', () => {
    const fields = [':method', 'GET', ':path', '/', 'x-a', '1', 'x-a', '2', 'te', 'trailers'];
    const map = fieldsToHeaderMap(fields, false);
    expect(map).toEqual({ 'x-a': ['1', '2'], te: 'trailers' });
    expect(headerMapToFields(map, [':method', 'GET'])).toEqual([':method', 'GET', 'x-a', '1', 'x-a', '2', 'te', 'trailers']);
  });

  it('adds Date to a response head that has none, as node:http2 does', () => {
    expect(responseFields(200, { 'x-a': '1' })).toEqual([':status', '200', 'date', expect.stringMatching(/ GMT$/), 'x-a', '1']);
    expect(responseFields(404, { date: 'then' })).toEqual([':status', '404', 'date', 'then']);
  });

  it.each([
    [{ 'X-Upper': 'v' }, 'X-Upper'],
    [{ 'x-crlf': 'a\r\nb: c' }, 'x-crlf'],
    [{ connection: 'close' }, 'connection'],
    [{ te: 'gzip' }, 'te'],
    [{ 'x-wide': 'caf\u00e9 \u2603' }, 'x-wide'],
    [{ 'x-ok': ['a', 'b'], te: 'trailers' }, undefined],
  ])('invalidField(%j) is %s', (h, bad) => {
    expect(invalidField(h as Record<string, string | string[]>)).toBe(bad);
  });
});

describe('x-request-id', () => {
  it('is a version 4 UUID, new for each request, kept when the client sent one', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => requestId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(upstreamRequestHeaders({ 'x-request-id': 'given' }, 'http')['x-request-id']).toBe('given');
  });
});

describe('readHttp2Fields = readHttp2Request on the engine’s field list', () => {
  const cases: [string, string[], boolean][] = [
    ['all pseudo-headers, Host and repeats', [':method', 'POST', ':path', '/a?b', ':scheme', 'https', ':authority', 'Svc.NS:8080', 'host', 'other', 'x-a', '1', 'x-a', '2'], false],
    ['Host only, the connection’s scheme', ['host', 'svc'], true],
    ['an odd scheme falls back to the connection’s', [':scheme', 'ftp', ':authority', 'svc', ':path', ''], false],
    ['gRPC by content-type', [':method', 'POST', ':authority', 'svc', 'content-type', 'application/grpc+proto', 'content-length', '5', 'te', 'trailers'], false],
    ['not gRPC', [':authority', 'svc', 'content-type', 'application/grpc-web'], false],
  ];
  const names = [':authority', ':method', ':path', ':scheme', ':protocol', 'host', 'x-a', 'content-type', 'content-length', 'absent'];

  it.each(cases)('%s', (_name, fields, secure) => {
    const pseudo: Record<string, string> = {};
    for (let i = 0; i < fields.length && fields[i]!.startsWith(':'); i += 2) pseudo[fields[i]!] = fields[i + 1]!;
    const expected = readHttp2Request(pseudo, fields, secure);
    const got = readHttp2Fields(fields, secure);
    const pick = (i: RequestInfo) => [i.method, i.path, i.scheme, i.authority, i.grpc, i.httpVersion, i.absoluteForm];
    expect(pick(got)).toEqual(pick(expected));
    // Read off the list before the map exists, and off the map after: the same answers.
    for (const n of names) {
      expect(got.facts.header(n)).toBe(expected.facts.header(n));
      expect(requestHeader(got, n)).toBe(requestHeader(expected, n));
      expect(singleRequestHeader(got, n)).toBe(singleRequestHeader(expected, n));
    }
    expect({ ...got.headers }).toEqual(expected.headers);
    for (const n of names) {
      expect(singleRequestHeader(got, n)).toBe(singleRequestHeader(expected, n));
      expect(got.facts.header(n)).toBe(expected.facts.header(n));
      expect(got.facts.headerValues?.(n)).toEqual(expected.facts.headerValues?.(n));
    }
  });

  it('refuses CONNECT and a request without an authority, as readHttp2Request does', () => {
    for (const fields of [[':method', 'CONNECT', ':authority', 'svc:443'], [':path', '/']]) {
      let err: unknown;
      try {
        readHttp2Fields(fields, false);
      } catch (e) {
        err = e;
      }
      expect(isProxyError(err, 'bad_request')).toBe(true);
    }
  });
});
