// Reading a downstream request into routing facts: authority from Host / :authority, the
// request-target in origin-form, absolute-form (RFC 9112 §3.2.2: its authority wins over Host).
import type http from 'node:http';
import type http2 from 'node:http2';
import { portNumber } from '../../core/port.js';
import type { RequestFacts } from '../route/types.js';
import { proxyErrors } from './errors.js';
import { allValues, fieldValue, firstValue, isGrpc, isGrpcType, readRawHeaders, type HeaderMap } from './headers.js';

export type DownstreamRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type DownstreamResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Everything the data path needs to know about one downstream request. */
export interface RequestInfo {
  readonly facts: RequestFacts;
  readonly method: string;
  /** Host / :authority (absolute-form target wins), lower-case, port kept as sent. */
  readonly authority: string;
  /** Origin-form path with query. */
  readonly path: string;
  readonly scheme: 'http' | 'https';
  /** The request-target was absolute-form (`GET http://host/path`): the client treats us as
   *  its HTTP proxy, so a non-mesh host may be passed through. */
  readonly absoluteForm: boolean;
  /** As received, lower-case names, no pseudo-headers (Host included for h1). */
  readonly headers: HeaderMap;
  readonly grpc: boolean;
  readonly httpVersion: 1 | 2;
}

export interface ParsedTarget {
  readonly absolute: boolean;
  readonly scheme?: 'http' | 'https';
  /** For absolute-form: the target's authority (userinfo dropped), lower-case. */
  readonly authority?: string;
  /** Origin-form path with query (`/` when the absolute-form target had none). */
  readonly path: string;
}

/** Splits an HTTP/1.1 request-target. Does not normalise the path: proxies forward it as is. */
export function parseRequestTarget(target: string): ParsedTarget | undefined {
  if (target.startsWith('/')) return { absolute: false, path: target };
  if (target === '*') return { absolute: false, path: '*' };
  const m = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(target);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase() as 'http' | 'https';
  const authority = m[2]!.slice(m[2]!.lastIndexOf('@') + 1).toLowerCase();
  if (authority === '') return undefined;
  let rest = m[3]!;
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { absolute: true, scheme, authority, path };
}

/** Reads routing facts from a request. Throws a `bad_request` ProxyError when it cannot be routed. */
export function readRequest(req: DownstreamRequest, secure: boolean): RequestInfo {
  if (req.httpVersionMajor === 2) return readHttp2Request(req.headers as http2.IncomingHttpHeaders, req.rawHeaders, secure);
  return readHttp1Request(req.method ?? 'GET', req.url ?? '/', readRawHeaders(req.rawHeaders), secure);
}

/**
 * The same facts from an HTTP/2 header block as node:http2 gives it (`headers` with the
 * pseudo-headers, `rawHeaders` flat): what the compat request and the lean stream path
 * (proxy/http2) both read. :authority wins over Host, as node's compat layer has it.
 */
export function readHttp2Request(h: http2.IncomingHttpHeaders, rawHeaders: readonly string[], secure: boolean): RequestInfo {
  const headers = readRawHeaders(rawHeaders);
  const method = h[':method'] ?? 'GET';
  if (method === 'CONNECT') throw proxyErrors.badRequest('HTTP/2 CONNECT is not served on this port');
  const s = h[':scheme'];
  const scheme = s === 'https' || s === 'http' ? s : secure ? 'https' : 'http';
  const authority = h[':authority'] ?? h.host;
  return requestInfo(method, authority || firstValue(headers, 'host'), h[':path'] || '/', scheme, false, headers, 2);
}

/**
 * readHttp2Request for the lean HTTP/2 path: the same facts from the field list Weft's engine
 * decoded (name, value…; pseudo-headers first; names validated lower-case). The HeaderMap is made
 * only when something asks for `headers` (route rules, tracing, a bridged request): a plain
 * forward reads its few fields (content-type, content-length…) off the list.
 */
export function readHttp2Fields(fields: readonly string[], secure: boolean): RequestInfo {
  let method = 'GET';
  let s: string | undefined;
  let authority: string | undefined;
  let path: string | undefined;
  for (let i = 0; i + 1 < fields.length && fields[i]!.charCodeAt(0) === 0x3a; i += 2) {
    const name = fields[i]!;
    if (name === ':method') method = fields[i + 1]!;
    else if (name === ':scheme') s = fields[i + 1]!;
    else if (name === ':authority') authority = fields[i + 1]!;
    else if (name === ':path') path = fields[i + 1]!;
  }
  if (method === 'CONNECT') throw proxyErrors.badRequest('HTTP/2 CONNECT is not served on this port');
  const scheme = s === 'https' || s === 'http' ? s : secure ? 'https' : 'http';
  authority ||= fieldValue(fields, 0, 'host');
  if (!authority) throw proxyErrors.badRequest('missing Host header / :authority');
  return new FieldRequest(method, authority.toLowerCase(), path || '/', scheme, fields);
}

/** One field of the request (first value, lower-case name), read off the field list when the
 *  request has one and its map was not made. */
export function requestHeader(info: RequestInfo, name: string): string | undefined {
  return info instanceof FieldRequest ? info.field(name) : firstValue(info.headers, name);
}

/** The value of a field the request has exactly once (a repeated one: undefined), read off the
 *  field list as requestHeader does. */
export function singleRequestHeader(info: RequestInfo, name: string): string | undefined {
  if (!(info instanceof FieldRequest)) {
    const v = info.headers[name];
    return typeof v === 'string' ? v : undefined;
  }
  return info.single(name);
}

/** A request read from a field list: its own facts (methods on the prototype), its map lazy. */
class FieldRequest implements RequestInfo, RequestFacts {
  readonly facts: RequestFacts = this;
  readonly absoluteForm = false;
  readonly httpVersion = 2;
  readonly grpc: boolean;
  private map: HeaderMap | undefined;

  constructor(
    readonly method: string,
    readonly authority: string,
    readonly path: string,
    readonly scheme: 'http' | 'https',
    private readonly fields: readonly string[],
  ) {
    this.grpc = isGrpcType(fieldValue(fields, 0, 'content-type'));
  }

  get headers(): HeaderMap {
    return (this.map ??= readRawHeaders(this.fields));
  }

  header(name: string): string | undefined {
    return pseudoHeader(this, name) ?? this.field(name);
  }

  /** singleRequestHeader's answer, off the list while there is no map. */
  single(name: string): string | undefined {
    if (this.map !== undefined) {
      const v = this.map[name];
      return typeof v === 'string' ? v : undefined;
    }
    if (name.charCodeAt(0) === 0x3a) return undefined;
    let found: string | undefined;
    for (let i = 0; i + 1 < this.fields.length; i += 2) {
      if (this.fields[i] !== name) continue;
      if (found !== undefined) return undefined;
      found = this.fields[i + 1]!;
    }
    return found;
  }

  /** firstValue(this.headers, name), off the list while there is no map. */
  field(name: string): string | undefined {
    if (this.map !== undefined) return firstValue(this.map, name);
    // Pseudo-headers are not fields (the map leaves them out).
    return name.charCodeAt(0) === 0x3a ? undefined : fieldValue(this.fields, 0, name);
  }

  headerValues(name: string): readonly string[] {
    const one = name.startsWith(':') || name === 'host' ? this.header(name) : undefined;
    return one !== undefined ? [one] : allValues(this.headers, name);
  }
}

/**
 * The same facts from an HTTP/1.1 request-line and its fields (lower-case names, as
 * readRawHeaders makes them): what node:http's request and the fast path's parser both give.
 */
export function readHttp1Request(method: string, url: string, headers: HeaderMap, secure: boolean): RequestInfo {
  const scheme = secure ? 'https' : 'http';
  // authority-form; routes see path `/` so a Service's catch-all route matches its tunnels.
  if (method === 'CONNECT') return requestInfo(method, url, '/', scheme, false, headers, 1);
  const target = parseRequestTarget(url);
  if (!target) throw proxyErrors.badRequest(`unsupported request-target ${JSON.stringify(url)}`);
  if (target.absolute) return requestInfo(method, target.authority, target.path, target.scheme ?? scheme, true, headers, 1);
  return requestInfo(method, firstValue(headers, 'host'), target.path, scheme, false, headers, 1);
}

function requestInfo(
  method: string,
  authority: string | undefined,
  path: string,
  scheme: 'http' | 'https',
  absoluteForm: boolean,
  headers: HeaderMap,
  httpVersion: 1 | 2,
): RequestInfo {
  if (!authority) throw proxyErrors.badRequest('missing Host header / :authority');
  authority = authority.toLowerCase();
  const facts = new Facts(authority, method, path, scheme, headers);
  return { facts, method, authority, path, scheme, absoluteForm, headers, grpc: isGrpc(headers), httpVersion };
}

/** `:authority` (and `host`), `:method`, `:path` and `:scheme` of a request; undefined for other names. */
function pseudoHeader(f: { readonly authority: string; readonly method: string; readonly path: string; readonly scheme: string }, name: string): string | undefined {
  switch (name) {
    case ':authority':
    case 'host':
      return f.authority;
    case ':method':
      return f.method;
    case ':path':
      return f.path;
    case ':scheme':
      return f.scheme;
    default:
      return undefined;
  }
}

/** The planner's view of one request (methods on the prototype: no closures per request). */
class Facts implements RequestFacts {
  constructor(
    readonly authority: string,
    readonly method: string,
    readonly path: string,
    readonly scheme: 'http' | 'https',
    private readonly headers: HeaderMap,
  ) {}

  header(name: string): string | undefined {
    return pseudoHeader(this, name) ?? firstValue(this.headers, name);
  }

  headerValues(name: string): readonly string[] {
    const one = name.startsWith(':') || name === 'host' ? this.header(name) : undefined;
    return one !== undefined ? [one] : allValues(this.headers, name);
  }
}

/** Splits `host[:port]` (IPv6 in brackets) with a default port. */
export function splitAuthority(authority: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return undefined;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  const port = m[2] === undefined ? defaultPort : portNumber(m[2]);
  if (port === undefined) return undefined;
  return { host, port };
}
