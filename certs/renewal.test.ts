// Renewal timing (half the lifetime, jittered) and the scheduler's retry and cancel behaviour,
// on fake timers so that hours pass instantly and deterministically.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { renewalTime, scheduleAt } from './renewal.js';

const HOUR = 3_600_000;

describe('renewalTime', () => {
  const validity = { from: 1_000_000, to: 1_000_000 + 24 * HOUR };

  it('is half the lifetime with no jitter drawn (random 0.5)', () => {
    expect(renewalTime(validity, { random: () => 0.5 })).toBe(validity.from + 12 * HOUR);
  });

  it('spreads ±10% of the lifetime at the extremes of the random draw', () => {
    expect(renewalTime(validity, { random: () => 0 })).toBeCloseTo(validity.from + 0.4 * 24 * HOUR, 3);
    expect(renewalTime(validity, { random: () => 1 - Number.EPSILON })).toBeCloseTo(validity.from + 0.6 * 24 * HOUR, 3);
  });

  it('stays within the validity period whatever the policy', () => {
    expect(renewalTime(validity, { fraction: 0.95, jitter: 0.5, random: () => 0.99 })).toBe(validity.to);
    expect(renewalTime(validity, { fraction: 0.05, jitter: 0.5, random: () => 0 })).toBe(validity.from);
    expect(renewalTime({ from: 10, to: 5 })).toBe(10);
  });
});

describe('scheduleAt', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs at the given time, not before', async () => {
    const run = vi.fn(async () => {});
    scheduleAt(Date.now() + HOUR, run);
    await vi.advanceTimersByTimeAsync(HOUR - 1);
    expect(run).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('retries with growing backoff until the run succeeds, reporting each failure', async () => {
    let failures = 2;
    const run = vi.fn(async () => {
      if (failures-- > 0) throw new Error('CA unavailable');
    });
    const errors: Array<[string, number]> = [];
    scheduleAt(Date.now(), run, {
      backoff: { initialMs: 1000, maxMs: 60_000, random: () => 1 - Number.EPSILON },
      onError: (err, retryIn) => errors.push([(err as Error).message, retryIn]),
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(run).toHaveBeenCalledTimes(1);
    expect(errors).toEqual([['CA unavailable', 1000]]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(errors).toEqual([
      ['CA unavailable', 1000],
      ['CA unavailable', 2000],
    ]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(run).toHaveBeenCalledTimes(3);
    await vi.advanceTimersByTimeAsync(10 * HOUR);
    expect(run).toHaveBeenCalledTimes(3); // success ends the schedule
  });

  it('cancel stops pending runs and retries', async () => {
    const run = vi.fn(async () => {
      throw new Error('down');
    });
    const s = scheduleAt(Date.now(), run, { backoff: { initialMs: 1000, maxMs: 1000 } });
    await vi.advanceTimersByTimeAsync(0);
    s.cancel();
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('waits correctly past the 24.8-day setTimeout limit', async () => {
    const run = vi.fn(async () => {});
    const days40 = 40 * 24 * HOUR;
    scheduleAt(Date.now() + days40, run);
    await vi.advanceTimersByTimeAsync(days40 - 1000);
    expect(run).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1000);
    expect(run).toHaveBeenCalledTimes(1);
  });
});
