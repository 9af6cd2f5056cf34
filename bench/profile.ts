// Profiles the one-sidecar path: a `weft proxy` started with `node --cpu-prof`, under wrk load
// (HTTP/1.1, 64 keep-alive connections) or h2load (h2c, 16 × 4 streams) for a fixed time, then
// stopped so V8 writes the profile; prints the summary of the loaded window only
// (bench/lib/cpuprofile.ts) and keeps the .cpuprofile in bench/results/.
// Usage: node dist/bench/profile.js [--proto http1|h2c] [--duration 15] [--weft cli/main.js]
//          [--load-cpu 0] [--proxy-cpu 1] [--out bench/results]
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { profileMarkdown, summariseProfile, type CpuProfile } from './lib/cpuprofile.js';
import { backendConfig, startHaproxy } from './lib/haproxy.js';
import { ECHO, oneSidecarConfig, startBenchControlPlane, startBenchSidecar } from './lib/mesh.js';
import { freePort } from './lib/net.js';
import { canPin, cpuCount, stopAll } from './lib/proc.js';
import { h2load, wrk } from './lib/tools.js';
import { flags, num, str } from './load/args.js';

const log = (line: string) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function main(): Promise<void> {
  const f = flags();
  const seconds = num(f, 'duration', 15);
  const proto = str(f, 'proto', 'http1');
  if (proto !== 'http1' && proto !== 'h2c') throw new Error(`--proto: http1 or h2c, got "${proto}"`);
  if (f.has('weft')) process.env.WEFT_BENCH_CLI = path.resolve(str(f, 'weft'));
  const load = str(f, 'load-cpu', '0');
  const proxy = str(f, 'proxy-cpu', '1');
  const pin = cpuCount() >= 2 && canPin(load) && canPin(proxy);
  const cpus = { load: pin ? load : undefined, proxy: pin ? proxy : undefined };
  const outDir = path.resolve(str(f, 'out', 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const work = mkdtempSync(path.join(os.tmpdir(), 'weft-profile-'));
  const profDir = path.join(work, 'prof');
  mkdirSync(profDir);
  try {
    const app = { http1: await freePort(), h2c: await freePort(), grpc: await freePort() };
    await startHaproxy('backend', work, backendConfig(app), [app.http1, app.h2c], cpus.load);
    const cp = await startBenchControlPlane({ name: 'cp-plain', dir: work, files: oneSidecarConfig(app), mtls: false, cpu: cpus.load });
    const sidecar = await startBenchSidecar({
      name: 'sidecar-edge', dir: work, cp, workload: 'edge.bench', cpu: cpus.proxy,
      nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir],
    });
    log(`profiling weft proxy pid ${sidecar.child.pid} under ${proto === 'http1' ? 'wrk' : 'h2load'} for ${seconds} s`);
    const nowUs = () => Number(process.hrtime.bigint() / 1000n);
    let fromUs = 0;
    const common = {
      onMeasureStart: () => (fromUs = nowUs()),
      url: `http://127.0.0.1:${sidecar.ports.outbound}/`,
      seconds, warmupSeconds: 2, cpu: cpus.load, pids: [sidecar.child.pid],
    };
    const { result, measured } =
      proto === 'http1'
        ? await wrk({ ...common, authority: ECHO.http1.authority, connections: num(f, 'connections', 64) })
        : await h2load({ ...common, authority: ECHO.h2c.authority, connections: num(f, 'connections', 16), streams: 4 });
    const toUs = nowUs();
    const cores = (measured.cpu.get(sidecar.child.pid) ?? NaN) / measured.wallSeconds;
    log(`${Math.round(result.rps)} req/s, sidecar at ${cores.toFixed(2)} cores; stopping it so V8 writes the profile`);
    // SIGTERM: the CLI drains (up to its drain time) and exits, which writes the profile.
    await sidecar.child.stop(20_000);
    const file = readdirSync(profDir).find((x) => x.endsWith('.cpuprofile'));
    if (!file) throw new Error(`no .cpuprofile written in ${profDir}`);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const kept = path.join(outDir, `profile-${stamp}.cpuprofile`);
    copyFileSync(path.join(profDir, file), kept);
    // Only the measured wrk run: start-up (module loading, first xDS config) and drain left out.
    const summary = summariseProfile(JSON.parse(readFileSync(kept, 'utf8')) as CpuProfile, { window: { fromUs, toUs } });
    const md =
      profileMarkdown(summary, `weft proxy, one sidecar, ${proto === 'http1' ? 'HTTP/1.1 keep-alive, wrk' : 'h2c, h2load'}, ${seconds} s`) +
      `\nLoad: ${Math.round(result.rps)} req/s at ${cores.toFixed(2)} cores (${Math.round(result.rps / cores)} req/s per core, profiler on).\n` +
      `Profile: ${kept}\n`;
    writeFileSync(path.join(outDir, `profile-${stamp}.md`), md);
    process.stdout.write(md);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => setTimeout(() => process.exit(0), 100).unref(),
  async (err: unknown) => {
    process.stderr.write(`profile: ${(err as Error).stack ?? String(err)}\n`);
    await stopAll();
    process.exit(1);
  },
);
