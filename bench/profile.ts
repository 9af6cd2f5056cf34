// Profiles Weft's sidecars under load: one sidecar (plaintext mesh), or with `--pair` the mTLS
// pair (client sidecar → mTLS → server sidecar), each `weft proxy` started with `node --cpu-prof`,
// under closed-loop load (wrk for HTTP/1.1, 64 keep-alive connections; h2load for h2c, 16 × 4
// streams) or, with `--rate N`, the open-loop generator at N req/s over 16 connections (how the
// latency and vCPU-per-1000-rps figures are taken). Then stopped so V8 writes the profiles; prints
// the summary of the loaded window only (bench/lib/cpuprofile.ts) and keeps each .cpuprofile in
// bench/results/.
// Usage: node dist/bench/profile.js [--proto http1|h2c] [--pair] [--rate N] [--duration 15]
//          [--weft cli/main.js] [--load-cpu 0] [--proxy-cpu 1] [--out bench/results]
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { profileMarkdown, summariseProfile, type CpuProfile } from './lib/cpuprofile.js';
import { backendConfig, startHaproxy } from './lib/haproxy.js';
import { ECHO, oneSidecarConfig, startBenchControlPlane, startBenchSidecar, twoSidecarConfig, type BenchSidecar } from './lib/mesh.js';
import { freePort } from './lib/net.js';
import { canPin, cpuCount, resultLine, runMeasured, stopAll, type Measured } from './lib/proc.js';
import { h2load, wrk } from './lib/tools.js';
import { flags, num, str } from './load/args.js';

const OPEN_LOOP = fileURLToPath(new URL('./load/openloop.js', import.meta.url));
const WARMUP_SECONDS = 2;

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

interface Profiled {
  readonly role: string;
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
  if (proto !== 'http1' && proto !== 'h2c') throw new Error(`--proto: http1 or h2c, got "${proto}"`);
  const pair = f.get('pair') === 'true';
  const rate = f.has('rate') ? num(f, 'rate', 1000) : undefined;
  if (rate !== undefined && !(rate > 0 && rate <= 100_000)) throw new Error(`--rate: 1..100000 requests per second, got ${rate}`);
  if (f.has('weft')) process.env.WEFT_BENCH_CLI = path.resolve(str(f, 'weft'));
  const load = str(f, 'load-cpu', '0');
  const proxy = str(f, 'proxy-cpu', '1');
  const pin = cpuCount() >= 2 && canPin(load) && canPin(proxy);
  const cpus = { load: pin ? load : undefined, proxy: pin ? proxy : undefined };
  const outDir = path.resolve(str(f, 'out', 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'weft-profile-'));
  try {
    const app = { http1: await freePort(), h2c: await freePort(), grpc: await freePort() };
    await startHaproxy('backend', work, backendConfig(app), [app.http1, app.h2c], cpus.load);
    const profiled: Profiled[] = [];
    const sidecar = async (role: string, name: string, cp: Awaited<ReturnType<typeof startBenchControlPlane>>, workload: string) => {
      const dir = path.join(work, `prof-${name}`);
      mkdirSync(dir);
      const s = await startBenchSidecar({ name, dir: work, cp, workload, cpu: cpus.proxy, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] });
      profiled.push({ role, sidecar: s, dir });
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
      : await closedLoop(proto, entry, seconds, cpus.load, pids, num(f, 'connections', proto === 'http1' ? 64 : 16));
    const costs = profiled.map((p) => {
      const cpu = run.measured.cpu.get(p.sidecar.child.pid) ?? NaN;
      return `${p.role} ${(cpu / run.measured.wallSeconds).toFixed(2)} cores, ${(cpu / run.measured.wallSeconds / (run.rps / 1000)).toFixed(3)} vCPU per 1000 req/s`;
    });
    log(`${Math.round(run.rps)} req/s; ${costs.join('; ')}; stopping so V8 writes the profiles`);
    // SIGTERM: the CLI drains (up to its drain time) and exits, which writes the profile.
    await Promise.all(profiled.map((p) => p.sidecar.child.stop(20_000)));
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    let md = '';
    for (const p of profiled) {
      const file = readdirSync(p.dir).find((x) => x.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no .cpuprofile written in ${p.dir} (${p.role})`);
      const suffix = profiled.length > 1 ? `-${p.role.split(' ')[0]}` : '';
      const kept = path.join(outDir, `profile-${stamp}${suffix}.cpuprofile`);
      copyFileSync(path.join(p.dir, file), kept);
      // Only the measured run: start-up (module loading, first xDS config), warm-up and drain left out.
      const summary = summariseProfile(JSON.parse(readFileSync(kept, 'utf8')) as CpuProfile, { window: { fromUs: run.fromUs, toUs: run.toUs } });
      md += profileMarkdown(summary, `weft proxy, ${p.role} (${path_}), ${run.what}, ${seconds} s`) + `\nProfile: ${kept}\n\n`;
    }
    md += `Load: ${Math.round(run.rps)} req/s; ${costs.join('; ')} (profiler on).\n`;
    writeFileSync(path.join(outDir, `profile-${stamp}.md`), md);
    process.stdout.write(md);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

async function closedLoop(proto: 'http1' | 'h2c', entry: BenchSidecar, seconds: number, cpu: string | undefined, pids: number[], connections: number): Promise<LoadRun> {
  let fromUs = 0;
  const common = {
    onMeasureStart: () => (fromUs = nowUs()),
    url: `http://127.0.0.1:${entry.ports.outbound}/`,
    seconds, warmupSeconds: WARMUP_SECONDS, cpu, pids,
  };
  const { result, measured } =
    proto === 'http1'
      ? await wrk({ ...common, authority: ECHO.http1.authority, connections })
      : await h2load({ ...common, authority: ECHO.h2c.authority, connections, streams: 4 });
  const what = proto === 'http1' ? `HTTP/1.1 keep-alive, wrk, ${connections} connections` : `h2c, h2load, ${connections} × 4 streams`;
  return { rps: result.rps, measured, fromUs, toUs: nowUs(), what };
}

/** The open-loop generator (its own warm-up first, unmeasured; the profile window skips it too). */
async function openLoop(proto: 'http1' | 'h2c', entry: BenchSidecar, rate: number, seconds: number, cpu: string | undefined, pids: number[]): Promise<LoadRun> {
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
  return { rps: r.ok / seconds, measured, fromUs, toUs: fromUs + seconds * 1e6, what: `${proto === 'http1' ? 'HTTP/1.1' : 'h2c'} open loop at ${rate} req/s, 16 connections` };
}

main().then(
  () => setTimeout(() => process.exit(0), 100).unref(),
  async (err: unknown) => {
    process.stderr.write(`profile: ${(err as Error).stack ?? String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
