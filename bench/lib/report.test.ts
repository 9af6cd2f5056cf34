// The "against the baseline build" table: ratios and differences are taken run by run, between
// a path and its baseline twin measured in the same run, and their median is what it shows.
import { describe, expect, it } from 'vitest';
import type { LatencySample, ThroughputSample } from '../dataplane.js';
import type { PathName } from './dataplane-env.js';
import { markdown, type BenchResults } from './report.js';

const proxy = (cores: number, rss: number) => ({ role: 'sidecar', cores, cpuSecondsPer1k: NaN, rssPeakMiB: rss, pssPeakMiB: rss / 2, anonPeakMiB: rss / 3 });

function tp(run: number, path: PathName, perCore: number): ThroughputSample {
  return { run, protocol: 'http1', path, proxies: [proxy(1, 70)], backendCores: 0.5, coreBusy: {}, rps: perCore, errors: 0, proxyCores: 1, rpsPerProxyCore: perCore };
}

function lat(run: number, path: PathName, cores: number, p90: number, rss: number): LatencySample {
  const l = { p50: 1, p90, p99: p90 + 1, mean: 1, max: 9, count: 1000 };
  return { run, protocol: 'http1', path, proxies: [proxy(cores, rss)], backendCores: 0.1, coreBusy: {}, latencyMs: l as never, ok: 5000, failed: 0, lost: 0, sendLagP99Ms: 0.5, servedRps: 1000 };
}

function results(t: ThroughputSample[], l: LatencySample[]): BenchResults {
  return {
    meta: { started: 'now', command: 'test', commit: 'abc', weftCli: 'new', node: 'v20', cpuModel: 'cpu', cpus: 2, pinning: 'none', settings: { runs: 2, seconds: 5, rate: 1000 }, loadAverage: [0], baselineCli: '/base/cli/main.js' },
    idleRss: {},
    throughput: t,
    latency: l,
    controlPlane: [],
    identity: [],
    notes: [],
  };
}

describe('the baseline table', () => {
  it('divides and subtracts within each run, then takes the median', () => {
    const md = markdown(
      results(
        // Run 2 is twice as fast for both builds: the in-run ratio stays 1.25.
        [tp(1, 'weft1', 1250), tp(1, 'weft1-base', 1000), tp(2, 'weft1', 2500), tp(2, 'weft1-base', 2000)],
        [lat(1, 'weft1', 0.08, 1.5, 70), lat(1, 'weft1-base', 0.1, 1.2, 78), lat(2, 'weft1', 0.09, 1.4, 71), lat(2, 'weft1-base', 0.1, 1.3, 77)],
      ),
    );
    const row = md.split('\n').find((l) => l.startsWith('| http1 | Weft, 1 sidecar |') && l.includes('×'));
    expect(row).toBe('| http1 | Weft, 1 sidecar | **1.25×** (1.25×, 1.25×) | **0.85×** (0.80×, 0.90×) | **+0.20** (+0.30, +0.10) | **+0.20** (+0.30, +0.10) | **-7** (-8, -6) / **-4** (-4, -3) |');
    expect(md).toContain('### Against the baseline build (/base/cli/main.js), same runs');
  });

  it('is left out without a baseline', () => {
    expect(markdown(results([tp(1, 'weft1', 1000)], []))).not.toContain('Against the baseline');
  });
});
