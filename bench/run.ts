// `npm run bench`: the benchmark suite. Starts everything it measures as separate processes on
// 127.0.0.1 (pinned: load generators and backends on one CPU, proxies on another), runs each
// selected group `--runs` times, and writes JSON to bench/results/<timestamp>.json and a
// Markdown table to stdout and bench/results/latest.md. Stops by itself; never part of npm test.
//
//   node dist/bench/run.js [--only all|throughput,latency,http1,h2c,grpc,cp,identity]
//     [--duration 10] [--warmup 2] [--runs 3] [--rate 1000] [--paths direct,haproxy,weft1,weft2]
//     [--cp-proxies 10,100,1000] [--cp-services 1000] [--cp-endpoints 5000] [--cp-connect-timeout 60]
//     [--cp-protocol delta|sotw|delta,sotw]  (how the simulated proxies speak ADS; default delta)
//     [--load-cpu 0] [--proxy-cpu 1] [--weft path/to/cli/main.js] [--label "what was measured"]
//     [--baseline path/to/other/cli/main.js]  (that build's sidecars too, measured in the same runs:
//       a "this ÷ baseline" table; e.g. a build of the previous commit)
//     [--out bench/results]
//   --only ambient (root; only when named, never in `all`): the ambient benchmark (bench/ambient.ts)
//     [--ambient-pods 1,10,100]
import { execSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ambientBench, ambientMarkdown, ambientSummary, type AmbientResults } from './ambient.js';
import { CP_PROTOCOLS, cpScenario, identityBench, type CpSettings } from './controlplane.js';
import { latency, throughput, type DataPlaneSettings } from './dataplane.js';
import { BASELINE_OF, PATHS, PROTOCOLS, startDataPlaneEnv, type PathName, type Protocol } from './lib/dataplane-env.js';
import { weftCli } from './lib/mesh.js';
import { canPin, cpuCount, stopAll } from './lib/proc.js';
import { latencyRows, markdown, targets, throughputRows, type BenchResults } from './lib/report.js';
import { flags, num, str } from './load/args.js';

const GROUPS = ['all', 'throughput', 'latency', 'http1', 'h2c', 'grpc', 'cp', 'identity', 'ambient'] as const;
type Group = (typeof GROUPS)[number];

function usage(problem: string): never {
  process.stderr.write(`bench: ${problem}\nsee the header of bench/run.ts for the flags\n`);
  process.exit(2);
}

function list<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').map((x) => x.trim()).filter(Boolean);
  for (const i of items) if (!allowed.includes(i as T)) usage(`--${flag}: unknown "${i}" (one of ${allowed.join(', ')})`);
  return items as T[];
}

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function main(): Promise<void> {
  const f = flags();
  const only = new Set(list(str(f, 'only', 'all'), GROUPS, 'only'));
  const all = only.has('all');
  const namedProtocols = PROTOCOLS.filter((p) => only.has(p));
  const protocols: readonly Protocol[] = namedProtocols.length > 0 ? namedProtocols : PROTOCOLS;
  const kindsNamed = only.has('throughput') || only.has('latency');
  const doThroughput = all || only.has('throughput') || (!kindsNamed && namedProtocols.length > 0);
  const doLatency = all || only.has('latency') || (!kindsNamed && namedProtocols.length > 0);
  const doCp = all || only.has('cp');
  const doIdentity = all || only.has('identity');
  // Root only (network namespaces), so never implied by `all`.
  const doAmbient = only.has('ambient');
  const baselineCli = f.has('baseline') ? path.resolve(str(f, 'baseline')) : undefined;
  const named = list(str(f, 'paths', PATHS.join(',')), PATHS, 'paths') as PathName[];
  // Each Weft path's baseline twin right after it, so both see the same moment of the machine.
  const paths = named.flatMap((p) => (baselineCli && BASELINE_OF[p] ? [p, BASELINE_OF[p]!] : [p]));
  if (!paths.includes('direct') || (!paths.includes('haproxy') && paths.some((p) => p.startsWith('weft')))) {
    log('note: ratios need "direct" and "haproxy" in --paths; missing ones show as –');
  }
  const runs = num(f, 'runs', 3);
  const seconds = num(f, 'duration', 10);
  const warmupSeconds = num(f, 'warmup', 2);
  if (!(runs >= 1 && runs <= 50 && seconds > 0 && seconds <= 600)) usage('--runs must be 1..50 and --duration 1..600 s');
  if (f.has('weft')) process.env.WEFT_BENCH_CLI = path.resolve(str(f, 'weft'));

  // Pinning: load generators, backends and control planes on one CPU, proxies on another.
  const wantLoad = str(f, 'load-cpu', '0');
  const wantProxy = str(f, 'proxy-cpu', '1');
  const pin = cpuCount() >= 2 && canPin(wantLoad) && canPin(wantProxy) && f.get('no-pin') !== 'true';
  const cpus = pin ? { load: wantLoad, proxy: wantProxy } : { load: undefined, proxy: undefined };
  const pinning = pin
    ? `load generators, backends and control planes pinned to CPU ${wantLoad}, proxies under test to CPU ${wantProxy} (taskset)`
    : 'not pinned (fewer than 2 usable CPUs, or --no-pin)';

  const outDir = path.resolve(str(f, 'out', 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'weft-bench-'));
  const started = new Date();
  const commit = f.get('label') ?? (() => {
    try {
      const sha = execSync('git rev-parse --short HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      const dirty = execSync('git status --porcelain --untracked-files=no', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
      return dirty && !process.env.WEFT_BENCH_CLI ? `${sha} + uncommitted changes` : sha;
    } catch {
      return 'unknown';
    }
  })();

  const dp: DataPlaneSettings = {
    seconds,
    warmupSeconds,
    http1Connections: num(f, 'http1-connections', 64),
    h2Connections: num(f, 'h2-connections', 16),
    h2Streams: num(f, 'h2-streams', 4),
    rate: num(f, 'rate', 1000),
    latencyConnections: num(f, 'latency-connections', 16),
    cpus,
  };
  const cp: CpSettings = {
    services: num(f, 'cp-services', 1000),
    endpoints: num(f, 'cp-endpoints', 5000),
    proxies: str(f, 'cp-proxies', '10,100,1000').split(',').map(Number).filter((n) => n > 0),
    edits: num(f, 'cp-edits', runs),
    protocols: list(str(f, 'cp-protocol', 'delta'), CP_PROTOCOLS, 'cp-protocol'),
    connectTimeoutSeconds: num(f, 'cp-connect-timeout', 60),
    convergeTimeoutSeconds: num(f, 'cp-converge-timeout', 30),
    cpus,
  };
  const results: BenchResults = {
    meta: {
      started: started.toISOString(),
      command: `node dist/bench/run.js ${process.argv.slice(2).join(' ')}`.trim(),
      commit,
      weftCli: weftCli(),
      node: process.version,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      cpus: cpuCount(),
      pinning,
      settings: { runs, ...dp, cpus: undefined, protocols, paths, cp: { ...cp, cpus: undefined } },
      loadAverage: os.loadavg(),
      ...(baselineCli ? { baselineCli } : {}),
    },
    idleRss: {},
    throughput: [],
    latency: [],
    controlPlane: [],
    identity: [],
    notes: [],
  };
  log(`work dir ${work}; ${pinning}`);

  let ambient: AmbientResults | undefined;
  try {
    if (doThroughput || doLatency) {
      const env = await startDataPlaneEnv(work, cpus, log, baselineCli ? { baselineCli } : {});
      try {
        Object.assign(results.idleRss, env.idleRss);
        // Rotate the order of paths from run to run, so no path always goes first.
        const orderOf = (run: number) => paths.map((_, i) => paths[(i + run - 1) % paths.length]!);
        // Every fixed-rate run before any closed-loop one: a sidecar driven to saturation keeps
        // the larger young generation it grew there (~10 MiB), so its memory at 1000 req/s would
        // be that of a sidecar after a burst, not of one at 1000 req/s.
        if (doLatency) {
          for (let run = 1; run <= runs; run++) {
            for (const p of protocols) {
              for (const name of orderOf(run)) {
                const x = await latency(env, dp, run, p, name);
                results.latency.push(x);
                log(`run ${run} latency ${p} ${name}: p50 ${x.latencyMs.p50.toFixed(2)} p90 ${x.latencyMs.p90.toFixed(2)} p99 ${x.latencyMs.p99.toFixed(2)} ms${x.failed + x.lost ? `, ${x.failed + x.lost} failed` : ''}`);
              }
            }
          }
        }
        if (doThroughput) {
          for (let run = 1; run <= runs; run++) {
            for (const p of protocols) {
              for (const name of orderOf(run)) {
                const x = await throughput(env, dp, run, p, name);
                results.throughput.push(x);
                log(`run ${run} throughput ${p} ${name}: ${Math.round(x.rps)} req/s, proxy ${x.proxyCores.toFixed(2)} cores${x.errors ? `, ${x.errors} errors` : ''}`);
              }
            }
          }
        }
      } finally {
        await env.stop();
      }
    }
    if (doCp) {
      for (const n of cp.proxies) {
        for (const protocol of cp.protocols) {
          log(`control plane: ${n} proxies, ${protocol}`);
          const x = await cpScenario(work, cp, n, protocol, log);
          results.controlPlane.push(x);
          log(`control plane ${n} ${protocol}: ${x.synced}/${n} synced; edit → ACK p99 ${x.convergeP99Ms.toFixed(0)} ms; RSS peak ${x.rssPeakMiB.toFixed(0)} MiB`);
        }
      }
    }
    if (doIdentity) results.identity.push(...(await identityBench(Math.min(seconds, 10), log)));
    if (doAmbient) {
      ambient = await ambientBench(work, {
        seconds, warmupSeconds, runs, rate: dp.rate, http1Connections: dp.http1Connections, latencyConnections: dp.latencyConnections,
        memoryPods: str(f, 'ambient-pods', '1,10,100').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0 && n <= 200), cpus,
      }, log);
    }
  } finally {
    await stopAll();
  }

  results.notes.push(
    'The machine is shared (other engineers run test suites on the same 2 CPUs at the same time), so absolute figures are noisy; compare the ratios, which come from back-to-back runs.',
    '"req/s per proxy core" divides the throughput by the CPU the proxy processes actually used (from /proc/<pid>/stat), so a proxy that was not saturated is not penalised; Weft\'s sidecars run at ~100 % of their core while HAProxy usually is not saturated, which flatters HAProxy\'s per-core figure slightly less than it would at saturation (event loops batch more when busy).',
    'Backends: HAProxy `http-request return` (HTTP/1.1 and h2c) and a minimal node:http2 gRPC server (bench/servers/grpc-server.ts), on the load CPU; "direct" shows what they and the load generator reach without a proxy.',
  );
  const tp = throughputRows(results.throughput);
  const lat = latencyRows(results.latency);
  const json = { ...results, ...(ambient ? { ambient: { ...ambient, summary: ambientSummary(ambient) } } : {}), summary: { throughput: tp, latency: lat, targets: targets(results, tp, lat) } };
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  writeFileSync(path.join(outDir, `${stamp}.json`), JSON.stringify(json, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2));
  const md = markdown(results) + (ambient ? ambientMarkdown(ambient) : '');
  writeFileSync(path.join(outDir, 'latest.md'), md);
  process.stdout.write(md);
  log(`results: ${path.join(outDir, `${stamp}.json`)} and latest.md`);
  rmSync(work, { recursive: true, force: true });
}

main().then(
  () => setTimeout(() => process.exit(0), 100).unref(),
  async (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
