// The per-cluster endpoint picker contract. One Balancer per cluster and endpoint set; the
// registry (registry.ts) rebuilds it when the set (or the set of ejected endpoints) changes and
// keeps it when it does not.
import type { Endpoint } from '../../api/domain.js';

/** Stable identity of an endpoint within a cluster (per-endpoint state is kept per key). */
export function endpointKey(e: Endpoint): string {
  return `${e.host}:${e.port}|${e.targetPort ?? ''}|${e.identity ?? ''}`;
}

export interface RequestOutcome {
  /** False for connect failures, resets, timeouts and 5xx. */
  readonly ok: boolean;
  /** From the try's start to its response headers (or failure). */
  readonly latencyMs: number;
  /** The upstream's response status; absent when the try failed before one (connect failure,
   *  reset, timeout): outlier detection counts those as locally originated failures. */
  readonly status?: number;
  /** We gave the try up ourselves (the client left, a retry raced it): says nothing about the
   *  endpoint, so neither latency nor outlier detection count it. */
  readonly cancelled?: boolean;
}

/**
 * Picks endpoints for one cluster. Called by the data path once per request try (so a retry
 * calls pick() again); must be cheap, synchronous and allocation-free. Implementations see only
 * healthy endpoints that outlier detection has not ejected.
 */
export interface Balancer {
  /** The endpoints this balancer chooses from (never changes for one object). */
  readonly endpoints: readonly Endpoint[];
  /**
   * The next endpoint, or undefined when there is none. `avoid` (endpoint keys) is a hint from
   * the retry loop: prefer endpoints not tried yet, if any is left. `hash` is the request's
   * hash for consistent-hash policies (absent: the request has no value for the hash key, and
   * they pick at random); other policies ignore it.
   */
  pick(avoid?: ReadonlySet<string>, hash?: number): Endpoint | undefined;
  /** A try to `endpoint` starts; must be paired with exactly one onEnd. */
  onStart(endpoint: Endpoint): void;
  /** The try ended (response headers, failure, or abort). Feeds latency and outlier detection. */
  onEnd(endpoint: Endpoint, outcome: RequestOutcome): void;
}
