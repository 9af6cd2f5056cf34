// Route selection as the Gateway API spec states it, without sockets: HTTPRoute / GRPCRoute YAML
// → the control plane's translation → the RDS resource a proxy decodes → the proxy's planner,
// for request facts. One named case per spec rule (many ported from the conformance suite's
// tables): which rule wins, which backend, what path/host/headers go upstream, what a redirect says.
import { describe, expect, it } from 'vitest';
import { pack } from '../../api/codec.js';
import type { HeaderMutation, RouteConfig, VirtualHost } from '../../api/domain.js';
import { routeConfigType } from '../../api/route-config.js';
import { virtualHostType } from '../../api/virtual-host.js';
import { effectiveRoutes } from '../../proxy/route/assemble.js';
import { TypeUrl } from '../../api/types.js';
import { run, type RunOptions } from '../../control-plane/translate/fixtures.js';
import { applyHeaderMutations } from '../../proxy/route/headers.js';
import { planRoutes } from '../../proxy/route/plan.js';
import type { Plan, RequestFacts } from '../../proxy/route/types.js';

/** Services echo (parent), echo-v1, echo-v2, echo-v3 on port 80 in `default` (8080 too on echo). */
const SERVICES = ['echo', 'echo-v1', 'echo-v2', 'echo-v3']
  .map(
    (name) => `apiVersion: v1
kind: Service
metadata: { name: ${name} }
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 80, targetPort: 8080 }${name === 'echo' ? ', { name: http-alt, port: 8080, targetPort: 8080 }' : ''}]
`,
  )
  .join('---\n');

const CLUSTER = (svc: string, port = 80) => `outbound|${port}||${svc}.default.svc.cluster.local`;
const V1 = CLUSTER('echo-v1');
const V2 = CLUSTER('echo-v2');
const V3 = CLUSTER('echo-v3');

function httpRoute(name: string, rules: string, extra = ''): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}${extra} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
${rules
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

/** Translates, packs and decodes as a proxy would; any NACK-worthy problem fails the test. */
function routeConfig(yaml: string, opts: RunOptions = {}): RouteConfig {
  const set = run(`${SERVICES}---\n${yaml}`, opts);
  const plain = set[TypeUrl.RouteConfiguration].get('outbound');
  if (!plain) throw new Error('no outbound route configuration');
  const nack = (problems: readonly { field: string; message: string }[]) => new Error(`the proxy would NACK: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`);
  const decoded = routeConfigType.decode(pack(TypeUrl.RouteConfiguration, plain));
  if (!decoded.ok) throw nack(decoded.problems);
  // Its virtual hosts come from VHDS, each decoded as the proxy decodes it.
  const virtualHosts = new Map<string, VirtualHost>();
  for (const [name, vh] of set[TypeUrl.VirtualHost]) {
    const d = virtualHostType.decode(pack(TypeUrl.VirtualHost, vh));
    if (!d.ok) throw nack(d.problems);
    virtualHosts.set(name, d.value);
  }
  return effectiveRoutes({ virtualHosts }, decoded.value);
}

interface Request {
  readonly host?: string;
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
}

function facts(r: Request): RequestFacts {
  const headers = Object.fromEntries(Object.entries(r.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return {
    authority: r.host ?? 'echo',
    method: r.method ?? 'GET',
    path: r.path ?? '/',
    scheme: 'http',
    header: (n) => headers[n],
    headerValues: (n) => (headers[n] === undefined ? [] : [headers[n]!]),
  };
}

/** The decision in a few words: rule and cluster, or status and location, or `404`. */
function decide(rc: RouteConfig, r: Request, random = () => 0): Plan {
  return planRoutes(rc, facts(r), random);
}

function outcome(p: Plan): string {
  switch (p.kind) {
    case 'forward':
      return `${p.route.name} → ${p.cluster}`;
    case 'redirect':
      return `${p.status} ${p.location}`;
    case 'direct':
      return `${p.status}`;
    case 'noRoute':
      return '404';
  }
}

function upstreamHeaders(p: Plan, incoming: Record<string, string> = {}): Record<string, string | string[]> {
  if (p.kind !== 'forward') throw new Error(`not forwarded: ${outcome(p)}`);
  return applyHeaderMutations(incoming, p.requestHeaders as HeaderMutation[]);
}

describe('path matching (conformance HTTPRouteMatching, HTTPRouteExactPathMatching, HTTPRoutePathMatchOrder)', () => {
  const rc = routeConfig(
    httpRoute(
      'r',
      `
- name: exact-one
  matches: [{ path: { type: Exact, value: /one } }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- name: exact-two
  matches: [{ path: { type: Exact, value: /two } }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- name: v2
  matches: [{ path: { type: PathPrefix, value: /v2 } }, { headers: [{ name: version, value: two }] }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- name: match
  matches: [{ path: { value: /match } }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- name: match-exact
  matches: [{ path: { type: Exact, value: /match/exact } }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- name: match-exact-one
  matches: [{ path: { type: Exact, value: /match/exact/one } }]
  backendRefs: [{ name: echo-v3, port: 80 }]
- name: match-prefix-one
  matches: [{ path: { value: /match/prefix/one } }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- name: match-prefix
  matches: [{ path: { value: /match/prefix } }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- name: regex
  matches: [{ path: { type: RegularExpression, value: "/match/[a-z]+" } }]
  backendRefs: [{ name: echo-v3, port: 80 }]
- name: root
  backendRefs: [{ name: echo-v1, port: 80 }]
`,
    ),
  );
  const cases: [string, Request, string][] = [
    ['"/" falls to the catch-all', { path: '/' }, `default/r/root → ${V1}`],
    ['Exact /one', { path: '/one' }, `default/r/exact-one → ${V1}`],
    ['Exact is not a prefix: /one/example', { path: '/one/example' }, `default/r/root → ${V1}`],
    ['Exact does not ignore a trailing "/"', { path: '/one/' }, `default/r/root → ${V1}`],
    ['Exact is case-sensitive', { path: '/Two' }, `default/r/root → ${V1}`],
    ['PathPrefix /v2', { path: '/v2' }, `default/r/v2 → ${V2}`],
    ['PathPrefix /v2/', { path: '/v2/' }, `default/r/v2 → ${V2}`],
    ['PathPrefix /v2/example', { path: '/v2/example' }, `default/r/v2 → ${V2}`],
    ['PathPrefix is segment-wise: /v2example', { path: '/v2example' }, `default/r/root → ${V1}`],
    ['PathPrefix does not match in the middle', { path: '/foo/v2/example' }, `default/r/root → ${V1}`],
    ['a second match of a rule is ORed: header only', { path: '/', headers: { Version: 'two' } }, `default/r/v2 → ${V2}`],
    ['the query is not part of the path', { path: '/one?x=/v2' }, `default/r/exact-one → ${V1}`],
    ['order: Exact /match/exact/one', { path: '/match/exact/one' }, `default/r/match-exact-one → ${V3}`],
    ['order: Exact /match/exact', { path: '/match/exact' }, `default/r/match-exact → ${V2}`],
    ['order: the prefix /match itself', { path: '/match' }, `default/r/match → ${V1}`],
    ['order: longest prefix /match/prefix/one', { path: '/match/prefix/one/any' }, `default/r/match-prefix-one → ${V2}`],
    ['order: prefix /match/prefix', { path: '/match/prefix/any' }, `default/r/match-prefix → ${V1}`],
    ['order: a longer regex beats a shorter prefix', { path: '/match/any' }, `default/r/regex → ${V3}`],
  ];
  for (const [name, req, expected] of cases) it(name, () => expect(outcome(decide(rc, req))).toBe(expected));
});

describe('header matching (conformance HTTPRouteHeaderMatching)', () => {
  const rc = routeConfig(
    httpRoute(
      'h',
      `
- matches: [{ headers: [{ name: Version, value: one }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ headers: [{ name: Version, value: two }] }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- matches: [{ headers: [{ name: Version, value: two }, { name: Color, value: orange }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ headers: [{ name: Color, value: blue }] }, { headers: [{ name: Color, value: green }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ headers: [{ name: Color, value: red }] }, { headers: [{ name: Color, value: yellow }] }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- matches: [{ headers: [{ type: RegularExpression, name: Tenant, value: "t-[0-9]+" }] }]
  backendRefs: [{ name: echo-v3, port: 80 }]
`,
    ),
  );
  const cases: [string, Record<string, string>, string][] = [
    ['Version: one', { Version: 'one' }, V1],
    ['Version: two', { Version: 'two' }, V2],
    ['more headers win: Version two + Color orange', { Version: 'two', Color: 'orange' }, V1],
    ['equal header counts: the earlier rule', { Version: 'two', Color: 'blue' }, V2],
    ['only part of a match: no route', { Color: 'orange' }, '404'],
    ['an unrelated header: no route', { 'Some-Other-Header': 'one' }, '404'],
    ['Color: blue', { Color: 'blue' }, V1],
    ['Color: green', { Color: 'green' }, V1],
    ['Color: red', { Color: 'red' }, V2],
    ['Color: yellow', { Color: 'yellow' }, V2],
    ['Color: purple', { Color: 'purple' }, '404'],
    ['header names are case-insensitive', { VERSION: 'one' }, V1],
    ['header values are case-sensitive', { Version: 'ONE' }, '404'],
    ['RegularExpression header: whole value', { Tenant: 't-42' }, V3],
    ['RegularExpression header: partial value is no match', { Tenant: 'xt-42' }, '404'],
  ];
  for (const [name, headers, cluster] of cases) {
    it(name, () => {
      const p = decide(rc, { headers });
      expect(p.kind === 'forward' ? p.cluster : outcome(p)).toBe(cluster);
    });
  }
});

describe('query parameter and method matching (conformance HTTPRouteQueryParamMatching, HTTPRouteMethodMatching)', () => {
  const rc = routeConfig(
    httpRoute(
      'q',
      `
- matches: [{ queryParams: [{ name: animal, value: whale }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ queryParams: [{ name: animal, value: dolphin }] }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- matches: [{ queryParams: [{ name: animal, value: dolphin }, { name: color, value: blue }] }, { queryParams: [{ name: ANIMAL, value: Whale }] }]
  backendRefs: [{ name: echo-v3, port: 80 }]
- matches: [{ path: { value: /m }, method: POST }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ path: { value: /m }, method: GET }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- matches: [{ path: { value: /m }, method: GET, headers: [{ name: version, value: one }] }]
  backendRefs: [{ name: echo-v3, port: 80 }]
`,
    ),
  );
  const cases: [string, Request, string][] = [
    ['animal=whale', { path: '/?animal=whale' }, V1],
    ['animal=dolphin', { path: '/?animal=dolphin' }, V2],
    ['more query matches win', { path: '/?animal=dolphin&color=blue' }, V3],
    ['query names and values are case-sensitive', { path: '/?ANIMAL=Whale' }, V3],
    ['a percent-encoded value is decoded', { path: '/?animal=wh%61le' }, V1],
    ['no matching parameter: no route', { path: '/?animal=shark' }, '404'],
    ['POST', { path: '/m', method: 'POST' }, V1],
    ['GET', { path: '/m', method: 'GET' }, V2],
    ['method and header both', { path: '/m', method: 'GET', headers: { version: 'one' } }, V3],
    ['another method: no route', { path: '/m', method: 'PUT' }, '404'],
  ];
  for (const [name, req, cluster] of cases) {
    it(name, () => {
      const p = decide(rc, req);
      expect(p.kind === 'forward' ? p.cluster : outcome(p)).toBe(cluster);
    });
  }
});

describe('precedence across routes (conformance HTTPRouteMatchingAcrossRoutes; the spec tie-breakers)', () => {
  const yaml = [
    httpRoute(
      'b-newer',
      `
- matches: [{ path: { value: /shared } }]
  backendRefs: [{ name: echo-v2, port: 80 }]
- matches: [{ path: { value: /method }, method: GET }]
  backendRefs: [{ name: echo-v2, port: 80 }]
`,
      ', creationTimestamp: "2024-05-01T00:00:00Z"',
    ),
    httpRoute(
      'a-older',
      `
- matches: [{ path: { value: /shared } }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ path: { value: /method }, headers: [{ name: a, value: "1" }, { name: b, value: "1" }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
- matches: [{ path: { value: /query }, headers: [{ name: a, value: "1" }] }]
  backendRefs: [{ name: echo-v1, port: 80 }]
`,
      ', creationTimestamp: "2024-01-01T00:00:00Z"',
    ),
    httpRoute(
      'c-same-age',
      `
- matches: [{ path: { value: /query }, headers: [{ name: a, value: "1" }], queryParams: [{ name: q, value: "1" }] }]
  backendRefs: [{ name: echo-v3, port: 80 }]
- matches: [{ path: { value: /tie } }]
  backendRefs: [{ name: echo-v3, port: 80 }]
`,
      ', creationTimestamp: "2024-01-01T00:00:00Z"',
    ),
    httpRoute(
      'd-same-age',
      `
- matches: [{ path: { value: /tie } }]
  backendRefs: [{ name: echo-v2, port: 80 }]
`,
      ', creationTimestamp: "2024-01-01T00:00:00Z"',
    ),
  ].join('---\n');
  const rc = routeConfig(yaml);
  const cases: [string, Request, string][] = [
    ['identical matches: the oldest route', { path: '/shared' }, V1],
    ['a method match beats two header matches', { path: '/method', headers: { a: '1', b: '1' } }, V2],
    ['a query param match breaks a header tie', { path: '/query?q=1', headers: { a: '1' } }, V3],
    ['same age: alphabetical by namespace/name', { path: '/tie' }, V3],
  ];
  for (const [name, req, cluster] of cases) {
    it(name, () => {
      const p = decide(rc, req);
      expect(p.kind === 'forward' ? p.cluster : outcome(p)).toBe(cluster);
    });
  }
});

describe('GAMMA attachment: Service ports, producer and consumer routes (conformance MeshPorts, MeshConsumerRoute)', () => {
  const yaml = `${httpRoute('producer', `- backendRefs: [{ name: echo-v1, port: 80 }]`)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: consumer, namespace: team }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, namespace: default }]
  rules: [{ backendRefs: [{ name: echo-v2, namespace: default, port: 80 }] }]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: team }
spec: { address: 127.0.0.1 }
`;
  it('a parentRef port applies the route to that port only; the other port keeps its own backend', () => {
    const rc = routeConfig(yaml);
    expect(outcome(decide(rc, { host: 'echo' }))).toBe(`default/producer/0 → ${V1}`);
    expect(outcome(decide(rc, { host: 'echo:8080' }))).toBe(`default → ${CLUSTER('echo', 8080)}`);
  });
  it('the consumer route replaces the producer route for its namespace, not for others', () => {
    expect(outcome(decide(routeConfig(yaml, { workload: 'client', namespace: 'team' }), { host: 'echo.default' }))).toBe(`team/consumer/0 → ${V2}`);
    expect(outcome(decide(routeConfig(yaml), { host: 'echo.default' }))).toBe(`default/producer/0 → ${V1}`);
  });
});

describe('weights', () => {
  const rc = routeConfig(
    httpRoute('w', `- backendRefs: [{ name: echo-v1, port: 80, weight: 0 }, { name: echo-v2, port: 80, weight: 3 }, { name: ghost, port: 80, weight: 0 }, { name: echo-v3, port: 80, weight: 1 }]`),
  );
  it('weight 0 never receives traffic, whatever the draw (even for a Service that does not exist)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const p = decide(rc, {}, () => i / 100);
      if (p.kind === 'forward') seen.add(p.cluster);
    }
    expect([...seen].sort()).toEqual([V2, V3]);
  });
  it('the share of a backend is its weight over the sum', () => {
    let v2 = 0;
    for (let i = 0; i < 1000; i++) if ((decide(rc, {}, () => i / 1000) as { cluster?: string }).cluster === V2) v2++;
    expect(v2).toBe(750);
  });
  it('all weights 0: 500', () => {
    expect(outcome(decide(routeConfig(httpRoute('z', `- backendRefs: [{ name: echo-v1, port: 80, weight: 0 }]`)), {}))).toBe('500');
  });
});

describe('filters', () => {
  it('RequestHeaderModifier (conformance HTTPRouteRequestHeaderModifier): set, add, remove; names case-insensitive', () => {
    const rc = routeConfig(
      httpRoute(
        'f',
        `- filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: X-Header-Set, value: set-overwrites-values }], add: [{ name: X-Header-Add, value: add-appends-values }], remove: [X-Header-Remove] } }]
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
    const p = decide(rc, {});
    expect(upstreamHeaders(p, { 'x-header-set': 'some-other-value', 'X-HEADER-ADD': 'some-other-value', 'x-Header-Remove': 'x' })).toEqual({
      'x-header-set': 'set-overwrites-values',
      'X-HEADER-ADD': ['some-other-value', 'add-appends-values'],
    });
  });

  const rewrite = (match: string, replace: string) =>
    routeConfig(
      httpRoute(
        'rw',
        `- matches: [{ path: { value: "${match}" } }]
  filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: "${replace}" } } }]
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
  // The spec's own table (HTTPPathModifier.ReplacePrefixMatch).
  const table: [string, string, string, string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ];
  for (const [path, match, replace, expected] of table) {
    it(`URLRewrite ReplacePrefixMatch: ${path} with prefix ${match} → ${JSON.stringify(replace)} gives ${expected}`, () => {
      const p = decide(rewrite(match, replace), { path });
      expect(p.kind === 'forward' && p.path).toBe(expected);
    });
  }

  it('URLRewrite ReplaceFullPath and hostname (conformance HTTPRouteRewritePath, HTTPRouteRewriteHost)', () => {
    const rc = routeConfig(
      httpRoute(
        'full',
        `- matches: [{ path: { value: /full } }]
  filters: [{ type: URLRewrite, urlRewrite: { hostname: one.example.org, path: { type: ReplaceFullPath, replaceFullPath: /one } } }]
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
    const p = decide(rc, { path: '/full/path/original?q=v' });
    expect(p.kind === 'forward' && [p.path, p.authority]).toEqual(['/one?q=v', 'one.example.org']);
  });

  it('values that look like Envoy syntax stay literal: "%" in a header, "\\" in a path', () => {
    const rc = routeConfig(
      httpRoute(
        'lit',
        `- matches: [{ path: { value: /lit } }]
  filters:
  - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-pct, value: "100%DOWNSTREAM_REMOTE_ADDRESS%" }] } }
  - { type: URLRewrite, urlRewrite: { path: { type: ReplaceFullPath, replaceFullPath: '/a\\1b' } } }
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
    const p = decide(rc, { path: '/lit' });
    expect(p.kind === 'forward' && p.path).toBe('/a\\1b');
    expect(upstreamHeaders(p)).toEqual({ 'x-pct': '100%DOWNSTREAM_REMOTE_ADDRESS%' });
  });

  it('ResponseHeaderModifier travels on the plan', () => {
    const rc = routeConfig(
      httpRoute('resp', `- filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: X-Add, value: "1" }] } }]\n  backendRefs: [{ name: echo-v1, port: 80 }]`),
    );
    const p = decide(rc, {});
    expect(p.kind === 'forward' && applyHeaderMutations({ 'x-add': '0' }, p.responseHeaders as HeaderMutation[])).toEqual({ 'x-add': ['0', '1'] });
  });

  it('RequestMirror: several targets, each with its fraction', () => {
    const rc = routeConfig(
      httpRoute(
        'm',
        `- filters:
  - { type: RequestMirror, requestMirror: { backendRef: { name: echo-v2, port: 80 } } }
  - { type: RequestMirror, requestMirror: { backendRef: { name: echo-v3, port: 80 }, fraction: { numerator: 1, denominator: 3 } } }
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
    const p = decide(rc, {}, () => 0.99);
    expect(p.kind === 'forward' && p.mirrors.map((m) => m.cluster)).toEqual([V2]);
    const q = decide(rc, {}, () => 0.1);
    expect(q.kind === 'forward' && q.mirrors.map((m) => m.cluster)).toEqual([V2, V3]);
  });
});

describe('RequestRedirect (conformance HTTPRouteRedirect*: scheme, host, port, path, status)', () => {
  const rc = routeConfig(
    [
      httpRoute(
        'rd',
        `
- matches: [{ path: { value: /scheme-nil-and-port-nil } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
- matches: [{ path: { value: /scheme-nil-and-port-80 } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org, port: 80 } }]
- matches: [{ path: { value: /scheme-nil-and-port-8080 } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org, port: 8080 } }]
- matches: [{ path: { value: /scheme-https-and-port-nil } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org } }]
- matches: [{ path: { value: /scheme-https-and-port-443 } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, port: 443 } }]
- matches: [{ path: { value: /scheme-https-and-port-8443 } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, port: 8443 } }]
- matches: [{ path: { value: /full } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /full-path-replacement }, statusCode: 301 } }]
- matches: [{ path: { value: /prefix } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix }, statusCode: 303 } }]
- matches: [{ path: { value: /strip } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / }, statusCode: 307 } }]
- matches: [{ path: { value: /code } }]
  filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 308 } }]
`,
      ),
      // The same rules on the Service's other port: no scheme and no port means that port.
      httpRoute('rd-alt', `- filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]`).replace('port: 80 }]', 'port: 8080 }]'),
    ].join('---\n'),
  );
  const cases: [string, Request, string][] = [
    ['scheme nil, port nil: the Service port 80, left out', { path: '/scheme-nil-and-port-nil' }, '302 http://example.org/scheme-nil-and-port-nil'],
    ['scheme nil, port 80: left out', { path: '/scheme-nil-and-port-80' }, '302 http://example.org/scheme-nil-and-port-80'],
    ['scheme nil, port 8080', { path: '/scheme-nil-and-port-8080' }, '302 http://example.org:8080/scheme-nil-and-port-8080'],
    ['scheme https, port nil: 443, left out', { path: '/scheme-https-and-port-nil' }, '302 https://example.org/scheme-https-and-port-nil'],
    ['scheme https, port 443: left out', { path: '/scheme-https-and-port-443' }, '302 https://example.org/scheme-https-and-port-443'],
    ['scheme https, port 8443', { path: '/scheme-https-and-port-8443' }, '302 https://example.org:8443/scheme-https-and-port-8443'],
    ['scheme nil, port nil on Service port 8080: that port', { host: 'echo:8080', path: '/x' }, '302 http://example.org:8080/x'],
    ['ReplaceFullPath, 301', { path: '/full/path?q=1' }, '301 http://echo/full-path-replacement?q=1'],
    ['ReplacePrefixMatch, 303', { path: '/prefix/one' }, '303 http://echo/replacement-prefix/one'],
    ['ReplacePrefixMatch "/", 307', { path: '/strip/one' }, '307 http://echo/one'],
    ['status 308, everything else kept', { path: '/code?x=y' }, '308 http://echo/code?x=y'],
  ];
  for (const [name, req, expected] of cases) it(name, () => expect(outcome(decide(rc, req))).toBe(expected));
});

describe('timeouts and retry on the plan', () => {
  it('request timeout, backendRequest as per-try timeout, retry codes, attempts and backoff', () => {
    const rc = routeConfig(
      httpRoute(
        't',
        `- timeouts: { request: 10s, backendRequest: 2s }
  retry: { codes: [502, 503], attempts: 4, backoff: 150ms }
  backendRefs: [{ name: echo-v1, port: 80 }]`,
      ),
    );
    const p = decide(rc, {});
    expect(p.kind === 'forward' && { timeout: p.timeoutMs, retries: p.retry?.numRetries, perTry: p.retry?.perTryTimeoutMs, base: p.retry?.backoffBaseMs, codes: [...(p.retry?.retriableStatusCodes ?? [])] }).toEqual({
      timeout: 10_000,
      retries: 4,
      perTry: 2000,
      base: 150,
      codes: [502, 503],
    });
    expect(p.kind === 'forward' && [...(p.retry?.retryOn ?? [])].sort()).toEqual(['connect-failure', 'refused-stream', 'reset', 'retriable-status-codes']);
  });
  it('"0s" disables the request timeout', () => {
    const p = decide(routeConfig(httpRoute('t0', `- timeouts: { request: 0s }\n  backendRefs: [{ name: echo-v1, port: 80 }]`)), {});
    expect(p.kind === 'forward' && p.timeoutMs).toBeUndefined();
  });
});

describe('GRPCRoute (conformance GRPCExactMethodMatching, GRPCRouteHeaderMatching, GRPCRouteWeight)', () => {
  const SVC = 'gateway_api_conformance.echo_basic.grpcecho.GrpcEcho';
  const rc = routeConfig(`apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
  - matches: [{ method: { service: ${SVC}, method: Echo } }]
    backendRefs: [{ name: echo-v1, port: 80 }]
  - matches: [{ method: { service: ${SVC}, method: EchoTwo } }]
    backendRefs: [{ name: echo-v2, port: 80 }]
  - matches: [{ method: { service: ${SVC}, method: EchoThree }, headers: [{ name: version, value: one }] }]
    backendRefs: [{ name: echo-v1, port: 80 }]
  - matches: [{ method: { service: ${SVC}, method: EchoThree }, headers: [{ name: version, value: two }, { name: color, value: orange }] }]
    backendRefs: [{ name: echo-v3, port: 80 }]
  - matches: [{ method: { type: RegularExpression, service: ".*\\\\.Other", method: "Get.+" } }]
    backendRefs: [{ name: echo-v3, port: 80 }]
`);
  const grpc = (method: string, headers: Record<string, string> = {}) => ({
    method: 'POST',
    path: method,
    headers: { 'content-type': 'application/grpc', ...headers },
  });
  const cases: [string, Request, string][] = [
    ['Exact service and method', grpc(`/${SVC}/Echo`), V1],
    ['another method of the service', grpc(`/${SVC}/EchoTwo`), V2],
    ['a method no rule names: no route (the proxy answers UNIMPLEMENTED)', grpc(`/${SVC}/EchoFour`), '404'],
    ['method and header', grpc(`/${SVC}/EchoThree`, { version: 'one' }), V1],
    ['method and two headers', grpc(`/${SVC}/EchoThree`, { version: 'two', color: 'orange' }), V3],
    ['method with only part of the headers: no route', grpc(`/${SVC}/EchoThree`, { version: 'two' }), '404'],
    ['RegularExpression service and method', grpc('/pkg.Other/GetThing'), V3],
    ['RegularExpression must match the whole name', grpc('/pkg.Other/Got'), '404'],
    ['not gRPC (no application/grpc content type): no route', { method: 'POST', path: `/${SVC}/Echo` }, '404'],
  ];
  for (const [name, req, cluster] of cases) {
    it(name, () => {
      const p = decide(rc, req);
      expect(p.kind === 'forward' ? p.cluster : outcome(p)).toBe(cluster);
    });
  }
});
