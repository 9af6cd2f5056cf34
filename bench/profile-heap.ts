// Preloaded into a profiled sidecar by `bench/profile.js --heap` (node --import): samples every
// allocation, those the GC already collected included (which `node --heap-prof` leaves out, and
// which are the garbage a data path makes), over the measured window, then writes a
// .heapprofile next to the CPU profile (profile-summary.js summarises it by function), and the
// collections of that window by kind (count, total ms) as gc-PID.json.
// Environment: WEFT_HEAP_SAMPLE_DIR, WEFT_HEAP_SAMPLE_FROM_S (after start-up), WEFT_HEAP_SAMPLE_FOR_S.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import path from 'node:path';
import { getHeapSpaceStatistics } from 'node:v8';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';

const KINDS: Record<number, string> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};

const dir = process.env.WEFT_HEAP_SAMPLE_DIR;
const fromMs = Number(process.env.WEFT_HEAP_SAMPLE_FROM_S ?? 5) * 1000;
const forMs = Number(process.env.WEFT_HEAP_SAMPLE_FOR_S ?? 5) * 1000;

if (dir) {
  const session = new inspector.Session();
  session.connect();
  const fail = (err: Error | null): boolean => {
    if (err) process.stderr.write(`heap sampler: ${err.message}\n`);
    return err !== null;
  };
  setTimeout(() => {
    // One sample per 32 KiB allocated on average: enough for a per-function breakdown.
    // WEFT_HEAP_SAMPLE_LIVE=1: only what is still alive at the end (what the collector keeps).
    const all = process.env.WEFT_HEAP_SAMPLE_LIVE !== '1';
    const params = { samplingInterval: 32768, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: all };
    const gc: Record<string, { count: number; ms: number }> = {};
    const survivors = { bytes: 0, n: 0, semiSpace: 0 };
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries() as (PerformanceEntry & { detail?: { kind?: number } })[]) {
        const kind = KINDS[e.detail?.kind ?? -1] ?? 'other';
        const k = (gc[kind] ??= { count: 0, ms: 0 });
        k.count++;
        k.ms += e.duration;
        if (kind === 'scavenge') {
          // What the young generation holds just after a scavenge: the survivors.
          const young = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
          if (young) {
            survivors.bytes += young.space_used_size;
            survivors.n++;
            survivors.semiSpace = young.space_size;
          }
        }
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    session.post('HeapProfiler.startSampling', params, (err) => {
      if (fail(err)) return;
      setTimeout(() => {
        observer.disconnect();
        writeFileSync(path.join(dir, `gc-${process.pid}.json`), JSON.stringify({ seconds: forMs / 1000, gc, youngAfterScavengeKiB: Math.round(survivors.bytes / Math.max(1, survivors.n) / 1024), newSpaceKiB: Math.round(survivors.semiSpace / 1024) }));
        session.post('HeapProfiler.stopSampling', (err2, result) => {
          if (fail(err2)) return;
          writeFileSync(path.join(dir, `heap-${process.pid}.heapprofile`), JSON.stringify(result.profile));
        });
      }, forMs).unref();
    });
  }, fromMs).unref();
}
