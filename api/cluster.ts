// CDS: Cluster → Cluster (discovery type, EDS name, load balancing, connect timeout, upstream
// HTTP version, UpstreamTlsContext by SDS name, inline endpoints, circuit breakers).
import type { Plain } from './codec.js';
import type { Cluster, LbPolicy } from './domain.js';
import type { ResourceRef, ResourceType } from './resource.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from './types.js';
import { decodeEndpoints } from './endpoint.js';
import { decodeCommonTlsContext, secretRefs } from './secret.js';
import {
  Problems, anyTypeUrl, deepEqual, durationMs, has, list, mapKey, obj, result, str, unpackChecked, wrappedNum,
} from './matchers.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
const DISCOVERY = new Set<Cluster['discovery']>(['EDS', 'STATIC', 'STRICT_DNS', 'ORIGINAL_DST']);
const LB = new Set<LbPolicy>(['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', 'MAGLEV']);
const RAW_BUFFER = 'envoy.transport_sockets.raw_buffer';

function decodeProtocol(c: Plain, p: Problems): Cluster['protocol'] {
  const options = obj(c, 'typed_extension_protocol_options') ?? {};
  for (const [key, raw] of Object.entries(options)) {
    const any = raw as Plain;
    if (anyTypeUrl(any) !== HTTP_PROTOCOL_OPTIONS_TYPE_URL) continue;
    const at = mapKey('typed_extension_protocol_options', key);
    if (has(any, 'explicit_http_config')) {
      const ex = obj(any, 'explicit_http_config');
      if (has(ex, 'http2_protocol_options')) return 'http2';
      if (has(ex, 'http3_protocol_options')) p.add(`${at}.explicit_http_config.http3_protocol_options`, 'HTTP/3 upstreams are not supported');
      return 'http1';
    }
    if (has(any, 'use_downstream_protocol_config') || has(any, 'auto_config')) return 'auto';
    return 'http1';
  }
  return has(c, 'http2_protocol_options') ? 'http2' : 'http1';
}

function decodeUpstreamTls(c: Plain, p: Problems): Cluster['tls'] {
  if (list(c, 'transport_socket_matches').length > 0) {
    p.add('transport_socket_matches', 'transport_socket_matches is not supported');
  }
  const ts = obj(c, 'transport_socket');
  if (!ts) return undefined;
  const cfg = obj(ts, 'typed_config');
  const type = anyTypeUrl(cfg);
  if (!cfg && str(ts, 'name') === RAW_BUFFER) return undefined;
  if (type?.endsWith('.RawBuffer')) return undefined;
  if (type !== UPSTREAM_TLS_TYPE_URL) {
    p.add('transport_socket.typed_config', `unsupported transport socket ${JSON.stringify(type ?? str(ts, 'name'))}; want UpstreamTlsContext`);
    return undefined;
  }
  const common = decodeCommonTlsContext(obj(cfg, 'common_tls_context'), 'transport_socket.typed_config.common_tls_context', p);
  const sni = str(cfg, 'sni');
  return {
    ...(common.certificateSecret ? { certificateSecret: common.certificateSecret } : {}),
    ...(common.validationSecret ? { validationSecret: common.validationSecret } : {}),
    requireClientCertificate: false,
    alpn: common.alpn,
    ...(sni ? { sni } : {}),
    matchSans: common.matchSans,
  };
}

function decodeCircuitBreakers(c: Plain): Cluster['circuitBreakers'] {
  // Only the DEFAULT priority applies: Weft has no high-priority routes.
  const t = list(obj(c, 'circuit_breakers'), 'thresholds').find((x) => (str(x, 'priority') ?? 'DEFAULT') === 'DEFAULT');
  if (!t) return undefined;
  const out: Record<string, number> = {};
  const keys = { max_connections: 'maxConnections', max_pending_requests: 'maxPendingRequests', max_requests: 'maxRequests', max_retries: 'maxRetries' };
  for (const [wire, name] of Object.entries(keys)) {
    const v = wrappedNum(t, wire);
    if (v !== undefined) out[name] = v;
  }
  return out;
}

function decodeCluster(c: Plain, p: Problems): Cluster {
  const name = str(c, 'name') ?? '';
  if (!name) p.add('name', 'a cluster name is required');
  if (has(c, 'cluster_type')) p.add('cluster_type', 'custom cluster types are not supported');
  const type = str(c, 'type') ?? 'STATIC';
  const discovery = DISCOVERY.has(type as Cluster['discovery']) ? (type as Cluster['discovery']) : undefined;
  if (!discovery) p.add('type', `cluster type ${type} is not supported (EDS, STATIC, STRICT_DNS, ORIGINAL_DST)`);

  let lbPolicy: LbPolicy = 'ROUND_ROBIN';
  const lb = str(c, 'lb_policy') ?? 'ROUND_ROBIN';
  if (LB.has(lb as LbPolicy)) lbPolicy = lb as LbPolicy;
  else if (!(lb === 'CLUSTER_PROVIDED' && discovery === 'ORIGINAL_DST')) p.add('lb_policy', `lb_policy ${lb} is not supported`);

  const connectTimeoutMs = durationMs(c, 'connect_timeout', '', p) ?? DEFAULT_CONNECT_TIMEOUT_MS;
  if (connectTimeoutMs <= 0) p.add('connect_timeout', 'connect_timeout must be greater than 0');

  const edsServiceName = (discovery === 'EDS' && str(obj(c, 'eds_cluster_config'), 'service_name')) || name;
  const staticEndpoints =
    discovery === 'STATIC' || discovery === 'STRICT_DNS' ? decodeEndpoints(obj(c, 'load_assignment'), 'load_assignment', p) : undefined;
  const tls = decodeUpstreamTls(c, p);
  const circuitBreakers = decodeCircuitBreakers(c);
  return {
    name,
    discovery: discovery ?? 'STATIC',
    edsServiceName,
    lbPolicy,
    connectTimeoutMs,
    protocol: decodeProtocol(c, p),
    ...(tls ? { tls } : {}),
    ...(staticEndpoints ? { staticEndpoints } : {}),
    ...(circuitBreakers ? { circuitBreakers } : {}),
  };
}

export const clusterType: ResourceType<Cluster> = {
  typeUrl: TypeUrl.Cluster,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.Cluster, p);
    if (!plain) return result<Cluster>(undefined, undefined, p);
    return result(str(plain, 'name'), decodeCluster(plain, p), p);
  },
  references(c): ResourceRef[] {
    const refs: ResourceRef[] = [];
    if (c.discovery === 'EDS') refs.push({ typeUrl: TypeUrl.ClusterLoadAssignment, name: c.edsServiceName });
    return [...refs, ...secretRefs(c.tls)];
  },
  equals: (a, b) => deepEqual(a, b),
};
