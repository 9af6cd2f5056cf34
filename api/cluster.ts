// CDS: Cluster → Cluster (discovery type, EDS name, load balancing, connect timeout, upstream
// HTTP version, UpstreamTlsContext by SDS name, inline endpoints, circuit breakers and retry
// budget, outlier detection, Weft's own lb policy / hash key from `metadata.filter_metadata.weft`).
import { fromStruct, type Plain } from './codec.js';
import type { Cluster, HashKey, LbPolicy, OutlierDetection, RetryBudgetConfig } from './domain.js';
import type { ResourceRef, ResourceType } from './resource.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from './types.js';
import { decodeEndpoints } from './endpoint.js';
import { decodeCommonTlsContext, secretRefs } from './secret.js';
import {
  Problems, anyTypeUrl, deepEqual, durationMs, has, list, mapKey, num, obj, result, str, unpackChecked, wrappedBool, wrappedNum,
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

function decodeCircuitBreakers(c: Plain, p: Problems): Cluster['circuitBreakers'] {
  // Only the DEFAULT priority applies: Weft has no high-priority routes.
  const thresholds = list(obj(c, 'circuit_breakers'), 'thresholds');
  const index = thresholds.findIndex((x) => (str(x, 'priority') ?? 'DEFAULT') === 'DEFAULT');
  const t = thresholds[index];
  if (!t) return undefined;
  const out: Record<string, number | RetryBudgetConfig> = {};
  const keys = { max_connections: 'maxConnections', max_pending_requests: 'maxPendingRequests', max_requests: 'maxRequests', max_retries: 'maxRetries' };
  for (const [wire, name] of Object.entries(keys)) {
    const v = wrappedNum(t, wire);
    if (v !== undefined) out[name] = v;
  }
  const budget = obj(t, 'retry_budget');
  if (budget) {
    // Envoy's defaults when the message is present: 20 % of active requests, at least 3.
    const percent = has(budget, 'budget_percent') ? (num(obj(budget, 'budget_percent'), 'value') ?? 0) : 20;
    if (percent < 0 || percent > 100) p.add(`circuit_breakers.thresholds[${index}].retry_budget.budget_percent`, `must be within 0..100, got ${percent}`);
    out.retryBudget = { budgetPercent: percent, minRetryConcurrency: wrappedNum(budget, 'min_retry_concurrency') ?? 3 };
  }
  return out as Cluster['circuitBreakers'];
}

/** A percentage field (UInt32Value) with its Envoy default, checked to be within 0..100. */
function percent(o: Plain, key: string, fallback: number, at: string, p: Problems): number {
  const v = wrappedNum(o, key) ?? fallback;
  if (v > 100) p.add(`${at}.${key}`, `a percentage must be within 0..100, got ${v}`);
  return Math.min(100, v);
}

function decodeOutlierDetection(c: Plain, p: Problems): OutlierDetection | undefined {
  const o = obj(c, 'outlier_detection');
  if (!o) return undefined;
  const at = 'outlier_detection';
  const positive = (key: string, fallbackMs: number) => {
    const ms = durationMs(o, key, at, p) ?? fallbackMs;
    if (ms <= 0) p.add(`${at}.${key}`, `${key} must be greater than 0`);
    return ms;
  };
  const baseEjectionTimeMs = positive('base_ejection_time', 30_000);
  // Envoy: max_ejection_time defaults to 300 s, and never below the base.
  const maxEjectionTimeMs = Math.max(baseEjectionTimeMs, durationMs(o, 'max_ejection_time', at, p) ?? 300_000);
  const enforcing5xxPercent = percent(o, 'enforcing_consecutive_5xx', 100, at, p);
  const enforcingGatewayFailurePercent = percent(o, 'enforcing_consecutive_gateway_failure', 0, at, p);
  return {
    consecutive5xx: enforcing5xxPercent > 0 ? (wrappedNum(o, 'consecutive_5xx') ?? 5) : 0,
    enforcing5xxPercent,
    consecutiveGatewayFailure: enforcingGatewayFailurePercent > 0 ? (wrappedNum(o, 'consecutive_gateway_failure') ?? 5) : 0,
    enforcingGatewayFailurePercent,
    intervalMs: positive('interval', 10_000),
    baseEjectionTimeMs,
    maxEjectionTimeMs,
    maxEjectionPercent: percent(o, 'max_ejection_percent', 10, at, p),
    alwaysEjectOne: wrappedBool(o, 'always_eject_one_host') ?? false,
  };
}

const WEFT_LB = new Set<LbPolicy>([...LB, 'P2C_EWMA']);
/** Ring sizes beyond this buy nothing for a mesh's endpoint counts and cost memory per cluster. */
const MAX_RING = 1 << 16;

/** `metadata.filter_metadata.weft`: what Envoy's enum cannot say (P2C_EWMA) and the hash key
 *  Weft's consistent-hash balancers use (the route's hash_policy is not read). */
function decodeWeftMetadata(c: Plain, p: Problems): { lbPolicy?: LbPolicy; hashKey?: HashKey } {
  const weft = obj(obj(obj(c, 'metadata'), 'filter_metadata'), 'weft');
  if (!weft) return {};
  const at = 'metadata.filter_metadata.weft';
  const m = fromStruct(weft);
  const out: { lbPolicy?: LbPolicy; hashKey?: HashKey } = {};
  if (m.lb_policy !== undefined && m.lb_policy !== null) {
    if (typeof m.lb_policy === 'string' && WEFT_LB.has(m.lb_policy as LbPolicy)) out.lbPolicy = m.lb_policy as LbPolicy;
    else p.add(`${at}.lb_policy`, `lb_policy must be one of ${[...WEFT_LB].join(', ')}, got ${JSON.stringify(m.lb_policy)}`);
  }
  if (m.hash_key !== undefined && m.hash_key !== null) {
    const key = typeof m.hash_key === 'string' ? parseHashKey(m.hash_key) : undefined;
    if (key) out.hashKey = key;
    else p.add(`${at}.hash_key`, `hash_key must be header:<name>, cookie:<name> or source-ip, got ${JSON.stringify(m.hash_key)}`);
  }
  return out;
}

/** `header:x-user` / `cookie:session` / `source-ip` → HashKey (undefined when malformed). */
export function parseHashKey(text: string): HashKey | undefined {
  const t = text.trim();
  if (t === 'source-ip') return { kind: 'source-ip' };
  const m = /^(header|cookie):([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(t);
  if (!m) return undefined;
  return m[1] === 'header' ? { kind: 'header', name: m[2]!.toLowerCase() } : { kind: 'cookie', name: m[2]! };
}

function decodeRingHash(c: Plain, p: Problems): Cluster['ringHash'] {
  const r = obj(c, 'ring_hash_lb_config');
  const min = Number(num(obj(r, 'minimum_ring_size'), 'value') ?? 1024);
  const max = Number(num(obj(r, 'maximum_ring_size'), 'value') ?? MAX_RING);
  if (min > max) p.add('ring_hash_lb_config.minimum_ring_size', `minimum_ring_size ${min} is above maximum_ring_size ${max}`);
  return { minRingSize: Math.min(min, MAX_RING), maxRingSize: Math.min(max, MAX_RING) };
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
  const circuitBreakers = decodeCircuitBreakers(c, p);
  const outlierDetection = decodeOutlierDetection(c, p);
  const weft = decodeWeftMetadata(c, p);
  if (weft.lbPolicy) lbPolicy = weft.lbPolicy;
  const ringHash = lbPolicy === 'RING_HASH' ? decodeRingHash(c, p) : undefined;
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
    ...(weft.hashKey ? { hashKey: weft.hashKey } : {}),
    ...(ringHash ? { ringHash } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
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
