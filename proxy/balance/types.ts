// The per-cluster endpoint picker contract. One Balancer per cluster and endpoint set; the
// registry (registry.ts) rebuilds it when the set changes and keeps it when it does not.
import type { Endpoint } from '../../api/domain.js';

/** Stable identity of an endpoint within a cluster (in-flight counts are kept per key). */
export function endpointKey(e: Endpoint): string {
  return `${e.host}:${e.port}|${e.targetPort ?? ''}|${e.identity ?? ''}`;
}

export interface RequestOutcome {
  /** False for connect failures, resets, timeouts and 5xx. */
  readonly ok: boolean;
  /** From the try's start to its response headers (or failure). */
  readonly latencyMs: number;
}

/**
 * Picks endpoints for one cluster. Called by the data path once per request try (so a retry
 * calls pick() again); must be cheap and synchronous. Implementations see only healthy
 * endpoints. P2C + peak-EWMA (issue 8) implements the same interface and uses `onEnd` latency.
 */
export interface Balancer {
  /** The healthy endpoints this balancer chooses from (never changes for one object). */
  readonly endpoints: readonly Endpoint[];
  /** The next endpoint, or undefined when there is none. `avoid` (endpoint keys) is a hint
   *  from the retry loop: prefer endpoints not tried yet, if any is left. */
  pick(avoid?: ReadonlySet<string>): Endpoint | undefined;
  /** A try to `endpoint` starts; must be paired with exactly one onEnd. */
  onStart(endpoint: Endpoint): void;
  /** The try ended (response headers, failure, or abort). */
  onEnd(endpoint: Endpoint, outcome: RequestOutcome): void;
}
