// Shared response encoding: the bytes prepared once for every stream are the response a plain
// encoding gives, subscriptions with the same names are one object, and delta responses put
// together from per-resource parts decode to the resources they carry.
import { describe, expect, it } from 'vitest';
import { unpack } from '../../api/codec.js';
import { adsService, type DeltaDiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { buildSnapshot } from '../snapshot/snapshot.js';
import { deltaDiff, deltaResources, ENCODED_RESOURCES, internSubscription, mapDiff, preparedAdsService, prepareSotw } from './encode.js';

const cla = (name: string, port: number) => ({
  cluster_name: name,
  endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
});
const endpoints = buildSnapshot({
  [TypeUrl.ClusterLoadAssignment]: new Map([['a', cla('a', 1)], ['b', cla('b', 2)], ['c', cla('c', 3)]]),
}).types.get(TypeUrl.ClusterLoadAssignment)!;

describe('prepared state-of-the-world responses', () => {
  it('are the bytes a plain encoding of the same response gives', () => {
    const { response } = prepareSotw(TypeUrl.ClusterLoadAssignment, endpoints, internSubscription(['c', 'a']));
    const bytes = preparedAdsService.StreamAggregatedResources.responseSerialize(response);
    expect(bytes).toEqual(adsService.StreamAggregatedResources.responseSerialize({ ...response }));
    const decoded = adsService.StreamAggregatedResources.responseDeserialize(bytes);
    expect(decoded.version_info).toBe(endpoints.version);
    expect(decoded.nonce).toBe(response.nonce);
    expect(decoded.resources.map((r) => unpack(r).cluster_name)).toEqual(['a', 'c']);
  });

  it('are one response per type set and subscription, whatever order the names came in', () => {
    const one = prepareSotw(TypeUrl.ClusterLoadAssignment, endpoints, internSubscription(['a', 'b']));
    const same = prepareSotw(TypeUrl.ClusterLoadAssignment, endpoints, internSubscription(['b', 'a', 'a']));
    const other = prepareSotw(TypeUrl.ClusterLoadAssignment, endpoints, internSubscription(['a']));
    const all = prepareSotw(TypeUrl.ClusterLoadAssignment, endpoints, undefined);
    expect(same).toBe(one);
    expect(other.response.nonce).not.toBe(one.response.nonce);
    expect([one.count, other.count, all.count]).toEqual([2, 1, 3]);
    expect(internSubscription(['b', 'a'])).toBe(internSubscription(['a', 'b']));
  });
});

describe('delta responses', () => {
  it('decode to the resources they were put together from', () => {
    const items = [...endpoints.items.values()].slice(1);
    const response: DeltaDiscoveryResponse = {
      system_version_info: endpoints.version,
      type_url: TypeUrl.ClusterLoadAssignment,
      nonce: '7',
      resources: items.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
      removed_resources: ['gone'],
    };
    const bytes = preparedAdsService.DeltaAggregatedResources.responseSerialize({ ...response, [ENCODED_RESOURCES]: deltaResources(items) });
    const decoded = adsService.DeltaAggregatedResources.responseDeserialize(bytes);
    expect(decoded.nonce).toBe('7');
    expect(decoded.removed_resources).toEqual(['gone']);
    expect(decoded.resources.map((r) => [r.name, r.version, unpack(r.resource).cluster_name])).toEqual(items.map((r) => [r.name, r.version, r.name]));
  });

  it('are diffed once for every stream that held the same, with what changed and what went away', () => {
    const next = buildSnapshot({
      [TypeUrl.ClusterLoadAssignment]: new Map([['a', cla('a', 1)], ['c', cla('c', 30)], ['d', cla('d', 4)]]),
    }).types.get(TypeUrl.ClusterLoadAssignment)!;
    const first = deltaDiff(undefined, undefined, endpoints, undefined);
    expect(first.changed.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    expect(deltaDiff(undefined, undefined, endpoints, undefined)).toBe(first);
    const d = deltaDiff(endpoints, undefined, next, undefined);
    expect([d.changed.map((r) => r.name), d.removed]).toEqual([['c', 'd'], ['b']]);
    expect(deltaDiff(endpoints, undefined, next, undefined)).toBe(d);
    // By name: only what the subscription covers, and an unsubscribed name goes away.
    const ab = internSubscription(['a', 'b']);
    const ad = internSubscription(['a', 'd']);
    const byName = deltaDiff(endpoints, ab, next, ad);
    expect([byName.changed.map((r) => r.name), byName.removed]).toEqual([['d'], ['b']]);
    const decoded = adsService.DeltaAggregatedResources.responseDeserialize(preparedAdsService.DeltaAggregatedResources.responseSerialize({
      system_version_info: next.version, type_url: TypeUrl.ClusterLoadAssignment, nonce: '8', resources: [], removed_resources: [], [ENCODED_RESOURCES]: d.body,
    } as DeltaDiscoveryResponse));
    expect(decoded.resources.map((r) => r.name)).toEqual(['c', 'd']);
    // A reconnecting client's own versions: what differs from them.
    const fromMap = mapDiff(new Map([['a', endpoints.items.get('a')!.version], ['b', 'old'], ['zz', 'x']]), next, undefined);
    expect([fromMap.changed.map((r) => r.name), [...fromMap.removed].sort()]).toEqual([['c', 'd'], ['b', 'zz']]);
  });
});
