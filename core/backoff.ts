// Exponential backoff with full jitter, for reconnect loops (xDS, CA) that must not stampede.

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly multiplier?: number;
  /** Returns a number in [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /** Delay before the next attempt; grows until reset() is called after a success. */
  next(): number {
    const mult = this.opts.multiplier ?? 2;
    const ceiling = Math.min(this.opts.maxMs, this.opts.initialMs * mult ** this.attempt);
    this.attempt++;
    const r = (this.opts.random ?? Math.random)();
    // Half fixed, half jitter: never zero, never in lockstep with other proxies.
    return Math.round(ceiling / 2 + (r * ceiling) / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}

/** Resolves after `ms`, or early (without error) when the signal aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
