// Per-RouteConfig precompilation for the planner: domain lookup tables (Envoy's search order)
// and one predicate per route, built once per RouteConfig object and cached in a WeakMap.
import type {
  HeaderMatch, HeaderMutation, PathMatch, QueryMatch, Route, RouteConfig, StringMatch, VirtualHost,
} from '../../api/domain.js';
import type { RequestFacts } from './types.js';

/** Route predicate: `path` is the full :path, `pathOnly` the same without its query. */
export type RouteTest = (facts: RequestFacts, path: string, pathOnly: string) => boolean;

export interface CompiledRoute {
  readonly route: Route;
  readonly test: RouteTest;
  /** Per backend index: mutations in apply order (virtual host, route, backend), empties dropped. */
  readonly requestHeaders: readonly (readonly HeaderMutation[])[];
  readonly responseHeaders: readonly (readonly HeaderMutation[])[];
  /** For redirects and direct responses: virtual host, route. */
  readonly localResponseHeaders: readonly HeaderMutation[];
}

export interface CompiledVhost {
  readonly vhost: VirtualHost;
  readonly routes: readonly CompiledRoute[];
}

interface Wildcard {
  readonly part: string; // the domain without its `*`
  readonly vh: CompiledVhost;
}

export interface CompiledTable {
  readonly exact: ReadonlyMap<string, CompiledVhost>;
  /** `*.foo.com`, `*-bar.foo.com`: longest first. */
  readonly suffix: readonly Wildcard[];
  /** `foo.*`, `foo-*`: longest first. */
  readonly prefix: readonly Wildcard[];
  readonly star: CompiledVhost | undefined;
}

// ---- String, header, query and path predicates ---------------------------------------------

export function compileString(m: StringMatch): (s: string) => boolean {
  if (m.kind === 'regex') {
    const re = m.regex;
    return (s) => re.test(s);
  }
  const v = m.ignoreCase ? m.value.toLowerCase() : m.value;
  const norm = m.ignoreCase ? (s: string) => s.toLowerCase() : (s: string) => s;
  switch (m.kind) {
    case 'exact':
      return m.ignoreCase ? (s) => s.length === v.length && norm(s) === v : (s) => s === v;
    case 'prefix':
      return (s) => norm(s).startsWith(v);
    case 'suffix':
      return (s) => norm(s).endsWith(v);
    case 'contains':
      return (s) => norm(s).includes(v);
  }
}

/** A header's value as Envoy matches it: pseudo-headers from the facts, repeats joined by ','. */
export function headerValue(facts: RequestFacts, name: string): string | undefined {
  switch (name) {
    case ':method': return facts.method;
    case ':authority': return facts.authority;
    case ':path': return facts.path;
    case ':scheme': return facts.scheme;
  }
  const first = facts.header(name);
  if (first === undefined || !facts.headerValues) return first;
  const all = facts.headerValues(name);
  return all.length > 1 ? all.join(',') : first;
}

/** Envoy's header matcher, including how a missing header interacts with invert_match. */
function compileHeader(h: HeaderMatch): (facts: RequestFacts) => boolean {
  const presenceOnly = h.match === undefined;
  const wantPresent = h.present ?? true;
  const test = h.match ? compileString(h.match) : undefined;
  const whenMissing = h.invert ? presenceOnly && wantPresent : presenceOnly && !wantPresent;
  return (facts) => {
    const v = headerValue(facts, h.name);
    if (v === undefined) return whenMissing;
    const r = test ? test(v) : wantPresent;
    return r !== h.invert;
  };
}

function decodeComponent(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The first value of query parameter `name` in `path` (percent-decoded), or undefined. */
export function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  let start = q + 1;
  while (start <= path.length) {
    let end = path.indexOf('&', start);
    if (end < 0) end = path.length;
    const eq = path.indexOf('=', start);
    const keyEnd = eq >= 0 && eq < end ? eq : end;
    if (decodeComponent(path.slice(start, keyEnd)) === name) return keyEnd === end ? '' : decodeComponent(path.slice(keyEnd + 1, end));
    start = end + 1;
  }
  return undefined;
}

function compileQuery(m: QueryMatch): (path: string) => boolean {
  const test = m.match ? compileString(m.match) : undefined;
  return (path) => {
    const v = queryValue(path, m.name);
    return v !== undefined && (test ? test(v) : true);
  };
}

function compilePath(m: PathMatch): (path: string, pathOnly: string) => boolean {
  switch (m.kind) {
    case 'exact': {
      const v = m.value;
      return (_p, only) => only === v;
    }
    case 'prefix': {
      const v = m.value;
      return (p) => p.startsWith(v); // Envoy: prefix of the whole :path
    }
    case 'segmentPrefix': {
      const v = m.value;
      if (v === '') return () => true;
      return (_p, only) => only.startsWith(v) && (only.length === v.length || only.charCodeAt(v.length) === 47 /* / */);
    }
    case 'regex': {
      const re = m.regex;
      return (_p, only) => re.test(only);
    }
  }
}

/** Envoy's gRPC check: content-type application/grpc, or with a `+` or `;` suffix. */
function isGrpc(contentType: string | undefined): boolean {
  if (!contentType || !contentType.startsWith('application/grpc')) return false;
  const next = contentType.charCodeAt(16);
  return contentType.length === 16 || next === 43 /* + */ || next === 59 /* ; */;
}

function compileRoute(vh: VirtualHost, route: Route): CompiledRoute {
  const pathTest = compilePath(route.match.path);
  const headers = route.match.headers.map(compileHeader);
  const query = route.match.query.map(compileQuery);
  const grpc = route.match.grpc;
  const test: RouteTest = (facts, path, pathOnly) => {
    if (!pathTest(path, pathOnly)) return false;
    for (let i = 0; i < headers.length; i++) if (!headers[i]!(facts)) return false;
    for (let i = 0; i < query.length; i++) if (!query[i]!(path)) return false;
    return !grpc || isGrpc(facts.header('content-type'));
  };
  const nonEmpty = (...ms: HeaderMutation[]) => ms.filter((m) => m.add.length > 0 || m.remove.length > 0);
  const backends = route.action.kind === 'forward' ? route.action.backends : [];
  return {
    route,
    test,
    requestHeaders: backends.map((b) => nonEmpty(vh.requestHeaders, route.requestHeaders, b.requestHeaders)),
    responseHeaders: backends.map((b) => nonEmpty(vh.responseHeaders, route.responseHeaders, b.responseHeaders)),
    localResponseHeaders: nonEmpty(vh.responseHeaders, route.responseHeaders),
  };
}

// ---- The table -------------------------------------------------------------------------------

/** Per virtual host object: a table assembled from VHDS recompiles only the hosts that changed. */
const vhostCache = new WeakMap<VirtualHost, CompiledVhost>();

function compiledVhost(vhost: VirtualHost): CompiledVhost {
  let vh = vhostCache.get(vhost);
  if (!vh) {
    vh = { vhost, routes: vhost.routes.map((r) => compileRoute(vhost, r)) };
    vhostCache.set(vhost, vh);
  }
  return vh;
}

function build(rc: RouteConfig): CompiledTable {
  const exact = new Map<string, CompiledVhost>();
  const suffix: Wildcard[] = [];
  const prefix: Wildcard[] = [];
  let star: CompiledVhost | undefined;
  for (const vhost of rc.virtualHosts) {
    const vh = compiledVhost(vhost);
    for (const raw of vhost.domains) {
      const d = raw.toLowerCase();
      if (d === '*') star ??= vh;
      else if (d.startsWith('*')) suffix.push({ part: d.slice(1), vh });
      else if (d.endsWith('*')) prefix.push({ part: d.slice(0, -1), vh });
      else if (!exact.has(d)) exact.set(d, vh);
    }
  }
  // Longest wildcard wins; stable sort keeps config order among equals.
  suffix.sort((a, b) => b.part.length - a.part.length);
  prefix.sort((a, b) => b.part.length - a.part.length);
  return { exact, suffix, prefix, star };
}

const cache = new WeakMap<RouteConfig, CompiledTable>();

/** The compiled table of `rc`, built on first use. RouteConfigs are immutable, so it never goes stale. */
export function compiled(rc: RouteConfig): CompiledTable {
  let t = cache.get(rc);
  if (!t) {
    t = build(rc);
    cache.set(rc, t);
  }
  return t;
}

/** `host:port` → `host` (IPv6 `[::1]:80` → `[::1]`); undefined when there is no port. */
export function stripPort(authority: string): string | undefined {
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    return close > 0 && authority.charCodeAt(close + 1) === 58 /* : */ ? authority.slice(0, close + 1) : undefined;
  }
  const colon = authority.lastIndexOf(':');
  if (colon <= 0 || authority.indexOf(':') !== colon || colon === authority.length - 1) return undefined;
  for (let i = colon + 1; i < authority.length; i++) {
    const c = authority.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  return authority.slice(0, colon);
}

const UPPER = /[A-Z]/;

function findWildcard(list: readonly Wildcard[], host: string, suffix: boolean): CompiledVhost | undefined {
  for (const w of list) {
    // The wildcard stands for at least one character.
    if (host.length > w.part.length && (suffix ? host.endsWith(w.part) : host.startsWith(w.part))) return w.vh;
  }
  return undefined;
}

/**
 * Envoy's virtual host search: exact domain, then suffix wildcards, then prefix wildcards
 * (longest first), then `*`. Each tier tries the authority as given, then without its port.
 */
export function findVhost(t: CompiledTable, authority: string): CompiledVhost | undefined {
  const host = UPPER.test(authority) ? authority.toLowerCase() : authority;
  const bare = stripPort(host);
  return (
    t.exact.get(host) ??
    (bare !== undefined ? t.exact.get(bare) : undefined) ??
    findWildcard(t.suffix, host, true) ??
    (bare !== undefined ? findWildcard(t.suffix, bare, true) : undefined) ??
    findWildcard(t.prefix, host, false) ??
    (bare !== undefined ? findWildcard(t.prefix, bare, false) : undefined) ??
    t.star
  );
}
