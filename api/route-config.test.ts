// Tests for RDS decoding: every supported route feature becomes the right domain value, and
// every rejected input is reported with its field path (all problems at once).
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from './codec.js';
import type { ForwardAction, RedirectAction, RouteConfig } from './domain.js';
import { routeConfigType } from './route-config.js';
import { TypeUrl } from './types.js';

function rc(virtualHosts: Plain[], extra: Plain = {}): Plain {
  return { name: 'outbound', virtual_hosts: virtualHosts, ...extra };
}
function vhost(routes: Plain[], extra: Plain = {}): Plain {
  return { name: 'reviews.default.svc.cluster.local:9080', domains: ['reviews:9080', 'Reviews.Default'], routes, ...extra };
}
function route(extra: Plain): Plain {
  return { match: { prefix: '/' }, route: { cluster: 'c' }, ...extra };
}
function decode(plain: Plain) {
  return routeConfigType.decode(pack(TypeUrl.RouteConfiguration, plain));
}
function ok(plain: Plain): RouteConfig {
  const r = decode(plain);
  if (!r.ok) throw new Error(`unexpected problems: ${JSON.stringify(r.problems)}`);
  return r.value;
}
function problems(plain: Plain) {
  const r = decode(plain);
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.problems;
}
function firstRoute(plain: Plain) {
  return ok(rc([vhost([plain])])).virtualHosts[0]!.routes[0]!;
}
function forward(plain: Plain): ForwardAction {
  const a = firstRoute(plain).action;
  expect(a.kind).toBe('forward');
  return a as ForwardAction;
}

describe('routeConfigType.decode: virtual hosts', () => {
  it('decodes name, lower-cased domains, and a default route', () => {
    const v = ok(rc([vhost([route({ name: 'default/r/0' })])]));
    expect(v.name).toBe('outbound');
    expect(v.virtualHosts[0]!.domains).toEqual(['reviews:9080', 'reviews.default']);
    const r = v.virtualHosts[0]!.routes[0]!;
    expect(r.name).toBe('default/r/0');
    expect(r.match).toEqual({ path: { kind: 'prefix', value: '/' }, headers: [], query: [], grpc: false });
    expect(r.action).toMatchObject({ kind: 'forward', backends: [{ cluster: 'c', weight: 1 }], totalWeight: 1, clusterNotFoundStatus: 503 });
  });

  it('rejects duplicate domains across virtual hosts and bad wildcards, naming each', () => {
    const ps = problems(rc([
      vhost([route({})], { name: 'a', domains: ['x', 'a*b'] }),
      vhost([route({})], { name: 'b', domains: ['X'] }),
    ]));
    expect(ps.map((p) => p.field)).toEqual(['virtual_hosts[0].domains[1]', 'virtual_hosts[1].domains[0]']);
    expect(ps[1]!.message).toContain('duplicate domain "x"');
  });

  it('requires at least one domain', () => {
    expect(problems(rc([vhost([route({})], { domains: [] })]))[0]!.field).toBe('virtual_hosts[0].domains');
  });

  it('folds configuration-level header mutations into each virtual host (config first)', () => {
    const v = ok(rc([vhost([route({})], {
      request_headers_to_add: [{ header: { key: 'X-VH', value: 'v' } }],
    })], {
      request_headers_to_add: [{ header: { key: 'x-cfg', value: 'c' } }, { header: { key: 'x-gone', value: 'g' } }],
      response_headers_to_remove: ['server'],
    }));
    const vh = v.virtualHosts[0]!;
    expect(vh.requestHeaders.add.map((h) => h.name)).toEqual(['x-cfg', 'x-gone', 'x-vh']);
    expect(vh.responseHeaders.remove).toEqual(['server']);
  });
});

describe('routeConfigType.decode: route match', () => {
  it.each([
    ['prefix', { prefix: '/api' }, { kind: 'prefix', value: '/api' }],
    ['exact path', { path: '/login' }, { kind: 'exact', value: '/login' }],
    ['path_separated_prefix', { path_separated_prefix: '/foo' }, { kind: 'segmentPrefix', value: '/foo' }],
    ['path_separated_prefix trailing slash dropped', { path_separated_prefix: '/foo/' }, { kind: 'segmentPrefix', value: '/foo' }],
  ])('%s', (_n, match, expected) => {
    expect(firstRoute(route({ match })).match.path).toEqual(expected);
  });

  it('safe_regex compiles to a whole-path RE2-compatible regex', () => {
    const path = firstRoute(route({ match: { safe_regex: { regex: '/v[0-9]+/(?P<rest>.*)' } } })).match.path;
    expect(path.kind).toBe('regex');
    const re = (path as { regex: RegExp }).regex;
    expect(re.test('/v2/items')).toBe(true);
    expect(re.test('/x/v2/items')).toBe(false); // whole match, not search
    expect(re.test('/v2/a\nb')).toBe(false); // RE2 `.` does not match \n
  });

  it('case_sensitive false turns literal matches into case-insensitive regexes', () => {
    const exact = firstRoute(route({ match: { path: '/Login.php', case_sensitive: { value: false } } })).match.path as { regex: RegExp };
    expect(exact.regex.test('/LOGIN.PHP')).toBe(true);
    expect(exact.regex.test('/loginXphp')).toBe(false);
    const seg = firstRoute(route({ match: { path_separated_prefix: '/Foo', case_sensitive: { value: false } } })).match.path as { regex: RegExp };
    expect(['/foo', '/FOO/bar'].map((s) => seg.regex.test(s))).toEqual([true, true]);
    expect(seg.regex.test('/foobar')).toBe(false);
  });

  it('headers: string_match kinds, legacy fields, present_match and invert_match', () => {
    const m = firstRoute(route({
      match: {
        prefix: '/',
        headers: [
          { name: 'X-Exact', string_match: { exact: 'a', ignore_case: true } },
          { name: 'x-pre', string_match: { prefix: 'b' } },
          { name: 'x-suf', string_match: { suffix: 'c' } },
          { name: 'x-con', string_match: { contains: 'd' } },
          { name: 'x-re', string_match: { safe_regex: { regex: 'v\\d' } } },
          { name: 'x-legacy', exact_match: 'e' },
          { name: 'x-legacy-re', safe_regex_match: { regex: 'f+' } },
          { name: 'x-present', present_match: true },
          { name: 'x-absent', present_match: false },
          { name: ':method', exact_match: 'GET', invert_match: true },
          { name: 'x-any' },
        ],
      },
    })).match;
    expect(m.headers[0]).toEqual({ name: 'x-exact', invert: false, match: { kind: 'exact', value: 'a', ignoreCase: true } });
    expect(m.headers.slice(1, 4).map((h) => h.match?.kind)).toEqual(['prefix', 'suffix', 'contains']);
    expect((m.headers[4]!.match as { regex: RegExp }).regex.test('v7')).toBe(true);
    expect(m.headers[5]!.match).toEqual({ kind: 'exact', value: 'e' });
    expect((m.headers[6]!.match as { regex: RegExp }).regex.test('fff')).toBe(true);
    expect(m.headers[7]).toEqual({ name: 'x-present', invert: false, present: true });
    expect(m.headers[8]).toEqual({ name: 'x-absent', invert: false, present: false });
    expect(m.headers[9]).toEqual({ name: ':method', invert: true, match: { kind: 'exact', value: 'GET' } });
    expect(m.headers[10]).toEqual({ name: 'x-any', invert: false });
  });

  it('query parameters and grpc', () => {
    const m = firstRoute(route({
      match: {
        prefix: '/',
        grpc: {},
        query_parameters: [{ name: 'debug', present_match: true }, { name: 'v', string_match: { exact: '2' } }],
      },
    })).match;
    expect(m.grpc).toBe(true);
    expect(m.query).toEqual([{ name: 'debug', present: true }, { name: 'v', match: { kind: 'exact', value: '2' } }]);
  });

  it('rejects an invalid regex with the full field path', () => {
    const ps = problems(rc([vhost([route({}), route({}), route({ match: { safe_regex: { regex: '(' } } })])]));
    expect(ps).toHaveLength(1);
    expect(ps[0]!.field).toBe('virtual_hosts[0].routes[2].match.safe_regex.regex');
    expect(ps[0]!.message).toMatch(/^invalid regular expression "\(": /);
  });

  it('rejects RE2-incompatible constructs (backreference, lookahead)', () => {
    const ps = problems(rc([vhost([
      route({ match: { safe_regex: { regex: '(a)\\1' } } }),
      route({ match: { prefix: '/', headers: [{ name: 'x', string_match: { safe_regex: { regex: 'a(?=b)' } } }] } }),
    ])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].match.safe_regex.regex',
      'virtual_hosts[0].routes[1].match.headers[0].string_match.safe_regex.regex',
    ]);
    expect(ps[0]!.message).toContain('backreferences');
    expect(ps[1]!.message).toContain('lookahead');
  });

  it('rejects a match without a path specifier and unsupported match fields', () => {
    const ps = problems(rc([vhost([
      { match: {}, route: { cluster: 'c' } },
      route({ match: { prefix: '/', runtime_fraction: { default_value: { numerator: 1 } } } }),
      route({ match: { prefix: '/', headers: [{ name: 'x', range_match: { start: 1, end: 2 } }] } }),
    ])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].match',
      'virtual_hosts[0].routes[1].match.runtime_fraction',
      'virtual_hosts[0].routes[2].match.headers[0].range_match',
    ]);
  });
});

describe('routeConfigType.decode: forward action', () => {
  it('weighted clusters with per-backend header mutations', () => {
    const a = forward(route({
      route: {
        weighted_clusters: {
          clusters: [
            { name: 'v1', weight: { value: 90 }, request_headers_to_add: [{ header: { key: 'x-v', value: '1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }] },
            { name: 'v2', weight: { value: 10 }, response_headers_to_remove: ['x-internal'] },
            { name: 'v3', weight: { value: 0 } },
          ],
        },
      },
    }));
    expect(a.totalWeight).toBe(100);
    expect(a.backends.map((b) => [b.cluster, b.weight])).toEqual([['v1', 90], ['v2', 10], ['v3', 0]]);
    expect(a.backends[0]!.requestHeaders.add).toEqual([{ name: 'x-v', value: '1', action: 'overwrite' }]);
    expect(a.backends[1]!.responseHeaders.remove).toEqual(['x-internal']);
  });

  it('all-zero weights are accepted (the planner answers 500)', () => {
    expect(forward(route({ route: { weighted_clusters: { clusters: [{ name: 'a', weight: { value: 0 } }] } } })).totalWeight).toBe(0);
  });

  it.each([
    ['SERVICE_UNAVAILABLE', 503],
    ['NOT_FOUND', 404],
    ['INTERNAL_SERVER_ERROR', 500],
  ])('cluster_not_found_response_code %s → %d', (code, status) => {
    expect(forward(route({ route: { cluster: 'c', cluster_not_found_response_code: code } })).clusterNotFoundStatus).toBe(status);
  });

  it('timeout: none when absent (unlike Envoy\'s 15 s) or 0, milliseconds otherwise', () => {
    expect(forward(route({})).timeoutMs).toBeUndefined();
    expect(forward(route({ route: { cluster: 'c', timeout: { seconds: 0 } } })).timeoutMs).toBeUndefined();
    expect(forward(route({ route: { cluster: 'c', timeout: { seconds: 2, nanos: 500_000_000 } } })).timeoutMs).toBe(2500);
  });

  it('retry policy with defaults', () => {
    const r = forward(route({ route: { cluster: 'c', retry_policy: { retry_on: '5xx, connect-failure,retriable-status-codes' } } })).retry!;
    expect([...r.retryOn]).toEqual(['5xx', 'connect-failure', 'retriable-status-codes']);
    expect(r.numRetries).toBe(1);
    expect(r.perTryTimeoutMs).toBeUndefined();
    expect(r.backoffBaseMs).toBe(25);
    expect(r.backoffMaxMs).toBe(250);
  });

  it('retry policy with every field set', () => {
    const r = forward(route({
      route: {
        cluster: 'c',
        retry_policy: {
          retry_on: 'gateway-error',
          num_retries: { value: 3 },
          per_try_timeout: { nanos: 200_000_000 },
          retriable_status_codes: [503, 429],
          retry_back_off: { base_interval: { nanos: 100_000_000 }, max_interval: { seconds: 2 } },
        },
      },
    })).retry!;
    expect(r).toMatchObject({ numRetries: 3, perTryTimeoutMs: 200, backoffBaseMs: 100, backoffMaxMs: 2000 });
    expect([...r.retriableStatusCodes]).toEqual([503, 429]);
  });

  it('virtual-host retry policy applies to routes without their own', () => {
    const v = ok(rc([vhost([route({}), route({ route: { cluster: 'c', retry_policy: { retry_on: 'reset' } } })], {
      retry_policy: { retry_on: '5xx', num_retries: { value: 2 } },
    })]));
    const [a, b] = v.virtualHosts[0]!.routes.map((r) => (r.action as ForwardAction).retry!);
    expect([...a!.retryOn]).toEqual(['5xx']);
    expect(a!.numRetries).toBe(2);
    expect([...b!.retryOn]).toEqual(['reset']);
  });

  it.each([
    [{ numerator: 5 }, 0.05],
    [{ numerator: 25, denominator: 'TEN_THOUSAND' }, 0.0025],
    [{ numerator: 500_000, denominator: 'MILLION' }, 0.5],
    [{ numerator: 300 }, 1],
  ])('mirror fraction %j → %f', (pct, fraction) => {
    const a = forward(route({ route: { cluster: 'c', request_mirror_policies: [{ cluster: 'm', runtime_fraction: { default_value: pct } }] } }));
    expect(a.mirrors).toEqual([{ cluster: 'm', fraction }]);
  });

  it('a mirror without runtime_fraction mirrors everything', () => {
    expect(forward(route({ route: { cluster: 'c', request_mirror_policies: [{ cluster: 'm' }] } })).mirrors).toEqual([{ cluster: 'm', fraction: 1 }]);
  });

  it('rewrites: prefix, regex and host', () => {
    expect(forward(route({ route: { cluster: 'c', prefix_rewrite: '/v2' } })).pathRewrite).toEqual({ kind: 'prefix', value: '/v2' });
    const rx = forward(route({ route: { cluster: 'c', regex_rewrite: { pattern: { regex: '^/api/(.*)$' }, substitution: '/\\1' } } })).pathRewrite!;
    expect(rx.kind).toBe('regex');
    expect((rx as { substitution: string }).substitution).toBe('/\\1');
    expect(forward(route({ route: { cluster: 'c', host_rewrite_literal: 'example.org' } })).hostRewrite).toBe('example.org');
  });

  it('rejects a substitution naming a group the pattern lacks, and both rewrites at once', () => {
    const ps = problems(rc([vhost([
      route({ route: { cluster: 'c', regex_rewrite: { pattern: { regex: '^/(a)$' }, substitution: '/\\2' } } }),
      route({ route: { cluster: 'c', prefix_rewrite: '/x', regex_rewrite: { pattern: { regex: 'a' }, substitution: 'b' } } }),
    ])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].route.regex_rewrite.substitution',
      'virtual_hosts[0].routes[1].route.regex_rewrite',
    ]);
  });

  it('rejects bad retry settings with their paths', () => {
    const ps = problems(rc([vhost([route({
      route: {
        cluster: 'c',
        retry_policy: {
          retry_on: '5xx,sometimes',
          retriable_status_codes: [700],
          retry_back_off: { base_interval: { seconds: 1 }, max_interval: { nanos: 1_000_000 } },
        },
      },
    })])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].route.retry_policy.retry_on',
      'virtual_hosts[0].routes[0].route.retry_policy.retriable_status_codes[0]',
      'virtual_hosts[0].routes[0].route.retry_policy.retry_back_off.max_interval',
    ]);
  });

  it('rejects cluster_header and empty weighted clusters', () => {
    const ps = problems(rc([vhost([
      route({ route: { cluster_header: 'x-cluster' } }),
      route({ route: { weighted_clusters: { clusters: [] } } }),
    ])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].route.cluster_header',
      'virtual_hosts[0].routes[1].route.weighted_clusters.clusters',
    ]);
  });
});

describe('routeConfigType.decode: redirect and direct response', () => {
  it.each([
    ['MOVED_PERMANENTLY', 301],
    ['FOUND', 302],
    ['SEE_OTHER', 303],
    ['TEMPORARY_REDIRECT', 307],
    ['PERMANENT_REDIRECT', 308],
  ])('response_code %s → %d', (code, status) => {
    expect((firstRoute({ match: { prefix: '/' }, redirect: { response_code: code } }).action as RedirectAction).status).toBe(status);
  });

  it('every redirect field', () => {
    const a = firstRoute({
      match: { prefix: '/' },
      redirect: { scheme_redirect: 'HTTPS', host_redirect: 'Example.COM', port_redirect: 8443, prefix_rewrite: '/new', strip_query: true, response_code: 'FOUND' },
    }).action;
    expect(a).toEqual({ kind: 'redirect', scheme: 'https', host: 'example.com', port: 8443, path: { kind: 'prefix', value: '/new' }, status: 302, stripQuery: true });
    const b = firstRoute({ match: { prefix: '/' }, redirect: { https_redirect: true, path_redirect: '/login' } }).action;
    expect(b).toEqual({ kind: 'redirect', scheme: 'https', path: { kind: 'full', value: '/login' }, status: 301, stripQuery: false });
  });

  it('direct response with an inline body', () => {
    expect(firstRoute({ match: { prefix: '/' }, direct_response: { status: 418, body: { inline_string: 'teapot' } } }).action)
      .toEqual({ kind: 'direct', status: 418, body: 'teapot' });
  });

  it('a redirect regex rewrite (what ReplacePrefixMatch to "/" becomes)', () => {
    const a = firstRoute({ match: { prefix: '/' }, redirect: { regex_rewrite: { pattern: { regex: '^/foo/*' }, substitution: '/' } } }).action as RedirectAction;
    expect(a.path).toMatchObject({ kind: 'regex', substitution: '/' });
  });

  it('rejects an out-of-range direct status and an invalid redirect regex rewrite', () => {
    const ps = problems(rc([vhost([
      { match: { prefix: '/' }, direct_response: { status: 99 } },
      { match: { prefix: '/' }, redirect: { regex_rewrite: { pattern: { regex: '(a' }, substitution: 'b' } } },
    ])]));
    expect(ps.map((p) => p.field)).toEqual([
      'virtual_hosts[0].routes[0].direct_response.status',
      'virtual_hosts[0].routes[1].redirect.regex_rewrite.pattern.regex',
    ]);
  });
});

describe('routeConfigType.decode: header mutations', () => {
  it('append_action and the legacy append flag map to domain actions', () => {
    const r = firstRoute(route({
      request_headers_to_add: [
        { header: { key: 'a', value: '1' } },
        { header: { key: 'b', value: '2' }, append_action: 'ADD_IF_ABSENT' },
        { header: { key: 'c', value: '3' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
        { header: { key: 'd', value: '4' }, append: { value: false } },
        { header: { key: 'e', value: '5' }, append: { value: true } },
        { header: { key: 'f', value: '100%%' } },
        { header: { key: 'g', value: '' } },
        { header: { key: 'h', value: '' }, keep_empty_value: true },
      ],
      request_headers_to_remove: ['X-Remove'],
    }));
    expect(r.requestHeaders.add).toEqual([
      { name: 'a', value: '1', action: 'append' },
      { name: 'b', value: '2', action: 'addIfAbsent' },
      { name: 'c', value: '3', action: 'overwrite' },
      { name: 'd', value: '4', action: 'overwrite' },
      { name: 'e', value: '5', action: 'append' },
      { name: 'f', value: '100%', action: 'append' },
      { name: 'h', value: '', action: 'append' },
    ]);
    expect(r.requestHeaders.remove).toEqual(['x-remove']);
  });

  it('rejects pseudo-headers, operators, CRLF, unsupported actions and append + append_action', () => {
    const ps = problems(rc([vhost([route({
      request_headers_to_add: [
        { header: { key: ':path', value: '/x' } },
        { header: { key: 'x', value: '%DOWNSTREAM_REMOTE_ADDRESS%' } },
        { header: { key: 'y', value: 'a\r\nb' } },
        { header: { key: 'z', value: 'v' }, append_action: 'OVERWRITE_IF_EXISTS' },
        { header: { key: 'w', value: 'v' }, append: { value: true }, append_action: 'ADD_IF_ABSENT' },
      ],
      response_headers_to_remove: [':status'],
    })])]));
    const at = 'virtual_hosts[0].routes[0]';
    expect(ps.map((p) => p.field)).toEqual([
      `${at}.request_headers_to_add[0].header.key`,
      `${at}.request_headers_to_add[1].header.value`,
      `${at}.request_headers_to_add[2].header.value`,
      `${at}.request_headers_to_add[3].append_action`,
      `${at}.request_headers_to_add[4].append`,
      `${at}.response_headers_to_remove[0]`,
    ]);
  });
});

describe('routeConfigType: several problems, equals, references', () => {
  it('reports every problem of a resource at once', () => {
    const ps = problems({
      name: '',
      virtual_hosts: [
        { name: 'a', domains: ['a'], routes: [{ match: { safe_regex: { regex: '[' } }, route: { cluster: '' } }] },
        { name: '', domains: ['b'], routes: [{ match: { prefix: '/' } }] },
      ],
    });
    expect(ps.map((p) => p.field)).toEqual([
      'name',
      'virtual_hosts[0].routes[0].match.safe_regex.regex',
      'virtual_hosts[0].routes[0].route.cluster',
      'virtual_hosts[1].name',
      'virtual_hosts[1].routes[0]',
    ]);
  });

  it('never throws on garbage bytes or a wrong type URL', () => {
    const bad = routeConfigType.decode({ type_url: TypeUrl.RouteConfiguration, value: new Uint8Array([0xff, 0xff, 0xff]) });
    expect(bad.ok).toBe(false);
    const wrong = routeConfigType.decode(pack(TypeUrl.Cluster, { name: 'x' }));
    expect(wrong.ok ? '' : wrong.problems[0]!.message).toContain('expected a envoy.config.route.v3.RouteConfiguration');
  });

  it('equals compares structurally, regexes by source and flags', () => {
    const plain = rc([vhost([route({ match: { safe_regex: { regex: '/a.*' } } })])]);
    expect(routeConfigType.equals(ok(plain), ok(plain))).toBe(true);
    const other = rc([vhost([route({ match: { safe_regex: { regex: '/b.*' } } })])]);
    expect(routeConfigType.equals(ok(plain), ok(other))).toBe(false);
  });

  it('decoded values are frozen', () => {
    const v = ok(rc([vhost([route({})])]));
    expect(Object.isFrozen(v.virtualHosts[0]!.routes)).toBe(true);
  });
});
