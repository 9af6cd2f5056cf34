// Outlier detection math, case by case: what counts as a failure, when a threshold ejects,
// how long an ejection lasts, the ejection cap, and the multiplier falling while in service.
import { describe, expect, it } from 'vitest';
import type { OutlierDetection } from '../../api/domain.js';
import { classify, countOutcome, eject, ejectionDurationMs, freshCounters, mayEject, sweep } from './outlier.js';
import type { RequestOutcome } from './types.js';

const cfg: OutlierDetection = {
  consecutive5xx: 5, enforcing5xxPercent: 100, consecutiveGatewayFailure: 3, enforcingGatewayFailurePercent: 100,
  intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 10, alwaysEjectOne: false,
};

describe('classify', () => {
  it.each<[string, RequestOutcome, ReturnType<typeof classify>]>([
    ['200', { ok: true, latencyMs: 1, status: 200 }, 'success'],
    ['404 is the app being right', { ok: true, latencyMs: 1, status: 404 }, 'success'],
    ['500', { ok: false, latencyMs: 1, status: 500 }, 'error'],
    ['503', { ok: false, latencyMs: 1, status: 503 }, 'gateway-error'],
    ['connect failure', { ok: false, latencyMs: 1 }, 'local-failure'],
    ['client went away', { ok: false, latencyMs: 1, cancelled: true }, 'ignore'],
  ])('%s → %s', (_n, outcome, expected) => expect(classify(outcome)).toBe(expected));
});

describe('countOutcome', () => {
  it('reaches the gateway threshold first on 503s, the 5xx one on 500s, and resets on success', () => {
    const c = freshCounters();
    expect([1, 2, 3].map(() => countOutcome(c, cfg, 'gateway-error'))).toEqual([false, false, true]);
    const d = freshCounters();
    expect([1, 2, 3, 4, 5].map(() => countOutcome(d, cfg, 'error'))).toEqual([false, false, false, false, true]);
    const e = freshCounters();
    countOutcome(e, cfg, 'local-failure');
    countOutcome(e, cfg, 'local-failure');
    countOutcome(e, cfg, 'success');
    expect(e).toMatchObject({ consecutive5xx: 0, consecutiveGateway: 0 });
  });

  it('ignores thresholds set to 0', () => {
    const off = { ...cfg, consecutive5xx: 0, consecutiveGatewayFailure: 0 };
    const c = freshCounters();
    for (let i = 0; i < 20; i++) expect(countOutcome(c, off, 'local-failure')).toBe(false);
  });
});

describe('ejection time', () => {
  it.each([
    [1, 30_000],
    [2, 60_000],
    [10, 300_000],
    [50, 300_000],
  ])('ejected %i times in a row → %i ms', (times, ms) => expect(ejectionDurationMs(cfg, times)).toBe(ms));

  it('is never capped below the base', () => {
    expect(ejectionDurationMs({ ...cfg, baseEjectionTimeMs: 500_000 }, 3)).toBe(500_000);
  });
});

describe('mayEject', () => {
  it.each([
    [10, 0, 10, true],
    [10, 1, 10, false],
    [10, 0, 5, false],
    [50, 0, 2, true],
    [50, 1, 2, false],
    [100, 2, 3, true],
    [50, 0, 1, false],
  ])('max %i %%, %i of %i ejected → %s', (max, ejected, total, expected) => {
    expect(mayEject({ ...cfg, maxEjectionPercent: max }, ejected, total)).toBe(expected);
  });

  it('always_eject_one_host lets one go whatever the percentage', () => {
    expect(mayEject({ ...cfg, maxEjectionPercent: 0, alwaysEjectOne: true }, 0, 5)).toBe(true);
    expect(mayEject({ ...cfg, maxEjectionPercent: 0, alwaysEjectOne: true }, 1, 5)).toBe(false);
  });
});

describe('sweep', () => {
  it('returns an endpoint once its time is up, then lowers its multiplier each interval', () => {
    const c = freshCounters();
    eject(c, cfg, 1_000);
    expect(c).toMatchObject({ ejectedAt: 1_000, ejectionMs: 30_000, timesEjected: 1 });
    expect(sweep(c, 30_000)).toBe(false);
    expect(sweep(c, 31_000)).toBe(true);
    expect(c.timesEjected).toBe(1);
    expect(sweep(c, 41_000)).toBe(false);
    expect(c.timesEjected).toBe(0);
  });
});
