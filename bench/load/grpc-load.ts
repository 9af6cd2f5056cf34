// A small ghz-like closed-loop gRPC load generator (grpc-js), run in its own process: C
// connections × S concurrent calls each, for a fixed duration after a warm-up; prints the
// throughput and latency percentiles as one BENCH_RESULT line.
// Usage: node dist/bench/load/grpc-load.js --target 127.0.0.1:PORT --authority echo:82
//          [--connections 16] [--streams 4] [--duration 10] [--warmup 2]
import * as grpc from '@grpc/grpc-js';
import { callEcho, connectionOptions } from '../lib/grpc.js';
import { summarise } from '../lib/stats.js';
import { emitResult, flags, markWindow, num, str } from './args.js';

const f = flags();
const target = str(f, 'target');
const authority = str(f, 'authority', target);
const connections = num(f, 'connections', 16);
const streams = num(f, 'streams', 4);
const durationS = num(f, 'duration', 10);
const warmupS = num(f, 'warmup', 2);
const MAX_SAMPLES = 5_000_000;

async function main(): Promise<void> {
  const clients = Array.from({ length: connections }, (_, i) => new grpc.Client(target, grpc.credentials.createInsecure(), connectionOptions(authority, i)));
  await Promise.all(
    clients.map(
      (c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve()))),
    ),
  );
  const t0 = performance.now();
  const measureFrom = t0 + warmupS * 1000;
  const end = measureFrom + durationS * 1000;
  markWindow(measureFrom, end);
  const samples = new Float64Array(MAX_SAMPLES);
  let n = 0;
  let ok = 0;
  let errors = 0;
  const codes: Record<string, number> = {};

  const worker = async (client: grpc.Client) => {
    // Bounded by time, and by a count that no real run reaches.
    for (let i = 0; i < 100_000_000; i++) {
      const start = performance.now();
      if (start >= end) return;
      const code = await callEcho(client, 10_000);
      const done = performance.now();
      if (start < measureFrom || done > end) continue;
      if (code === 0) {
        ok++;
        if (n < MAX_SAMPLES) samples[n++] = done - start;
      } else {
        errors++;
        codes[code] = (codes[code] ?? 0) + 1;
      }
    }
  };
  const workers: Promise<void>[] = [];
  for (const c of clients) for (let s = 0; s < streams; s++) workers.push(worker(c));
  await Promise.all(workers);
  for (const c of clients) c.close();
  emitResult({ ok, errors, codes, seconds: durationS, rps: ok / durationS, latencyMs: summarise(samples.subarray(0, n)) });
  setTimeout(() => process.exit(0), 50).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`grpc-load: ${(err as Error).message}\n`);
  process.exit(1);
});
