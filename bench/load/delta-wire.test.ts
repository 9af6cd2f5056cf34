// The simulator's hand-rolled DeltaDiscoveryResponse reader agrees with protobufjs on what the
// control plane really sends (its own encoding, shared resource entries included).
import { describe, expect, it } from 'vitest';
import { pack } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import { deltaResources, ENCODED_RESOURCES, preparedAdsService } from '../../control-plane/xds-server/encode.js';
import { readDelta } from './delta-wire.js';

describe('readDelta', () => {
  it('reads names, versions, packed bytes, removals, type, version and nonce', () => {
    const clusters = ['a', 'b'.repeat(300)].map((name, i) => {
      const resource = pack(TypeUrl.Cluster, { name, type: 'EDS', eds_cluster_config: { service_name: name } });
      return { name, version: `v${i}`, resource, plain: {} };
    });
    const response = {
      system_version_info: 'sys-1',
      type_url: TypeUrl.Cluster,
      nonce: 'n7',
      resources: clusters.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
      removed_resources: ['gone', 'also-gone'],
    };
    for (const bytes of [
      preparedAdsService.DeltaAggregatedResources.responseSerialize(response),
      preparedAdsService.DeltaAggregatedResources.responseSerialize({ ...response, [ENCODED_RESOURCES]: deltaResources(clusters) }),
    ]) {
      const got = readDelta(bytes);
      expect(got).toMatchObject({ system_version_info: 'sys-1', type_url: TypeUrl.Cluster, nonce: 'n7', removed_resources: ['gone', 'also-gone'] });
      expect(got.resources.map((r) => [r.name, r.version])).toEqual([['a', 'v0'], ['b'.repeat(300), 'v1']]);
      expect(got.resources.map((r) => Buffer.from(r.value))).toEqual(clusters.map((r) => Buffer.from(r.resource.value)));
    }
  });

  it('reads an empty response', () => {
    const bytes = preparedAdsService.DeltaAggregatedResources.responseSerialize({ system_version_info: '', type_url: TypeUrl.VirtualHost, nonce: '1', resources: [], removed_resources: [] });
    expect(readDelta(bytes)).toEqual({ type_url: TypeUrl.VirtualHost, system_version_info: '', nonce: '1', removed_resources: [], resources: [] });
  });
});
