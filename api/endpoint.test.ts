// Tests for EDS decoding: endpoints with health, weights, locality and `weft` metadata
// (workload, SPIFFE identity, target port), and every rejection's field path.
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from './codec.js';
import { endpointType, readStruct } from './endpoint.js';
import { TypeUrl } from './types.js';

const NAME = 'outbound|9080||reviews.default.svc.cluster.local';

function problemFields(r: { ok: boolean; problems?: readonly { field: string }[] }): string[] {
  expect(r.ok).toBe(false);
  return (r.problems ?? []).map((p) => p.field);
}
/** A protobuf Struct as it travels (protobufjs names Value fields in camelCase). */
function struct(o: Record<string, string | number | boolean>): Plain {
  const fields: Record<string, Plain> = {};
  for (const [k, v] of Object.entries(o)) {
    fields[k] = typeof v === 'number' ? { numberValue: v } : typeof v === 'boolean' ? { boolValue: v } : { stringValue: v };
  }
  return { fields };
}
function lbEndpoint(host: string, port: number, extra: Plain = {}): Plain {
  return { endpoint: { address: { socket_address: { address: host, port_value: port } } }, ...extra };
}

describe('endpointType.decode', () => {
  it('endpoints with health, weight, locality and weft metadata', () => {
    const r = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{
        locality: { region: 'local', zone: 'a' },
        load_balancing_weight: { value: 1 },
        lb_endpoints: [
          lbEndpoint('10.0.0.1', 15006, {
            health_status: 'HEALTHY',
            load_balancing_weight: { value: 3 },
            metadata: { filter_metadata: { weft: struct({ workload: 'reviews-v1.default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', target_port: 9080 }) } },
          }),
          lbEndpoint('10.0.0.2', 15006),
          lbEndpoint('10.0.0.3', 15006, { health_status: 'UNHEALTHY' }),
          lbEndpoint('10.0.0.4', 15006, { health_status: 'DRAINING' }),
          lbEndpoint('10.0.0.5', 15006, { health_status: 'TIMEOUT' }),
          lbEndpoint('10.0.0.6', 15006, { health_status: 'DEGRADED' }),
        ],
      }],
    }));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.name).toBe(NAME);
    expect(r.value.endpoints[0]).toEqual({
      host: '10.0.0.1', port: 15006, weight: 3, healthy: true, locality: 'local/a/',
      workload: 'reviews-v1.default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', targetPort: 9080,
    });
    expect(r.value.endpoints.map((e) => e.healthy)).toEqual([true, true, false, false, false, false]);
    expect(r.value.endpoints[1]!.weight).toBe(1);
  });

  it('rejects bad addresses, weights and metadata with paths', () => {
    const r = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{
        lb_endpoints: [
          lbEndpoint('', 80),
          lbEndpoint('10.0.0.1', 0),
          lbEndpoint('10.0.0.2', 80, { load_balancing_weight: { value: 0 } }),
          lbEndpoint('10.0.0.3', 80, { metadata: { filter_metadata: { weft: struct({ identity: 'reviews', target_port: 70000 }) } } }),
          { endpoint: { address: { pipe: { path: '/tmp/s' } } } },
        ],
      }],
    }));
    const at = 'endpoints[0].lb_endpoints';
    expect(problemFields(r)).toEqual([
      `${at}[0].endpoint.address.socket_address.address`,
      `${at}[1].endpoint.address.socket_address.port_value`,
      `${at}[2].load_balancing_weight`,
      `${at}[3].metadata.filter_metadata.weft.identity`,
      `${at}[3].metadata.filter_metadata.weft.target_port`,
      `${at}[4].endpoint.address`,
    ]);
  });

  it('decodes the HBONE tunnel and waypoint flags of ambient endpoints', () => {
    const r = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{
        lb_endpoints: [
          lbEndpoint('10.1.0.7', 15008, { metadata: { filter_metadata: { weft: struct({ identity: 'spiffe://cluster.local/ns/default/sa/reviews', target_port: 9080, tunnel: 'hbone' }) } } }),
          lbEndpoint('10.1.0.9', 15008, { metadata: { filter_metadata: { weft: struct({ identity: 'spiffe://cluster.local/ns/default/sa/waypoint', tunnel: 'hbone', waypoint: true }) } } }),
          lbEndpoint('10.1.0.10', 15006, { metadata: { filter_metadata: { weft: struct({ waypoint: false }) } } }),
        ],
      }],
    }));
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.value.endpoints[0]).toMatchObject({ host: '10.1.0.7', port: 15008, targetPort: 9080, tunnel: 'hbone' });
    expect(r.value.endpoints[0]!.waypoint).toBeUndefined();
    expect(r.value.endpoints[1]).toMatchObject({ tunnel: 'hbone', waypoint: true });
    expect(r.value.endpoints[2]!.tunnel).toBeUndefined();
    expect(r.value.endpoints[2]!.waypoint).toBe(false);
  });

  it('rejects tunnels other than hbone and a non-boolean waypoint, with paths', () => {
    const r = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{
        lb_endpoints: [
          lbEndpoint('10.1.0.7', 15008, { metadata: { filter_metadata: { weft: struct({ tunnel: 'h2c' }) } } }),
          lbEndpoint('10.1.0.8', 15008, { metadata: { filter_metadata: { weft: struct({ tunnel: 'hbone', waypoint: 'yes' }) } } }),
        ],
      }],
    }));
    const at = 'endpoints[0].lb_endpoints';
    expect(problemFields(r)).toEqual([`${at}[0].metadata.filter_metadata.weft.tunnel`, `${at}[1].metadata.filter_metadata.weft.waypoint`]);
    expect(r.ok ? [] : r.problems?.[0]?.message).toMatch(/tunnel must be "hbone".*"h2c"/);
  });

  it("reads a waypoint endpoint's CONNECT authority, and rejects one that is not ip:port (NACK with the path)", () => {
    const md = (authority: string | number) => ({ metadata: { filter_metadata: { weft: struct({ tunnel: 'hbone', waypoint: true, authority }) } } });
    const ok = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{ lb_endpoints: [lbEndpoint('10.1.0.9', 15008, md('10.96.0.20:9080')), lbEndpoint('10.1.0.9', 15008, md('[fd00::20]:9080'))] }],
    }));
    if (!ok.ok) throw new Error(JSON.stringify(ok.problems));
    expect(ok.value.endpoints.map((e) => e.authority)).toEqual(['10.96.0.20:9080', '[fd00::20]:9080']);
    const bad = ['ratings:9080', '10.96.0.20', '10.96.0.20:0', '10.96.0.20:70000', '999.1.1.1:80', 'fd00::20:80', 9080];
    const r = endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {
      cluster_name: NAME,
      endpoints: [{ lb_endpoints: bad.map((a) => lbEndpoint('10.1.0.9', 15008, md(a))) }],
    }));
    expect(problemFields(r)).toEqual(bad.map((_, i) => `endpoints[0].lb_endpoints[${i}].metadata.filter_metadata.weft.authority`));
    expect(r.ok ? [] : r.problems?.[0]?.message).toBe('authority must be an IP address and port ("10.96.0.10:80", "[fd00::10]:80"), got "ratings:9080"');
  });

  it('requires a cluster name', () => {
    expect(problemFields(endpointType.decode(pack(TypeUrl.ClusterLoadAssignment, {})))).toEqual(['cluster_name']);
  });

  it('readStruct accepts both camelCase and snake_case Value fields', () => {
    expect(readStruct({ fields: { a: { stringValue: 'x' }, b: { number_value: 2 }, c: { boolValue: true }, d: { listValue: { values: [{ stringValue: 'y' }] } } } }))
      .toEqual({ a: 'x', b: 2, c: true, d: ['y'] });
  });
});
