// Table tests for route status: Accepted and ResolvedRefs per Service parent, with the spec's
// reasons and messages that name what is wrong and what to create or fix.
import { describe, expect, it } from 'vitest';
import { modelFromYaml } from '../model/testing.js';
import { routeStatuses, type RouteCondition } from './index.js';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: { name: reviews }
spec: { ports: [{ name: http, port: 9080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v1 }
spec: { ports: [{ name: http, port: 9080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: other }
spec: { ports: [{ port: 9080 }] }
`;

function routeYaml(spec: string, name = 'r', kind = 'HTTPRoute'): string {
  return `${SERVICES}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ${kind}
metadata: { name: ${name}, generation: 3 }
spec:
${spec
  .trim()
  .split('\n')
  .map((l) => `  ${l}`)
  .join('\n')}`;
}

const PARENT = 'parentRefs: [{ group: "", kind: Service, name: reviews }]';
const OK_BACKEND = 'backendRefs: [{ name: reviews-v1, port: 9080 }]';

function conditions(yaml: string, key = 'HTTPRoute/default/r', parent = 0): Record<string, Pick<RouteCondition, 'status' | 'reason' | 'message'>> {
  const status = routeStatuses(modelFromYaml(yaml)).get(key);
  const p = status?.parents[parent];
  if (!p) throw new Error(`no status for parent ${parent} of ${key}`);
  return Object.fromEntries(p.conditions.map((c) => [c.type, { status: c.status, reason: c.reason, message: c.message }]));
}

describe('route status', () => {
  const cases: {
    name: string;
    spec: string;
    extra?: string;
    accepted: [RouteCondition['status'], string, RegExp?];
    resolved: [RouteCondition['status'], string, RegExp?];
  }[] = [
    {
      name: 'all good',
      spec: `${PARENT}\nrules: [{ ${OK_BACKEND} }]`,
      accepted: ['True', 'Accepted', /^Attached to Service default\/reviews port 9080, for clients in every namespace$/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'the parent Service does not exist',
      spec: `parentRefs: [{ group: "", kind: Service, name: reveiws }]\nrules: [{ ${OK_BACKEND} }]`,
      accepted: ['False', 'NoMatchingParent', /Service default\/reveiws not found; create it, or fix the parentRef/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'the parent has no such port',
      spec: `parentRefs: [{ group: "", kind: Service, name: reviews, port: 8080 }]\nrules: [{ ${OK_BACKEND} }]`,
      accepted: ['False', 'NoMatchingParent', /has no port 8080 \(its ports: 9080 \(http\)\)/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a Service parent without the core group',
      spec: `parentRefs: [{ kind: Service, name: reviews }]\nrules: [{ ${OK_BACKEND} }]`,
      accepted: ['False', 'NoMatchingParent', /set group: "" on the parentRef/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'an invalid regular expression',
      spec: `${PARENT}\nrules: [{ matches: [{ path: { type: RegularExpression, value: "/(" } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /^The route is not applied: spec\.rules\[0\]\.matches\[0\]\.path\.value: invalid regular expression "\/\("/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a regex RE2 cannot run',
      spec: `${PARENT}\nrules: [{ matches: [{ headers: [{ type: RegularExpression, name: x, value: "a(?=b)" }] }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /headers\[0\]\.value: invalid regular expression "a\(\?=b\)": lookahead and lookbehind are not supported by RE2/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a redirect together with backendRefs',
      spec: `${PARENT}\nrules: [{ filters: [{ type: RequestRedirect, requestRedirect: { hostname: a.com } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'IncompatibleFilters', /cannot be combined with backendRefs/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'conflicting filters',
      spec: `${PARENT}\nrules: [{ filters: [{ type: RequestRedirect, requestRedirect: { hostname: a.com } }, { type: URLRewrite, urlRewrite: { hostname: b.com } }] }]`,
      accepted: ['False', 'IncompatibleFilters', /RequestRedirect and URLRewrite filters conflict/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'an unknown filter type',
      spec: `${PARENT}\nrules: [{ filters: [{ type: Teleport }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /filter type "Teleport" is not supported here by Weft/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a filter type Weft does not implement',
      spec: `${PARENT}\nrules: [{ filters: [{ type: CORS, cors: { allowOrigins: ["*"] } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /filter type "CORS" is not supported here by Weft/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a filter used twice',
      spec: `${PARENT}\nrules: [{ filters: [{ type: URLRewrite, urlRewrite: { hostname: a.com } }, { type: URLRewrite, urlRewrite: { hostname: b.com } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'IncompatibleFilters', /filter URLRewrite is used more than once/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'an ExtensionRef filter: accepted, never skipped (its requests get 500), ResolvedRefs says so',
      spec: `${PARENT}\nrules: [{ filters: [{ type: ExtensionRef, extensionRef: { group: x.io, kind: K, name: n } }], ${OK_BACKEND} }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['False', 'InvalidKind', /spec\.rules\[0\]\.filters\[0\]\.extensionRef: K "n" in group "x\.io" cannot be resolved: Weft has no filter extensions/],
    },
    {
      name: 'a header value with a line break',
      spec: `${PARENT}\nrules: [{ filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-a, value: "one\\ntwo" }] } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /the value of header "x-a" contains a control character/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a retry code outside 4xx and 5xx (valid for the CRD)',
      spec: `${PARENT}\nrules: [{ retry: { codes: [503, 302] }, ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /retry\.codes\[1\]: Weft retries on 4xx and 5xx answers only, got 302/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'ReplacePrefixMatch without a single PathPrefix match',
      spec: `${PARENT}\nrules: [{ matches: [{ path: { type: Exact, value: /a } }], filters: [{ type: URLRewrite, urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /b } } }], ${OK_BACKEND} }]`,
      accepted: ['False', 'UnsupportedValue', /exactly one match, of type PathPrefix/],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a backend that does not exist',
      spec: `${PARENT}\nrules: [{ backendRefs: [{ name: reviews-v1, port: 9080 }, { name: reviews-v3, port: 9080 }] }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['False', 'BackendNotFound', /^spec\.rules\[0\]\.backendRefs\[1\]: Service default\/reviews-v3 not found; create it .*get 500/],
    },
    {
      name: 'a backend port that does not exist',
      spec: `${PARENT}\nrules: [{ backendRefs: [{ name: reviews-v1, port: 80 }] }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['False', 'BackendNotFound', /Service default\/reviews-v1 has no port 80 \(its ports: 9080 \(http\)\)/],
    },
    {
      name: 'a backend of the wrong kind',
      spec: `${PARENT}\nrules: [{ backendRefs: [{ group: apps, kind: Deployment, name: reviews-v1 }] }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['False', 'InvalidKind', /kind "Deployment" in group "apps" is not a backend Weft can send to; use a Service/],
    },
    {
      name: 'a cross-namespace backend without a ReferenceGrant',
      spec: `${PARENT}\nrules: [{ backendRefs: [{ name: ratings, namespace: other, port: 9080 }] }]`,
      accepted: ['True', 'Accepted'],
      resolved: [
        'False',
        'RefNotPermitted',
        /create a ReferenceGrant in namespace "other" from HTTPRoute in namespace "default" to Service "ratings"/,
      ],
    },
    {
      name: 'a cross-namespace backend with a ReferenceGrant',
      spec: `${PARENT}\nrules: [{ backendRefs: [{ name: ratings, namespace: other, port: 9080 }] }]`,
      extra: `
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: { name: g, namespace: other }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default }]
  to: [{ group: "", kind: Service }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['True', 'ResolvedRefs'],
    },
    {
      name: 'a mirror to nowhere',
      spec: `${PARENT}\nrules: [{ filters: [{ type: RequestMirror, requestMirror: { backendRef: { name: shadow, port: 9080 } } }], ${OK_BACKEND} }]`,
      accepted: ['True', 'Accepted'],
      resolved: ['False', 'BackendNotFound', /filters\[0\]\.requestMirror\.backendRef: Service default\/shadow not found.*not mirrored/],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const got = conditions(routeYaml(c.spec) + (c.extra ?? ''));
      expect([got.Accepted?.status, got.Accepted?.reason]).toEqual(c.accepted.slice(0, 2));
      if (c.accepted[2]) expect(got.Accepted?.message).toMatch(c.accepted[2]);
      expect([got.ResolvedRefs?.status, got.ResolvedRefs?.reason]).toEqual(c.resolved.slice(0, 2));
      if (c.resolved[2]) expect(got.ResolvedRefs?.message).toMatch(c.resolved[2]);
    });
  }

  it('reports per Service parent, with the observed generation; Gateway parents are not ours', () => {
    const yaml = routeYaml(`parentRefs: [{ name: some-gateway }, { group: "", kind: Service, name: reviews }, { group: "", kind: Service, name: nope }]\nrules: [{ ${OK_BACKEND} }]`);
    const status = routeStatuses(modelFromYaml(yaml)).get('HTTPRoute/default/r');
    expect(status?.parents.map((p) => [p.parentRef.name, p.conditions[0]?.reason, p.conditions[0]?.observedGeneration])).toEqual([
      ['reviews', 'Accepted', 3],
      ['nope', 'NoMatchingParent', 3],
    ]);
    expect(status?.parents[0]?.controllerName).toBe('weft.dev/control-plane');
  });

  it('one bad route does not change another route\'s status', () => {
    const yaml = `${routeYaml(`${PARENT}\nrules: [{ matches: [{ path: { type: RegularExpression, value: "[" } }], ${OK_BACKEND} }]`, 'bad')}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: good }
spec:
  ${PARENT}
  rules: [{ ${OK_BACKEND} }]`;
    const statuses = routeStatuses(modelFromYaml(yaml));
    expect(statuses.get('HTTPRoute/default/bad')?.parents[0]?.conditions[0]?.reason).toBe('UnsupportedValue');
    expect(statuses.get('HTTPRoute/default/good')?.parents[0]?.conditions[0]?.reason).toBe('Accepted');
  });

  it('a consumer route may send to its parent\'s namespace without a grant, but not to a third one', () => {
    const yaml = `${SERVICES}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mine, namespace: team }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, namespace: default }]
  rules: [{ backendRefs: [{ name: reviews-v1, namespace: default, port: 9080 }, { name: ratings, namespace: other, port: 9080 }] }]`;
    const got = conditions(yaml, 'HTTPRoute/team/mine');
    expect([got.ResolvedRefs?.status, got.ResolvedRefs?.reason]).toEqual(['False', 'RefNotPermitted']);
    expect(got.ResolvedRefs?.message).toMatch(/^spec\.rules\[0\]\.backendRefs\[1\]: Service other\/ratings/);
    expect(got.ResolvedRefs?.message).not.toMatch(/reviews-v1/);
  });

  it('a consumer route says whose clients it applies to', () => {
    const yaml = `${SERVICES}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: mine, namespace: team }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, namespace: default }]
  rules: [{ backendRefs: [{ name: reviews, namespace: default, port: 9080 }] }]`;
    const got = conditions(yaml, 'HTTPRoute/team/mine');
    expect(got.Accepted?.message).toBe('Attached to Service default/reviews port 9080, for clients in namespace team only (a consumer route)');
  });

  it('an HTTPRoute loses to a GRPCRoute on the same Service port (Conflicted), and the GRPCRoute is Accepted', () => {
    const yaml = `${routeYaml(`${PARENT}\nrules: [{ ${OK_BACKEND} }]`)}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  ${PARENT}
  rules: [{ ${OK_BACKEND} }]`;
    const http = conditions(yaml);
    expect([http.Accepted?.status, http.Accepted?.reason]).toEqual(['False', 'Conflicted']);
    expect(http.Accepted?.message).toMatch(/GRPCRoute default\/g also attaches to Service default\/reviews port 9080/);
    expect(conditions(yaml, 'GRPCRoute/default/g').Accepted?.reason).toBe('Accepted');
  });
});
