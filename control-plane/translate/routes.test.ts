// Table tests for route translation: HTTPRoute / GRPCRoute YAML in, Envoy routes out, covering
// matches, filters, backends (and unresolvable ones), precedence, and GAMMA attachment.
import { describe, expect, it } from 'vitest';
import type { Plain } from '../../api/codec.js';
import { MESH, routesOf, run } from './fixtures.js';

const V1 = 'outbound|9080||reviews-v1.default.svc.cluster.local';
const V2 = 'outbound|9080||reviews-v2.default.svc.cluster.local';
const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';

/** An HTTPRoute `r` (namespace default) on Service reviews with the given rules (YAML list). */
function route(rules: string, extra = ''): string {
  return `${MESH}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r${extra} }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules:
${rules
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}`;
}

function only(yaml: string): Plain {
  const routes = routesOf(run(yaml), 'reviews');
  expect(routes).toHaveLength(1);
  return routes[0] as Plain;
}

describe('matches', () => {
  const cases: { name: string; match: string; expected: Plain }[] = [
    { name: 'no matches: prefix "/"', match: '', expected: { prefix: '/' } },
    { name: 'Exact', match: 'matches: [{ path: { type: Exact, value: /a/b } }]', expected: { path: '/a/b' } },
    { name: 'PathPrefix is segment-wise; trailing "/" ignored', match: 'matches: [{ path: { value: /api/ } }]', expected: { path_separated_prefix: '/api' } },
    { name: 'RegularExpression', match: 'matches: [{ path: { type: RegularExpression, value: "/v[0-9]+/.*" } }]', expected: { safe_regex: { regex: '/v[0-9]+/.*' } } },
    {
      name: 'headers (lower-cased, exact and regex) and method',
      match: 'matches: [{ headers: [{ name: X-Env, value: canary }, { type: RegularExpression, name: x-user, value: "a.*" }], method: POST }]',
      expected: {
        prefix: '/',
        headers: [
          { name: 'x-env', string_match: { exact: 'canary' } },
          { name: 'x-user', string_match: { safe_regex: { regex: 'a.*' } } },
          { name: ':method', string_match: { exact: 'POST' } },
        ],
      },
    },
    {
      name: 'query params',
      match: 'matches: [{ queryParams: [{ name: debug, value: "1" }, { type: RegularExpression, name: id, value: "[0-9]+" }] }]',
      expected: {
        prefix: '/',
        query_parameters: [
          { name: 'debug', string_match: { exact: '1' } },
          { name: 'id', string_match: { safe_regex: { regex: '[0-9]+' } } },
        ],
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = only(route(`- ${c.match ? `${c.match}\n  ` : ''}backendRefs: [{ name: reviews-v1, port: 9080 }]`));
      expect(r.match).toEqual(c.expected);
    });
  }

  it('one Envoy route per match, all named after the rule', () => {
    const routes = routesOf(run(route(`- name: two\n  matches: [{ path: { value: /a } }, { path: { value: /bb } }]\n  backendRefs: [{ name: reviews-v1, port: 9080 }]`)), 'reviews');
    expect(routes.map((r) => [r.name, r.match])).toEqual([
      ['default/r/two', { path_separated_prefix: '/bb' }],
      ['default/r/two', { path_separated_prefix: '/a' }],
    ]);
  });
});

const OTHER_RATINGS = `apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: other }
spec: { ports: [{ port: 9080 }] }`;

const GRANT = `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: from-default, namespace: other }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default }]
  to: [{ group: "", kind: Service, name: ratings }]`;

describe('backends', () => {
  it('the canary: weighted clusters in order, named after the backend Services', () => {
    const r = only(route('- backendRefs: [{ name: reviews-v1, port: 9080, weight: 90 }, { name: reviews-v2, port: 9080, weight: 10 }]'));
    expect(r.name).toBe('default/r/0');
    expect(r.route).toEqual({
      weighted_clusters: { clusters: [{ name: V1, weight: { value: 90 } }, { name: V2, weight: { value: 10 } }] },
    });
  });

  it('a single backend uses the plain cluster form', () => {
    expect(only(route('- backendRefs: [{ name: reviews-v2, port: 9080 }]')).route).toEqual({ cluster: V2 });
  });

  it('a backend with its own header filters keeps them on its weighted cluster', () => {
    const r = only(
      route(`- backendRefs:
    - name: reviews-v1
      port: 9080
      filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Version, value: v1 }] } }, { type: ResponseHeaderModifier, responseHeaderModifier: { remove: [server] } }]`),
    );
    expect(r.route).toEqual({
      weighted_clusters: {
        clusters: [
          {
            name: V1,
            weight: { value: 1 },
            request_headers_to_add: [{ header: { key: 'x-version', value: 'v1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
            response_headers_to_remove: ['server'],
          },
        ],
      },
    });
  });

  const unresolved: { name: string; ref: string; cluster: string; extra?: string; resolves?: boolean; grantless?: boolean }[] = [
    { name: 'a Service that does not exist', ref: '{ name: ratings, port: 9080 }', cluster: 'unresolved|Service|default/ratings:9080' },
    { name: 'a port the Service does not have', ref: '{ name: reviews-v2, port: 8080 }', cluster: 'unresolved|Service|default/reviews-v2:8080' },
    { name: 'a kind that is not a Service', ref: '{ group: apps, kind: Deployment, name: reviews-v2 }', cluster: 'unresolved|Deployment|default/reviews-v2:0' },
    {
      name: 'another namespace without a ReferenceGrant',
      ref: '{ name: ratings, namespace: other, port: 9080 }',
      cluster: 'unresolved|Service|other/ratings:9080',
      extra: OTHER_RATINGS,
    },
    {
      name: 'another namespace with a ReferenceGrant (resolves)',
      ref: '{ name: ratings, namespace: other, port: 9080 }',
      cluster: 'outbound|9080||ratings.other.svc.cluster.local',
      extra: `${OTHER_RATINGS}\n---\n${GRANT}`,
      resolves: true,
    },
    {
      name: 'another namespace, grants not required (GEP-1294 mode; resolves)',
      ref: '{ name: ratings, namespace: other, port: 9080 }',
      cluster: 'outbound|9080||ratings.other.svc.cluster.local',
      extra: OTHER_RATINGS,
      resolves: true,
      grantless: true,
    },
  ];
  for (const c of unresolved) {
    it(`${c.name}: ${c.resolves ? 'routes to it' : 'keeps its share, which answers 500, while the rest works'}`, () => {
      const yaml = `${route(`- backendRefs: [{ name: reviews-v1, port: 9080, weight: 3 }, ${c.ref.replace('}', ', weight: 1 }')}]`)}${c.extra ? `\n---\n${c.extra}` : ''}`;
      const r = routesOf(run(yaml, c.grantless ? { requireReferenceGrant: false } : {}), 'reviews')[0] as Plain;
      const action = r.route as Plain;
      expect(action.weighted_clusters).toEqual({ clusters: [{ name: V1, weight: { value: 3 } }, { name: c.cluster, weight: { value: 1 } }] });
      expect(action.cluster_not_found_response_code).toBe(c.resolves ? undefined : 'INTERNAL_SERVER_ERROR');
    });
  }

  it('weight 0 backends are dropped; all weights 0, or no backends, answer 500 directly', () => {
    expect(only(route('- backendRefs: [{ name: reviews-v1, port: 9080, weight: 0 }, { name: reviews-v2, port: 9080, weight: 5 }]')).route).toEqual({ cluster: V2 });
    const zero = only(route('- backendRefs: [{ name: reviews-v1, port: 9080, weight: 0 }]'));
    expect(zero.direct_response).toEqual({ status: 500 });
    expect(zero.route).toBeUndefined();
    expect(only(route('- matches: [{ path: { value: /x } }]')).direct_response).toEqual({ status: 500 });
  });
});

describe('filters', () => {
  it('header modifiers: set overwrites, add appends, remove removes (request and response)', () => {
    const r = only(
      route(`- filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: { set: [{ name: X-A, value: "1" }], add: [{ name: x-b, value: "2" }], remove: [X-C] }
    - type: ResponseHeaderModifier
      responseHeaderModifier: { add: [{ name: x-d, value: "3" }], remove: [x-e] }
  backendRefs: [{ name: reviews-v1, port: 9080 }]`),
    );
    expect(r.request_headers_to_add).toEqual([
      { header: { key: 'x-a', value: '1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
      { header: { key: 'x-b', value: '2' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' },
    ]);
    expect(r.request_headers_to_remove).toEqual(['x-c']);
    expect(r.response_headers_to_add).toEqual([{ header: { key: 'x-d', value: '3' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' }]);
    expect(r.response_headers_to_remove).toEqual(['x-e']);
  });

  it('mirrors: percent, 100 % by default, several targets, unresolvable targets left out', () => {
    const r = only(
      route(`- filters:
    - { type: RequestMirror, requestMirror: { backendRef: { name: reviews-v2, port: 9080 }, percent: 10 } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: reviews, port: 9080 } } }
    - { type: RequestMirror, requestMirror: { backendRef: { name: nowhere, port: 9080 } } }
  backendRefs: [{ name: reviews-v1, port: 9080 }]`),
    );
    expect((r.route as Plain).request_mirror_policies).toEqual([
      { cluster: V2, runtime_fraction: { default_value: { numerator: 10, denominator: 'HUNDRED' } } },
      { cluster: REVIEWS, runtime_fraction: { default_value: { numerator: 100, denominator: 'HUNDRED' } } },
    ]);
  });

  const rewrites: { name: string; match: string; path: string; expected: Plain }[] = [
    { name: 'ReplaceFullPath', match: '/foo', path: '{ type: ReplaceFullPath, replaceFullPath: /new }', expected: { regex_rewrite: { pattern: { regex: '^.*$' }, substitution: '/new' } } },
    { name: 'prefix to prefix', match: '/foo', path: '{ type: ReplacePrefixMatch, replacePrefixMatch: /xyz/ }', expected: { prefix_rewrite: '/xyz' } },
    { name: 'prefix to "/" (no doubled slash)', match: '/foo/', path: '{ type: ReplacePrefixMatch, replacePrefixMatch: / }', expected: { regex_rewrite: { pattern: { regex: '^/foo/*' }, substitution: '/' } } },
    { name: 'prefix "/" to a prefix', match: '/', path: '{ type: ReplacePrefixMatch, replacePrefixMatch: /xyz }', expected: { regex_rewrite: { pattern: { regex: '^/' }, substitution: '/xyz/' } } },
    { name: 'a prefix with regex characters is escaped', match: '/a.b', path: '{ type: ReplacePrefixMatch, replacePrefixMatch: "" }', expected: { regex_rewrite: { pattern: { regex: '^/a\\.b/*' }, substitution: '/' } } },
  ];
  for (const c of rewrites) {
    it(`URLRewrite ${c.name}`, () => {
      const r = only(route(`- matches: [{ path: { value: "${c.match}" } }]\n  filters: [{ type: URLRewrite, urlRewrite: { hostname: internal.example, path: ${c.path} } }]\n  backendRefs: [{ name: reviews-v1, port: 9080 }]`));
      expect(r.route).toEqual({ cluster: V1, host_rewrite_literal: 'internal.example', ...c.expected });
    });
  }

  const redirects: { name: string; redirect: string; match?: string; expected: Plain }[] = [
    { name: 'defaults to 302; no scheme and no port: the Service port', redirect: '{ hostname: example.com }', expected: { host_redirect: 'example.com', port_redirect: 9080, response_code: 'FOUND' } },
    { name: 'a scheme brings its well-known port', redirect: '{ scheme: https, statusCode: 301 }', expected: { scheme_redirect: 'https', port_redirect: 443, response_code: 'MOVED_PERMANENTLY' } },
    { name: 'an explicit port wins', redirect: '{ scheme: http, port: 8080, statusCode: 307 }', expected: { scheme_redirect: 'http', port_redirect: 8080, response_code: 'TEMPORARY_REDIRECT' } },
    { name: 'full path', redirect: '{ path: { type: ReplaceFullPath, replaceFullPath: /elsewhere }, statusCode: 303 }', expected: { path_redirect: '/elsewhere', port_redirect: 9080, response_code: 'SEE_OTHER' } },
    { name: 'prefix', redirect: '{ path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 }, statusCode: 308 }', match: '/v1', expected: { prefix_rewrite: '/v2', port_redirect: 9080, response_code: 'PERMANENT_REDIRECT' } },
  ];
  for (const c of redirects) {
    it(`RequestRedirect: ${c.name}`, () => {
      const r = only(route(`- matches: [{ path: { value: "${c.match ?? '/'}" } }]\n  filters: [{ type: RequestRedirect, requestRedirect: ${c.redirect} }]`));
      expect(r.redirect).toEqual(c.expected);
      expect(r.route).toBeUndefined();
    });
  }
});

describe('timeouts and retries', () => {
  it('request → timeout; backendRequest bounds the request when there are no retries', () => {
    expect(only(route('- timeouts: { request: 10s }\n  backendRefs: [{ name: reviews-v1, port: 9080 }]')).route).toEqual({ cluster: V1, timeout: { seconds: 10 } });
    expect(only(route('- timeouts: { request: 10s, backendRequest: 1500ms }\n  backendRefs: [{ name: reviews-v1, port: 9080 }]')).route).toEqual({
      cluster: V1,
      timeout: { seconds: 1, nanos: 500_000_000 },
    });
  });

  it('retry: codes, attempts, backoff, and backendRequest as the per-try timeout', () => {
    const r = only(
      route('- timeouts: { request: 10s, backendRequest: 2s }\n  retry: { codes: [500, 503], attempts: 3, backoff: 250ms }\n  backendRefs: [{ name: reviews-v1, port: 9080 }]'),
    );
    expect(r.route).toEqual({
      cluster: V1,
      timeout: { seconds: 10 },
      retry_policy: {
        retry_on: 'connect-failure,refused-stream,reset,retriable-status-codes',
        num_retries: { value: 3 },
        retriable_status_codes: [500, 503],
        retry_back_off: { base_interval: { seconds: 0, nanos: 250_000_000 } },
        per_try_timeout: { seconds: 2 },
      },
    });
  });

  it('retry without codes retries connection failures once', () => {
    const r = only(route('- retry: {}\n  backendRefs: [{ name: reviews-v1, port: 9080 }]'));
    expect((r.route as Plain).retry_policy).toEqual({ retry_on: 'connect-failure,refused-stream,reset', num_retries: { value: 1 } });
  });
});

describe('precedence across all rules of all routes', () => {
  function names(yaml: string): string[] {
    return routesOf(run(yaml), 'reviews').map((r) => `${String(r.name)} ${JSON.stringify(r.match)}`);
  }
  const B = 'backendRefs: [{ name: reviews-v1, port: 9080 }]';

  it('exact > longest prefix > method > most headers > most query params > rule order', () => {
    const yaml = route(`
- name: catch-all
  ${B}
- name: short-prefix
  matches: [{ path: { value: /a } }]
  ${B}
- name: query
  matches: [{ path: { value: /a/b }, queryParams: [{ name: q, value: "1" }] }]
  ${B}
- name: header
  matches: [{ path: { value: /a/b }, headers: [{ name: h, value: "1" }] }]
  ${B}
- name: method
  matches: [{ path: { value: /a/b }, method: GET }]
  ${B}
- name: long-prefix
  matches: [{ path: { value: /a/b } }]
  ${B}
- name: exact
  matches: [{ path: { type: Exact, value: /a } }]
  ${B}
- name: long-prefix-again
  matches: [{ path: { value: /a/b/ } }]
  ${B}`);
    expect(names(yaml).map((n) => n.split(' ')[0])).toEqual([
      'default/r/exact',
      'default/r/method',
      'default/r/header',
      'default/r/query',
      'default/r/long-prefix',
      'default/r/long-prefix-again',
      'default/r/short-prefix',
      'default/r/catch-all',
    ]);
  });

  it('across routes: the older route first, then namespace/name alphabetically', () => {
    const second = (name: string, created?: string) => `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}${created ? `, creationTimestamp: "${created}"` : ''} }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules: [{ matches: [{ path: { value: /same } }], ${B} }]`;
    const yaml = MESH + second('b') + second('a') + second('c', '2024-01-01T00:00:00Z') + second('d', '2023-01-01T00:00:00Z');
    expect(names(yaml).map((n) => n.split(' ')[0])).toEqual(['default/d/0', 'default/c/0', 'default/a/0', 'default/b/0']);
  });

  it('a regex ranks with prefixes by its length, so the catch-all never hides it', () => {
    const yaml = route(`
- name: root
  ${B}
- name: regex
  matches: [{ path: { type: RegularExpression, value: "/[0-9]+" } }]
  ${B}
- name: long
  matches: [{ path: { value: /reviews/all } }]
  ${B}`);
    expect(names(yaml).map((n) => n.split(' ')[0])).toEqual(['default/r/long', 'default/r/regex', 'default/r/root']);
  });
});

describe('attachment (GAMMA)', () => {
  const consumerNs = `
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: c, namespace: team }
spec: { address: 127.0.0.1 }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: c, namespace: elsewhere }
spec: { address: 127.0.0.1 }`;
  const consumerRoute = `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mine, namespace: team }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, namespace: default }]
  rules: [{ backendRefs: [{ name: reviews-v2, namespace: default, port: 9080 }] }]`;
  const producer = route('- backendRefs: [{ name: reviews-v1, port: 9080 }]');
  const yaml = producer + consumerNs + consumerRoute;
  // The consumer route sends to its parent's namespace, which needs no ReferenceGrant.
  const opts = {};

  it('a producer route applies to clients in every namespace', () => {
    expect(routesOf(run(producer + consumerNs, { workload: 'c', namespace: 'elsewhere' }), 'reviews')[0]?.route).toEqual({ cluster: V1 });
  });

  it('a consumer route replaces the producer routes for its own namespace only', () => {
    expect(routesOf(run(yaml, { workload: 'c', namespace: 'team', ...opts }), 'reviews').map((r) => r.name)).toEqual(['team/mine/0']);
    expect(routesOf(run(yaml, { workload: 'c', namespace: 'elsewhere', ...opts }), 'reviews').map((r) => r.name)).toEqual(['default/r/0']);
    expect(routesOf(run(yaml, opts), 'reviews').map((r) => r.name)).toEqual(['default/r/0']);
  });

  it('parentRef.port (or sectionName) restricts a route to that Service port', () => {
    const twoPorts = `
apiVersion: v1
kind: Service
metadata: { name: multi }
spec: { selector: { app: reviews }, ports: [{ name: http, port: 80 }, { name: admin, port: 9000 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: by-port }
spec:
  parentRefs: [{ group: "", kind: Service, name: multi, port: 9000 }]
  rules: [{ backendRefs: [{ name: reviews-v1, port: 9080 }] }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: by-name }
spec:
  parentRefs: [{ group: "", kind: Service, name: multi, sectionName: http }]
  rules: [{ backendRefs: [{ name: reviews-v2, port: 9080 }] }]`;
    const set = run(`${MESH}\n---\n${twoPorts}`);
    expect(routesOf(set, 'multi', 9000).map((r) => r.name)).toEqual(['default/by-port/0']);
    expect(routesOf(set, 'multi', 80).map((r) => r.name)).toEqual(['default/by-name/0']);
  });

  it('routes whose parent is a Gateway, or another Service, do not touch this one', () => {
    const other = `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: gw }
spec:
  parentRefs: [{ name: some-gateway }]
  rules: [{ backendRefs: [{ name: reviews-v1, port: 9080 }] }]`;
    expect(routesOf(run(MESH + other), 'reviews').map((r) => r.name)).toEqual(['default']);
  });

  it('an unacceptable route is not translated at all; other routes on the same Service are unaffected', () => {
    const bad = `
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: broken }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules: [{ matches: [{ path: { type: RegularExpression, value: "/(" } }], backendRefs: [{ name: reviews-v2, port: 9080 }] }]`;
    expect(routesOf(run(producer + bad), 'reviews').map((r) => r.name)).toEqual(['default/r/0']);
    // Alone, it leaves the Service with its default route.
    expect(routesOf(run(MESH + bad), 'reviews').map((r) => r.name)).toEqual(['default']);
  });
});

describe('GRPCRoute', () => {
  const grpc = (rules: string) => `${MESH}
---
apiVersion: v1
kind: Service
metadata: { name: greeter }
spec: { selector: { app: reviews }, ports: [{ name: grpc, port: 50051, targetPort: 19081 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs: [{ group: "", kind: Service, name: greeter }]
  rules:
${rules}`;
  const G = 'outbound|50051||greeter.default.svc.cluster.local';

  const cases: { name: string; method: string; expected: Plain }[] = [
    { name: 'service and method: exact path', method: '{ service: helloworld.Greeter, method: SayHello }', expected: { path: '/helloworld.Greeter/SayHello' } },
    { name: 'service only: prefix', method: '{ service: helloworld.Greeter }', expected: { prefix: '/helloworld.Greeter/' } },
    { name: 'method only: regex on any service', method: '{ method: SayHello }', expected: { safe_regex: { regex: '/[^/]+/SayHello' } } },
    { name: 'regular expressions', method: '{ type: RegularExpression, service: "hello.*", method: "Say.*" }', expected: { safe_regex: { regex: '/(?:hello.*)/(?:Say.*)' } } },
    { name: 'a regular expression keeps a leading "."', method: '{ type: RegularExpression, service: ".*\\\\.Greeter" }', expected: { safe_regex: { regex: '/(?:.*\\.Greeter)/[^/]+' } } },
    { name: 'an Exact service drops a leading "."', method: '{ service: .helloworld.Greeter, method: SayHello }', expected: { path: '/helloworld.Greeter/SayHello' } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = routesOf(run(grpc(`    - matches: [{ method: ${c.method}, headers: [{ name: X-Tenant, value: a }] }]\n      backendRefs: [{ name: greeter, port: 50051 }]`)), 'greeter', 50051)[0];
      expect(r?.match).toEqual({ ...c.expected, grpc: {}, headers: [{ name: 'x-tenant', string_match: { exact: 'a' } }] });
      expect(r?.route).toEqual({ cluster: G });
    });
  }

  it('no matches: every gRPC call; header modifiers and weights as for HTTP', () => {
    const [r] = routesOf(
      run(
        grpc(`    - filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-a, value: "1" }] } }]
      backendRefs: [{ name: greeter, port: 50051, weight: 4 }, { name: reviews-v1, port: 9080, weight: 1 }]`),
      ),
      'greeter',
      50051,
    );
    expect(r?.match).toEqual({ prefix: '/', grpc: {} });
    expect(r?.request_headers_to_add).toEqual([{ header: { key: 'x-a', value: '1' }, append_action: 'APPEND_IF_EXISTS_OR_ADD' }]);
    expect((r?.route as Plain).weighted_clusters).toEqual({ clusters: [{ name: G, weight: { value: 4 } }, { name: V1, weight: { value: 1 } }] });
  });

  it('most specific first: longer service, then longer method', () => {
    const routes = routesOf(
      run(
        grpc(`    - name: any
      backendRefs: [{ name: greeter, port: 50051 }]
    - name: svc
      matches: [{ method: { service: helloworld.Greeter } }]
      backendRefs: [{ name: greeter, port: 50051 }]
    - name: full
      matches: [{ method: { service: helloworld.Greeter, method: SayHello } }]
      backendRefs: [{ name: greeter, port: 50051 }]`),
      ),
      'greeter',
      50051,
    );
    expect(routes.map((r) => r.name)).toEqual(['default/g/full', 'default/g/svc', 'default/g/any']);
  });

  it('a rule without a backend that may receive calls answers 503 (gRPC UNAVAILABLE, not UNKNOWN)', () => {
    const [r] = routesOf(run(grpc('    - backendRefs: [{ name: greeter, port: 50051, weight: 0 }]')), 'greeter', 50051);
    expect(r?.direct_response).toEqual({ status: 503 });
  });

  it('wins over an HTTPRoute on the same Service port', () => {
    const yaml = `${grpc('    - backendRefs: [{ name: greeter, port: 50051 }]')}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: h }
spec:
  parentRefs: [{ group: "", kind: Service, name: greeter }]
  rules: [{ backendRefs: [{ name: reviews-v1, port: 9080 }] }]`;
    expect(routesOf(run(yaml), 'greeter', 50051).map((r) => r.name)).toEqual(['default/g/0']);
  });
});
