// What one cluster remembers about its endpoints across balancer rebuilds and config swaps:
// requests in flight, the peak-EWMA latency, and outlier detection (consecutive failures,
// ejections). One per cluster, kept by the registry; balancers read and update it.
import type { OutlierDetection } from '../../api/domain.js';
import { FAILURE_PENALTY_MS, PeakEwma } from './ewma.js';
import { classify, countOutcome, eject, freshCounters, mayEject, sweep, thresholdReached, type OutlierCounters } from './outlier.js';
import type { RequestOutcome } from './types.js';

export interface EndpointState extends OutlierCounters {
  inflight: number;
  readonly rtt: PeakEwma;
}

export interface ClusterStateOptions {
  /** Monotonic milliseconds. */
  readonly now?: () => number;
  readonly random?: () => number;
}

export class ClusterState {
  private readonly states = new Map<string, EndpointState>();
  /** States of the cluster's current (healthy) endpoints, for the max-ejection check. */
  private members: EndpointState[] = [];
  private outlier: OutlierDetection | undefined;
  private nextSweep = Infinity;
  private ejectionVersion = 0;
  readonly now: () => number;
  private readonly random: () => number;

  constructor(opts: ClusterStateOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
    this.random = opts.random ?? Math.random;
  }

  /** Changes whenever an endpoint is ejected or comes back. */
  get version(): number {
    return this.ejectionVersion;
  }

  /** The state of the endpoint with this key (created on first use). */
  stateOf(key: string): EndpointState {
    let s = this.states.get(key);
    if (!s) {
      s = { ...freshCounters(), inflight: 0, rtt: new PeakEwma(this.now()) };
      this.states.set(key, s);
    }
    return s;
  }

  /**
   * The cluster's endpoint set changed (or its outlier config): remember the members, forget
   * endpoints that left and have nothing in flight. Called by the registry on rebuild only.
   */
  reset(keys: readonly string[], outlier: OutlierDetection | undefined): void {
    this.outlier = outlier;
    const keep = new Set(keys);
    for (const [k, s] of this.states) if (!keep.has(k) && s.inflight === 0) this.states.delete(k);
    this.members = keys.map((k) => this.stateOf(k));
    if (!outlier) {
      for (const s of this.members) s.ejectedAt = -1;
      this.nextSweep = Infinity;
    } else if (this.nextSweep === Infinity) {
      this.nextSweep = this.now() + outlier.intervalMs;
    }
  }

  isEjected(s: EndpointState): boolean {
    return s.ejectedAt >= 0;
  }

  /** Runs the interval sweeps that are due (ejected endpoints return). Cheap when none is. */
  sweepIfDue(): void {
    const cfg = this.outlier;
    if (!cfg) return;
    const now = this.now();
    if (now < this.nextSweep) return;
    // Replay the interval ticks that passed, each at its own time, as if a timer had run
    // (bounded: after a long quiet spell only the last ticks matter).
    const ticks = Math.floor((now - this.nextSweep) / cfg.intervalMs) + 1;
    for (let t = Math.max(0, ticks - 1_000); t < ticks; t++) {
      const at = this.nextSweep + t * cfg.intervalMs;
      for (const s of this.states.values()) if (sweep(s, at)) this.ejectionVersion++;
    }
    this.nextSweep += ticks * cfg.intervalMs;
  }

  /** A try to the endpoint with state `s` ended. */
  observe(s: EndpointState, outcome: RequestOutcome): void {
    if (outcome.cancelled) return;
    const now = this.now();
    s.rtt.observe(outcome.ok ? outcome.latencyMs : Math.max(outcome.latencyMs, FAILURE_PENALTY_MS), now);
    const cfg = this.outlier;
    if (!cfg || s.ejectedAt >= 0) return;
    if (!countOutcome(s, cfg, classify(outcome))) return;
    const which = thresholdReached(s, cfg);
    const enforcing = which === 'gateway' ? cfg.enforcingGatewayFailurePercent : cfg.enforcing5xxPercent;
    let ejected = 0;
    for (const m of this.members) if (m.ejectedAt >= 0) ejected++;
    if (this.random() * 100 < enforcing && mayEject(cfg, ejected, this.members.length)) {
      eject(s, cfg, now);
      this.ejectionVersion++;
    } else {
      // Not ejected (cap reached or not enforced): count afresh, as Envoy does.
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
    }
  }

  /** For /clusters and tests: per endpoint key, what this cluster knows. */
  describe(): Record<string, { inflight: number; ejected: boolean; timesEjected: number; rttMs: number }> {
    const now = this.now();
    const out: Record<string, { inflight: number; ejected: boolean; timesEjected: number; rttMs: number }> = {};
    for (const [k, s] of this.states) out[k] = { inflight: s.inflight, ejected: s.ejectedAt >= 0, timesEjected: s.timesEjected, rttMs: Math.round(s.rtt.estimate(now) * 10) / 10 };
    return out;
  }
}
