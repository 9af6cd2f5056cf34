// Two control-plane replicas in --kubernetes mode against the STAND-IN API server
// (test/k8s/apiserver.ts; no real Kubernetes runs here), seen by a raw ADS client that
// authenticates as a meshed pod with its ServiceAccount token (TokenReview): create / update /
// delete of every watched kind reaches xDS; the leader (Lease) alone writes route status through
// the status subresource, publishes the root-cert ConfigMaps and the webhook's caBundle; both
// replicas share one CA (Secret) and serve the injection webhook; leadership fails over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../api/types.js';
import type { ControlPlane } from '../../control-plane/main.js';
import { eventually } from '../support/eventually.js';
import { endpointsOf, meshedPod, RawAdsClient, startKubeControlPlane, startStandInCluster, type StandInCluster } from './harness.js';

const GW = 'gateway.networking.k8s.io/v1';
const REVIEWS = 'outbound|9080||reviews.bookinfo.svc.cluster.local';
const REVIEWS_ID = 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews';

let cluster: StandInCluster;
let a: ControlPlane;
let b: ControlPlane;
let ads: RawAdsClient;
const replicas = () => [a, b].filter(Boolean);

async function kubeDebug(cp: ControlPlane): Promise<{ leader: boolean; statusWrites: number; rootCertWrites: number }> {
  const res = await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/kubernetes`);
  return (await res.json()) as { leader: boolean; statusWrites: number; rootCertWrites: number };
}

async function leaderAndFollower(): Promise<{ leader: ControlPlane; follower: ControlPlane }> {
  return eventually(async () => {
    const flags = await Promise.all([a, b].map(kubeDebug));
    expect(flags.filter((f) => f.leader)).toHaveLength(1);
    return flags[0]!.leader ? { leader: a, follower: b } : { leader: b, follower: a };
  });
}

function service(name: string, selector: Record<string, string> | undefined, ports: { name: string; port: number; appProtocol?: string }[], namespace = 'bookinfo') {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ...(selector ? { selector } : {}), type: 'ClusterIP', clusterIP: '10.96.1.1', ports: ports.map((p) => ({ ...p, protocol: 'TCP', targetPort: p.port })) },
  };
}

/** A virtual host of the `outbound` route configuration (a VHDS resource of its own). */
function vhost(name: string): string {
  return JSON.stringify(ads.resources(TypeUrl.VirtualHost).get(`outbound/${name}`) ?? null);
}

function route(name: string, rules: unknown[], namespace = 'bookinfo', parent = 'reviews') {
  return { apiVersion: GW, kind: 'HTTPRoute', metadata: { name, namespace }, spec: { parentRefs: [{ group: '', kind: 'Service', name: parent, port: 9080 }], rules } };
}

beforeAll(async () => {
  cluster = await startStandInCluster();
  const api = cluster.api;
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo', labels: { 'weft.dev/inject': 'enabled' } } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ratings-ns' } });
  // A stale copy made by hand (no label): the leader takes it over.
  api.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'weft-ca-root-cert', namespace: 'ratings-ns' }, data: { 'root-cert.pem': 'stale' } });
  for (const sa of ['bookinfo-reviews', 'default']) api.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'bookinfo' } });
  api.apply(service('reviews', { app: 'reviews' }, [{ name: 'http', port: 9080 }]));
  api.apply(service('reviews-v1', { app: 'reviews', version: 'v1' }, [{ name: 'http', port: 9080 }]));
  api.apply(service('reviews-v2', { app: 'reviews', version: 'v2' }, [{ name: 'http', port: 9080 }]));
  api.apply(meshedPod({ name: 'reviews-v1-aaaaa', namespace: 'bookinfo', labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'bookinfo-reviews', ip: '10.1.0.5', ports: { http: 9080 } }));
  api.apply({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'weft-sidecar-injector' },
    webhooks: [
      {
        name: 'namespace.sidecar-injector.weft.dev',
        clientConfig: { service: { name: 'weft-control-plane', namespace: 'weft-system', path: '/inject', port: 15017 } },
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
      },
    ],
  });
  a = await startKubeControlPlane(cluster, 'a');
  b = await startKubeControlPlane(cluster, 'b');
  const pod = api.get('v1', 'Pod', 'bookinfo', 'reviews-v1-aaaaa')!;
  const token = api.issueToken({
    namespace: 'bookinfo',
    serviceAccount: 'bookinfo-reviews',
    audiences: ['weft-ca'],
    pod: { name: 'reviews-v1-aaaaa', uid: String((pod.metadata as { uid: string }).uid) },
  });
  ads = new RawAdsClient(`127.0.0.1:${a.xdsAddress.port}`, 'reviews-v1-aaaaa.bookinfo', token);
});

afterAll(async () => {
  ads?.close();
  await Promise.all(replicas().map((cp) => cp.stop()));
  await cluster?.close();
});

describe('control plane in Kubernetes mode (stand-in API server)', () => {
  it('shares one CA between replicas through the weft-ca-secret Secret', () => {
    expect(a.trustBundle()).toEqual(b.trustBundle());
    expect(cluster.api.get('v1', 'Secret', 'weft-system', 'weft-ca-secret')).toBeDefined();
  });

  it('serves a proxy that proves its pod with a ServiceAccount token: the pod sidecar is the endpoint', async () => {
    await eventually(() => {
      expect(ads.error).toBeUndefined();
      expect(endpointsOf(ads, REVIEWS)).toEqual([{ address: '10.1.0.5:15006', identity: REVIEWS_ID }]);
    });
    // Its own inbound listener: the app port of its pod.
    expect(ads.resources(TypeUrl.Listener).has('inbound')).toBe(true);
  });

  it('Services: create, update and delete reach CDS', async () => {
    cluster.api.apply(service('ratings', { app: 'ratings' }, [{ name: 'http', port: 9080 }]));
    await eventually(() => expect(ads.resources(TypeUrl.Cluster).has('outbound|9080||ratings.bookinfo.svc.cluster.local')).toBe(true));
    cluster.api.apply(service('ratings', { app: 'ratings' }, [{ name: 'http', port: 9090 }]));
    await eventually(() => {
      expect(ads.resources(TypeUrl.Cluster).has('outbound|9090||ratings.bookinfo.svc.cluster.local')).toBe(true);
      expect(ads.resources(TypeUrl.Cluster).has('outbound|9080||ratings.bookinfo.svc.cluster.local')).toBe(false);
    });
    cluster.api.remove('v1', 'Service', 'bookinfo', 'ratings');
    await eventually(() => expect([...ads.resources(TypeUrl.Cluster).keys()].some((k) => k.includes('ratings'))).toBe(false));
  });

  it('Pods: a new meshed pod becomes an endpoint once its proxy is ready, and leaves when deleted', async () => {
    const pod = { name: 'reviews-v1-bbbbb', namespace: 'bookinfo', labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'bookinfo-reviews', ip: '10.1.0.6', ports: { http: 9080 } };
    cluster.api.apply(meshedPod({ ...pod, proxyReady: false }));
    // Give the model time to see it, then check it is not an endpoint yet.
    await eventually(() => expect(a.model().workloadEntry('bookinfo', pod.name)).toBeDefined());
    expect(endpointsOf(ads, REVIEWS).map((e) => e.address)).toEqual(['10.1.0.5:15006']);
    cluster.api.apply(meshedPod(pod));
    await eventually(() => expect(endpointsOf(ads, REVIEWS).map((e) => e.address).sort()).toEqual(['10.1.0.5:15006', '10.1.0.6:15006']));
    cluster.api.remove('v1', 'Pod', 'bookinfo', pod.name);
    await eventually(() => expect(endpointsOf(ads, REVIEWS).map((e) => e.address)).toEqual(['10.1.0.5:15006']));
  });

  it('EndpointSlices: hand-made endpoints of a selector-less Service come and go', async () => {
    const external = 'outbound|443||payments.bookinfo.svc.cluster.local';
    cluster.api.apply(service('payments', undefined, [{ name: 'https', port: 443 }]));
    const slice = (address: string) => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'payments-1', namespace: 'bookinfo', labels: { 'kubernetes.io/service-name': 'payments' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: [address], conditions: { ready: true } }],
      ports: [{ name: 'https', port: 443, protocol: 'TCP' }],
    });
    cluster.api.apply(slice('10.9.9.9'));
    await eventually(() => expect(endpointsOf(ads, external).map((e) => e.address)).toEqual(['10.9.9.9:443']));
    cluster.api.apply(slice('10.9.9.10'));
    await eventually(() => expect(endpointsOf(ads, external).map((e) => e.address)).toEqual(['10.9.9.10:443']));
    cluster.api.remove('discovery.k8s.io/v1', 'EndpointSlice', 'bookinfo', 'payments-1');
    await eventually(() => expect(endpointsOf(ads, external)).toEqual([]));
  });

  it('HTTPRoutes: create, update and delete reach RDS, and the leader alone writes their status', async () => {
    const split = (v1: number, v2: number) =>
      route('reviews-split', [{ backendRefs: [{ name: 'reviews-v1', port: 9080, weight: v1 }, { name: 'reviews-v2', port: 9080, weight: v2 }] }]);
    const host = 'reviews.bookinfo.svc.cluster.local:9080';
    // Another controller's entry in status.parents must survive Weft's writes.
    cluster.api.apply({
      ...split(90, 10),
      status: {
        parents: [
          {
            parentRef: { name: 'gw', kind: 'Gateway', group: 'gateway.networking.k8s.io' },
            controllerName: 'example.com/gateway',
            conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', lastTransitionTime: '2024-01-01T00:00:00Z' }],
          },
        ],
      },
    });
    await eventually(() => {
      const v = vhost(host);
      expect(v).toContain('"weight":{"value":90}');
      expect(v).toContain('outbound|9080||reviews-v2.bookinfo.svc.cluster.local');
    });
    cluster.api.apply(split(50, 50));
    await eventually(() => expect(vhost(host)).toContain('"weight":{"value":50}'));

    const { leader, follower } = await leaderAndFollower();
    await eventually(() => {
      const got = cluster.api.get(GW, 'HTTPRoute', 'bookinfo', 'reviews-split') as { metadata: { generation: number }; status?: { parents?: { controllerName: string; conditions: { type: string; status: string; reason: string; observedGeneration?: number; lastTransitionTime: string }[] }[] } };
      const parents = got.status?.parents ?? [];
      expect(parents.map((p) => p.controllerName)).toEqual(['example.com/gateway', 'weft.dev/control-plane']);
      const ours = parents[1]!;
      expect(ours.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual(['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
      expect(ours.conditions.every((c) => c.observedGeneration === got.metadata.generation && /Z$/.test(c.lastTransitionTime))).toBe(true);
    });
    expect(cluster.api.requests.some((r) => r.method === 'PUT' && r.path === '/apis/gateway.networking.k8s.io/v1/namespaces/bookinfo/httproutes/reviews-split/status')).toBe(true);
    expect((await kubeDebug(leader)).statusWrites).toBeGreaterThan(0);
    expect((await kubeDebug(follower)).statusWrites).toBe(0);

    cluster.api.remove(GW, 'HTTPRoute', 'bookinfo', 'reviews-split');
    await eventually(() => expect(vhost(host)).toContain(`"cluster":"${REVIEWS}"`));
  });

  it('ReferenceGrants: a backend in another namespace resolves only once it is granted', async () => {
    cluster.api.apply(service('ratings', { app: 'ratings' }, [{ name: 'http', port: 9080 }], 'ratings-ns'));
    cluster.api.apply(route('to-ratings', [{ backendRefs: [{ name: 'ratings', namespace: 'ratings-ns', port: 9080 }] }]));
    const host = 'reviews.bookinfo.svc.cluster.local:9080';
    await eventually(() => expect(vhost(host)).toContain('unresolved|Service|ratings-ns/ratings:9080'));
    const grant = {
      apiVersion: 'gateway.networking.k8s.io/v1beta1',
      kind: 'ReferenceGrant',
      metadata: { name: 'from-bookinfo', namespace: 'ratings-ns' },
      spec: { from: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute', namespace: 'bookinfo' }], to: [{ group: '', kind: 'Service' }] },
    };
    cluster.api.apply(grant);
    await eventually(() => expect(vhost(host)).toContain('outbound|9080||ratings.ratings-ns.svc.cluster.local'));
    cluster.api.remove(grant.apiVersion, 'ReferenceGrant', 'ratings-ns', 'from-bookinfo');
    await eventually(() => expect(vhost(host)).toContain('unresolved|Service|ratings-ns/ratings:9080'));
    cluster.api.remove(GW, 'HTTPRoute', 'bookinfo', 'to-ratings');
  });

  it('GRPCRoutes: create and delete reach RDS', async () => {
    cluster.api.apply(service('greeter', { app: 'greeter' }, [{ name: 'grpc', port: 50051, appProtocol: 'grpc' }]));
    cluster.api.apply(service('greeter-v2', { app: 'greeter', version: 'v2' }, [{ name: 'grpc', port: 50051, appProtocol: 'grpc' }]));
    const host = 'greeter.bookinfo.svc.cluster.local:50051';
    cluster.api.apply({
      apiVersion: GW,
      kind: 'GRPCRoute',
      metadata: { name: 'greeter', namespace: 'bookinfo' },
      spec: {
        parentRefs: [{ group: '', kind: 'Service', name: 'greeter', port: 50051 }],
        rules: [{ matches: [{ method: { service: 'helloworld.Greeter', method: 'SayHello' } }], backendRefs: [{ name: 'greeter-v2', port: 50051 }] }],
      },
    });
    await eventually(() => {
      expect(vhost(host)).toContain('/helloworld.Greeter/SayHello');
      expect(vhost(host)).toContain('outbound|50051||greeter-v2.bookinfo.svc.cluster.local');
    });
    cluster.api.remove(GW, 'GRPCRoute', 'bookinfo', 'greeter');
    await eventually(() => expect(vhost(host)).not.toContain('greeter-v2'));
  });

  it("Weft's CRDs: PeerAuthentication and AuthorizationPolicy change the pod's inbound listener; WorkloadEntries join the model", async () => {
    const inbound = () => JSON.stringify(ads.resources(TypeUrl.Listener).get('inbound') ?? null);
    const chains = () => ((ads.resources(TypeUrl.Listener).get('inbound') as { filter_chains?: unknown[] } | undefined)?.filter_chains ?? []).length;
    await eventually(() => expect(chains()).toBe(2)); // PERMISSIVE: TLS and plaintext
    const pa = { apiVersion: 'weft.dev/v1alpha1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'bookinfo' }, spec: { mtls: { mode: 'STRICT' } } };
    cluster.api.apply(pa);
    await eventually(() => expect(chains()).toBe(1));
    cluster.api.remove(pa.apiVersion, pa.kind, 'bookinfo', 'strict');
    await eventually(() => expect(chains()).toBe(2));

    const policy = {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'AuthorizationPolicy',
      metadata: { name: 'only-productpage', namespace: 'bookinfo' },
      spec: { selector: { matchLabels: { app: 'reviews' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/bookinfo/sa/productpage'] } }] }] },
    };
    cluster.api.apply(policy);
    await eventually(() => expect(inbound()).toContain('sa/productpage'));
    cluster.api.remove(policy.apiVersion, policy.kind, 'bookinfo', 'only-productpage');
    await eventually(() => expect(inbound()).not.toContain('sa/productpage'));

    const vm = { apiVersion: 'weft.dev/v1alpha1', kind: 'WorkloadEntry', metadata: { name: 'vm-1', namespace: 'bookinfo', labels: { app: 'reviews' } }, spec: { address: '10.2.0.1', serviceAccount: 'bookinfo-reviews' } };
    cluster.api.apply(vm);
    await eventually(() => expect(a.model().workloadEntry('bookinfo', 'vm-1')?.spec.address).toBe('10.2.0.1'));
    cluster.api.remove(vm.apiVersion, vm.kind, 'bookinfo', 'vm-1');
    await eventually(() => expect(a.model().workloadEntry('bookinfo', 'vm-1')).toBeUndefined());
  });

  it('Namespaces: each gets the weft-ca-root-cert ConfigMap from the leader (a stale one is taken over), and it is put back if deleted', async () => {
    const roots = a.trustBundle().join('');
    const cm = (ns: string) => cluster.api.get('v1', 'ConfigMap', ns, 'weft-ca-root-cert') as { data?: Record<string, string> } | undefined;
    await eventually(() => {
      for (const ns of ['weft-system', 'bookinfo', 'ratings-ns']) expect(cm(ns)?.data?.['root-cert.pem']).toBe(roots);
    });
    cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late', labels: { 'weft.dev/inject': 'enabled' } } });
    await eventually(() => expect(cm('late')?.data?.['root-cert.pem']).toBe(roots));
    await eventually(() => expect(a.model().namespaces.get('late')?.metadata.labels['weft.dev/inject']).toBe('enabled'));
    cluster.api.remove('v1', 'ConfigMap', 'late', 'weft-ca-root-cert');
    await eventually(() => expect(cm('late')?.data?.['root-cert.pem']).toBe(roots));
    const { follower } = await leaderAndFollower();
    expect((await kubeDebug(follower)).rootCertWrites).toBe(0);
  });

  it("keeps the injection webhook's caBundle equal to the mesh roots, and every replica serves the webhook", async () => {
    await eventually(() => {
      const mwc = cluster.api.get('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', undefined, 'weft-sidecar-injector') as {
        webhooks: { clientConfig: { caBundle?: string } }[];
      };
      expect(Buffer.from(mwc.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString()).toBe(a.trustBundle().join(''));
    });
    expect(a.webhookAddress?.port).toBeGreaterThan(0);
    expect(b.webhookAddress?.port).toBeGreaterThan(0);
  });

  it('fails over: when the leader stops, the other replica takes the Lease and writes status', async () => {
    const { leader, follower } = await leaderAndFollower();
    await leader.stop();
    if (leader === a) a = undefined as never;
    else b = undefined as never;
    await eventually(async () => expect((await kubeDebug(follower)).leader).toBe(true), { timeoutMs: 15_000 });
    cluster.api.apply(route('after-failover', [{ backendRefs: [{ name: 'reviews-v1', port: 9080 }] }]));
    await eventually(() => {
      const got = cluster.api.get(GW, 'HTTPRoute', 'bookinfo', 'after-failover') as { status?: { parents?: unknown[] } };
      expect(got.status?.parents).toHaveLength(1);
    });
    const lease = cluster.api.get('coordination.k8s.io/v1', 'Lease', 'weft-system', 'weft-control-plane-default') as { spec: Record<string, unknown> };
    expect(lease.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(lease.spec.leaseTransitions).toBeGreaterThanOrEqual(0);
  });
});
