// Control-plane measurements: one `weft control-plane` process on a generated config
// (S Services / E endpoints), N simulated sidecars from one load process (load/ads-sim.ts),
// time to sync and time from a route edit until every proxy ACKed it, the control plane's RSS
// and CPU; and certificates signed per second (bench/identity.ts if present, else the CA itself).
// WEFT_BENCH_CP_PROFILE=DIR writes a V8 CPU profile of each scenario's control plane into DIR,
// WEFT_BENCH_SIM_PROFILE=DIR one of the simulated proxies' process.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CertificateAuthority } from '../certs/ca.js';
import { buildCsr, parseCsr } from '../certs/csr.js';
import { generateWorkloadKeyPair } from '../certs/keys.js';
import { cpConfig, type CpScale } from './lib/cp-config.js';
import { startBenchControlPlane } from './lib/mesh.js';
import { CpuMeter, resultLine, rssMiB, RssSampler, runToEnd } from './lib/proc.js';
import { median, medianKeepInfinity, type LatencySummary } from './lib/stats.js';

const ADS_SIM = fileURLToPath(new URL('./load/ads-sim.js', import.meta.url));

/** How the simulated proxies speak ADS: incremental (delta) or state of the world. */
export type CpProtocol = 'delta' | 'sotw';
export const CP_PROTOCOLS: readonly CpProtocol[] = ['delta', 'sotw'];

export interface CpSettings extends Omit<CpScale, 'proxies'> {
  readonly proxies: readonly number[];
  /** Route edits per scenario (each one a measurement). */
  readonly edits: number;
  /** Each proxy count is measured once per protocol, in this order. */
  readonly protocols: readonly CpProtocol[];
  readonly connectTimeoutSeconds: number;
  readonly convergeTimeoutSeconds: number;
  readonly cpus: { readonly load: string | undefined; readonly proxy: string | undefined };
}

export interface CpScenarioResult {
  readonly proxies: number;
  /** How the simulated proxies spoke ADS (absent in older results: sotw). */
  readonly protocol?: CpProtocol;
  readonly services: number;
  readonly endpoints: number;
  /** Proxies that held a complete config within the connect bound, and how long that took (ms). */
  readonly synced: number;
  readonly syncMs: LatencySummary | undefined;
  /** Per edit: proxies that ACKed the new routes within the bound, and p50/p99/max of edit → ACK (ms). */
  readonly edits: readonly { converged: number; timedOut: number; p50: number; p99: number; max: number; simBusy: number }[];
  /** Medians over edits. */
  readonly convergeP50Ms: number;
  readonly convergeP99Ms: number;
  readonly rssIdleMiB: number;
  readonly rssPeakMiB: number;
  readonly rssEndMiB: number;
  /** Control-plane CPU seconds over the whole scenario, and its wall time. */
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  readonly streamErrors: number;
  readonly firstError?: string;
  /** Size of the RouteConfiguration each proxy receives, bytes (absent in older results). */
  readonly rdsBytes?: number;
  /** Bytes of resources a proxy received until it held a full config (median; absent in older results). */
  readonly syncBytes?: number;
  /** Median busy share of the simulator process during the edits (≈1: it was the bottleneck). */
  readonly simBusy?: number;
  /** Bytes of resources each proxy received to learn of one edit (the response carrying it). */
  readonly editBytes?: number;
}

interface SimResult {
  connect: { synced: number; ms?: LatencySummary };
  edits: { converged: number; timedOut: number; ms?: LatencySummary; simBusy: number; bytes?: number }[];
  rdsBytes: number;
  syncBytes?: number;
  streamErrors: number;
  firstError?: string;
}

export async function cpScenario(dir: string, s: CpSettings, proxies: number, protocol: CpProtocol, log: (l: string) => void): Promise<CpScenarioResult> {
  const scenarioDir = path.join(dir, `cp-${proxies}-${protocol}`);
  mkdirSync(scenarioDir, { recursive: true });
  const cp = await startBenchControlPlane({
    name: 'control-plane',
    dir: scenarioDir,
    files: cpConfig({ services: s.services, endpoints: s.endpoints, proxies }),
    mtls: true,
    cpu: s.cpus.proxy,
    readyTimeoutMs: 120_000,
    env: { WEFT_LOG_LEVEL: 'warn' },
    // WEFT_BENCH_CP_PROFILE=DIR: a V8 CPU profile of the control plane per scenario, for
    // `node dist/bench/profile-summary.js DIR/<file>.cpuprofile`.
    ...(process.env.WEFT_BENCH_CP_PROFILE ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.WEFT_BENCH_CP_PROFILE)] } : {}),
  });
  try {
    const rssIdleMiB = rssMiB(cp.child.pid);
    log(`control plane up (${s.services} Services, ${s.endpoints} endpoints, ${proxies} WorkloadEntries), RSS ${rssIdleMiB.toFixed(0)} MiB; connecting ${proxies} ADS streams (${protocol})`);
    const rss = new RssSampler([cp.child.pid]);
    const cpu = new CpuMeter([cp.child.pid]);
    const bound = s.connectTimeoutSeconds + 30 + s.edits * (s.convergeTimeoutSeconds + 35) + 60;
    const simProfile = process.env.WEFT_BENCH_SIM_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.WEFT_BENCH_SIM_PROFILE)] : [];
    const run = await runToEnd(
      'ads-sim',
      process.execPath,
      [...simProfile, ADS_SIM, '--xds', cp.xds, '--state-dir', cp.stateDir, '--config-dir', cp.configDir, '--proxies', String(proxies),
        '--protocol', protocol, '--edits', String(s.edits),
        '--connect-timeout', String(s.connectTimeoutSeconds), '--converge-timeout', String(s.convergeTimeoutSeconds)],
      { cpu: s.cpus.load, timeoutMs: bound * 1000 },
    );
    const used = cpu.stop();
    const rssPeak = rss.stop().get(cp.child.pid) ?? NaN;
    const rssEndMiB = rssMiB(cp.child.pid);
    if (run.code !== 0) throw new Error(`ads-sim failed (${run.code}): ${run.stderr.slice(-1500)}`);
    const r = resultLine<SimResult>(run.stdout);
    const edits = r.edits.map((e) => ({ converged: e.converged, timedOut: e.timedOut, p50: e.ms?.p50 ?? NaN, p99: e.ms?.p99 ?? NaN, max: e.ms?.max ?? NaN, simBusy: e.simBusy }));
    // An edit that some proxies never ACKed has no finite p99: count it as the bound.
    const p99s = edits.map((e) => (e.timedOut > 0 ? Infinity : e.p99));
    return {
      proxies,
      protocol,
      services: s.services,
      endpoints: s.endpoints,
      synced: r.connect.synced,
      syncMs: r.connect.ms,
      edits,
      convergeP50Ms: median(edits.map((e) => e.p50)),
      convergeP99Ms: medianKeepInfinity(p99s),
      rssIdleMiB,
      rssPeakMiB: rssPeak,
      rssEndMiB,
      cpuSeconds: used.cpu.get(cp.child.pid) ?? NaN,
      wallSeconds: used.wallSeconds,
      streamErrors: r.streamErrors,
      rdsBytes: r.rdsBytes,
      ...(r.syncBytes !== undefined ? { syncBytes: r.syncBytes } : {}),
      simBusy: median(edits.map((e) => e.simBusy)),
      editBytes: median(r.edits.map((e) => e.bytes ?? NaN)),
      ...(r.firstError ? { firstError: r.firstError } : {}),
    };
  } finally {
    // A profiled control plane needs time to write its profile after SIGTERM.
    await cp.child.stop(process.env.WEFT_BENCH_CP_PROFILE ? 60_000 : undefined);
  }
}

export interface IdentityRow {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

/** bench/identity.ts (another engineer's) when it is built; else signing straight on the CA. */
export async function identityBench(seconds: number, log: (l: string) => void): Promise<IdentityRow[]> {
  const file = fileURLToPath(new URL('./identity.js', import.meta.url));
  if (existsSync(file)) {
    log('certificates: running bench/identity.ts');
    const mod = (await import(pathToFileURL(file).href)) as {
      runIdentityBench?: (o: { seconds: number }) => Promise<IdentityRow[]>;
    };
    if (typeof mod.runIdentityBench === 'function') return mod.runIdentityBench({ seconds });
    log('bench/identity.js has no runIdentityBench; using the CA directly');
  }
  return [await directCaSigning(seconds)];
}

/** CSR parse + verify + issue on an in-memory CA, one at a time, for `seconds`. */
async function directCaSigning(seconds: number): Promise<IdentityRow> {
  const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local' });
  const csrs: string[] = [];
  for (let i = 0; i < 32; i++) csrs.push(buildCsr({ privateKey: (await generateWorkloadKeyPair()).privateKey }));
  // Warm-up, then the measured loop (bounded by time and count).
  for (let i = 0; i < 50; i++) await ca.issue({ publicKey: parseCsr(csrs[i % csrs.length]!), identity: 'spiffe://cluster.local/ns/bench/sa/warm', ttlSeconds: 86_400 });
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  let n = 0;
  for (; performance.now() < end && n < 10_000_000; n++) {
    await ca.issue({ publicKey: parseCsr(csrs[n % csrs.length]!), identity: `spiffe://cluster.local/ns/bench/sa/w${n % 1000}`, ttlSeconds: 86_400 });
  }
  const rate = n / ((performance.now() - t0) / 1000);
  return { name: 'certificates signed per second', value: rate, unit: 'certs/s', note: 'direct CA call (CSR parse + verify + sign, ECDSA P-256 leaf keys, RSA-2048 root), one at a time, one core' };
}
