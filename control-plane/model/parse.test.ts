// Table tests for config parsing: the API server's defaults are applied, and every bad value is
// reported with its field path and the value itself.
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { parseObject } from './parse.js';
import type { ConfigObject, GRPCRoute, HTTPRoute, PeerAuthentication, Service, WorkloadEntry } from './types.js';

function parse(yaml: string) {
  return parseObject(parseDocument(yaml).toJS());
}

function ok<T extends ConfigObject>(yaml: string): T {
  const res = parse(yaml);
  if (!res.ok) throw new Error(`expected a valid object, got: ${JSON.stringify(res.problems)}`);
  return res.object as T;
}

function problems(yaml: string): string[] {
  const res = parse(yaml);
  if (res.ok) throw new Error('expected problems, got a valid object');
  return res.problems.map((p) => `${p.field}: ${p.message}`);
}

const ROUTE_HEAD = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
`;

describe('defaults the API server would apply', () => {
  it('fills an HTTPRoute rule: PathPrefix "/", weight 1, core Service backends, redirect 302', () => {
    const route = ok<HTTPRoute>(`${ROUTE_HEAD}
  rules:
    - backendRefs: [{ name: v1, port: 80 }]
    - matches: [{ headers: [{ name: x, value: "1" }] }]
      filters:
        - type: RequestRedirect
          requestRedirect: { hostname: example.com }
`);
    expect(route.metadata.namespace).toBe('default');
    expect(route.spec.parentRefs[0]).toEqual({ group: '', kind: 'Service', name: 'reviews' });
    const [first, second] = route.spec.rules;
    expect(first?.matches).toEqual([{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }]);
    expect(first?.backendRefs[0]).toMatchObject({ group: '', kind: 'Service', name: 'v1', port: 80, weight: 1, filters: [] });
    expect(second?.matches[0]?.path).toEqual({ type: 'PathPrefix', value: '/' });
    expect(second?.matches[0]?.headers).toEqual([{ type: 'Exact', name: 'x', value: '1' }]);
    expect(second?.filters[0]?.requestRedirect).toEqual({ hostname: 'example.com', statusCode: 302 });
  });

  it('defaults a parentRef to a Gateway, as the CRD does', () => {
    const route = ok<HTTPRoute>(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: r, namespace: shop }
spec:
  parentRefs: [{ name: gw }]
`);
    expect(route.spec.parentRefs[0]).toEqual({ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' });
    // No rules at all: the CRD's default rule matching everything.
    expect(route.spec.rules).toHaveLength(1);
    expect(route.spec.rules[0]?.matches[0]?.path.value).toBe('/');
  });

  it('reads mirror shares: none = 100 %, percent, fraction with default denominator 100', () => {
    const route = ok<HTTPRoute>(`${ROUTE_HEAD}
  rules:
    - filters:
        - { type: RequestMirror, requestMirror: { backendRef: { name: a, port: 80 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: b, port: 80 }, percent: 25 } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: c, port: 80 }, fraction: { numerator: 1 } } }
        - { type: RequestMirror, requestMirror: { backendRef: { name: d, port: 80 }, fraction: { numerator: 1, denominator: 3 } } }
`);
    const shares = route.spec.rules[0]?.filters.map((f) => [f.requestMirror?.numerator, f.requestMirror?.denominator]);
    expect(shares).toEqual([[100, 100], [25, 100], [1, 100], [1, 3]]);
  });

  it('reads timeouts and retry as milliseconds', () => {
    const route = ok<HTTPRoute>(`${ROUTE_HEAD}
  rules:
    - timeouts: { request: 1m30s, backendRequest: 500ms }
      retry: { codes: [503, 503, 502], attempts: 3, backoff: 100ms }
`);
    expect(route.spec.rules[0]?.timeouts).toEqual({ requestMs: 90_000, backendRequestMs: 500 });
    expect(route.spec.rules[0]?.retry).toEqual({ codes: [503, 502], attempts: 3, backoffMs: 100 });
  });

  it('gives a Service port its own number as targetPort and TCP as protocol', () => {
    const svc = ok<Service>(`
apiVersion: v1
kind: Service
metadata: { name: web }
spec:
  selector: { app: web }
  ports: [{ port: 80 }]
`);
    expect(svc.spec.ports[0]).toEqual({ port: 80, targetPort: 80, protocol: 'TCP' });
    expect(svc.spec.type).toBe('ClusterIP');
  });

  it('gives a WorkloadEntry the "default" service account and reads env in both forms', () => {
    const a = ok<WorkloadEntry>(`
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: a, labels: { app: a } }
spec:
  address: 127.0.0.1
  ports: { http: 8080 }
  command: [node, app.js]
  env: { MODE: fast }
`);
    expect(a.spec).toEqual({ address: '127.0.0.1', ports: { http: 8080 }, serviceAccount: 'default', command: ['node', 'app.js'], env: { MODE: 'fast' } });
    const b = ok<WorkloadEntry>(`
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: b }
spec: { address: b.local, env: [{ name: MODE, value: slow }] }
`);
    expect(b.spec.env).toEqual({ MODE: 'slow' });
  });

  it('reads ReferenceGrant in v1beta1 and v1 alike', () => {
    for (const version of ['v1beta1', 'v1']) {
      const grant = ok(`
apiVersion: gateway.networking.k8s.io/${version}
kind: ReferenceGrant
metadata: { name: g, namespace: backends }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: shop }]
  to: [{ group: "", kind: Service }]
`);
      expect(grant).toMatchObject({ kind: 'ReferenceGrant', spec: { to: [{ group: '', kind: 'Service' }] } });
    }
  });

  it('reads GRPCRoute method matches with type Exact by default', () => {
    const route = ok<GRPCRoute>(`
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs: [{ group: "", kind: Service, name: greeter }]
  rules:
    - matches: [{ method: { service: helloworld.Greeter } }]
      backendRefs: [{ name: greeter-v2, port: 50051 }]
`);
    expect(route.spec.rules[0]?.matches[0]).toEqual({ headers: [], method: { type: 'Exact', service: 'helloworld.Greeter' } });
  });

  it('reads Istio-style policies: ports as strings, action ALLOW by default', () => {
    const pa = ok<PeerAuthentication>(`
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: strict }
spec:
  selector: { matchLabels: { app: a } }
  mtls: { mode: STRICT }
  portLevelMtls: { 8080: { mode: PERMISSIVE } }
`);
    expect(pa.spec).toEqual({ selector: { matchLabels: { app: 'a' } }, mtls: { mode: 'STRICT' }, portLevelMtls: { 8080: { mode: 'PERMISSIVE' } } });
    const az = ok(`
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: p }
spec:
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/client], namespaces: [default] } }]
      to: [{ operation: { methods: [GET], paths: [/api/*], ports: ["9080"] } }]
`);
    expect(az).toMatchObject({
      spec: {
        action: 'ALLOW',
        rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/api/*'], ports: [9080] } }] }],
      },
    });
  });
});

describe('problems name the field and the value', () => {
  const cases: { name: string; yaml: string; expected: string[] }[] = [
    {
      name: 'a weight that is not a number',
      yaml: `${ROUTE_HEAD}
  rules:
    - backendRefs: [{ name: v1, port: 80, weight: ninety }]`,
      expected: ['spec.rules[0].backendRefs[0].weight: must be an integer ≥ 0, got "ninety"'],
    },
    {
      name: 'a weight out of range',
      yaml: `${ROUTE_HEAD}
  rules:
    - backendRefs: [{ name: v1, port: 80, weight: 2000000 }]`,
      expected: ['spec.rules[0].backendRefs[0].weight: must be an integer from 0 to 1000000, got 2000000'],
    },
    {
      name: 'a Service backend without a port',
      yaml: `${ROUTE_HEAD}
  rules:
    - backendRefs: [{ name: v1 }]`,
      expected: ['spec.rules[0].backendRefs[0].port: is required for a Service backend (the Service port to send to)'],
    },
    {
      name: 'a misspelt field',
      yaml: `${ROUTE_HEAD}
  rules:
    - backendref: [{ name: v1, port: 80 }]`,
      expected: ['spec.rules[0].backendref: unknown field (known fields: name, matches, filters, backendRefs, timeouts, retry, sessionPersistence)'],
    },
    {
      name: 'a relative path and an unknown match type',
      yaml: `${ROUTE_HEAD}
  rules:
    - matches: [{ path: { value: api } }, { path: { type: Prefix, value: /a } }]`,
      expected: [
        'spec.rules[0].matches[0].path.value: must be an absolute path starting with "/", got "api"',
        'spec.rules[0].matches[1].path.type: must be one of Exact, PathPrefix, RegularExpression, got "Prefix"',
      ],
    },
    {
      name: 'a filter without its configuration, and one with another type\'s',
      yaml: `${ROUTE_HEAD}
  rules:
    - filters:
        - type: RequestHeaderModifier
        - type: URLRewrite
          requestRedirect: { hostname: a.com }`,
      expected: [
        'spec.rules[0].filters[0].requestHeaderModifier: is required when type is "RequestHeaderModifier"',
        'spec.rules[0].filters[1].requestRedirect: must not be set when type is "URLRewrite"',
        'spec.rules[0].filters[1].urlRewrite: is required when type is "URLRewrite"',
      ],
    },
    {
      name: 'a bad duration, a bad status code and a backendRequest longer than request',
      yaml: `${ROUTE_HEAD}
  rules:
    - timeouts: { request: 1s, backendRequest: 2s }
    - timeouts: { request: ten seconds }
    - filters: [{ type: RequestRedirect, requestRedirect: { statusCode: 305 } }]`,
      expected: [
        'spec.rules[0].timeouts.backendRequest: must not be longer than the request timeout, got "2s" > "1s"',
        'spec.rules[1].timeouts.request: must be a duration such as "10s", "1m30s" or "500ms", got "ten seconds"',
        'spec.rules[2].filters[0].requestRedirect.statusCode: must be one of 301, 302, 303, 307, 308, got 305',
      ],
    },
    {
      name: 'duplicate rule names',
      yaml: `${ROUTE_HEAD}
  rules: [{ name: a }, { name: a }]`,
      expected: ['spec.rules[1].name: duplicate rule name "a": rule names must be unique within a route'],
    },
    {
      name: 'a missing name',
      yaml: `
apiVersion: v1
kind: Service
metadata: { namespace: shop }
spec: { ports: [{ port: 80 }] }`,
      expected: ['metadata.name: is required'],
    },
    {
      name: 'an unknown apiVersion, pointing at the right one',
      yaml: `
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: GRPCRoute
metadata: { name: g }`,
      expected: [
        expect.stringMatching(/^apiVersion: "gateway.networking.k8s.io\/v1alpha2" is not a config group Weft reads; GRPCRoute is read as apiVersion "gateway.networking.k8s.io\/v1"/) as unknown as string,
      ],
    },
    {
      name: 'a kind Weft does not read',
      yaml: `
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: gw }`,
      expected: ['kind: "GatewayClass" is not a kind Weft reads in gateway.networking.k8s.io/v1 (it reads: HTTPRoute, GRPCRoute, ReferenceGrant, Gateway)'],
    },
    {
      name: 'Service ports: missing names, a bad target port',
      yaml: `
apiVersion: v1
kind: Service
metadata: { name: web }
spec:
  ports: [{ port: 80 }, { port: 81, targetPort: "Not A Name" }]`,
      expected: [
        'spec.ports[1].targetPort: must be a port number or a port name (up to 15 lower-case letters, digits, "-"), got "Not A Name"',
        'spec.ports[0].name: is required when a Service has more than one port',
        'spec.ports[1].name: is required when a Service has more than one port',
      ],
    },
    {
      name: 'an EndpointSlice that names no Service',
      yaml: `
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: s }
addressType: IPv4
endpoints: [{ addresses: [10.0.0.1] }]`,
      expected: ['metadata.labels["kubernetes.io/service-name"]: is required: it names the Service this slice belongs to'],
    },
    {
      name: 'WorkloadEntry: labels in spec, a port that is not a number',
      yaml: `
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: a }
spec: { address: 127.0.0.1, labels: { app: a }, ports: { http: "8080" } }`,
      expected: [
        'spec.labels: is not read: put the labels Services select on in metadata.labels',
        'spec.ports.http: must be an integer ≥ 1, got "8080"',
      ],
    },
    {
      name: 'PeerAuthentication with an unknown mode',
      yaml: `
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: p }
spec: { mtls: { mode: STRICTEST } }`,
      expected: ['spec.mtls.mode: must be one of STRICT, PERMISSIVE, got "STRICTEST"'],
    },
    {
      name: 'AuthorizationPolicy with a bad action and a wildcard in the middle',
      yaml: `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: p }
spec:
  action: AUDIT
  rules: [{ to: [{ operation: { paths: ["/a/*/b"] } }] }]`,
      expected: [
        'spec.action: must be one of ALLOW, DENY, got "AUDIT"',
        'spec.rules[0].to[0].operation.paths[0]: a path may use "*" only at the start or end, got "/a/*/b"',
      ],
    },
    {
      name: 'a GRPCRoute method match with neither service nor method',
      yaml: `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  rules: [{ matches: [{ method: { type: Exact } }] }]`,
      expected: ['spec.rules[0].matches[0].method: must set service, method, or both'],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      expect(problems(c.yaml)).toEqual(c.expected);
    });
  }

  it('rejects a document that is not a mapping', () => {
    expect(problems('- a\n- b')).toEqual(['a document must be a mapping with apiVersion, kind and metadata, got ["a","b"]'.replace(/^/, ': ')]);
  });
});

describe('parsed objects', () => {
  it('are deeply frozen', () => {
    const route = ok<HTTPRoute>(`${ROUTE_HEAD}
  rules: [{ backendRefs: [{ name: v1, port: 80 }] }]
`);
    expect(Object.isFrozen(route)).toBe(true);
    expect(Object.isFrozen(route.spec.rules[0]?.backendRefs[0])).toBe(true);
  });

  it('keep unsupported filter types for status to report, instead of rejecting the document', () => {
    const route = ok<HTTPRoute>(`${ROUTE_HEAD}
  rules:
    - filters: [{ type: ExtensionRef, extensionRef: { group: x.io, kind: Auth, name: a } }, { type: Teleport }]
`);
    expect(route.spec.rules[0]?.filters.map((f) => f.type)).toEqual(['ExtensionRef', 'Teleport']);
  });
});
