// Outlier detection (passive health checking), the pure parts: how a try's outcome moves an
// endpoint's consecutive-failure counters, when that ejects it, for how long, and whether the
// cluster may lose one more endpoint. cluster-state.ts holds the state and the clock.
import type { OutlierDetection } from '../../api/domain.js';
import type { RequestOutcome } from './types.js';

/** What outlier detection keeps per endpoint (a part of EndpointState). */
export interface OutlierCounters {
  consecutive5xx: number;
  consecutiveGateway: number;
  /** When the current ejection started (ms), or -1 while in service. */
  ejectedAt: number;
  /** Length of the current ejection. */
  ejectionMs: number;
  /** The ejection multiplier: ejections in a row, lowered by one per interval in service. */
  timesEjected: number;
}

export function freshCounters(): OutlierCounters {
  return { consecutive5xx: 0, consecutiveGateway: 0, ejectedAt: -1, ejectionMs: 0, timesEjected: 0 };
}

export type OutcomeClass = 'success' | 'error' | 'gateway-error' | 'local-failure' | 'ignore';

/** How Envoy's detector sees a try: the app's answer, a failure we saw locally, or nothing. */
export function classify(outcome: RequestOutcome): OutcomeClass {
  if (outcome.cancelled) return 'ignore';
  if (outcome.status === undefined) return outcome.ok ? 'success' : 'local-failure';
  if (outcome.status === 502 || outcome.status === 503 || outcome.status === 504) return 'gateway-error';
  return outcome.status >= 500 ? 'error' : 'success';
}

/**
 * Counts one outcome. Returns true when a threshold was just reached (the caller then decides,
 * with mayEject and the enforcing percentage, whether to eject).
 */
export function countOutcome(c: OutlierCounters, cfg: OutlierDetection, cls: OutcomeClass): boolean {
  switch (cls) {
    case 'ignore':
      return false;
    case 'success':
      c.consecutive5xx = 0;
      c.consecutiveGateway = 0;
      return false;
    case 'error':
      c.consecutive5xx++;
      c.consecutiveGateway = 0;
      break;
    case 'gateway-error':
    case 'local-failure':
      // Locally originated failures count as 5xx and as gateway errors (Envoy's default,
      // split_external_local_origin_errors off).
      c.consecutive5xx++;
      c.consecutiveGateway++;
      break;
  }
  return thresholdReached(c, cfg) !== undefined;
}

/** Which enabled threshold the counters reached, if any. */
export function thresholdReached(c: OutlierCounters, cfg: OutlierDetection): '5xx' | 'gateway' | undefined {
  if (cfg.consecutive5xx > 0 && c.consecutive5xx >= cfg.consecutive5xx) return '5xx';
  if (cfg.consecutiveGatewayFailure > 0 && c.consecutiveGateway >= cfg.consecutiveGatewayFailure) return 'gateway';
  return undefined;
}

/** Ejection length for the `times`-th ejection in a row: base × times, capped. */
export function ejectionDurationMs(cfg: OutlierDetection, times: number): number {
  return Math.min(cfg.baseEjectionTimeMs * Math.max(1, times), Math.max(cfg.baseEjectionTimeMs, cfg.maxEjectionTimeMs));
}

/** Whether one more of `total` endpoints may be ejected while `ejected` already are. */
export function mayEject(cfg: OutlierDetection, ejected: number, total: number): boolean {
  if (total <= 0) return false;
  if (cfg.alwaysEjectOne && ejected === 0) return true;
  return ((ejected + 1) * 100) / total <= cfg.maxEjectionPercent;
}

/** Starts an ejection at `now`. */
export function eject(c: OutlierCounters, cfg: OutlierDetection, now: number): void {
  c.timesEjected++;
  c.ejectedAt = now;
  c.ejectionMs = ejectionDurationMs(cfg, c.timesEjected);
  c.consecutive5xx = 0;
  c.consecutiveGateway = 0;
}

/**
 * One interval sweep at `now` for one endpoint: an ejection that has run its time ends; an
 * endpoint in service has its multiplier lowered. Returns true when the endpoint came back.
 */
export function sweep(c: OutlierCounters, now: number): boolean {
  if (c.ejectedAt >= 0) {
    if (now - c.ejectedAt < c.ejectionMs) return false;
    c.ejectedAt = -1;
    return true;
  }
  if (c.timesEjected > 0) c.timesEjected--;
  return false;
}
