// When to renew a certificate (half its lifetime, with jitter so a fleet does not renew in
// lockstep), and a tiny scheduler that runs the renewal then, retrying with backoff until it works.
import { Backoff, type BackoffOptions } from '../core/backoff.js';

export interface RenewalPolicy {
  /** Fraction of the lifetime after which to renew; 0.5 as in Istio. */
  readonly fraction?: number;
  /** Plus or minus this fraction of the lifetime, uniformly; 0.1 by default. */
  readonly jitter?: number;
  /** Returns a number in [0, 1); injectable so tests are deterministic. */
  readonly random?: () => number;
}

/**
 * The epoch ms at which to renew a certificate held from `from` to `to` (epoch ms). `from` should
 * be when the holder received it rather than its notBefore, which the CA back-dates for skew.
 */
export function renewalTime(validity: { readonly from: number; readonly to: number }, policy: RenewalPolicy = {}): number {
  const lifetime = Math.max(0, validity.to - validity.from);
  const fraction = policy.fraction ?? 0.5;
  const jitter = policy.jitter ?? 0.1;
  const r = (policy.random ?? Math.random)();
  const offset = lifetime * (fraction + jitter * (2 * r - 1));
  return validity.from + Math.min(lifetime, Math.max(0, offset));
}

export interface ScheduleOptions {
  /** Retry delays after failures; reset after each success. */
  readonly backoff?: BackoffOptions;
  readonly now?: () => number;
  /** Told of each failure and how long until the next attempt. */
  readonly onError?: (err: unknown, retryInMs: number) => void;
}

export interface Scheduled {
  /** Stops the schedule: no further attempt starts (one already running finishes). */
  cancel(): void;
}

// setTimeout fires at once for delays above 2^31-1 ms (~24.8 days); longer waits are chained.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs `run` at `at` (epoch ms; at once if past). If it throws, retries with backoff until it
 * succeeds or the schedule is cancelled. One attempt at a time. Timers are unref'd: a pending
 * renewal alone does not keep a process alive.
 */
export function scheduleAt(at: number, run: () => Promise<void>, opts: ScheduleOptions = {}): Scheduled {
  const now = opts.now ?? Date.now;
  const backoff = new Backoff(opts.backoff ?? { initialMs: 1000, maxMs: 30_000 });
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;

  const arm = (due: number) => {
    const wait = Math.max(0, due - now());
    timer = setTimeout(() => (wait > MAX_TIMER_MS ? arm(due) : void attempt()), Math.min(wait, MAX_TIMER_MS));
    timer.unref();
  };
  const attempt = async () => {
    timer = undefined;
    if (cancelled) return;
    try {
      await run();
      backoff.reset();
    } catch (err) {
      if (cancelled) return;
      const retryIn = backoff.next();
      opts.onError?.(err, retryIn);
      arm(now() + retryIn);
    }
  };
  arm(at);
  return {
    cancel() {
      cancelled = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
