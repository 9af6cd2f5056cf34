// The Gateway API mesh the routing integration tests share: echo workloads behind sidecars, one
// Service per feature under test, and the HTTPRoutes (GAMMA, Service parents) that exercise it.
// Kept apart from the tests so each test reads as request → expected backend and filters.

/** A Service in `ns` selecting `selector`, one port per entry (each to the app's port `http`). */
export function service(name: string, selector: Record<string, string> | undefined, ports: number[] = [80], ns = 'default', extra = ''): string {
  const sel = selector ? `\n  selector: { ${Object.entries(selector).map(([k, v]) => `${k}: ${v}`).join(', ')} }` : '';
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:${sel}
  ports: [${ports.map((p) => `{ name: http-${p}, port: ${p}, targetPort: http${extra} }`).join(', ')}]
`;
}

export function workload(name: string, ns: string, labels: Record<string, string>, appPort?: number, portName = 'http'): string {
  return `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${ns}, labels: { ${Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ')} } }
spec: { address: 127.0.0.1, serviceAccount: ${name}${appPort === undefined ? '' : `, ports: { ${portName}: ${appPort} }`} }
`;
}

/** An HTTPRoute with a Service parent; `rules` is YAML for `spec.rules` at column 0. */
export function httpRoute(name: string, parent: string, rules: string, opts: { ns?: string; parentNs?: string; port?: number; created?: string } = {}): string {
  const ns = opts.ns ?? 'default';
  const parentRef = [`group: ""`, 'kind: Service', `name: ${parent}`, ...(opts.parentNs ? [`namespace: ${opts.parentNs}`] : []), ...(opts.port ? [`port: ${opts.port}`] : [])];
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}, namespace: ${ns}${opts.created ? `, creationTimestamp: "${opts.created}"` : ''} }
spec:
  parentRefs: [{ ${parentRef.join(', ')} }]
  rules:
${rules
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

export interface AppPorts {
  readonly v1: number;
  readonly v2: number;
  readonly mirror: number;
  readonly other: number;
}

const V1 = '{ name: echo-v1, port: 80 }';
const V2 = '{ name: echo-v2, port: 80 }';

/** Every Service, workload and route of the HTTP routing tests, by file name. */
export function httpMesh(ports: AppPorts): Record<string, string> {
  const v1 = { app: 'echo', version: 'v1' };
  return {
    'workloads.yaml': [
      workload('client', 'default', { app: 'client' }),
      workload('client', 'team', { app: 'client' }),
      workload('echo-v1', 'default', v1, ports.v1),
      workload('echo-v2', 'default', { app: 'echo', version: 'v2' }, ports.v2),
      workload('echo-mirror', 'default', { app: 'mirror' }, ports.mirror),
      workload('echo-other', 'other', { app: 'other' }, ports.other),
    ].join('---\n'),
    'services.yaml': [
      service('echo-v1', v1, [80, 8080]),
      service('echo-v2', { app: 'echo', version: 'v2' }),
      service('echo-mirror', { app: 'mirror' }),
      service('echo-empty', { app: 'nothing-selects-this' }),
      service('echo-other', { app: 'other' }, [80], 'other'),
      service('echo-granted', { app: 'other' }, [80], 'other'),
      ...['matching', 'filters', 'redirect', 'split', 'mirror', 'resilience', 'refs', 'bad', 'precedence', 'consumer'].map((n) => service(n, v1)),
      service('ports', v1, [80, 8080]),
      service('redirect-multi', v1, [80, 8080]),
      service('redirect-9080', v1, [9080]),
    ].join('---\n'),
    'grant.yaml': `apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: from-default, namespace: other }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default }]
  to: [{ group: "", kind: Service, name: echo-granted }]
`,
    'matching.yaml': httpRoute(
      'matching',
      'matching',
      `
- name: exact
  matches: [{ path: { type: Exact, value: /exact } }]
  backendRefs: [${V2}]
- name: prefix
  matches: [{ path: { type: PathPrefix, value: /v2/ } }]
  backendRefs: [${V2}]
- name: regex
  matches: [{ path: { type: RegularExpression, value: "/regex/[0-9]+" } }]
  backendRefs: [${V2}]
- name: header
  matches: [{ headers: [{ name: Version, value: two }] }]
  backendRefs: [${V2}]
- name: header-regex
  matches: [{ headers: [{ type: RegularExpression, name: x-user, value: "(?i)adm[a-z]+" }] }]
  backendRefs: [${V2}]
- name: query
  matches: [{ queryParams: [{ name: animal, value: whale }] }, { queryParams: [{ type: RegularExpression, name: id, value: "[0-9]{3}" }] }]
  backendRefs: [${V2}]
- name: method
  matches: [{ path: { value: /method }, method: POST }]
  backendRefs: [${V2}]
- name: all-of
  matches: [{ path: { value: /and }, headers: [{ name: x-a, value: "1" }], queryParams: [{ name: q, value: "1" }] }]
  backendRefs: [${V2}]
- name: rest
  backendRefs: [${V1}]
`,
    ),
    'filters.yaml': httpRoute(
      'filters',
      'filters',
      `
- name: request-headers
  matches: [{ path: { value: /request-headers } }]
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier:
      set: [{ name: X-Header-Set, value: set-overwrites-values }, { name: X-Percent, value: "100%" }]
      add: [{ name: X-Header-Add, value: add-appends-values }]
      remove: [X-Header-Remove]
  backendRefs: [${V1}]
- name: response-headers
  matches: [{ path: { value: /response-headers } }]
  filters:
  - type: ResponseHeaderModifier
    responseHeaderModifier:
      set: [{ name: X-Header-Set, value: set-overwrites-values }]
      add: [{ name: X-Header-Add, value: add-appends-values }]
      remove: [X-Header-Remove]
  backendRefs: [${V1}]
- name: rewrite-full
  matches: [{ path: { value: /rewrite-full } }]
  filters: [{ type: URLRewrite, urlRewrite: { hostname: rewritten.example, path: { type: ReplaceFullPath, replaceFullPath: /full-replaced } } }]
  backendRefs: [${V1}]
- name: rewrite-prefix
  matches: [{ path: { value: /rewrite-prefix } }]
  filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /prefix-replaced } } }]
  backendRefs: [${V1}]
- name: strip
  matches: [{ path: { value: /strip/ } }]
  filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
  backendRefs: [${V1}]
- name: backend-filters
  matches: [{ path: { value: /backend-filters } }]
  filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-rule, value: rule }] } }]
  backendRefs:
  - name: echo-v2
    port: 80
    filters:
    - { type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-backend, value: v2 }] } }
    - { type: ResponseHeaderModifier, responseHeaderModifier: { add: [{ name: x-backend-response, value: v2 }] } }
`,
    ),
    'redirect.yaml': [
      httpRoute(
        'redirect',
        'redirect',
        `
- matches: [{ path: { value: /scheme } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]
- matches: [{ path: { value: /hostname } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
- matches: [{ path: { value: /port } }]
  filters: [{ type: RequestRedirect, requestRedirect: { port: 8083 } }]
- matches: [{ path: { value: /scheme-port } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.org, port: 8443, statusCode: 301 } }]
- matches: [{ path: { value: /http-80 } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: http, hostname: example.org, port: 80 } }]
- matches: [{ path: { value: /full-path } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /replaced }, statusCode: 303 } }]
- matches: [{ path: { value: /prefix-path } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new-prefix }, statusCode: 307 } }]
- matches: [{ path: { value: /permanent } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org, statusCode: 308 } }]
- matches: [{ path: { value: /strip-prefix/ } }]
  filters: [{ type: RequestRedirect, requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: / } } }]
`,
      ),
      httpRoute(
        'redirect-multi',
        'redirect-multi',
        `
- matches: [{ path: { value: /hostname } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
- matches: [{ path: { value: /scheme } }]
  filters: [{ type: RequestRedirect, requestRedirect: { scheme: https } }]
`,
      ),
      httpRoute('redirect-9080', 'redirect-9080', `- filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]`),
    ].join('---\n'),
    'split.yaml': httpRoute(
      'split',
      'split',
      `
- name: weights
  backendRefs:
  - { name: echo-v1, port: 80, weight: 80 }
  - { name: echo-v2, port: 80, weight: 20 }
  - { name: does-not-exist, port: 80, weight: 0 }
- name: all-zero
  matches: [{ path: { value: /all-zero } }]
  backendRefs: [{ name: echo-v1, port: 80, weight: 0 }]
- name: none
  matches: [{ path: { value: /no-backends } }]
`,
    ),
    'mirror.yaml': httpRoute(
      'mirror',
      'mirror',
      `
- name: all
  matches: [{ path: { value: /all } }]
  filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: echo-mirror, port: 80 } } }]
  backendRefs: [${V1}]
- name: several
  matches: [{ path: { value: /several } }]
  filters:
  - { type: RequestMirror, requestMirror: { backendRef: { name: echo-mirror, port: 80 } } }
  - { type: RequestMirror, requestMirror: { backendRef: { name: echo-v2, port: 80 } } }
  backendRefs: [${V1}]
- name: percent
  matches: [{ path: { value: /percent } }]
  filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: echo-mirror, port: 80 }, percent: 50 } }]
  backendRefs: [${V1}]
- name: fraction
  matches: [{ path: { value: /fraction } }]
  filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: echo-mirror, port: 80 }, fraction: { numerator: 1, denominator: 4 } } }]
  backendRefs: [${V1}]
- name: stuck
  matches: [{ path: { value: /stuck } }]
  filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: echo-mirror, port: 80 } } }]
  backendRefs: [${V1}]
- name: nowhere
  matches: [{ path: { value: /nowhere } }]
  filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: echo-empty, port: 80 } } }]
  backendRefs: [${V1}]
`,
    ),
    'resilience.yaml': httpRoute(
      'resilience',
      'resilience',
      `
- name: request-timeout
  matches: [{ path: { value: /request-timeout } }]
  timeouts: { request: 1s }
  backendRefs: [${V1}]
- name: backend-timeout
  matches: [{ path: { value: /backend-timeout } }]
  timeouts: { request: 20s, backendRequest: 1s }
  backendRefs: [${V1}]
- name: retry
  matches: [{ path: { value: /retry } }]
  retry: { codes: [500, 502, 503, 504], attempts: 3, backoff: 10ms }
  backendRefs: [${V1}]
- name: retry-backoff
  matches: [{ path: { value: /backoff } }]
  retry: { codes: [503], attempts: 1, backoff: 400ms }
  backendRefs: [${V1}]
- name: retry-other-codes
  matches: [{ path: { value: /only-500 } }]
  retry: { codes: [500], attempts: 3 }
  backendRefs: [${V1}]
- name: retry-backend-timeout
  matches: [{ path: { value: /retry-slow } }]
  timeouts: { request: 20s, backendRequest: 1500ms }
  retry: { attempts: 2, backoff: 10ms }
  backendRefs: [${V1}]
- name: retry-connection
  matches: [{ path: { value: /retry-reset } }]
  retry: { attempts: 2, backoff: 10ms }
  backendRefs: [${V1}]
`,
    ),
    'refs.yaml': httpRoute(
      'refs',
      'refs',
      `
- name: half-broken
  matches: [{ path: { value: /half } }]
  backendRefs: [{ name: echo-v1, port: 80, weight: 1 }, { name: ghost, port: 80, weight: 1 }]
- name: wrong-kind
  matches: [{ path: { value: /kind } }]
  backendRefs: [{ group: apps, kind: Deployment, name: echo-v1, port: 80 }]
- name: no-grant
  matches: [{ path: { value: /no-grant } }]
  backendRefs: [{ name: echo-other, namespace: other, port: 80 }]
- name: granted
  matches: [{ path: { value: /granted } }]
  backendRefs: [{ name: echo-granted, namespace: other, port: 80 }]
- name: fine
  backendRefs: [${V1}]
`,
    ),
    'bad.yaml': [
      httpRoute('good', 'bad', `- backendRefs: [${V1}]`),
      httpRoute('bad-regex', 'bad', `- matches: [{ path: { type: RegularExpression, value: "/regex/(" } }]\n  backendRefs: [${V2}]`),
      // Valid for JavaScript, not for RE2: it must be refused here, not NACKed by every proxy.
      httpRoute('bad-re2', 'bad', `- matches: [{ headers: [{ type: RegularExpression, name: x-re, value: 'b\\e' }] }]\n  backendRefs: [${V2}]`),
      httpRoute('bad-lookahead', 'bad', `- matches: [{ headers: [{ type: RegularExpression, name: x-re, value: "(?=a)b" }] }]\n  backendRefs: [${V2}]`),
      httpRoute(
        'bad-conflict',
        'bad',
        `- matches: [{ path: { value: /conflict } }]
  filters:
  - { type: RequestRedirect, requestRedirect: { hostname: example.org } }
  - { type: URLRewrite, urlRewrite: { hostname: example.org } }`,
      ),
      httpRoute(
        'bad-redirect-backend',
        'bad',
        `- matches: [{ path: { value: /redirect-backend } }]
  filters: [{ type: RequestRedirect, requestRedirect: { hostname: example.org } }]
  backendRefs: [${V2}]`,
      ),
      httpRoute(
        'bad-filter',
        'bad',
        `- matches: [{ path: { value: /unknown-filter } }]
  filters: [{ type: Teleport }]
  backendRefs: [${V2}]`,
      ),
      // Not a bad route: a filter Weft cannot resolve is never skipped, its requests get 500.
      httpRoute(
        'extension',
        'bad',
        `- matches: [{ path: { value: /extension } }]
  filters: [{ type: ExtensionRef, extensionRef: { group: example.com, kind: Magic, name: m } }]
  backendRefs: [${V2}]`,
      ),
    ].join('---\n'),
    'precedence.yaml': [
      httpRoute(
        'older',
        'precedence',
        `
- name: prefix
  matches: [{ path: { value: /p } }]
  backendRefs: [${V1}]
- name: header
  matches: [{ path: { value: /h }, headers: [{ name: x-a, value: "1" }] }]
  backendRefs: [${V1}]
`,
        { created: '2024-01-01T00:00:00Z' },
      ),
      httpRoute(
        'newer',
        'precedence',
        `
- name: same-prefix
  matches: [{ path: { value: /p } }]
  backendRefs: [${V2}]
- name: longer-prefix
  matches: [{ path: { value: /p/longer } }]
  backendRefs: [${V2}]
- name: exact
  matches: [{ path: { type: Exact, value: /p/exact } }]
  backendRefs: [${V2}]
- name: more-headers
  matches: [{ path: { value: /h }, headers: [{ name: x-a, value: "1" }, { name: x-b, value: "1" }] }]
  backendRefs: [${V2}]
- name: method
  matches: [{ path: { value: /h }, method: PUT }]
  backendRefs: [${V2}]
`,
        { created: '2024-06-01T00:00:00Z' },
      ),
    ].join('---\n'),
    'ports.yaml': httpRoute(
      'ports',
      'ports',
      `- filters: [{ type: ResponseHeaderModifier, responseHeaderModifier: { set: [{ name: x-route, value: ports-8080 }] } }]
  backendRefs: [${V2}]`,
      { port: 8080 },
    ),
    'parents.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: two-parents, namespace: default }
spec:
  parentRefs:
  - { group: "", kind: Service, name: ports, port: 8080 }
  - { group: "", kind: Service, name: no-such-service }
  - { group: "", kind: Service, name: ports, port: 9999 }
  rules: [{ matches: [{ path: { value: /two-parents } }], backendRefs: [${V2}] }]
`,
    'consumer.yaml': [
      httpRoute('producer', 'consumer', `- backendRefs: [${V1}]`),
      httpRoute('consumer', 'consumer', `- backendRefs: [{ name: echo-v2, namespace: default, port: 80 }]`, { ns: 'team', parentNs: 'default' }),
    ].join('---\n'),
  };
}
