// Data-plane measurements: closed-loop throughput (wrk / h2load / the gRPC generator) and
// fixed-rate latency (the open-loop generator) over every path, with each proxy's CPU time and
// memory (RSS, PSS, private) sampled from /proc over exactly the measured window. One call = one run of every path,
// back to back, so that ratios between paths come from the same conditions.
import { fileURLToPath } from 'node:url';
import type { BenchPath, CpuPlan, DataPlaneEnv, IdleMemory, PathName, Protocol } from './lib/dataplane-env.js';
import { resultLine, runMeasured, type Measured } from './lib/proc.js';
import type { LatencySummary } from './lib/stats.js';
import { h2load, wrk, type ThroughputResult } from './lib/tools.js';

const GRPC_LOAD = fileURLToPath(new URL('./load/grpc-load.js', import.meta.url));
const OPEN_LOOP = fileURLToPath(new URL('./load/openloop.js', import.meta.url));

export interface DataPlaneSettings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  /** HTTP/1.1 keep-alive connections for wrk. */
  readonly http1Connections: number;
  /** h2c / gRPC: connections × streams each. */
  readonly h2Connections: number;
  readonly h2Streams: number;
  /** Fixed-rate latency: requests per second over this many connections. */
  readonly rate: number;
  readonly latencyConnections: number;
  readonly cpus: CpuPlan;
}

/** Cost of one proxy process over a measured window. */
export interface ProxyCost {
  readonly role: string;
  /** CPU in use, in cores (CPU seconds / wall seconds). */
  readonly cores: number;
  /** CPU seconds per 1000 successful requests. */
  readonly cpuSecondsPer1k: number;
  readonly rssPeakMiB: number;
  /** Peak PSS (shared pages divided among the processes mapping them) and peak private
   *  anonymous memory over the window, MiB. */
  readonly pssPeakMiB: number;
  readonly anonPeakMiB: number;
  /** The same process idle before any traffic: 3 s after start-up and settled (20 s), MiB. */
  readonly idle?: IdleMemory;
}

interface Common {
  readonly run: number;
  readonly protocol: Protocol;
  readonly path: PathName;
  readonly proxies: readonly ProxyCost[];
  /** CPU in use by the backend serving this protocol, in cores. */
  readonly backendCores: number;
  /** Busy fraction of each CPU over the window (the whole machine, other users included). */
  readonly coreBusy: Record<string, number>;
}

export interface ThroughputSample extends Common {
  readonly rps: number;
  readonly errors: number;
  /** Sum of the path's proxies' CPU, in cores. */
  readonly proxyCores: number;
  /** Requests per second per core of proxy CPU: rps / proxyCores. */
  readonly rpsPerProxyCore: number;
}

export interface LatencySample extends Common {
  readonly latencyMs: LatencySummary;
  readonly ok: number;
  readonly failed: number;
  readonly lost: number;
  /** How late the generator itself sent requests (its own health; should be well under 1 ms). */
  readonly sendLagP99Ms: number;
  /** Requests per second actually completed (below the rate when the path cannot keep up). */
  readonly servedRps: number;
}

function costs(env: DataPlaneEnv, path: BenchPath, m: Measured, ok: number): ProxyCost[] {
  return path.proxies.map(({ role, child }) => {
    const cpu = m.cpu.get(child.pid) ?? NaN;
    const idle = env.idleMemory[`${path.name}/${role}`];
    return {
      role,
      cores: cpu / m.wallSeconds,
      cpuSecondsPer1k: ok > 0 ? cpu / (ok / 1000) : NaN,
      rssPeakMiB: m.rssPeak.get(child.pid) ?? NaN,
      pssPeakMiB: m.pssPeak.get(child.pid) ?? NaN,
      anonPeakMiB: m.anonPeak.get(child.pid) ?? NaN,
      ...(idle ? { idle } : {}),
    };
  });
}

function pathOf(env: DataPlaneEnv, name: PathName): BenchPath {
  const p = env.paths[name];
  if (!p) throw new Error(`bench: no path "${name}" in this run (baseline paths need --baseline)`);
  return p;
}

function measuredPids(env: DataPlaneEnv, path: BenchPath, protocol: Protocol): number[] {
  return [...path.proxies.map((p) => p.child.pid), env.backends[protocol].pid];
}

/** One closed-loop throughput measurement of `protocol` over `path`. */
export async function throughput(env: DataPlaneEnv, s: DataPlaneSettings, run: number, protocol: Protocol, name: PathName): Promise<ThroughputSample> {
  const path = pathOf(env, name);
  const pids = measuredPids(env, path, protocol);
  const port = path.port[protocol];
  const authority = path.authority[protocol];
  let result: ThroughputResult;
  let measured: Measured;
  if (protocol === 'http1') {
    ({ result, measured } = await wrk({
      url: `http://127.0.0.1:${port}/`, authority, connections: s.http1Connections, seconds: s.seconds, warmupSeconds: s.warmupSeconds, cpu: s.cpus.load, pids,
    }));
  } else if (protocol === 'h2c') {
    ({ result, measured } = await h2load({
      url: `http://127.0.0.1:${port}/`, authority, connections: s.h2Connections, streams: s.h2Streams, seconds: s.seconds, warmupSeconds: s.warmupSeconds, cpu: s.cpus.load, pids,
    }));
  } else {
    measured = await runMeasured(
      'grpc-load',
      process.execPath,
      [GRPC_LOAD, '--target', `127.0.0.1:${port}`, '--authority', authority, '--connections', String(s.h2Connections), '--streams', String(s.h2Streams),
        '--duration', String(s.seconds), '--warmup', String(s.warmupSeconds)],
      { cpu: s.cpus.load, timeoutMs: (s.seconds + s.warmupSeconds + 60) * 1000 },
      pids,
    );
    const r = resultLine<{ ok: number; errors: number; rps: number; latencyMs: LatencySummary }>(measured.stdout);
    result = { rps: r.rps, ok: r.ok, errors: r.errors, seconds: s.seconds, meanLatencyMs: r.latencyMs.mean };
  }
  const proxies = costs(env, path, measured, result.ok);
  const proxyCores = proxies.reduce((a, p) => a + p.cores, 0);
  return {
    run,
    protocol,
    path: name,
    rps: result.rps,
    errors: result.errors,
    proxies,
    proxyCores,
    rpsPerProxyCore: proxies.length > 0 ? result.rps / proxyCores : NaN,
    backendCores: (measured.cpu.get(env.backends[protocol].pid) ?? NaN) / measured.wallSeconds,
    coreBusy: measured.cores,
  };
}

/** One fixed-rate latency measurement of `protocol` over `path`. */
export async function latency(env: DataPlaneEnv, s: DataPlaneSettings, run: number, protocol: Protocol, name: PathName): Promise<LatencySample> {
  const path = pathOf(env, name);
  const measured = await runMeasured(
    'openloop',
    process.execPath,
    [OPEN_LOOP, '--proto', protocol, '--port', String(path.port[protocol]), '--authority', path.authority[protocol], '--rate', String(s.rate),
      '--connections', String(s.latencyConnections), '--duration', String(s.seconds), '--warmup', String(s.warmupSeconds)],
    { cpu: s.cpus.load, timeoutMs: (s.seconds + s.warmupSeconds + 60) * 1000 },
    measuredPids(env, path, protocol),
  );
  const r = resultLine<{ ok: number; failed: number; lost: number; latencyMs: LatencySummary; sendLagMs: LatencySummary }>(measured.stdout);
  return {
    run,
    protocol,
    path: name,
    latencyMs: r.latencyMs,
    ok: r.ok,
    failed: r.failed,
    lost: r.lost,
    sendLagP99Ms: r.sendLagMs.p99,
    servedRps: r.ok / s.seconds,
    proxies: costs(env, path, measured, r.ok),
    backendCores: (measured.cpu.get(env.backends[protocol].pid) ?? NaN) / measured.wallSeconds,
    coreBusy: measured.cores,
  };
}
