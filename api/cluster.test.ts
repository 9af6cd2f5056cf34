// Tests for CDS decoding: cluster kinds and defaults, upstream HTTP/2 and TLS by SDS name,
// inline endpoints, circuit breakers, references, and every rejection's field path.
import { describe, expect, it } from 'vitest';
import { pack, toStruct, type Plain } from './codec.js';
import { clusterType } from './cluster.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from './types.js';

const NAME = 'outbound|9080||reviews.default.svc.cluster.local';

function okCluster(plain: Plain) {
  const r = clusterType.decode(pack(TypeUrl.Cluster, plain));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.value;
}
function problemFields(r: { ok: boolean; problems?: readonly { field: string }[] }): string[] {
  expect(r.ok).toBe(false);
  return (r.problems ?? []).map((p) => p.field);
}
function lbEndpoint(host: string, port: number, extra: Plain = {}): Plain {
  return { endpoint: { address: { socket_address: { address: host, port_value: port } } }, ...extra };
}

describe('clusterType.decode', () => {
  it('an EDS cluster with defaults', () => {
    const c = okCluster({ name: NAME, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } });
    expect(c).toEqual({ name: NAME, discovery: 'EDS', edsServiceName: NAME, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 5000, protocol: 'http1' });
    expect(clusterType.references(c)).toEqual([{ typeUrl: TypeUrl.ClusterLoadAssignment, name: NAME }]);
  });

  it('an EDS service name, lb policy, timeout, HTTP/2 and upstream TLS', () => {
    const c = okCluster({
      name: NAME,
      type: 'EDS',
      eds_cluster_config: { service_name: 'eds-name' },
      lb_policy: 'LEAST_REQUEST',
      connect_timeout: { seconds: 1 },
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
          '@type': HTTP_PROTOCOL_OPTIONS_TYPE_URL,
          explicit_http_config: { http2_protocol_options: {} },
        },
      },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': UPSTREAM_TLS_TYPE_URL,
          sni: '9080.inbound.weft.internal',
          common_tls_context: {
            tls_certificate_sds_secret_configs: [{ name: 'default' }],
            combined_validation_context: {
              default_validation_context: { match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews' }] },
              validation_context_sds_secret_config: { name: 'ROOTCA' },
            },
          },
        },
      },
      circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connections: { value: 1 } }, { max_connections: { value: 100 }, max_requests: { value: 50 } }] },
    });
    expect(c).toMatchObject({ edsServiceName: 'eds-name', lbPolicy: 'LEAST_REQUEST', connectTimeoutMs: 1000, protocol: 'http2' });
    expect(c.tls).toEqual({
      certificateSecret: 'default', validationSecret: 'ROOTCA', requireClientCertificate: false, alpn: [],
      sni: '9080.inbound.weft.internal', matchSans: ['spiffe://cluster.local/ns/default/sa/reviews'],
    });
    expect(c.circuitBreakers).toEqual({ maxConnections: 100, maxRequests: 50 });
    expect(clusterType.references(c)).toEqual([
      { typeUrl: TypeUrl.ClusterLoadAssignment, name: 'eds-name' },
      { typeUrl: TypeUrl.Secret, name: 'default' },
      { typeUrl: TypeUrl.Secret, name: 'ROOTCA' },
    ]);
  });

  it('legacy http2_protocol_options means HTTP/2', () => {
    expect(okCluster({ name: 'c', type: 'EDS', http2_protocol_options: {} }).protocol).toBe('http2');
  });

  it('a STATIC inbound cluster carries its endpoints and names no EDS', () => {
    const c = okCluster({
      name: 'inbound|8080||',
      type: 'STATIC',
      load_assignment: { cluster_name: 'inbound|8080||', endpoints: [{ lb_endpoints: [lbEndpoint('127.0.0.1', 8080)] }] },
    });
    expect(c.staticEndpoints).toEqual([{ host: '127.0.0.1', port: 8080, weight: 1, healthy: true }]);
    expect(clusterType.references(c)).toEqual([]);
  });

  it('ORIGINAL_DST accepts CLUSTER_PROVIDED', () => {
    expect(okCluster({ name: 'passthrough', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' }).discovery).toBe('ORIGINAL_DST');
  });

  it('rejects unsupported type, lb policy, zero timeout, HTTP/3 and a bad transport socket — all at once', () => {
    const r = clusterType.decode(pack(TypeUrl.Cluster, {
      name: 'c',
      type: 'LOGICAL_DNS',
      lb_policy: 'CLUSTER_PROVIDED',
      connect_timeout: {},
      typed_extension_protocol_options: {
        h: { '@type': HTTP_PROTOCOL_OPTIONS_TYPE_URL, explicit_http_config: { http3_protocol_options: {} } },
      },
      transport_socket: { name: 'alts', typed_config: { type_url: 'type.googleapis.com/x.Alts', value: new Uint8Array() } },
    }));
    expect(problemFields(r)).toEqual([
      'type',
      'lb_policy',
      'connect_timeout',
      'transport_socket.typed_config',
      'typed_extension_protocol_options["h"].explicit_http_config.http3_protocol_options',
    ]);
  });

  it('rejects non-exact SAN matchers', () => {
    const r = clusterType.decode(pack(TypeUrl.Cluster, {
      name: 'c', type: 'EDS',
      transport_socket: { name: 'tls', typed_config: { '@type': UPSTREAM_TLS_TYPE_URL, common_tls_context: { validation_context: { match_subject_alt_names: [{ prefix: 'spiffe://' }] } } } },
    }));
    expect(problemFields(r)).toEqual(['transport_socket.typed_config.common_tls_context.validation_context.match_subject_alt_names[0]']);
  });
  it('resilience: outlier detection with Envoy defaults, retry budget, Weft lb policy and hash key', () => {
    const c = okCluster({
      name: NAME,
      type: 'EDS',
      lb_policy: 'ROUND_ROBIN',
      metadata: { filter_metadata: { weft: toStruct({ lb_policy: 'P2C_EWMA' }) } },
      outlier_detection: { consecutive_5xx: { value: 3 }, interval: { seconds: 1 }, max_ejection_percent: { value: 50 } },
      circuit_breakers: { thresholds: [{ max_pending_requests: { value: 8 }, retry_budget: { budget_percent: { value: 25 } } }] },
    });
    expect(c.lbPolicy).toBe('P2C_EWMA');
    expect(c.outlierDetection).toEqual({
      consecutive5xx: 3, enforcing5xxPercent: 100, consecutiveGatewayFailure: 0, enforcingGatewayFailurePercent: 0,
      intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50, alwaysEjectOne: false,
    });
    expect(c.circuitBreakers).toEqual({ maxPendingRequests: 8, retryBudget: { budgetPercent: 25, minRetryConcurrency: 3 } });

    const ring = okCluster({
      name: 'r', type: 'EDS', lb_policy: 'RING_HASH',
      ring_hash_lb_config: { minimum_ring_size: { value: 64 } },
      metadata: { filter_metadata: { weft: toStruct({ hash_key: 'header:X-User' }) } },
    });
    expect(ring).toMatchObject({ lbPolicy: 'RING_HASH', ringHash: { minRingSize: 64, maxRingSize: 65536 }, hashKey: { kind: 'header', name: 'x-user' } });
    const cookie = okCluster({ name: 'm', type: 'EDS', lb_policy: 'MAGLEV', metadata: { filter_metadata: { weft: toStruct({ hash_key: 'cookie:session' }) } } });
    expect(cookie).toMatchObject({ lbPolicy: 'MAGLEV', hashKey: { kind: 'cookie', name: 'session' } });
  });

  it('rejects a bad Weft lb policy, hash key, outlier percentages and retry budget, with field paths', () => {
    const r = clusterType.decode(pack(TypeUrl.Cluster, {
      name: 'c',
      type: 'EDS',
      metadata: { filter_metadata: { weft: toStruct({ lb_policy: 'FASTEST', hash_key: 'query:x' }) } },
      outlier_detection: { max_ejection_percent: { value: 150 }, interval: { seconds: 0 } },
      circuit_breakers: { thresholds: [{ retry_budget: { budget_percent: { value: 120 } } }] },
    }));
    expect(problemFields(r).sort()).toEqual([
      'circuit_breakers.thresholds[0].retry_budget.budget_percent',
      'metadata.filter_metadata.weft.hash_key',
      'metadata.filter_metadata.weft.lb_policy',
      'outlier_detection.interval',
      'outlier_detection.max_ejection_percent',
    ]);
  });
});
