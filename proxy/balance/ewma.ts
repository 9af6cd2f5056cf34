// Peak-EWMA latency estimate of one endpoint (the cost model of Linkerd's default balancer):
// a slower sample replaces the estimate at once ("peak"), faster samples pull it down as an
// exponentially weighted moving average over time, and with no samples it decays toward zero,
// so an endpoint that was slow a while ago gets probed again.

/** The estimate a new endpoint starts with (Linkerd's default RTT). */
export const DEFAULT_RTT_MS = 30;
/** Time constant of the decay (Linkerd's default). */
export const DEFAULT_DECAY_MS = 10_000;
/** A failed try counts as at least this slow, so an endpoint that fails fast does not look fast. */
export const FAILURE_PENALTY_MS = 1_000;

export class PeakEwma {
  private value: number;
  private stamp: number;

  constructor(
    nowMs: number,
    private readonly decayMs: number = DEFAULT_DECAY_MS,
    initialMs: number = DEFAULT_RTT_MS,
  ) {
    this.value = initialMs;
    this.stamp = nowMs;
  }

  /** The estimate at `nowMs` (ms); reading does not change it. */
  estimate(nowMs: number): number {
    const elapsed = nowMs - this.stamp;
    return elapsed <= 0 ? this.value : this.value * Math.exp(-elapsed / this.decayMs);
  }

  /** Adds one latency sample taken at `nowMs`. */
  observe(sampleMs: number, nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.stamp);
    if (sampleMs >= this.value) {
      this.value = sampleMs;
    } else {
      // The older the estimate, the more the new sample counts.
      const keep = Math.exp(-elapsed / this.decayMs);
      this.value = this.value * keep + sampleMs * (1 - keep);
    }
    this.stamp = Math.max(this.stamp, nowMs);
  }
}
