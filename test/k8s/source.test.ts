// The Kubernetes config source against the STAND-IN API server (test/k8s/apiserver.ts — no real
// Kubernetes runs here; the client is the real @kubernetes/client-node over TLS): list then
// watch, create / update / delete, a watch ending in 410 Gone re-listed without losing an event,
// bookmarks that spare a re-list, retries, CRDs not installed, meshed pods as workloads, and
// objects that do not parse reported by name and field.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../core/log.js';
import { KubernetesSource } from '../../control-plane/sources/kubernetes/source.js';
import { watchedKinds } from '../../control-plane/sources/kubernetes/kinds.js';
import { podSidecar } from '../../control-plane/sources/kubernetes/mode.js';
import { eventually } from '../support/eventually.js';
import { meshedPod, startStandInCluster, type StandInCluster } from './harness.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const service = (name: string, port = 9080, namespace = 'bookinfo') => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace },
  spec: { selector: { app: name }, ports: [{ name: 'http', port, targetPort: port, protocol: 'TCP' }], clusterIP: '10.96.0.10', type: 'ClusterIP' },
});

let cluster: StandInCluster;
let source: KubernetesSource | undefined;

beforeEach(async () => {
  cluster = await startStandInCluster({ bookmarkIntervalMs: 100 });
  cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo', labels: { 'weft.dev/inject': 'enabled' } } });
});

afterEach(async () => {
  source?.stop();
  source = undefined;
  await cluster.close();
});

function start(kinds?: ReturnType<typeof watchedKinds>): Promise<void> {
  source = new KubernetesSource({ kc: cluster.api.kubeConfig(), debounceMs: 20, log: quiet, ...(kinds ? { kinds } : {}) });
  return source.start();
}

const serviceNames = () => source!.model.get().services.map((s) => `${s.metadata.namespace}/${s.metadata.name}:${s.spec.ports[0]?.port}`);

describe('KubernetesSource (stand-in API server)', () => {
  it('lists everything before start() resolves, then follows creates, updates and deletes', async () => {
    cluster.api.apply(service('reviews'));
    await start();
    expect(serviceNames()).toEqual(['bookinfo/reviews:9080']);
    expect(source!.model.get().namespaces.get('bookinfo')?.metadata.labels).toEqual({ 'weft.dev/inject': 'enabled' });

    cluster.api.apply(service('ratings'));
    await eventually(() => expect(serviceNames()).toEqual(['bookinfo/ratings:9080', 'bookinfo/reviews:9080']));
    cluster.api.apply(service('ratings', 9090));
    await eventually(() => expect(serviceNames()).toEqual(['bookinfo/ratings:9090', 'bookinfo/reviews:9080']));
    cluster.api.remove('v1', 'Service', 'bookinfo', 'reviews');
    await eventually(() => expect(serviceNames()).toEqual(['bookinfo/ratings:9090']));

    // Every watch asks for bookmarks and resumes from a resourceVersion.
    const watches = cluster.api.requests.filter((r) => r.query.watch === 'true');
    expect(watches.length).toBeGreaterThanOrEqual(watchedKinds(cluster.api.kubeConfig()).length);
    for (const w of watches) {
      expect(w.query.allowWatchBookmarks).toBe('true');
      expect(w.query.resourceVersion).toMatch(/^\d+$/);
    }
  });

  it('re-lists after a watch ends with 410 Gone, without losing the changes made meanwhile', async () => {
    cluster.api.apply(service('a'));
    cluster.api.apply(service('b'));
    await start();
    await eventually(() => expect(source!.stats().Service!.watches).toBeGreaterThan(0));
    const before = source!.stats().Service!;
    // While no watch is open: b goes, c comes, and the history the watch would resume from is gone.
    cluster.api.endWatches();
    cluster.api.remove('v1', 'Service', 'bookinfo', 'b');
    cluster.api.apply(service('c'));
    cluster.api.compact();
    await eventually(() => expect(serviceNames()).toEqual(['bookinfo/a:9080', 'bookinfo/c:9080']));
    const after = source!.stats().Service!;
    expect(after.expired).toBeGreaterThan(before.expired);
    expect(after.lists).toBe(before.lists + 1);
    // And it keeps watching from the new list: later changes still arrive.
    cluster.api.apply(service('d'));
    await eventually(() => expect(serviceNames()).toContain('bookinfo/d:9080'));
  });

  it('keeps a quiet watch fresh with bookmarks, so a compacted history needs no re-list', async () => {
    cluster.api.apply(service('a'));
    await start();
    // Other kinds move the resourceVersion on; the Service watch only hears of it by bookmarks.
    for (let i = 0; i < 5; i++) cluster.api.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm${i}`, namespace: 'bookinfo' }, data: {} });
    const rv = cluster.api.currentResourceVersion();
    await eventually(() => {
      expect(source!.stats().Service!.bookmarks).toBeGreaterThan(0);
      expect(source!.stats().Service!.resourceVersion).toBe(rv);
    });
    const before = source!.stats().Service!;
    cluster.api.compact();
    cluster.api.endWatches();
    await eventually(() => expect(source!.stats().Service!.watches).toBeGreaterThan(before.watches));
    cluster.api.apply(service('b'));
    await eventually(() => expect(serviceNames()).toEqual(['bookinfo/a:9080', 'bookinfo/b:9080']));
    expect(source!.stats().Service!.expired).toBe(before.expired);
    expect(source!.stats().Service!.lists).toBe(before.lists);
  });

  it('retries a failed list, and treats a kind the server does not serve (CRD missing) as empty', async () => {
    cluster.api.apply(service('a'));
    cluster.api.failOnce('GET', '/api/v1/services', 500);
    const kinds = watchedKinds(cluster.api.kubeConfig());
    const kc = cluster.api.kubeConfig();
    const { CustomObjectsApi } = await import('@kubernetes/client-node');
    const custom = kc.makeApiClient(CustomObjectsApi);
    kinds.push({
      apiVersion: 'example.com/v1',
      kind: 'Widget',
      path: '/apis/example.com/v1/widgets',
      list: async () => {
        const l = (await custom.listClusterCustomObject({ group: 'example.com', version: 'v1', plural: 'widgets' })) as { items: never[] };
        return { items: l.items, resourceVersion: '1' };
      },
      optional: true,
    });
    await start(kinds);
    expect(serviceNames()).toEqual(['bookinfo/a:9080']);
    expect(source!.stats().Service!.errors).toBe(1);
    expect(source!.stats().Widget!.served).toBe(false);
  });

  it('makes meshed pods workloads, and points their EndpointSlice endpoints at those workloads', async () => {
    cluster.api.apply(
      meshedPod({ name: 'reviews-v1-abc', namespace: 'bookinfo', labels: { app: 'reviews' }, serviceAccount: 'bookinfo-reviews', ip: '10.1.0.5', ports: { http: 9080 } }),
    );
    cluster.api.apply(meshedPod({ name: 'reviews-v1-new', namespace: 'bookinfo', labels: { app: 'reviews' }, serviceAccount: 'bookinfo-reviews', ip: '10.1.0.6', proxyReady: false }));
    // A pod without a sidecar (and not enrolled in ambient mode): never a workload.
    cluster.api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'plain', namespace: 'bookinfo', labels: { app: 'reviews' } }, spec: { containers: [{ name: 'c', image: 'i' }] }, status: { phase: 'Running', podIP: '10.1.0.7' } });
    cluster.api.apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'reviews-x1', namespace: 'bookinfo', labels: { 'kubernetes.io/service-name': 'reviews' } },
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.1.0.5'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'reviews-v1-abc', namespace: 'bookinfo' } },
        { addresses: ['10.1.0.7'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'plain', namespace: 'bookinfo' } },
      ],
      ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
    });
    await start();
    const model = source!.model.get();
    const w = model.workloadEntry('bookinfo', 'reviews-v1-abc');
    expect(w?.spec).toMatchObject({ address: '10.1.0.5', ports: { http: 9080 }, serviceAccount: 'bookinfo-reviews' });
    expect(w?.metadata.annotations['weft.dev/sidecar-inbound-port']).toBe('15006');
    // From the injection record: where its sidecar takes HBONE tunnels (its L4 endpoint).
    expect(w?.metadata.annotations['weft.dev/sidecar-hbone-port']).toBe('15008');
    expect(podSidecar(model, 'reviews-v1-abc.bookinfo')).toEqual({ inboundPort: 15006, hbonePort: 15008 });
    expect(model.workloadEntry('bookinfo', 'reviews-v1-new')?.metadata.annotations['weft.dev/sidecar-inbound-port']).toBeUndefined();
    expect(model.workloadEntry('bookinfo', 'plain')).toBeUndefined();
    const slice = model.endpointSlices('bookinfo', 'reviews')[0];
    expect(slice?.endpoints.map((e) => e.targetRef?.kind)).toEqual(['WorkloadEntry', 'Pod']);
  });

  it('reports an object that does not parse by name and field, and keeps the rest', async () => {
    cluster.api.apply(service('reviews'));
    cluster.api.apply({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: { name: 'broken', namespace: 'bookinfo' },
      spec: { parentRefs: [{ group: '', kind: 'Service', name: 'reviews' }], rules: [{ backendRefs: [{ name: 'reviews', port: 9080, weight: -1 }] }] },
    });
    await start();
    expect(serviceNames()).toEqual(['bookinfo/reviews:9080']);
    const problems = source!.problems();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ object: 'HTTPRoute bookinfo/broken', field: 'spec.rules[0].backendRefs[0].weight' });
  });
});
