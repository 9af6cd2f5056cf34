// Struct round trip through real protobuf encoding, as node metadata travels in ADS requests.
import { describe, expect, it } from 'vitest';
import { adsService } from './services.js';
import { fromStruct, toStruct } from './codec.js';

describe('Struct codec', () => {
  it('keeps every kind of value through encode and decode', () => {
    const meta = { WORKLOAD: 'a.b', INBOUND_PORT: 15006, SECURE: true, LIST: ['x', 1], NESTED: { k: 'v' }, NONE: null };
    const { requestSerialize, requestDeserialize } = adsService.StreamAggregatedResources;
    const wire = requestSerialize({ node: { id: 'a.b', metadata: toStruct(meta) } });
    const back = requestDeserialize(wire);
    expect(fromStruct(back.node?.metadata)).toEqual(meta);
  });
});
