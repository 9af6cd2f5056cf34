// Peak-EWMA, by numbers: a slower sample takes over at once, faster ones pull the estimate
// down with time-based weight, and an idle estimate decays toward zero.
import { describe, expect, it } from 'vitest';
import { DEFAULT_RTT_MS, PeakEwma } from './ewma.js';

describe('PeakEwma', () => {
  it('starts at the default RTT', () => {
    expect(new PeakEwma(0).estimate(0)).toBe(DEFAULT_RTT_MS);
  });

  it.each([
    // [samples as [ms, at], expected estimate at the last sample's time]
    [[[100, 0]], 100],
    [[[100, 0], [10, 0]], 100], // no time passed: a faster sample has no weight yet
    [[[100, 0], [10, 10_000]], 100 * Math.exp(-1) + 10 * (1 - Math.exp(-1))],
    [[[10, 0], [500, 1]], 500], // peak: slower replaces at once
  ] as [Array<[number, number]>, number][])('%j → %d', (samples, expected) => {
    const e = new PeakEwma(0, 10_000, 0);
    for (const [ms, at] of samples) e.observe(ms, at);
    expect(e.estimate(samples[samples.length - 1]![1])).toBeCloseTo(expected, 6);
  });

  it('decays toward zero without samples, and reading does not change it', () => {
    const e = new PeakEwma(0, 10_000, 0);
    e.observe(200, 0);
    expect(e.estimate(10_000)).toBeCloseTo(200 * Math.exp(-1), 6);
    expect(e.estimate(10_000)).toBeCloseTo(200 * Math.exp(-1), 6);
    expect(e.estimate(100_000)).toBeLessThan(0.01);
  });
});
