// Tests for ambient mode in the translation (ARCHITECTURE.md "Ambient mode"): an ambient
// workload's endpoints are its pod IP's HBONE port for every proxy; a node proxy gets L4 VIP
// listeners (through a waypoint where a Service asks for one) and one listener per ambient pod
// on its own node; and everything it is sent passes the snapshot's consistency check and the
// proxy's own decoders.
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from '../../api/codec.js';
import type { Listener } from '../../api/domain.js';
import { readStruct } from '../../api/endpoint.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import { TypeUrl } from '../../api/types.js';
import { modelFromYaml } from '../model/testing.js';
import { buildSnapshot, checkConsistency } from '../snapshot/snapshot.js';
import { directoryOf } from './fixtures.js';
import { translate, type ProxyNode, type ResourceSet, type SidecarDirectory } from './index.js';
import { l4Policy } from './ambient.js';
import { roundTrip } from './testing.js';

const MESH = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { weft.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: legacy }
---
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec: { clusterIP: 10.96.0.10, selector: { app: reviews }, ports: [{ name: http, port: 9080, targetPort: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: shop, labels: { weft.dev/use-waypoint: wp } }
spec: { clusterIP: 10.96.0.20, selector: { app: ratings }, ports: [{ name: http, port: 9080, targetPort: 9080 }, { name: db, port: 3306, appProtocol: mysql }] }
---
apiVersion: v1
kind: Service
metadata: { name: old, namespace: legacy }
spec: { clusterIP: 10.96.0.30, selector: { app: old }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: shop, labels: { app: reviews } }
spec: { address: 10.1.0.5, nodeName: node-a, serviceAccount: reviews, ports: { http: 9080 } }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: shop, labels: { app: reviews } }
spec: { address: 10.1.0.6, nodeName: node-b, serviceAccount: reviews, ports: { http: 9081 } }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-out, namespace: shop, labels: { app: reviews, weft.dev/dataplane-mode: none } }
spec: { address: 10.1.0.8, nodeName: node-a, serviceAccount: reviews, ports: { http: 9080 } }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ratings-v1, namespace: shop, labels: { app: ratings } }
spec: { address: 10.1.0.7, nodeName: node-a, serviceAccount: ratings }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: wp-1, namespace: shop, labels: { gateway.networking.k8s.io/gateway-name: wp } }
spec: { address: 10.1.0.9, nodeName: node-b, serviceAccount: wp }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: legacy, labels: { app: client, weft.dev/dataplane-mode: ambient } }
spec: { address: 10.2.0.1, nodeName: node-a, serviceAccount: client }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: old-1, namespace: legacy, labels: { app: old } }
spec: { address: 10.2.0.2, nodeName: node-a, serviceAccount: old }
`;

const model = modelFromYaml(MESH);
const NODE_A: ProxyNode = { id: 'ambient~node-a', workload: '', namespace: '', mode: 'ambient', nodeName: 'node-a' };
const OPTS = { trustDomain: 'cluster.local', mtls: true };

function run(node: ProxyNode, connected: Record<string, number> = {}, m = model): ResourceSet {
  return translate(m, node, directoryOf(connected), OPTS);
}
const sidecar = (workload: string, namespace: string): ProxyNode => ({ id: `${workload}.${namespace}`, workload, namespace, mode: 'sidecar' });

function endpoints(set: ResourceSet, cluster: string): { address: string; weft?: Record<string, unknown> }[] {
  const cla = set[TypeUrl.ClusterLoadAssignment].get(cluster);
  if (!cla) throw new Error(`no ClusterLoadAssignment ${cluster}`);
  const lb = ((cla.endpoints as Plain[])[0]?.lb_endpoints as Plain[] | undefined) ?? [];
  return lb.map((e) => {
    const sa = ((e.endpoint as Plain).address as Plain).socket_address as Plain;
    const md = (e.metadata as Plain | undefined)?.filter_metadata as Plain | undefined;
    return { address: `${String(sa.address)}:${String(sa.port_value)}`, ...(md ? { weft: readStruct(md.weft) } : {}) };
  });
}

function decoded<T>(typeUrl: TypeUrl, plain: Plain): T {
  const r = RESOURCE_TYPES.get(typeUrl)?.decode(pack(typeUrl, plain));
  if (!r?.ok) throw new Error(`the proxy would NACK it: ${JSON.stringify(r)}`);
  return r.value as T;
}

const REVIEWS = 'outbound|9080||reviews.shop.svc.cluster.local';
const RATINGS = 'outbound|9080||ratings.shop.svc.cluster.local';

describe('endpoints of a captured sidecar (it reports an HBONE port)', () => {
  const db = modelFromYaml(`apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec:
  selector: { app: db }
  ports: [{ name: tcp-pg, port: 5432 }, { name: http-admin, port: 8080 }, { name: stats, port: 9090 }]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: db-1, namespace: shop, labels: { app: db } }
spec: { address: 10.1.0.20, serviceAccount: db }
`);
  const withSidecar = (hbonePort?: number): SidecarDirectory => (key) =>
    key === 'db-1.shop' ? { inboundPort: 15006, ...(hbonePort !== undefined ? { hbonePort } : {}) } : undefined;
  const at = (hbonePort: number | undefined, port: number) =>
    endpoints(translate(db, sidecar('db-1', 'shop'), withSidecar(hbonePort), OPTS), `outbound|${port}||db.shop.svc.cluster.local`);
  const weft = (port: number) => ({ workload: 'db-1.shop', identity: 'spiffe://cluster.local/ns/shop/sa/db', target_port: port });

  it('an L4 port is reached on its HBONE port, as a tunnel; HTTP and undeclared ports on its inbound port', () => {
    expect(at(15008, 5432)).toEqual([{ address: '10.1.0.20:15008', weft: { ...weft(5432), tunnel: 'hbone' } }]);
    expect(at(15008, 8080)).toEqual([{ address: '10.1.0.20:15006', weft: weft(8080) }]);
    // Unknown protocol: the client decides per connection, and HTTP must reach the inbound listener.
    expect(at(15008, 9090)).toEqual([{ address: '10.1.0.20:15006', weft: weft(9090) }]);
  });

  it('a sidecar without an HBONE port (not captured, or older) is reached on its inbound port for L4 too', () => {
    expect(at(undefined, 5432)).toEqual([{ address: '10.1.0.20:15006', weft: weft(5432) }]);
  });

  it('with mesh mTLS off (HBONE is mTLS), on its inbound port', () => {
    const set = translate(db, sidecar('db-1', 'shop'), withSidecar(15008), { ...OPTS, mtls: false });
    expect(endpoints(set, 'outbound|5432||db.shop.svc.cluster.local').map((e) => e.address)).toEqual(['10.1.0.20:15006']);
  });
});

describe('endpoints of ambient workloads (every proxy)', () => {
  it('are the pod IP on 15008 with workload, identity, target port and tunnel hbone', () => {
    expect(endpoints(run(sidecar('old-1', 'legacy')), REVIEWS)).toEqual([
      {
        address: '10.1.0.5:15008',
        weft: { workload: 'reviews-v1.shop', identity: 'spiffe://cluster.local/ns/shop/sa/reviews', target_port: 9080, tunnel: 'hbone' },
      },
      {
        address: '10.1.0.6:15008',
        weft: { workload: 'reviews-v2.shop', identity: 'spiffe://cluster.local/ns/shop/sa/reviews', target_port: 9081, tunnel: 'hbone' },
      },
    ]);
  });

  it('a connected sidecar wins over ambient enrollment: its inbound port, no tunnel', () => {
    const set = run(sidecar('old-1', 'legacy'), { 'reviews-v1.shop': 25001 });
    expect(endpoints(set, REVIEWS).map((e) => [e.address, e.weft?.tunnel])).toEqual([
      ['10.1.0.5:25001', undefined],
      ['10.1.0.6:15008', 'hbone'],
    ]);
  });

  it('`none` on the workload opts out of its namespace: no sidecar, so no endpoint at all', () => {
    expect(endpoints(run(sidecar('old-1', 'legacy')), REVIEWS).map((e) => e.address)).not.toContain('10.1.0.8:15008');
  });

  it('a namespace without the label enrolls nothing; a workload label enrolls that workload alone', () => {
    expect(model.dataplaneMode(model.workloadEntry('legacy', 'old-1')!, false)).toBe('none');
    expect(model.dataplaneMode(model.workloadEntry('legacy', 'client')!, false)).toBe('ambient');
    expect(run(sidecar('client', 'legacy'))[TypeUrl.ClusterLoadAssignment].get('outbound|80||old.legacy.svc.cluster.local')?.endpoints).toEqual([]);
  });

  it('an ambient workload that names no node has no endpoint (no node proxy carries it)', () => {
    const m = modelFromYaml(MESH.replace('spec: { address: 10.1.0.6, nodeName: node-b,', 'spec: { address: 10.1.0.6,'));
    expect(endpoints(run(sidecar('old-1', 'legacy'), {}, m), REVIEWS).map((e) => e.address)).toEqual(['10.1.0.5:15008']);
  });

  it('a sidecar keeps its own listeners and routes; endpoints are all it learns of ambient', () => {
    const set = run(sidecar('old-1', 'legacy'));
    expect([...set[TypeUrl.Listener].keys()]).toEqual(['10.96.0.10_9080', '10.96.0.20_3306', '10.96.0.20_9080', '10.96.0.30_80', 'inbound', 'outbound']);
    expect([...set[TypeUrl.Cluster].keys()].some((n) => n.startsWith('waypoint|'))).toBe(false);
  });
});

describe("a sidecar sends a Service's traffic through the Service's waypoint", () => {
  const WAYPOINT = { workload: 'wp-1.shop', identity: 'spiffe://cluster.local/ns/shop/sa/wp', tunnel: 'hbone', waypoint: true };

  it('every port: the waypoint replicas on 15008, naming the Service VIP:port as the CONNECT authority', () => {
    const set = run(sidecar('old-1', 'legacy'));
    expect(endpoints(set, RATINGS)).toEqual([{ address: '10.1.0.9:15008', weft: { ...WAYPOINT, authority: '10.96.0.20:9080' } }]);
    expect(endpoints(set, 'outbound|3306||ratings.shop.svc.cluster.local')).toEqual([{ address: '10.1.0.9:15008', weft: { ...WAYPOINT, authority: '10.96.0.20:3306' } }]);
    // A Service without a waypoint: its own endpoints.
    expect(endpoints(set, REVIEWS).map((e) => e.address)).toEqual(['10.1.0.5:15008', '10.1.0.6:15008']);
    expect(checkConsistency(buildSnapshot(set))).toEqual([]);
    const cla = set[TypeUrl.ClusterLoadAssignment].get(RATINGS)!;
    expect(decoded<{ endpoints: { authority?: string }[] }>(TypeUrl.ClusterLoadAssignment, cla).endpoints[0]?.authority).toBe('10.96.0.20:9080');
  });

  it("leaves the Service's routes to the waypoint: the sidecar only forwards to the Service's cluster", () => {
    const m = modelFromYaml(`${MESH}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ratings-timeout, namespace: shop }
spec:
  parentRefs: [{ group: "", kind: Service, name: ratings, port: 9080 }]
  rules: [{ backendRefs: [{ name: reviews, port: 9080 }] }]
`);
    const routesOf = (set: ResourceSet) => {
      const vh = [...set[TypeUrl.VirtualHost].values()].find((v) => String(v.name).includes('ratings.shop.svc.cluster.local:9080'));
      return ((vh?.routes as Plain[]) ?? []).map((r) => (r.route as Plain).cluster);
    };
    expect(routesOf(run(sidecar('old-1', 'legacy'), {}, m))).toEqual([RATINGS]);
    expect(routesOf(run({ id: 'wp-1.shop', workload: 'wp-1', namespace: 'shop', mode: 'waypoint' }, {}, m))).toEqual([REVIEWS]);
  });

  it('the waypoint itself, and node proxies, still reach the pods', () => {
    const waypoint = run({ id: 'wp-1.shop', workload: 'wp-1', namespace: 'shop', mode: 'waypoint' });
    expect(endpoints(waypoint, RATINGS).map((e) => e.address)).toEqual(['10.1.0.7:15008']);
    expect(endpoints(run(NODE_A), RATINGS).map((e) => e.address)).toEqual(['10.1.0.7:15008']);
  });

  it('not a Service without a VIP (nothing for the waypoint to route by), nor with mesh mTLS off', () => {
    const noVip = modelFromYaml(MESH.replace('spec: { clusterIP: 10.96.0.20, selector: { app: ratings }', 'spec: { selector: { app: ratings }'));
    expect(endpoints(run(sidecar('old-1', 'legacy'), {}, noVip), RATINGS).map((e) => e.address)).toEqual(['10.1.0.7:15008']);
    const plain = translate(model, sidecar('old-1', 'legacy'), directoryOf({ 'ratings-v1.shop': 25001 }), { ...OPTS, mtls: false });
    expect(endpoints(plain, RATINGS).map((e) => e.address)).toEqual(['10.1.0.7:25001']);
  });
});

describe('a node proxy', () => {
  const set = run(NODE_A);
  const listeners = set[TypeUrl.Listener];

  it('gets L4 VIP listeners and one listener per ambient pod on its node, no RDS', () => {
    expect([...listeners.keys()]).toEqual([
      '10.96.0.10_9080',
      '10.96.0.20_3306',
      '10.96.0.20_9080',
      '10.96.0.30_80',
      'ambient|legacy|client',
      'ambient|shop|ratings-v1',
      'ambient|shop|reviews-v1',
    ]);
    expect(set[TypeUrl.RouteConfiguration].size).toBe(0);
    expect(set[TypeUrl.Secret].size).toBe(0);
  });

  it('VIP listeners: one tcp_proxy chain to the Service cluster, or to its waypoint', () => {
    const chains = (name: string) =>
      ((listeners.get(name)?.filter_chains as Plain[]) ?? []).map((c) => ((c.filters as Plain[])[0]?.typed_config as Plain).cluster);
    expect(chains('10.96.0.10_9080')).toEqual([REVIEWS]);
    expect(chains('10.96.0.30_80')).toEqual(['outbound|80||old.legacy.svc.cluster.local']);
    expect(chains('10.96.0.20_9080')).toEqual(['waypoint|wp|shop']);
    expect(chains('10.96.0.20_3306')).toEqual(['waypoint|wp|shop']);
    expect(listeners.get('10.96.0.10_9080')).toMatchObject({ bind_to_port: { value: false }, traffic_direction: 'OUTBOUND' });
    expect(listeners.get('10.96.0.10_9080')?.default_filter_chain).toBeUndefined();
  });

  it('the waypoint cluster: EDS, its replicas on 15008 over HBONE, marked waypoint', () => {
    expect(set[TypeUrl.Cluster].get('waypoint|wp|shop')).toMatchObject({ type: 'EDS', eds_cluster_config: { service_name: 'waypoint|wp|shop' } });
    expect(endpoints(set, 'waypoint|wp|shop')).toEqual([
      { address: '10.1.0.9:15008', weft: { workload: 'wp-1.shop', identity: 'spiffe://cluster.local/ns/shop/sa/wp', tunnel: 'hbone', waypoint: true } },
    ]);
    // The Service's own cluster is still there (the waypoint forwards to it).
    expect(endpoints(set, RATINGS).map((e) => e.address)).toEqual(['10.1.0.7:15008']);
  });

  it('a per-pod listener: the pod IP on 15008, its identity in the metadata, chains per app port', () => {
    const l = listeners.get('ambient|shop|reviews-v1') as Plain;
    expect(l.address).toEqual({ socket_address: { address: '10.1.0.5', port_value: 15008 } });
    expect(readStruct((l.metadata as Plain & { filter_metadata: Plain }).filter_metadata.weft)).toEqual({
      workload: 'reviews-v1',
      namespace: 'shop',
      service_account: 'reviews',
      identity: 'spiffe://cluster.local/ns/shop/sa/reviews',
    });
    const chains = l.filter_chains as Plain[];
    // PERMISSIVE (no PeerAuthentication): mTLS (HBONE, sidecars) and plaintext; TLS is the node proxy's to terminate.
    expect(chains.map((c) => [c.name, c.filter_chain_match])).toEqual([
      ['inbound|9080', { destination_port: { value: 9080 }, transport_protocol: 'tls' }],
      ['inbound|9080|plaintext', { destination_port: { value: 9080 }, transport_protocol: 'raw_buffer' }],
    ]);
    expect(chains.some((c) => c.transport_socket !== undefined)).toBe(false);
    const decodedListener = decoded<Listener>(TypeUrl.Listener, l);
    expect(decodedListener.workload).toEqual({ name: 'reviews-v1', namespace: 'shop', serviceAccount: 'reviews', identity: 'spiffe://cluster.local/ns/shop/sa/reviews' });
    expect(decodedListener.address).toEqual({ host: '10.1.0.5', port: 15008 });
  });

  it("a pod's chains forward to its own STATIC cluster inbound|P||name.namespace", () => {
    expect(set[TypeUrl.Cluster].get('inbound|9080||reviews-v1.shop')).toMatchObject({
      type: 'STATIC',
      load_assignment: { endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.1.0.5', port_value: 9080 } } } }] }] },
    });
    // ratings-v1 has no named port, but its Service's numeric targetPort is an app port.
    expect(set[TypeUrl.Cluster].has('inbound|9080||ratings-v1.shop')).toBe(true);
    expect(set[TypeUrl.Cluster].has('inbound|9080||')).toBe(false);
  });

  it('a pod that serves no port still gets its listener, whose only chain refuses', () => {
    const l = listeners.get('ambient|legacy|client') as Plain;
    expect(l.filter_chains).toEqual([]);
    const d = decoded<Listener>(TypeUrl.Listener, l);
    expect(d.workload?.identity).toBe('spiffe://cluster.local/ns/legacy/sa/client');
    const def = d.defaultFilterChain;
    expect(def?.filter.kind).toBe('http');
    expect(def?.filter.rbac).toEqual([{ action: 'ALLOW', policies: [] }]);
  });

  it('carries only the pods of its own node, and none with a connected sidecar, opted out, or a waypoint', () => {
    const b = run({ ...NODE_A, id: 'ambient~node-b', nodeName: 'node-b' });
    expect([...b[TypeUrl.Listener].keys()].filter((n) => n.startsWith('ambient|'))).toEqual(['ambient|shop|reviews-v2']);
    const withSidecar = run(NODE_A, { 'reviews-v1.shop': 25001 });
    expect([...withSidecar[TypeUrl.Listener].keys()].filter((n) => n.startsWith('ambient|'))).toEqual(['ambient|legacy|client', 'ambient|shop|ratings-v1']);
    expect(withSidecar[TypeUrl.Cluster].has('inbound|9080||reviews-v1.shop')).toBe(false);
    const nowhere = run({ ...NODE_A, id: 'ambient~node-z', nodeName: 'node-z' });
    expect([...nowhere[TypeUrl.Listener].keys()].filter((n) => n.startsWith('ambient|'))).toEqual([]);
  });

  it('STRICT pods get the TLS chain only; without mTLS one chain per port', () => {
    const strict = modelFromYaml(`${MESH}
---
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: strict, namespace: shop }
spec: { mtls: { mode: STRICT } }`);
    const chains = (s: ResourceSet) => (s[TypeUrl.Listener].get('ambient|shop|reviews-v1')?.filter_chains as Plain[]).map((c) => c.name);
    expect(chains(run(NODE_A, {}, strict))).toEqual(['inbound|9080']);
    expect(chains(translate(model, NODE_A, directoryOf({}), { ...OPTS, mtls: false }))).toEqual(['inbound|9080']);
  });

  it('is consistent (every cluster and endpoint set it names exists) and the proxy accepts all of it', () => {
    expect(checkConsistency(buildSnapshot(set))).toEqual([]);
    let count = 0;
    for (const typeUrl of Object.values(TypeUrl)) {
      for (const [name, plain] of set[typeUrl]) {
        roundTrip(typeUrl, plain);
        decoded(typeUrl, plain);
        expect(name).toBeTruthy();
        count++;
      }
    }
    expect(count).toBeGreaterThan(15);
  });
});

describe('authorization on a per-pod listener is what L4 can enforce', () => {
  const policies = `${MESH}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: allow, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews } }
  rules:
    - from: [{ source: { namespaces: [legacy] } }]
      to: [{ operation: { ports: ["9080"] } }]
    - from: [{ source: { principals: [cluster.local/ns/shop/sa/ratings] } }]
      to: [{ operation: { methods: [GET] } }]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny, namespace: shop }
spec:
  selector: { matchLabels: { app: reviews } }
  action: DENY
  rules:
    - from: [{ source: { principals: [cluster.local/ns/legacy/sa/old] } }]
      to: [{ operation: { paths: [/admin*] } }]`;

  function rbac(set: ResourceSet, listener: string) {
    const l = decoded<Listener>(TypeUrl.Listener, set[TypeUrl.Listener].get(listener) ?? {});
    const f = l.filterChains[0]?.filter;
    return f?.kind === 'http' ? f.rbac : [];
  }

  it('an ALLOW rule needing methods or paths is dropped; a DENY rule keeps its sources for every request', () => {
    const [deny, allow] = rbac(run(NODE_A, {}, modelFromYaml(policies)), 'ambient|shop|reviews-v1');
    expect(deny?.action).toBe('DENY');
    expect(deny?.policies.map((p) => [p.name, p.permissions])).toEqual([['ns[shop]-policy[deny]-rule[0]', [{ any: true }]]]);
    expect(allow?.action).toBe('ALLOW');
    expect(allow?.policies.map((p) => p.name)).toEqual(['ns[shop]-policy[allow]-rule[0]']);
  });

  it("a sidecar's inbound listener keeps the L7 rules", () => {
    const [deny, allow] = rbac(run(sidecar('reviews-v1', 'shop'), { 'reviews-v1.shop': 25001 }, modelFromYaml(policies)), 'inbound');
    expect(deny?.policies[0]?.permissions).toEqual([{ paths: [{ kind: 'prefix', value: '/admin' }] }]);
    expect(allow?.policies.map((p) => p.name)).toEqual(['ns[shop]-policy[allow]-rule[0]', 'ns[shop]-policy[allow]-rule[1]']);
  });

  it('leaves a policy without L7 conditions as it is (same object)', () => {
    const p = modelFromYaml(policies).authorizationPolicies[0]!;
    const l4only = { ...p, spec: { ...p.spec, rules: [p.spec.rules[0]!] } };
    expect(l4Policy(l4only)).toBe(l4only);
  });
});

describe('a waypoint', () => {
  it('gets what a sidecar gets: the outbound listener and route configuration, HBONE endpoints', () => {
    const set = run({ id: 'wp-1.shop', workload: 'wp-1', namespace: 'shop', mode: 'waypoint' });
    expect(set[TypeUrl.Listener].has('outbound')).toBe(true);
    expect([...set[TypeUrl.RouteConfiguration].keys()]).toEqual(['outbound']);
    expect(endpoints(set, RATINGS)[0]?.weft?.tunnel).toBe('hbone');
    expect(checkConsistency(buildSnapshot(set))).toEqual([]);
  });
});

describe("a waypoint's L7 authorization (AuthorizationPolicy targetRefs)", () => {
  const TARGETED = `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: private, namespace: shop }
spec:
  targetRefs: [{ kind: Service, group: "", name: ratings }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/private*"] } }] }]
`;
  const withPolicy = modelFromYaml(MESH, TARGETED);
  const rbacOf = (set: ResourceSet, listener: string) => {
    const l = decoded<Listener>(TypeUrl.Listener, set[TypeUrl.Listener].get(listener)!);
    return l.filterChains.flatMap((c) => c.filter.rbac);
  };

  it("is in the HTTP chain of the targeted Service's VIP listener at its waypoint, with the L7 conditions", () => {
    const set = run({ id: 'wp-1.shop', workload: 'wp-1', namespace: 'shop', mode: 'waypoint' }, {}, withPolicy);
    const rbac = rbacOf(set, '10.96.0.20_9080');
    expect(rbac.map((r) => r.action)).toEqual(['DENY']);
    expect(JSON.stringify(rbac)).toContain('/private');
    // Other Services' listeners are the shared ones, without it.
    expect(rbacOf(set, '10.96.0.10_9080')).toEqual([]);
    expect(checkConsistency(buildSnapshot(set))).toEqual([]);
  });

  it("is on the targeted Service's L4 ports too, at its waypoint, as network RBAC with what a stream has", () => {
    const set = run({ id: 'wp-1.shop', workload: 'wp-1', namespace: 'shop', mode: 'waypoint' }, {}, withPolicy);
    // ratings' mysql port is relayed as bytes: the DENY on paths loses them and denies every stream.
    const db = decoded<Listener>(TypeUrl.Listener, set[TypeUrl.Listener].get('10.96.0.20_3306')!);
    expect(db.filterChains.map((c) => c.filter.kind)).toEqual(['tcp']);
    expect(db.filterChains[0]!.filter.rbac).toEqual([
      { action: 'DENY', policies: [{ name: 'ns[shop]-policy[private]-rule[0]', principals: [{ any: true }], permissions: [{ any: true }] }] },
    ]);
    expect(checkConsistency(buildSnapshot(set))).toEqual([]);
  });

  it('is enforced by no workload: not by sidecars, not by the pods behind the Service', () => {
    const node = run(NODE_A, {}, withPolicy);
    expect(rbacOf(node, 'ambient|shop|ratings-v1')).toEqual(rbacOf(run(NODE_A), 'ambient|shop|ratings-v1'));
    const sidecarSet = run(sidecar('reviews-v1', 'shop'), { 'reviews-v1.shop': 15006 }, withPolicy);
    expect(rbacOf(sidecarSet, '10.96.0.20_9080')).toEqual([]);
  });

  it('cannot be combined with a selector (a problem with its field path)', () => {
    expect(() =>
      modelFromYaml(`
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: both, namespace: shop }
spec: { selector: { matchLabels: { app: ratings } }, targetRefs: [{ kind: Service, name: ratings }], rules: [{}] }
`),
    ).toThrow(/spec\.targetRefs: cannot be used with spec\.selector/);
  });
});
