// Rebuilding every proxy's snapshot: a proxy whose inputs did not change keeps its snapshot, a
// route edit changes only the route sets (shared by every proxy), a rebuild of many proxies
// yields to the event loop, and a model that changes during a rebuild is rebuilt after it.
import { afterEach, describe, expect, it } from 'vitest';
import type { Plain } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import { MESH, directoryOf } from '../translate/fixtures.js';
import { modelFromYaml } from '../model/testing.js';
import type { Model } from '../model/index.js';
import { translateShared, type ProxyNode } from '../translate/index.js';
import { MemorySnapshotCache } from './cache.js';
import { Rebuilder } from './rebuild.js';
import type { Snapshot } from './snapshot.js';

const route = (weight: number) => `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: ${weight} }
        - { name: reviews-v2, port: 9080, weight: ${100 - weight} }
`;

/** `count` extra client workloads, client-0..N, for fleets. */
const clients = (count: number) =>
  Array.from(
    { length: count },
    (_, i) => `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client-${i}, labels: { app: client } }
spec: { address: 127.0.0.1 }
`,
  ).join('');

function fleet(ids: readonly string[], yaml: string, opts: { sliceMs?: number } = {}) {
  let model: Model = modelFromYaml(yaml);
  const cache = new MemorySnapshotCache();
  const nodes = new Map<string, ProxyNode>(ids.map((id) => [id, { id, workload: id.split('.')[0]!, namespace: 'default', mode: 'sidecar' }]));
  const options = { trustDomain: 'cluster.local', mtls: true };
  const directory = directoryOf();
  let rebuilds = 0;
  let built = 0;
  const failures: string[] = [];
  const rebuilder = new Rebuilder({
    cache,
    debounceMs: 10,
    ...(opts.sliceMs === undefined ? {} : { sliceMs: opts.sliceMs }),
    model: () => model,
    translateShared: () => translateShared(model, directory, options),
    proxies: () => nodes.keys(),
    proxy: (id) => nodes.get(id),
    rootSecret: (): Plain => ({ name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'roots' } } }),
    published: (_id, snapshot) => {
      built++;
      return new Map([...snapshot.types].map(([t, r]) => [t, r.version]));
    },
    failed: (id, err) => failures.push(`${id}: ${String(err)}`),
    rebuilt: () => rebuilds++,
  });
  return {
    cache,
    rebuilder,
    setModel: (yaml: string) => (model = modelFromYaml(yaml)),
    stats: () => ({ rebuilds, built, failures }),
  };
}

const snapshots = (cache: MemorySnapshotCache, ids: readonly string[]) => ids.map((id) => cache.get(id)!);
const set = (s: Snapshot, t: string) => s.types.get(t as TypeUrl);

describe('Rebuilder', () => {
  let stop: (() => void) | undefined;
  afterEach(() => stop?.());

  it('keeps the snapshot of a proxy whose inputs did not change', async () => {
    const ids = ['client.default', 'reviews-v1.default'];
    const f = fleet(ids, MESH + '---' + route(90));
    stop = () => f.rebuilder.stop();
    f.rebuilder.buildNow(ids);
    const before = snapshots(f.cache, ids);
    const builtBefore = f.stats().built;
    // A proxy connecting or leaving elsewhere: the same model, nothing shared changed.
    f.rebuilder.scheduleNow();
    await f.rebuilder.settled();
    expect(f.stats().rebuilds).toBe(1);
    expect(f.stats().built).toBe(builtBefore);
    expect(snapshots(f.cache, ids)).toEqual(before);
    expect(snapshots(f.cache, ids)[0]).toBe(before[0]);
  });

  it('on a route edit changes only the virtual-host (VHDS) sets, and every proxy shares them', async () => {
    const ids = ['client.default', 'reviews-v1.default', 'reviews-v2.default'];
    const f = fleet(ids, MESH + '---' + route(90));
    stop = () => f.rebuilder.stop();
    f.rebuilder.buildNow(ids);
    const before = snapshots(f.cache, ids);
    f.setModel(MESH + '---' + route(50));
    f.rebuilder.scheduleNow();
    await f.rebuilder.settled();
    const after = snapshots(f.cache, ids);
    after.forEach((s, i) => {
      expect(set(s, TypeUrl.VirtualHost)).not.toBe(set(before[i]!, TypeUrl.VirtualHost));
      for (const t of [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Secret]) {
        expect(set(s, t), `${ids[i]} ${t}`).toBe(set(before[i]!, t));
      }
      expect(set(s, TypeUrl.VirtualHost)).toBe(set(after[0]!, TypeUrl.VirtualHost));
      expect(set(s, TypeUrl.ClusterLoadAssignment)).toBe(set(after[0]!, TypeUrl.ClusterLoadAssignment));
    });
    // Only the edited Service's virtual host is a new resource: the others keep their entries.
    const vhBefore = set(before[0]!, TypeUrl.VirtualHost)!.items;
    const vhAfter = set(after[0]!, TypeUrl.VirtualHost)!.items;
    const changed = [...vhAfter].filter(([name, r]) => vhBefore.get(name) !== r).map(([name]) => name);
    expect(changed).toEqual(['outbound/reviews.default.svc.cluster.local:9080']);
    expect(vhAfter.size).toBeGreaterThan(1);
    const routes = vhAfter.get('outbound/reviews.default.svc.cluster.local:9080')!.plain;
    expect(JSON.stringify(routes)).toContain('"weight":{"value":50}');
    expect(f.stats().failures).toEqual([]);
  });

  it('yields to the event loop while it rebuilds many proxies', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `client-${i}.default`);
    const f = fleet(ids, MESH + clients(40), { sliceMs: 0 });
    stop = () => f.rebuilder.stop();
    f.rebuilder.buildNow(ids);
    f.setModel(MESH + clients(40) + '---' + route(70));
    f.rebuilder.scheduleNow();
    // A timer due at once fires before the rebuild is done: it did not hold the event loop.
    const progress = await new Promise<number>((resolve) => setTimeout(() => resolve(f.stats().built), 0));
    await f.rebuilder.settled();
    expect(f.stats().built).toBe(80);
    expect(progress).toBeLessThan(80);
  });

  it('rebuilds again for a model that changed while it was rebuilding', async () => {
    const ids = Array.from({ length: 20 }, (_, i) => `client-${i}.default`);
    const f = fleet(ids, MESH + clients(20), { sliceMs: 0 });
    stop = () => f.rebuilder.stop();
    f.rebuilder.buildNow(ids);
    f.setModel(MESH + clients(20) + '---' + route(70));
    f.rebuilder.scheduleNow();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    f.setModel(MESH + clients(20) + '---' + route(30));
    f.rebuilder.scheduleNow();
    await f.rebuilder.settled();
    for (const s of snapshots(f.cache, ids)) {
      expect(JSON.stringify([...set(s, TypeUrl.VirtualHost)!.items.values()].map((r) => r.plain))).toContain('"weight":{"value":30}');
    }
    expect(f.stats().rebuilds).toBe(2);
  });
});
