// The planner as a table of named cases (no sockets): virtual host selection, route matching,
// weighted choice, mirrors, rewrites, redirects, direct responses and header mutation order.
import { describe, expect, it } from 'vitest';
import { pack } from '../../api/codec.js';
import {
  NO_HEADER_MUTATION, type HeaderMatch, type HeaderMutation, type Listener, type PathMatch, type QueryMatch,
  type Route, type RouteAction, type RouteConfig, type VirtualHost, type WeightedBackend,
} from '../../api/domain.js';
import { routeConfigType } from '../../api/route-config.js';
import { TypeUrl } from '../../api/types.js';
import type { ProxyConfig } from '../state/types.js';
import { compiled } from './compile.js';
import { plan, planRoutes } from './plan.js';
import type { ForwardPlan, Plan, RequestFacts } from './types.js';

// ---- Builders ------------------------------------------------------------------------------

const mut = (name: string): HeaderMutation => ({ add: [{ name, value: '1', action: 'append' }], remove: [] });
function backend(cluster: string, weight = 1, requestHeaders: HeaderMutation = NO_HEADER_MUTATION): WeightedBackend {
  return { cluster, weight, requestHeaders, responseHeaders: NO_HEADER_MUTATION };
}
function fwd(extra: Partial<Extract<RouteAction, { kind: 'forward' }>> = {}, backends = [backend('c')]): RouteAction {
  return { kind: 'forward', backends, totalWeight: backends.reduce((s, b) => s + b.weight, 0), mirrors: [], clusterNotFoundStatus: 503, ...extra };
}
function route(name: string, path: PathMatch, action: RouteAction = fwd(), m: { headers?: HeaderMatch[]; query?: QueryMatch[]; grpc?: boolean } = {}, headers: Partial<Route> = {}): Route {
  return {
    name, action, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION,
    match: { path, headers: m.headers ?? [], query: m.query ?? [], grpc: m.grpc ?? false },
    ...headers,
  };
}
function vh(name: string, domains: string[], routes: Route[], headers: Partial<VirtualHost> = {}): VirtualHost {
  return { name, domains, routes, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION, ...headers };
}
const ALL: PathMatch = { kind: 'prefix', value: '/' };
const rc = (...virtualHosts: VirtualHost[]): RouteConfig => ({ name: 'outbound', virtualHosts });
const one = (...routes: Route[]) => rc(vh('vh', ['*'], routes));

function req(authority: string, path = '/', o: { method?: string; scheme?: 'http' | 'https'; headers?: Record<string, string | string[]> } = {}): RequestFacts {
  const h = o.headers ?? {};
  return {
    authority, path, method: o.method ?? 'GET', scheme: o.scheme ?? 'http',
    header: (n) => { const v = h[n]; return Array.isArray(v) ? v[0] : v; },
    headerValues: (n) => { const v = h[n]; return v === undefined ? [] : Array.isArray(v) ? v : [v]; },
  };
}

/** A random source that replays `values` and fails the test if asked for more. */
function randoms(...values: number[]): () => number {
  return () => {
    const v = values.shift();
    if (v === undefined) throw new Error('random() called more often than expected');
    return v;
  };
}

function routeName(p: Plan): string {
  return p.kind === 'noRoute' ? `noRoute:${p.reason}` : p.route.name;
}

// ---- Virtual host selection ------------------------------------------------------------------

const hosts = rc(
  vh('star', ['*'], [route('star', ALL)]),
  vh('exact', ['reviews.default.svc.cluster.local:9080', 'reviews:9080', 'reviews'], [route('exact', ALL)]),
  vh('suffix-short', ['*.com'], [route('suffix-short', ALL)]),
  vh('suffix-long', ['*.example.com'], [route('suffix-long', ALL)]),
  vh('prefix', ['api.*'], [route('prefix', ALL)]),
  vh('prefix-long', ['api.example.*'], [route('prefix-long', ALL)]),
  vh('port-only', ['ratings:8080'], [route('port-only', ALL)]),
);

describe('plan: virtual host selection', () => {
  it.each<[string, string, string]>([
    ['exact domain with port', 'reviews:9080', 'exact'],
    ['exact domain without port', 'reviews', 'exact'],
    ['port not listed falls back to the bare host', 'reviews:1234', 'exact'],
    ['upper-case authority is lower-cased', 'REVIEWS:9080', 'exact'],
    ['exact beats every wildcard', 'reviews.default.svc.cluster.local:9080', 'exact'],
    ['longest suffix wildcard wins', 'www.example.com', 'suffix-long'],
    ['shorter suffix wildcard', 'www.other.com', 'suffix-short'],
    ['suffix wildcard with the port stripped', 'www.example.com:8443', 'suffix-long'],
    ['suffix wildcards beat prefix wildcards', 'api.example.com', 'suffix-long'],
    ['longest prefix wildcard wins', 'api.example.org', 'prefix-long'],
    ['shorter prefix wildcard', 'api.internal', 'prefix'],
    ['a wildcard matches at least one character', '.com', 'star'],
    ['"*" catches the rest', 'unknown.local', 'star'],
    ['a port-only domain needs the port', 'ratings:8080', 'port-only'],
    ['a port-only domain does not match the bare host', 'ratings', 'star'],
    ['IPv6 authority with port', '[::1]:9080', 'star'],
  ])('%s: %s → %s', (_name, authority, expected) => {
    expect(routeName(planRoutes(hosts, req(authority), randoms()))).toBe(expected);
  });

  it('no matching virtual host → noRoute no_virtual_host', () => {
    const p = planRoutes(rc(vh('a', ['a'], [route('a', ALL)])), req('b:80'), randoms());
    expect(p).toEqual({ kind: 'noRoute', reason: 'no_virtual_host', authority: 'b:80' });
  });
});

// ---- Route matching -------------------------------------------------------------------------

const exactLogin = route('exact', { kind: 'exact', value: '/login' });
const prefixApi = route('prefix', { kind: 'prefix', value: '/api' });
const segFoo = route('seg', { kind: 'segmentPrefix', value: '/foo' });
const regexV = route('regex', { kind: 'regex', regex: /^(?:\/v[0-9]+\/items)$/u });
const header = (h: Partial<HeaderMatch> & { name: string }): HeaderMatch => ({ invert: false, ...h });

describe('plan: route matching', () => {
  it.each<[string, Route[], RequestFacts, string]>([
    ['exact path', [exactLogin], req('x', '/login'), 'exact'],
    ['exact path ignores the query', [exactLogin], req('x', '/login?next=/'), 'exact'],
    ['exact path is not a prefix', [exactLogin], req('x', '/login/'), 'noRoute:no_route_match'],
    ['plain prefix matches mid-segment', [prefixApi], req('x', '/apix'), 'prefix'],
    ['segment prefix: the path itself', [segFoo], req('x', '/foo'), 'seg'],
    ['segment prefix: trailing slash', [segFoo], req('x', '/foo/'), 'seg'],
    ['segment prefix: deeper path', [segFoo], req('x', '/foo/bar?q=1'), 'seg'],
    ['segment prefix: not /foobar', [segFoo], req('x', '/foobar'), 'noRoute:no_route_match'],
    ['segment prefix "/" (normalised to "") matches all', [route('root', { kind: 'segmentPrefix', value: '' })], req('x', '/anything'), 'root'],
    ['regex is a full match on the path without query', [regexV], req('x', '/v2/items?x=1'), 'regex'],
    ['regex does not match a longer path', [regexV], req('x', '/v2/items/3'), 'noRoute:no_route_match'],
    ['first matching route wins', [route('first', ALL), route('second', ALL)], req('x', '/'), 'first'],
    ['header exact', [route('h', ALL, fwd(), { headers: [header({ name: 'x-user', match: { kind: 'exact', value: 'jason' } })] })], req('x', '/', { headers: { 'x-user': 'jason' } }), 'h'],
    ['header exact mismatch', [route('h', ALL, fwd(), { headers: [header({ name: 'x-user', match: { kind: 'exact', value: 'jason' } })] })], req('x', '/', { headers: { 'x-user': 'bob' } }), 'noRoute:no_route_match'],
    ['header ignore_case', [route('h', ALL, fwd(), { headers: [header({ name: 'x-env', match: { kind: 'exact', value: 'prod', ignoreCase: true } })] })], req('x', '/', { headers: { 'x-env': 'PROD' } }), 'h'],
    ['pseudo-header :method', [route('m', ALL, fwd(), { headers: [header({ name: ':method', match: { kind: 'exact', value: 'POST' } })] })], req('x', '/', { method: 'POST' }), 'm'],
    ['pseudo-header :authority', [route('a', ALL, fwd(), { headers: [header({ name: ':authority', match: { kind: 'suffix', value: ':9080' } })] })], req('reviews:9080'), 'a'],
    ['pseudo-header :path includes the query', [route('p', ALL, fwd(), { headers: [header({ name: ':path', match: { kind: 'contains', value: 'debug' } })] })], req('x', '/a?debug=1'), 'p'],
    ['header regex', [route('r', ALL, fwd(), { headers: [header({ name: 'x-v', match: { kind: 'regex', regex: /^(?:v\d)$/u } })] })], req('x', '/', { headers: { 'x-v': 'v3' } }), 'r'],
    ['inverted header match', [route('i', ALL, fwd(), { headers: [header({ name: 'x-canary', match: { kind: 'exact', value: '1' }, invert: true })] })], req('x', '/', { headers: { 'x-canary': '0' } }), 'i'],
    ['inverted string match on a missing header does not match (Envoy)', [route('i', ALL, fwd(), { headers: [header({ name: 'x-canary', match: { kind: 'exact', value: '1' }, invert: true })] })], req('x', '/'), 'noRoute:no_route_match'],
    ['presence (no specifier)', [route('p', ALL, fwd(), { headers: [header({ name: 'x-debug' })] })], req('x', '/', { headers: { 'x-debug': '' } }), 'p'],
    ['presence fails when missing', [route('p', ALL, fwd(), { headers: [header({ name: 'x-debug' })] })], req('x', '/'), 'noRoute:no_route_match'],
    ['present_match false: must be absent', [route('a', ALL, fwd(), { headers: [header({ name: 'x-debug', present: false })] })], req('x', '/'), 'a'],
    ['inverted presence: must be absent', [route('a', ALL, fwd(), { headers: [header({ name: 'x-debug', invert: true })] })], req('x', '/'), 'a'],
    ['repeated header values are joined with ","', [route('j', ALL, fwd(), { headers: [header({ name: 'x-tag', match: { kind: 'exact', value: 'a,b' } })] })], req('x', '/', { headers: { 'x-tag': ['a', 'b'] } }), 'j'],
    ['query parameter exact', [route('q', ALL, fwd(), { query: [{ name: 'v', match: { kind: 'exact', value: '2' } }] })], req('x', '/?a=1&v=2'), 'q'],
    ['query parameter is percent-decoded', [route('q', ALL, fwd(), { query: [{ name: 'q', match: { kind: 'exact', value: 'a b' } }] })], req('x', '/?q=a%20b'), 'q'],
    ['first query value wins', [route('q', ALL, fwd(), { query: [{ name: 'v', match: { kind: 'exact', value: '2' } }] })], req('x', '/?v=1&v=2'), 'noRoute:no_route_match'],
    ['query parameter present (no value)', [route('q', ALL, fwd(), { query: [{ name: 'debug', present: true }] })], req('x', '/?debug'), 'q'],
    ['query parameter missing', [route('q', ALL, fwd(), { query: [{ name: 'debug', present: true }] })], req('x', '/?debugger=1'), 'noRoute:no_route_match'],
    ['grpc: application/grpc', [route('g', ALL, fwd(), { grpc: true })], req('x', '/pkg.Svc/M', { headers: { 'content-type': 'application/grpc' } }), 'g'],
    ['grpc: application/grpc+proto', [route('g', ALL, fwd(), { grpc: true })], req('x', '/pkg.Svc/M', { headers: { 'content-type': 'application/grpc+proto' } }), 'g'],
    ['grpc: not grpc-web', [route('g', ALL, fwd(), { grpc: true })], req('x', '/', { headers: { 'content-type': 'application/grpc-web' } }), 'noRoute:no_route_match'],
    ['grpc: not plain JSON', [route('g', ALL, fwd(), { grpc: true })], req('x', '/', { headers: { 'content-type': 'application/json' } }), 'noRoute:no_route_match'],
  ])('%s', (_name, routes, facts, expected) => {
    expect(routeName(planRoutes(one(...routes), facts, randoms()))).toBe(expected);
  });

  it('no matching route → noRoute no_route_match naming the virtual host', () => {
    const cfg = one(exactLogin);
    const p = planRoutes(cfg, req('x', '/other'), randoms());
    expect(p).toEqual({ kind: 'noRoute', reason: 'no_route_match', authority: 'x', vhost: cfg.virtualHosts[0] });
  });

  it('case_sensitive false and a trailing-slash path_separated_prefix, decoded from xDS', () => {
    const decoded = routeConfigType.decode(pack(TypeUrl.RouteConfiguration, {
      name: 'outbound',
      virtual_hosts: [{ name: 'v', domains: ['*'], routes: [
        { name: 'ci', match: { path: '/Login', case_sensitive: { value: false } }, route: { cluster: 'c' } },
        { name: 'seg', match: { path_separated_prefix: '/foo/' }, route: { cluster: 'c' } },
      ] }],
    }));
    if (!decoded.ok) throw new Error(JSON.stringify(decoded.problems));
    expect(routeName(planRoutes(decoded.value, req('x', '/LOGIN'), randoms()))).toBe('ci');
    expect(routeName(planRoutes(decoded.value, req('x', '/foo'), randoms()))).toBe('seg');
    expect(routeName(planRoutes(decoded.value, req('x', '/foobar'), randoms()))).toBe('noRoute:no_route_match');
  });
});

// ---- Forward actions ---------------------------------------------------------------------------

function forwardPlan(action: RouteAction, facts = req('x', '/'), random = randoms(), match: PathMatch = ALL): ForwardPlan {
  const p = planRoutes(one(route('r', match, action)), facts, random);
  if (p.kind !== 'forward') throw new Error(`expected forward, got ${JSON.stringify(p)}`);
  return p;
}

describe('plan: forward', () => {
  const split = fwd({}, [backend('v1', 90), backend('zero', 0), backend('v2', 10)]);
  it.each<[string, number, string]>([
    ['weighted: low draw picks the first backend', 0, 'v1'],
    ['weighted: 0.899 still the first (90 of 100)', 0.899, 'v1'],
    ['weighted: 0.9 picks the second weighted backend, skipping weight 0', 0.9, 'v2'],
    ['weighted: top draw picks the last', 0.999999, 'v2'],
  ])('%s', (_name, draw, cluster) => {
    expect(forwardPlan(split, req('x', '/'), randoms(draw)).cluster).toBe(cluster);
  });

  it('a random source at its upper edge (1) still never picks a weight-0 backend', () => {
    expect(forwardPlan(fwd({}, [backend('a', 10), backend('zero', 0)]), req('x', '/'), randoms(1)).cluster).toBe('a');
  });

  it('a single backend never draws a random number', () => {
    expect(forwardPlan(fwd(), req('x', '/'), randoms()).cluster).toBe('c');
  });

  it('total weight 0 → direct 500 "no backend"', () => {
    const p = planRoutes(one(route('r', ALL, fwd({}, [backend('a', 0), backend('b', 0)]))), req('x', '/'), randoms());
    expect(p.kind).toBe('direct');
    expect(p.kind === 'direct' && [p.status, p.body.startsWith('no backend')]).toEqual([500, true]);
  });

  it('mirrors are sampled by fraction, in order; 1 and 0 draw nothing', () => {
    const mirrors = [
      { cluster: 'always', fraction: 1 },
      { cluster: 'half-yes', fraction: 0.5 },
      { cluster: 'half-no', fraction: 0.5 },
      { cluster: 'never', fraction: 0 },
    ];
    const p = forwardPlan(fwd({ mirrors }), req('x', '/'), randoms(0.4, 0.6));
    expect(p.mirrors.map((m) => m.cluster)).toEqual(['always', 'half-yes']);
  });

  it('carries timeout, retry and cluster-not-found status; host rewrite', () => {
    const retry = { retryOn: new Set(['5xx']), numRetries: 2, retriableStatusCodes: new Set<number>(), backoffBaseMs: 25, backoffMaxMs: 250 };
    const p = forwardPlan(fwd({ timeoutMs: 1500, retry, clusterNotFoundStatus: 500, hostRewrite: 'backend.internal' }), req('reviews:9080', '/a?b=1'));
    expect(p).toMatchObject({ timeoutMs: 1500, retry, clusterNotFoundStatus: 500, authority: 'backend.internal', path: '/a?b=1' });
    expect(forwardPlan(fwd({ timeoutMs: 0 })).timeoutMs).toBeUndefined();
  });

  it('header mutations in order: virtual host, route, chosen backend', () => {
    const cfg = rc(vh('v', ['*'], [
      route('r', ALL, fwd({}, [backend('a', 1, mut('x-backend-a')), backend('b', 1, mut('x-backend-b'))]), {}, { requestHeaders: mut('x-route') }),
    ], { requestHeaders: mut('x-vhost') }));
    const p = planRoutes(cfg, req('x', '/'), randoms(0.75));
    expect(p.kind === 'forward' && p.requestHeaders.map((m) => m.add[0]!.name)).toEqual(['x-vhost', 'x-route', 'x-backend-b']);
    expect(p.kind === 'forward' && p.responseHeaders).toEqual([]);
  });
});

describe('plan: URL rewrite', () => {
  const seg = (v: string): PathMatch => ({ kind: 'segmentPrefix', value: v });
  // Gateway API HTTPPathModifier ReplacePrefixMatch table (prefixes already normalised by decode).
  it.each<[string, string, PathMatch, string, string]>([
    ['prefix → prefix', '/foo/bar', seg('/foo'), '/xyz', '/xyz/bar'],
    ['replacement with trailing slash', '/foo/bar', seg('/foo'), '/xyz/', '/xyz/bar'],
    ['exact prefix path', '/foo', seg('/foo'), '/xyz', '/xyz'],
    ['prefix path with trailing slash', '/foo/', seg('/foo'), '/xyz', '/xyz/'],
    ['replace with "/" does not double the slash', '/foo/bar', seg('/foo'), '/', '/bar'],
    ['replace with "/" on the prefix itself', '/foo', seg('/foo'), '/', '/'],
    ['replace with "/" on prefix + slash', '/foo/', seg('/foo'), '/', '/'],
    ['root prefix gets a separator', '/bar', seg(''), '/api', '/api/bar'],
    ['plain prefix ending in "/"', '/foo/bar', { kind: 'prefix', value: '/foo/' }, '/xyz', '/xyz/bar'],
    ['plain prefix mid-segment is textual', '/foobar', { kind: 'prefix', value: '/foo' }, '/x', '/xbar'],
    ['query is kept', '/foo/bar?a=1', seg('/foo'), '/xyz', '/xyz/bar?a=1'],
    ['exact match replaces the whole path', '/old', { kind: 'exact', value: '/old' }, '/new', '/new'],
  ])('%s: %s', (_name, path, match, replacement, expected) => {
    expect(forwardPlan(fwd({ pathRewrite: { kind: 'prefix', value: replacement } }), req('x', path), randoms(), match).path).toBe(expected);
  });

  it('full path replacement keeps the query', () => {
    expect(forwardPlan(fwd({ pathRewrite: { kind: 'full', value: '/new' } }), req('x', '/old/deep?x=1')).path).toBe('/new?x=1');
  });

  it.each<[string, RegExp, string, string, string]>([
    ['groups', /^\/api\/(v\d)\/(.*)$/gu, '/\\2/\\1', '/api/v1/items?q', '/items/v1?q'],
    ['every match is replaced', /o/gu, '0', '/foo/boo', '/f00/b00'],
    ['".*" substitutes once (RE2, not JS)', /[^\n]*/gu, '/fixed', '/anything', '/fixed'],
    ['escaped backslash', /x/gu, '\\\\', '/x', '/\\'],
    ['no match leaves the path', /zzz/gu, 'y', '/abc', '/abc'],
  ])('regex rewrite: %s', (_name, regex, substitution, path, expected) => {
    expect(forwardPlan(fwd({ pathRewrite: { kind: 'regex', regex, substitution } }), req('x', path)).path).toBe(expected);
  });
});

// ---- Redirects and direct responses -------------------------------------------------------------

describe('plan: redirect', () => {
  type R = Extract<RouteAction, { kind: 'redirect' }>;
  const redirect = (r: Partial<R>): RouteAction => ({ kind: 'redirect', status: 302, stripQuery: false, ...r });
  it.each<[string, Partial<R>, RequestFacts, string, PathMatch?]>([
    ['https_redirect drops a port when the scheme changes', { scheme: 'https' }, req('shop:8080', '/cart?id=1'), 'https://shop/cart?id=1'],
    ['same scheme keeps the request port', { host: 'other' }, req('shop:8080', '/'), 'http://other:8080/'],
    ['default port of the scheme is omitted', { port: 80 }, req('shop:8080', '/'), 'http://shop/'],
    ['https default 443 omitted', { scheme: 'https', port: 443 }, req('shop', '/'), 'https://shop/'],
    ['explicit port', { scheme: 'https', port: 8443 }, req('shop', '/'), 'https://shop:8443/'],
    ['to http from https', { scheme: 'http' }, req('shop:8443', '/', { scheme: 'https' }), 'http://shop/'],
    ['full path replacement keeps the query', { path: { kind: 'full', value: '/login' } }, req('a', '/x?y=1'), 'http://a/login?y=1'],
    ['path_redirect with its own query wins', { path: { kind: 'full', value: '/login?from=x' } }, req('a', '/x?y=1'), 'http://a/login?from=x'],
    ['strip_query', { stripQuery: true }, req('a', '/x?y=1'), 'http://a/x'],
    ['prefix replacement', { path: { kind: 'prefix', value: '/v2' } }, req('a', '/v1/items'), 'http://a/v2/items', { kind: 'segmentPrefix', value: '/v1' }],
    ['prefix replacement with "/"', { path: { kind: 'prefix', value: '/' } }, req('a', '/v1/items'), 'http://a/items', { kind: 'segmentPrefix', value: '/v1' }],
    ['IPv6 host keeps its brackets', {}, req('[::1]:8080', '/'), 'http://[::1]:8080/'],
    [
      'regex rewrite (ReplacePrefixMatch "/" as the translator sends it), query kept',
      { path: { kind: 'regex', regex: /^\/v1\/*/gu, substitution: '/' } },
      req('a', '/v1/items?q=1'),
      'http://a/items?q=1',
      { kind: 'segmentPrefix', value: '/v1' },
    ],
    ['regex rewrite of the prefix itself', { path: { kind: 'regex', regex: /^\/v1\/*/gu, substitution: '/' } }, req('a', '/v1'), 'http://a/', { kind: 'segmentPrefix', value: '/v1' }],
  ])('%s', (_name, r, facts, location, match = ALL) => {
    const p = planRoutes(one(route('r', match, redirect(r))), facts, randoms());
    expect(p.kind === 'redirect' && p.location).toBe(location);
  });

  it('carries status and virtual host + route response headers', () => {
    const cfg = rc(vh('v', ['*'], [route('r', ALL, redirect({ status: 301 }), {}, { responseHeaders: mut('x-route') })], { responseHeaders: mut('x-vh') }));
    const p = planRoutes(cfg, req('a', '/'), randoms());
    expect(p.kind === 'redirect' && [p.status, p.responseHeaders.map((m) => m.add[0]!.name)]).toEqual([301, ['x-vh', 'x-route']]);
  });
});

describe('plan: direct response', () => {
  it('status and body', () => {
    const p = planRoutes(one(route('d', ALL, { kind: 'direct', status: 418, body: 'teapot' })), req('a', '/'), randoms());
    expect(p).toMatchObject({ kind: 'direct', status: 418, body: 'teapot' });
    const empty = planRoutes(one(route('d', ALL, { kind: 'direct', status: 204 })), req('a', '/'), randoms());
    expect(empty).toMatchObject({ kind: 'direct', status: 204, body: '' });
  });
});

// ---- Looking up the route configuration ----------------------------------------------------------

function config(routes: RouteConfig[], listeners: Listener[] = []): ProxyConfig {
  return {
    generation: 1,
    listeners: new Map(listeners.map((l) => [l.name, l])),
    routes: new Map(routes.map((r) => [r.name, r])),
    clusters: new Map(), endpoints: new Map(), secrets: new Map(), versions: new Map(),
  };
}

describe('plan: route configuration lookup and caching', () => {
  it('plans against an RDS route configuration by name', () => {
    expect(routeName(plan(config([one(route('rds', ALL))]), 'outbound', req('a'), randoms()))).toBe('rds');
  });

  it('finds a route configuration carried inline by a listener', () => {
    const inline: RouteConfig = { name: 'inbound|8080', virtualHosts: [vh('in', ['*'], [route('inline', ALL)])] };
    const l: Listener = {
      name: 'inbound',
      filterChains: [{ name: 'inbound|8080', destinationPorts: [8080], serverNames: [], filter: { kind: 'http', statPrefix: 'in', inlineRoutes: inline, rbac: [] } }],
    };
    expect(routeName(plan(config([], [l]), 'inbound|8080', req('a'), randoms()))).toBe('inline');
  });

  it('an unknown route configuration → noRoute with a detail for the operator', () => {
    const p = plan(config([]), 'missing', req('a'), randoms());
    expect(p).toMatchObject({ kind: 'noRoute', reason: 'no_virtual_host', detail: expect.stringContaining('"missing"') });
  });

  it('compiles a RouteConfig once and reuses it', () => {
    const cfg = one(route('r', ALL));
    const t = compiled(cfg);
    planRoutes(cfg, req('a'), randoms());
    expect(compiled(cfg)).toBe(t);
    expect(compiled(one(route('r', ALL)))).not.toBe(t);
  });

  it('plans are pure: the same inputs give equal plans', () => {
    const cfg = one(route('r', { kind: 'segmentPrefix', value: '/a' }, fwd({ pathRewrite: { kind: 'prefix', value: '/b' } })));
    expect(planRoutes(cfg, req('x', '/a/c'), randoms())).toEqual(planRoutes(cfg, req('x', '/a/c'), randoms()));
  });
});
