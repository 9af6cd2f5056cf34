// Profiles Weft's sidecars under load: one sidecar (plaintext mesh), or with `--pair` the mTLS
// pair (client sidecar → mTLS → server sidecar), each `weft proxy` started with `node --cpu-prof`,
// under closed-loop load (wrk for HTTP/1.1, 64 keep-alive connections; h2load for h2c, 16 × 4
// streams) or, with `--rate N`, the open-loop generator at N req/s over 16 connections (how the
// latency and vCPU-per-1000-rps figures are taken). Then stopped so V8 writes the profiles; prints
// the summary of the loaded window only (bench/lib/cpuprofile.ts) and keeps each .cpuprofile in
// bench/results/.
// `--heap`: also samples allocations over the measured window (profile-heap.ts), kept as
// .heapprofile files beside the CPU profiles (profile-summary.js reads both).
// gRPC (`--proto grpc`, with --rate only) goes to the data-plane bench's node:http2 gRPC server.
// `--close` (HTTP/1.1 closed loop): every request with `Connection: close`, a connection each.
// `--no-cpu-prof`: no profiler, only the load and the sidecars' cost (and their logs, which hold
// what `--node-args trace-gc-nvp` and the like print), for A/B runs with `--weft`.
// Each sidecar's log is kept beside the profiles.
// Usage: node dist/bench/profile.js [--proto http1|h2c|grpc] [--pair] [--rate N | --close] [--duration 15]
//          [--heap] [--no-cpu-prof] [--node-args flag=v,…] [--weft cli/main.js] [--load-cpu 0] [--proxy-cpu 1] [--out bench/results]
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileMarkdown, summariseProfile, type CpuProfile } from './lib/cpuprofile.js';
import { backendConfig, startHaproxy } from './lib/haproxy.js';
import { ECHO, oneSidecarConfig, startBenchControlPlane, startBenchSidecar, twoSidecarConfig, type BenchSidecar } from './lib/mesh.js';
import { freePort } from './lib/net.js';
import { canPin, cpuCount, resultLine, runMeasured, start, stopAll, waitForLine, type Measured } from './lib/proc.js';
import { h2load, wrk } from './lib/tools.js';
import { flags, num, str } from './load/args.js';

const OPEN_LOOP = fileURLToPath(new URL('./load/openloop.js', import.meta.url));
const HEAP_SAMPLER = fileURLToPath(new URL('./profile-heap.js', import.meta.url));
const GRPC_SERVER = fileURLToPath(new URL('./servers/grpc-server.js', import.meta.url));
const WARMUP_SECONDS = 2;

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

interface Profiled {
  readonly role: string;
  /** Its log: `<work>/<name>.log` (bench/lib/mesh.ts). */
  readonly log: string;
  readonly sidecar: BenchSidecar;
  readonly dir: string;
}

interface LoadRun {
  readonly rps: number;
  readonly measured: Measured;
  /** The loaded window, in the profiles' clock (see SummaryOptions.window). */
  readonly fromUs: number;
  readonly toUs: number;
  readonly what: string;
}

async function main(): Promise<void> {
  const f = flags();
  const seconds = num(f, 'duration', 15);
  const proto = str(f, 'proto', 'http1');
  if (proto !== 'http1' && proto !== 'h2c' && proto !== 'grpc') throw new Error(`--proto: http1, h2c or grpc, got "${proto}"`);
  const pair = f.get('pair') === 'true';
  const rate = f.has('rate') ? num(f, 'rate', 1000) : undefined;
  if (proto === 'grpc' && rate === undefined) throw new Error('--proto grpc is profiled at a fixed rate: add --rate N (the vCPU-per-1000-rps figure is taken at --rate 1000)');
  if (rate !== undefined && !(rate > 0 && rate <= 100_000)) throw new Error(`--rate: 1..100000 requests per second, got ${rate}`);
  if (f.has('weft')) process.env.WEFT_BENCH_CLI = path.resolve(str(f, 'weft'));
  const load = str(f, 'load-cpu', '0');
  const proxy = str(f, 'proxy-cpu', '1');
  const pin = cpuCount() >= 2 && canPin(load) && canPin(proxy);
  const cpus = { load: pin ? load : undefined, proxy: pin ? proxy : undefined };
  const outDir = path.resolve(str(f, 'out', 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'weft-profile-'));
  const heap = f.get('heap') === 'true';
  const cpuProf = f.get('no-cpu-prof') !== 'true';
  const close = f.get('close') === 'true';
  if (close && (rate !== undefined || proto !== 'http1')) throw new Error('--close is for the HTTP/1.1 closed loop (wrk): without --rate, with --proto http1');
  // `--node-args max-semi-space-size=32,…`: node/V8 flags (without their dashes, which the
  // argument parser would take for flags of ours) for the profiled sidecars: GC experiments.
  const extraNodeArgs = f.has('node-args') ? str(f, 'node-args').split(',').filter((x) => x !== '').map((x) => `--${x}`) : [];
  try {
    const app = { http1: await freePort(), h2c: await freePort(), grpc: await freePort() };
    await startHaproxy('backend', work, backendConfig(app), [app.http1, app.h2c], cpus.load);
    if (proto === 'grpc') {
      // The gRPC backend the data-plane bench uses (node:http2), on the load's CPU.
      const server = start('grpc-server', process.execPath, [GRPC_SERVER, '--port', '0'], { cpu: cpus.load, captureStdout: true, logFile: path.join(work, 'grpc-server.log') });
      app.grpc = Number((await waitForLine(server, /^listening (\d+)$/, 10_000))[1]);
      server.proc.stdout?.resume();
    }
    const profiled: Profiled[] = [];
    const sidecar = async (role: string, name: string, cp: Awaited<ReturnType<typeof startBenchControlPlane>>, workload: string) => {
      const dir = path.join(work, `prof-${name}`);
      mkdirSync(dir);
      const nodeArgs = [...(cpuProf ? ['--cpu-prof', '--cpu-prof-dir', dir] : []), ...extraNodeArgs];
      if (heap) {
        // The sampler's window: from about when the load's measured window starts, for its length.
        process.env.WEFT_HEAP_SAMPLE_DIR = dir;
        process.env.WEFT_HEAP_SAMPLE_FROM_S = String(WARMUP_SECONDS + 4);
        process.env.WEFT_HEAP_SAMPLE_FOR_S = String(Math.max(1, seconds - 4));
        nodeArgs.push('--import', HEAP_SAMPLER);
      }
      const s = await startBenchSidecar({ name, dir: work, cp, workload, cpu: cpus.proxy, nodeArgs });
      profiled.push({ role, sidecar: s, dir, log: path.join(work, `${name}.log`) });
      return s;
    };
    let entry: BenchSidecar;
    if (pair) {
      const cp = await startBenchControlPlane({ name: 'cp-mtls', dir: work, files: twoSidecarConfig(app), mtls: true, cpu: cpus.load });
      [entry] = await Promise.all([sidecar('client sidecar', 'sidecar-client', cp, 'client.bench'), sidecar('server sidecar', 'sidecar-server', cp, 'server.bench')]);
    } else {
      const cp = await startBenchControlPlane({ name: 'cp-plain', dir: work, files: oneSidecarConfig(app), mtls: false, cpu: cpus.load });
      entry = await sidecar('sidecar', 'sidecar-edge', cp, 'edge.bench');
    }
    const pids = profiled.map((p) => p.sidecar.child.pid);
    const path_ = pair ? 'two sidecars + mTLS' : 'one sidecar';
    log(`profiling ${path_} (pids ${pids.join(', ')}) for ${seconds} s`);
    const run = rate !== undefined
      ? await openLoop(proto, entry, rate, seconds, cpus.load, pids)
      : await closedLoop(proto, entry, seconds, cpus.load, pids, num(f, 'connections', proto === 'http1' ? 64 : 16), close);
    const costs = profiled.map((p) => {
      const cpu = run.measured.cpu.get(p.sidecar.child.pid) ?? NaN;
      return `${p.role} ${(cpu / run.measured.wallSeconds).toFixed(2)} cores, ${(cpu / run.measured.wallSeconds / (run.rps / 1000)).toFixed(3)} vCPU per 1000 req/s`;
    });
    log(`${Math.round(run.rps)} req/s; ${costs.join('; ')}; stopping${cpuProf ? ' so V8 writes the profiles' : ''}`);
    // SIGTERM: the CLI drains (up to its drain time) and exits, which writes the profile.
    await Promise.all(profiled.map((p) => p.sidecar.child.stop(20_000)));
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    let md = '';
    for (const p of profiled) {
      const suffix = profiled.length > 1 ? `-${p.role.split(' ')[0]}` : '';
      const base = path.join(outDir, `profile-${stamp}${suffix}`);
      copyFileSync(p.log, `${base}.log`);
      const collections = scavengeSummary(readFileSync(p.log, 'utf8'));
      if (cpuProf) {
        const file = readdirSync(p.dir).find((x) => x.endsWith('.cpuprofile'));
        if (!file) throw new Error(`no .cpuprofile written in ${p.dir} (${p.role})`);
        const kept = `${base}.cpuprofile`;
        copyFileSync(path.join(p.dir, file), kept);
        // Only the measured run: start-up (module loading, first xDS config), warm-up and drain left out.
        const summary = summariseProfile(JSON.parse(readFileSync(kept, 'utf8')) as CpuProfile, { window: { fromUs: run.fromUs, toUs: run.toUs } });
        md += profileMarkdown(summary, `weft proxy, ${p.role} (${path_}), ${run.what}, ${seconds} s`) + `\nProfile: ${kept}\n\n`;
      } else {
        md += `## weft proxy, ${p.role} (${path_}), ${run.what}, ${seconds} s\n\n`;
      }
      md += `Log: ${base}.log\n\n`;
      if (collections) md += `Collections (node --trace-gc-nvp, the whole life of the process): ${collections}\n\n`;
      const heapFile = readdirSync(p.dir).find((x) => x.endsWith('.heapprofile'));
      if (heapFile) {
        const keptHeap = `${base}.heapprofile`;
        copyFileSync(path.join(p.dir, heapFile), keptHeap);
        md += `Allocations (sampled, collected ones included): node dist/bench/profile-summary.js ${keptHeap}\n\n`;
        const gcFile = readdirSync(p.dir).find((x) => x.startsWith('gc-'));
        if (gcFile) md += `Collections in the sampled window (with the sampler on): ${readFileSync(path.join(p.dir, gcFile), 'utf8')}\n\n`;
      }
    }
    md += `Load: ${Math.round(run.rps)} req/s; ${costs.join('; ')}${cpuProf ? ' (profiler on)' : ''}.\n`;
    writeFileSync(path.join(outDir, `profile-${stamp}.md`), md);
    process.stdout.write(md);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

async function closedLoop(proto: 'http1' | 'h2c' | 'grpc', entry: BenchSidecar, seconds: number, cpu: string | undefined, pids: number[], connections: number, close: boolean): Promise<LoadRun> {
  let fromUs = 0;
  const common = {
    onMeasureStart: () => (fromUs = nowUs()),
    url: `http://127.0.0.1:${entry.ports.outbound}/`,
    seconds, warmupSeconds: WARMUP_SECONDS, cpu, pids,
  };
  const { result, measured } =
    proto === 'http1'
      ? await wrk({ ...common, authority: ECHO.http1.authority, connections, close })
      : await h2load({ ...common, authority: ECHO.h2c.authority, connections, streams: 4 });
  const what = proto === 'http1' ? `HTTP/1.1 ${close ? 'Connection: close' : 'keep-alive'}, wrk, ${connections} connections` : `h2c, h2load, ${connections} × 4 streams`;
  return { rps: result.rps, measured, fromUs, toUs: nowUs(), what };
}

/** The open-loop generator (its own warm-up first, unmeasured; the profile window skips it too). */
async function openLoop(proto: 'http1' | 'h2c' | 'grpc', entry: BenchSidecar, rate: number, seconds: number, cpu: string | undefined, pids: number[]): Promise<LoadRun> {
  const startUs = nowUs();
  const measured = await runMeasured(
    'openloop',
    process.execPath,
    [OPEN_LOOP, '--proto', proto, '--port', String(entry.ports.outbound), '--authority', ECHO[proto].authority, '--rate', String(rate),
      '--connections', '16', '--duration', String(seconds), '--warmup', String(WARMUP_SECONDS)],
    { cpu, timeoutMs: (seconds + WARMUP_SECONDS + 60) * 1000 },
    pids,
  );
  const r = resultLine<{ ok: number }>(measured.stdout);
  const fromUs = startUs + WARMUP_SECONDS * 1e6;
  const name = proto === 'http1' ? 'HTTP/1.1' : proto === 'h2c' ? 'h2c' : 'gRPC';
  return { rps: r.ok / seconds, measured, fromUs, toUs: fromUs + seconds * 1e6, what: `${name} open loop at ${rate} req/s, 16 connections` };
}

main().then(
  () => setTimeout(() => process.exit(0), 100).unref(),
  async (err: unknown) => {
    process.stderr.write(`profile: ${(err as Error).stack ?? String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);

/**
 * What `node --trace-gc-nvp` printed about scavenges in `log` (one line per collection,
 * `key=value` pairs): how many, and per scavenge the bytes allocated since the last one, those
 * promoted to the old generation, those kept in the young one, and the pause. Undefined when
 * the log has none (the flag was not given).
 */
function scavengeSummary(log: string): string | undefined {
  const sum = { allocated: 0, promoted: 0, new_space_survived: 0, pause: 0 };
  let scavenges = 0;
  let markCompacts = 0;
  for (const line of log.split('\n')) {
    if (/\bgc=mc\b/.test(line)) markCompacts++;
    if (!/\bgc=s\b/.test(line)) continue;
    scavenges++;
    for (const key of Object.keys(sum) as (keyof typeof sum)[]) {
      const m = new RegExp(`\\b${key}=([0-9.]+)`).exec(line);
      if (m) sum[key] += Number(m[1]);
    }
  }
  if (scavenges === 0) return undefined;
  const kib = (x: number) => Math.round(x / scavenges / 1024);
  return `${scavenges} scavenges (${markCompacts} mark-compacts); per scavenge ${kib(sum.allocated)} KiB allocated, ${kib(sum.promoted)} KiB promoted, ${kib(sum.new_space_survived)} KiB kept young, ${(sum.pause / scavenges).toFixed(2)} ms pause`;
}
