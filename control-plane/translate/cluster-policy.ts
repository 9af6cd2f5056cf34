// A Service's traffic policy as Envoy Cluster fields (pure): load balancing, consistent-hash
// key, outlier detection, circuit breakers and retry budget — Istio-like defaults, overridden
// per Service by `weft.dev/*` annotations. Values that do not parse keep the default; every
// field written here is one Envoy (and Weft's proxy) reads on the Cluster.
import type { Plain } from '../../api/codec.js';
import { portProtocol, type Service, type ServicePort } from '../model/index.js';
import { duration, struct, u32 } from './envoy.js';

/** The annotations, as users write them on a Service. */
export const ANNOTATIONS = {
  /** ROUND_ROBIN | LEAST_REQUEST | RANDOM | P2C_EWMA | RING_HASH | MAGLEV */
  lbPolicy: 'weft.dev/lb-policy',
  /** header:<name> | cookie:<name> | source-ip (implies RING_HASH unless lb-policy says MAGLEV) */
  hashKey: 'weft.dev/lb-hash-key',
  /** `off`, or `consecutive5xx=5,consecutiveGatewayErrors=0,interval=10s,baseEjectionTime=30s,maxEjectionTime=300s,maxEjectionPercent=50` */
  outlierDetection: 'weft.dev/outlier-detection',
  /** `maxConnections=N,maxPendingRequests=N,maxRequests=N,maxRetries=N` (unset: no limit) */
  circuitBreaker: 'weft.dev/circuit-breaker',
  /** `off` (then maxRetries applies), or `budgetPercent=20,minRetryConcurrency=3` */
  retryBudget: 'weft.dev/retry-budget',
} as const;

const POLICIES = new Set(['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'P2C_EWMA', 'RING_HASH', 'MAGLEV']);
/** Policies with an Envoy enum value; P2C_EWMA travels in the cluster metadata instead. */
const NON_HTTP = new Set(['tcp', 'tls', 'https', 'mongo', 'mysql', 'redis', 'udp']);

/** Istio's outlier-detection numbers, with a 50 % ejection cap (Istio: 10 %, useless below
 *  ten endpoints). */
export const OUTLIER_DEFAULTS = {
  consecutive5xx: 5,
  consecutiveGatewayErrors: 0,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 50,
} as const;

/** Envoy's retry-budget defaults. */
export const RETRY_BUDGET_DEFAULTS = { budgetPercent: 20, minRetryConcurrency: 3 } as const;

/** Istio leaves connection/request limits effectively off; so does Weft unless annotated. */
const NO_LIMIT = 4_294_967_295;

/** `a=1,b=2s` → { a: '1', b: '2s' }; undefined when malformed. */
function keyValues(text: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const part of text.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9]+)\s*=\s*(\S+)$/.exec(part);
    if (!m) return undefined;
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** `10s`, `250ms`, `1m` → ms. */
function durationText(text: string | undefined): number | undefined {
  const m = text === undefined ? null : /^(\d+)(ms|s|m)$/.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000);
}

function count(text: string | undefined, max = NO_LIMIT): number | undefined {
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  return n <= max ? n : undefined;
}

function outlierDetection(annotation: string | undefined): Plain | undefined {
  if (annotation?.trim() === 'off') return undefined;
  const kv = (annotation && keyValues(annotation)) || new Map<string, string>();
  const pick = <T>(v: T | undefined, d: T) => (v === undefined ? d : v);
  const consecutive5xx = pick(count(kv.get('consecutive5xx')), OUTLIER_DEFAULTS.consecutive5xx);
  const gateway = pick(count(kv.get('consecutiveGatewayErrors')), OUTLIER_DEFAULTS.consecutiveGatewayErrors);
  const base = pick(durationText(kv.get('baseEjectionTime')), OUTLIER_DEFAULTS.baseEjectionTimeMs);
  return {
    consecutive_5xx: u32(consecutive5xx),
    enforcing_consecutive_5xx: u32(consecutive5xx > 0 ? 100 : 0),
    consecutive_gateway_failure: u32(gateway > 0 ? gateway : 5),
    enforcing_consecutive_gateway_failure: u32(gateway > 0 ? 100 : 0),
    // Weft has no success-rate detection; Envoy would enforce it at 100 % unless told not to.
    enforcing_success_rate: u32(0),
    interval: duration(Math.max(1, pick(durationText(kv.get('interval')), OUTLIER_DEFAULTS.intervalMs))),
    base_ejection_time: duration(Math.max(1, base)),
    max_ejection_time: duration(Math.max(base, pick(durationText(kv.get('maxEjectionTime')), OUTLIER_DEFAULTS.maxEjectionTimeMs))),
    max_ejection_percent: u32(pick(count(kv.get('maxEjectionPercent'), 100), OUTLIER_DEFAULTS.maxEjectionPercent)),
  };
}

function circuitBreakers(limits: string | undefined, budget: string | undefined): Plain {
  const kv = (limits && keyValues(limits)) || new Map<string, string>();
  const threshold: Plain = {
    priority: 'DEFAULT',
    max_connections: u32(count(kv.get('maxConnections')) ?? NO_LIMIT),
    max_pending_requests: u32(count(kv.get('maxPendingRequests')) ?? NO_LIMIT),
    max_requests: u32(count(kv.get('maxRequests')) ?? NO_LIMIT),
  };
  const maxRetries = count(kv.get('maxRetries'));
  if (maxRetries !== undefined) threshold.max_retries = u32(maxRetries);
  if (budget?.trim() !== 'off') {
    const b = (budget && keyValues(budget)) || new Map<string, string>();
    threshold.retry_budget = {
      budget_percent: { value: count(b.get('budgetPercent'), 100) ?? RETRY_BUDGET_DEFAULTS.budgetPercent },
      min_retry_concurrency: u32(count(b.get('minRetryConcurrency')) ?? RETRY_BUDGET_DEFAULTS.minRetryConcurrency),
    };
  }
  return { thresholds: [threshold] };
}

/**
 * The Cluster fields for one Service port: `lb_policy` (+ `ring_hash_lb_config`),
 * `metadata.filter_metadata.weft` (Weft's own policy name and hash key), `outlier_detection`,
 * `circuit_breakers`. P2C + peak-EWMA (the HTTP default) is sent as `lb_policy: ROUND_ROBIN`
 * plus `weft.lb_policy: P2C_EWMA`, so Envoy and proxyless gRPC clients, which know no such
 * policy, still read a valid cluster.
 */
export function clusterPolicy(service: Service, port: ServicePort): Plain {
  const a = service.metadata.annotations;
  const hashKey = a[ANNOTATIONS.hashKey]?.trim();
  const validHash = hashKey !== undefined && /^(source-ip|(header|cookie):[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.test(hashKey) ? hashKey : undefined;
  const asked = a[ANNOTATIONS.lbPolicy]?.trim().toUpperCase();
  const http = !NON_HTTP.has(portProtocol(port));
  let policy = asked !== undefined && POLICIES.has(asked) ? asked : validHash ? 'RING_HASH' : http ? 'P2C_EWMA' : 'ROUND_ROBIN';
  if (policy === 'P2C_EWMA' && !http) policy = 'LEAST_REQUEST';
  const weft: Record<string, string> = {};
  if (policy === 'P2C_EWMA') weft.lb_policy = 'P2C_EWMA';
  if (validHash && (policy === 'RING_HASH' || policy === 'MAGLEV')) weft.hash_key = validHash;
  const out: Plain = {
    lb_policy: policy === 'P2C_EWMA' ? 'ROUND_ROBIN' : policy,
    circuit_breakers: circuitBreakers(a[ANNOTATIONS.circuitBreaker], a[ANNOTATIONS.retryBudget]),
  };
  if (policy === 'RING_HASH') out.ring_hash_lb_config = { minimum_ring_size: { value: 1024 }, maximum_ring_size: { value: 65536 } };
  if (Object.keys(weft).length > 0) out.metadata = { filter_metadata: { weft: struct(weft) } };
  const od = outlierDetection(a[ANNOTATIONS.outlierDetection]);
  if (od) out.outlier_detection = od;
  return out;
}
