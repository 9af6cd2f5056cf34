// Snapshots: content-hash versions, and the consistency check that keeps a proxy from ever
// receiving a listener without its routes, a cluster without its endpoints, or a dangling route.
import { describe, expect, it } from 'vitest';
import type { Plain } from '../../api/codec.js';
import { HCM_TYPE_URL, ROUTER_TYPE_URL, TypeUrl } from '../../api/types.js';
import { MemorySnapshotCache } from './cache.js';
import { buildSnapshot, checkConsistency, SnapshotError, type ResourceSet } from './snapshot.js';

function listener(rds: string): Plain {
  return {
    name: 'outbound',
    filter_chains: [
      {
        filters: [
          {
            name: 'hcm',
            typed_config: {
              '@type': HCM_TYPE_URL,
              stat_prefix: 'o',
              rds: { route_config_name: rds, config_source: { ads: {} } },
              http_filters: [{ name: 'router', typed_config: { '@type': ROUTER_TYPE_URL } }],
            },
          },
        ],
      },
    ],
  };
}
const routes = (cluster: string, extra: Plain = {}): Plain => ({
  name: 'outbound',
  virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'r0', match: { prefix: '/' }, route: { cluster, ...extra } }] }],
});
const cluster = (name: string): Plain => ({ name, type: 'EDS', eds_cluster_config: { service_name: name, eds_config: { ads: {} } } });
const cla = (name: string, port = 8080): Plain => ({
  cluster_name: name,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});

function set(parts: { rds?: string; routeTo?: string; routeExtra?: Plain; clusters?: string[]; endpoints?: string[]; port?: number }): ResourceSet {
  return {
    [TypeUrl.Listener]: new Map([['outbound', listener(parts.rds ?? 'outbound')]]),
    [TypeUrl.RouteConfiguration]: new Map([['outbound', routes(parts.routeTo ?? 'a', parts.routeExtra)]]),
    [TypeUrl.Cluster]: new Map((parts.clusters ?? ['a']).map((n) => [n, cluster(n)])),
    [TypeUrl.ClusterLoadAssignment]: new Map((parts.endpoints ?? ['a']).map((n) => [n, cla(n, parts.port)])),
  };
}

describe('snapshot versions', () => {
  it('are equal for equal content and differ when content changes', () => {
    const a = buildSnapshot(set({}));
    const b = buildSnapshot(set({}));
    const c = buildSnapshot(set({ port: 9090 }));
    for (const t of [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]) {
      expect(b.types.get(t)!.version, t).toBe(a.types.get(t)!.version);
    }
    expect(c.types.get(TypeUrl.ClusterLoadAssignment)!.version).not.toBe(a.types.get(TypeUrl.ClusterLoadAssignment)!.version);
    // Only the type that changed changes version.
    expect(c.types.get(TypeUrl.Cluster)!.version).toBe(a.types.get(TypeUrl.Cluster)!.version);
  });

  it('reuses the previous encoding of an unchanged resource object', () => {
    const s = set({});
    const first = buildSnapshot(s);
    const second = buildSnapshot(s, first);
    expect(second.types.get(TypeUrl.Cluster)!.items.get('a')).toBe(first.types.get(TypeUrl.Cluster)!.items.get('a'));
  });
});

describe('consistency check', () => {
  const cases: Array<[string, ResourceSet, string | undefined]> = [
    ['consistent', set({}), undefined],
    ['listener names a missing route configuration', set({ rds: 'other' }), 'route configuration "other"'],
    ['cluster without endpoints', set({ clusters: ['a', 'b'] }), 'cluster b uses endpoints "b"'],
    ['route to a missing cluster', set({ routeTo: 'ghost' }), 'names cluster "ghost"'],
    ['route to a missing cluster that says what to answer', set({ routeTo: 'ghost', routeExtra: { cluster_not_found_response_code: 'INTERNAL_SERVER_ERROR' } }), undefined],
  ];
  it.each(cases)('%s', (_name, resources, problem) => {
    const problems = checkConsistency(buildSnapshot(resources));
    if (problem === undefined) expect(problems).toEqual([]);
    else expect(problems.join('\n')).toContain(problem);
  });

  it('the cache refuses an inconsistent snapshot and keeps the last good one', () => {
    const cache = new MemorySnapshotCache();
    const good = buildSnapshot(set({}));
    cache.set('p', good);
    expect(() => cache.set('p', buildSnapshot(set({ rds: 'nope' })))).toThrow(SnapshotError);
    expect(cache.get('p')).toBe(good);
  });
});

describe('sharing between proxies', () => {
  it('gives proxies with equal sets of a type the same TypeResources, and an unchanged snapshot is the previous one', () => {
    const a = buildSnapshot(set({}));
    // Another proxy, its own (equal) plain objects: the same shared sets.
    const b = buildSnapshot(set({}));
    for (const t of [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]) {
      expect(b.types.get(t), t).toBe(a.types.get(t));
    }
    expect(buildSnapshot(set({}), a)).toBe(a);
    // One type changed: only that set is new, the others stay shared.
    const c = buildSnapshot(set({ port: 9090 }), a);
    expect(c).not.toBe(a);
    expect(c.types.get(TypeUrl.Cluster)).toBe(a.types.get(TypeUrl.Cluster));
    expect(c.types.get(TypeUrl.ClusterLoadAssignment)).not.toBe(a.types.get(TypeUrl.ClusterLoadAssignment));
  });

  it('still finds what one proxy lacks when the sets around it are shared', () => {
    expect(checkConsistency(buildSnapshot(set({})))).toEqual([]);
    expect(checkConsistency(buildSnapshot(set({ clusters: ['a', 'z'] })))).toEqual(['cluster z uses endpoints "z", which are not in the snapshot']);
    expect(checkConsistency(buildSnapshot(set({ routeTo: 'z' })))).toEqual([
      'route configuration outbound: route r0 names cluster "z", which is not in the snapshot',
    ]);
    expect(checkConsistency(buildSnapshot(set({})))).toEqual([]);
  });
});
