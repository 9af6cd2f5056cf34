// From raw samples to the figures the report shows: medians over runs, ratios taken inside each
// run (then their median), the targets checked, and the Markdown tables.
import type { CpScenarioResult, IdentityRow } from '../controlplane.js';
import type { LatencySample, ThroughputSample } from '../dataplane.js';
import { BASELINE_OF, PATH_LABEL, PROTOCOLS, type PathName, type Protocol } from './dataplane-env.js';
import { median, ratio, spread } from './stats.js';

export interface BenchResults {
  readonly meta: {
    readonly started: string;
    readonly command: string;
    readonly commit: string;
    readonly weftCli: string;
    readonly node: string;
    readonly cpuModel: string;
    readonly cpus: number;
    readonly pinning: string;
    readonly settings: Record<string, unknown>;
    readonly loadAverage: readonly number[];
    /** The baseline build measured beside this one (`--baseline`), if any. */
    readonly baselineCli?: string;
  };
  readonly idleRss: Record<string, number>;
  readonly throughput: ThroughputSample[];
  readonly latency: LatencySample[];
  readonly controlPlane: CpScenarioResult[];
  readonly identity: IdentityRow[];
  readonly notes: string[];
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : x === Infinity ? '∞' : '–');
const fmtInt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const ms = (x: number) => (Number.isFinite(x) ? (Math.abs(x) < 10 ? x.toFixed(2) : x.toFixed(1)) : x === Infinity ? '∞' : '–');
const signedMs = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${ms(x)}` : '–');

function groups<T extends { protocol: Protocol; path: PathName; run: number }>(samples: readonly T[]) {
  const protocols = [...new Set(samples.map((s) => s.protocol))];
  const paths = [...new Set(samples.map((s) => s.path))];
  const runs = [...new Set(samples.map((s) => s.run))];
  const pick = (p: Protocol, path: PathName) => samples.filter((s) => s.protocol === p && s.path === path);
  const inRun = (p: Protocol, path: PathName, run: number) => samples.find((s) => s.protocol === p && s.path === path && s.run === run);
  return { protocols, paths, runs, pick, inRun };
}

/** Median busy share of each CPU over the runs, e.g. "61 % / 53 %" (CPU 0 / CPU 1, whole machine). */
function busy(xs: readonly { coreBusy: Record<string, number> }[]): string {
  const cpus = [...new Set(xs.flatMap((x) => Object.keys(x.coreBusy)))].sort((a, b) => Number(a) - Number(b));
  return cpus.map((c) => `${fmt(100 * median(xs.map((x) => x.coreBusy[c] ?? NaN)))} %`).join(' / ');
}

// ---- summaries (also written to the JSON) -------------------------------------------------------

export interface ThroughputRow {
  protocol: Protocol;
  path: PathName;
  rps: number;
  rpsMin: number;
  rpsMax: number;
  proxyCores: number;
  rpsPerProxyCore: number;
  /** Median over runs of (this path's rps per proxy core ÷ HAProxy's, same run). */
  perCoreVsHaproxy: number;
  /** Median over runs of (this path's rps ÷ direct's, same run). */
  vsDirect: number;
  backendCores: number;
  errors: number;
  cpuSecondsPer1k: Record<string, number>;
  rssPeakMiB: Record<string, number>;
  cpuBusy: string;
}

export function throughputRows(samples: readonly ThroughputSample[]): ThroughputRow[] {
  const g = groups(samples);
  const rows: ThroughputRow[] = [];
  for (const p of g.protocols) {
    for (const path of g.paths) {
      const xs = g.pick(p, path);
      if (xs.length === 0) continue;
      const perCore = g.runs.map((r) => ratio(g.inRun(p, path, r)?.rpsPerProxyCore ?? NaN, g.inRun(p, 'haproxy', r)?.rpsPerProxyCore ?? NaN));
      const vsDirect = g.runs.map((r) => ratio(g.inRun(p, path, r)?.rps ?? NaN, g.inRun(p, 'direct', r)?.rps ?? NaN));
      const roles = [...new Set(xs.flatMap((x) => x.proxies.map((q) => q.role)))];
      const perRole = (f: (q: ThroughputSample['proxies'][number]) => number) =>
        Object.fromEntries(roles.map((role) => [role, median(xs.map((x) => f(x.proxies.find((q) => q.role === role)!)))]));
      const sp = spread(xs.map((x) => x.rps));
      rows.push({
        protocol: p,
        path,
        rps: median(xs.map((x) => x.rps)),
        rpsMin: sp.min,
        rpsMax: sp.max,
        proxyCores: median(xs.map((x) => x.proxyCores)),
        rpsPerProxyCore: median(xs.map((x) => x.rpsPerProxyCore)),
        perCoreVsHaproxy: path === 'haproxy' || path === 'direct' ? NaN : median(perCore),
        vsDirect: path === 'direct' ? NaN : median(vsDirect),
        backendCores: median(xs.map((x) => x.backendCores)),
        errors: xs.reduce((a, x) => a + x.errors, 0),
        cpuSecondsPer1k: perRole((q) => q.cpuSecondsPer1k),
        rssPeakMiB: perRole((q) => q.rssPeakMiB),
        cpuBusy: busy(xs),
      });
    }
  }
  return rows;
}

export interface LatencyRow {
  protocol: Protocol;
  path: PathName;
  p50: number;
  p90: number;
  p99: number;
  p99Min: number;
  p99Max: number;
  max: number;
  /** Median over runs of (this path − direct, same run), ms. */
  addedP50: number;
  addedP90: number;
  addedP99: number;
  failed: number;
  lost: number;
  sendLagP99: number;
  servedRps: number;
  /** Per proxy process: CPU cores used at the fixed rate, normalised to 1000 rps, and peak RSS. */
  vcpuPer1kRps: Record<string, number>;
  rssPeakMiB: Record<string, number>;
  /** Per proxy process: peak PSS and peak private anonymous memory at the fixed rate. */
  pssPeakMiB: Record<string, number>;
  anonPeakMiB: Record<string, number>;
  cpuBusy: string;
}

export function latencyRows(samples: readonly LatencySample[]): LatencyRow[] {
  const g = groups(samples);
  const rows: LatencyRow[] = [];
  for (const p of g.protocols) {
    for (const path of g.paths) {
      const xs = g.pick(p, path);
      if (xs.length === 0) continue;
      const added = (q: 'p50' | 'p90' | 'p99') =>
        path === 'direct'
          ? NaN
          : median(g.runs.map((r) => (g.inRun(p, path, r)?.latencyMs[q] ?? NaN) - (g.inRun(p, 'direct', r)?.latencyMs[q] ?? NaN)));
      const roles = [...new Set(xs.flatMap((x) => x.proxies.map((q) => q.role)))];
      const perRole = (f: (q: LatencySample['proxies'][number]) => number) =>
        Object.fromEntries(roles.map((role) => [role, median(xs.map((x) => f(x.proxies.find((q) => q.role === role)!)))]));
      rows.push({
        protocol: p,
        path,
        p50: median(xs.map((x) => x.latencyMs.p50)),
        p90: median(xs.map((x) => x.latencyMs.p90)),
        p99: median(xs.map((x) => x.latencyMs.p99)),
        p99Min: spread(xs.map((x) => x.latencyMs.p99)).min,
        p99Max: spread(xs.map((x) => x.latencyMs.p99)).max,
        max: median(xs.map((x) => x.latencyMs.max)),
        addedP50: added('p50'),
        addedP90: added('p90'),
        addedP99: added('p99'),
        failed: xs.reduce((a, x) => a + x.failed, 0),
        lost: xs.reduce((a, x) => a + x.lost, 0),
        sendLagP99: median(xs.map((x) => x.sendLagP99Ms)),
        servedRps: median(xs.map((x) => x.servedRps)),
        // CPU seconds per 1000 completed requests = cores per 1000 req/s actually served (a path
        // that cannot sustain the rate is charged for what it did serve, not for the target rate).
        vcpuPer1kRps: perRole((q) => q.cpuSecondsPer1k),
        rssPeakMiB: perRole((q) => q.rssPeakMiB),
        pssPeakMiB: perRole((q) => q.pssPeakMiB ?? NaN),
        anonPeakMiB: perRole((q) => q.anonPeakMiB ?? NaN),
        cpuBusy: busy(xs),
      });
    }
  }
  return rows;
}

/** Idle memory of each proxy process (settled, before traffic), from the samples that carry it. */
export function idleMemoryRows(samples: readonly (ThroughputSample | LatencySample)[]): { proxy: string; rssAt3s: number; rss: number; pss: number; anon: number }[] {
  const seen = new Map<string, { rssAt3s: number; rss: number; pss: number; anon: number }>();
  for (const x of samples) for (const q of x.proxies) if (q.idle) seen.set(`${x.path}/${q.role}`, { rssAt3s: q.idle.first.rss, ...q.idle.settled });
  return [...seen].map(([proxy, m]) => ({ proxy, ...m }));
}

// ---- targets ----------------------------------------------------------------------------------

export interface TargetRow {
  target: string;
  measured: string;
  met: boolean | undefined;
}

export function targets(r: BenchResults, tp: ThroughputRow[], lat: LatencyRow[]): TargetRow[] {
  const out: TargetRow[] = [];
  const row = (p: Protocol, path: PathName) => tp.find((x) => x.protocol === p && x.path === path);
  const lrow = (p: Protocol, path: PathName) => lat.find((x) => x.protocol === p && x.path === path);
  const check = (target: string, value: number, ok: (v: number) => boolean, show: string) =>
    out.push({ target, measured: show, met: Number.isNaN(value) ? undefined : ok(value) });
  const h1 = row('http1', 'weft1');
  if (h1) check('1 sidecar HTTP/1.1 ≥ 0.60× HAProxy per core', h1.perCoreVsHaproxy, (v) => v >= 0.6, `${fmt(h1.perCoreVsHaproxy, 2)}×`);
  for (const p of ['h2c', 'grpc'] as const) {
    const x = row(p, 'weft1');
    if (x) check(`1 sidecar ${p} ≥ 0.50× HAProxy per core`, x.perCoreVsHaproxy, (v) => v >= 0.5, `${fmt(x.perCoreVsHaproxy, 2)}×`);
  }
  const l2 = lrow('http1', 'weft2');
  if (l2) {
    check('2 sidecars + mTLS at 1000 rps: ≤ +1.0 ms p90 over direct', l2.addedP90, (v) => v <= 1.0, `${signedMs(l2.addedP90)} ms`);
    check('2 sidecars + mTLS at 1000 rps: ≤ +2.0 ms p99 over direct', l2.addedP99, (v) => v <= 2.0, `${signedMs(l2.addedP99)} ms`);
    const vcpu = Math.max(...Object.values(l2.vcpuPer1kRps));
    check('≤ 0.10 vCPU per 1000 rps per sidecar with mTLS', vcpu, (v) => v <= 0.1, `${fmt(vcpu, 3)} vCPU (worst sidecar)`);
    // The target is on RSS, as the issue (and Istio's figure) states it; PSS beside it is what a
    // sidecar costs a node where other Node processes share the node binary's pages.
    const rss = Math.max(...Object.values(l2.rssPeakMiB));
    const pss = Math.max(...Object.values(l2.pssPeakMiB));
    check('≤ 60 MB RSS per sidecar at 1000 rps', rss, (v) => v <= 60 / 1.048576, `${fmt(rss * 1.048576)} MB (worst sidecar; PSS ${fmt(pss * 1.048576)} MB)`);
  }
  const cp1000 = r.controlPlane.find((c) => c.proxies === 1000);
  if (cp1000) {
    const all = cp1000.synced === cp1000.proxies;
    out.push({
      target: '1000 proxies converge on a route change within 1 s p99',
      measured: all ? `${ms(cp1000.convergeP99Ms)} ms p99` : `only ${cp1000.synced}/1000 proxies synced within the connect bound`,
      met: all ? cp1000.convergeP99Ms <= 1000 : false,
    });
    check('control plane ≤ 300 MB with 1000 proxies', cp1000.rssPeakMiB, (v) => v * 1.048576 <= 300, `${fmt(cp1000.rssPeakMiB * 1.048576)} MB peak${all ? '' : ` (with ${cp1000.synced} synced)`}`);
  }
  const certs = r.identity.find((x) => /cert/i.test(x.name) && /\/s/.test(x.unit));
  if (certs) check('≥ 1000 certificates signed per second', certs.value, (v) => v >= 1000, `${fmtInt(certs.value)} ${certs.unit}`);
  return out;
}

// ---- Markdown ---------------------------------------------------------------------------------

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

const roleList = (o: Record<string, number>, f: (x: number) => string) =>
  Object.keys(o).length === 0 ? '–' : Object.entries(o).map(([k, v]) => (Object.keys(o).length > 1 ? `${k.replace(' sidecar', '')} ${f(v)}` : f(v))).join(', ');

/**
 * This build against the baseline build (`--baseline`), both measured in the same runs: per
 * Weft path, the median over runs of each run's ratio (throughput per proxy core, vCPU at the
 * fixed rate) or difference (latency added over direct), so drift between runs cancels.
 */
function baselineSection(r: BenchResults): string[] {
  const rows: string[][] = [];
  for (const [path, base] of Object.entries(BASELINE_OF) as [PathName, PathName][]) {
    for (const p of PROTOCOLS) {
      const runs = [...new Set([...r.throughput, ...r.latency].map((x) => x.run))];
      const tpOf = (name: PathName, run: number) => r.throughput.find((x) => x.protocol === p && x.path === name && x.run === run);
      const latOf = (name: PathName, run: number) => r.latency.find((x) => x.protocol === p && x.path === name && x.run === run);
      const perCore = runs.map((run) => ratio(tpOf(path, run)?.rpsPerProxyCore ?? NaN, tpOf(base, run)?.rpsPerProxyCore ?? NaN)).filter(Number.isFinite);
      const vcpu = (x: LatencySample | undefined) => (x ? x.proxies.reduce((a, q) => a + q.cores, 0) / (x.servedRps / 1000) : NaN);
      const vcpuRatio = runs.map((run) => ratio(vcpu(latOf(path, run)), vcpu(latOf(base, run)))).filter(Number.isFinite);
      const p90 = runs.map((run) => (latOf(path, run)?.latencyMs.p90 ?? NaN) - (latOf(base, run)?.latencyMs.p90 ?? NaN)).filter(Number.isFinite);
      const p99 = runs.map((run) => (latOf(path, run)?.latencyMs.p99 ?? NaN) - (latOf(base, run)?.latencyMs.p99 ?? NaN)).filter(Number.isFinite);
      const worst = (x: LatencySample | undefined, f: (q: LatencySample['proxies'][number]) => number) => (x ? Math.max(...x.proxies.map(f)) : NaN);
      const rss = runs.map((run) => worst(latOf(path, run), (q) => q.rssPeakMiB) - worst(latOf(base, run), (q) => q.rssPeakMiB)).filter(Number.isFinite);
      const pss = runs.map((run) => worst(latOf(path, run), (q) => q.pssPeakMiB) - worst(latOf(base, run), (q) => q.pssPeakMiB)).filter(Number.isFinite);
      if (perCore.length + vcpuRatio.length === 0) continue;
      const runsOf = (xs: number[], f: (x: number) => string) => (xs.length === 0 ? '–' : `**${f(median(xs))}** (${xs.map(f).join(', ')})`);
      rows.push([
        p,
        PATH_LABEL[path],
        runsOf(perCore, (x) => `${fmt(x, 2)}×`),
        runsOf(vcpuRatio, (x) => `${fmt(x, 2)}×`),
        runsOf(p90, signedMs),
        runsOf(p99, signedMs),
        `${runsOf(rss, (x) => `${x >= 0 ? '+' : ''}${fmt(x)}`)} / ${runsOf(pss, (x) => `${x >= 0 ? '+' : ''}${fmt(x)}`)}`,
      ]);
    }
  }
  if (rows.length === 0) return [];
  return [
    '',
    `### Against the baseline build (${r.meta.baselineCli ?? '?'}), same runs`,
    '',
    table(['protocol', 'path', 'req/s per proxy core, this ÷ baseline', 'vCPU at the fixed rate, this ÷ baseline', 'p90 at the fixed rate, this − baseline, ms', 'p99, this − baseline, ms', 'RSS / PSS peak at the fixed rate, this − baseline, MiB (worst sidecar)'], rows),
    '',
    'Median over runs of each run\'s ratio or difference (each run\'s own figure in brackets). Above 1× per core and below 1× vCPU is better.',
  ];
}

export function markdown(r: BenchResults): string {
  const s = r.meta.settings as { runs: number; seconds: number; rate: number; latencyConnections: number; http1Connections: number; h2Connections: number; h2Streams: number };
  const tp = throughputRows(r.throughput);
  const lat = latencyRows(r.latency);
  const out: string[] = [];
  out.push(`Weft benchmark — ${r.meta.started} — commit ${r.meta.commit}`);
  out.push('');
  out.push(
    `Machine: ${r.meta.cpus} × ${r.meta.cpuModel}, Node ${r.meta.node}; ${r.meta.pinning}. ` +
      `Every figure is the median of ${s.runs} run(s) of ${s.seconds} s; ratios are taken inside each run, then their median. ` +
      `Load average at start: ${r.meta.loadAverage.map((x) => x.toFixed(2)).join(' ')}.`,
  );
  if (tp.length > 0) {
    out.push('', `### Throughput (closed loop; HTTP/1.1: wrk, ${s.http1Connections} keep-alive connections; h2c: h2load, ${s.h2Connections} connections × ${s.h2Streams} streams; gRPC: bench/load/grpc-load.ts, same shape)`, '');
    out.push(
      table(
        ['protocol', 'path', 'req/s (min–max)', 'proxy CPU, cores', 'req/s per proxy core', 'per core vs HAProxy', 'vs direct', 'CPU-ms per 1000 req', 'errors', 'CPUs busy'],
        tp.map((x) => [
          x.protocol,
          PATH_LABEL[x.path],
          `${fmtInt(x.rps)} (${fmtInt(x.rpsMin)}–${fmtInt(x.rpsMax)})`,
          x.path === 'direct' ? `– (backend ${fmt(x.backendCores, 2)})` : fmt(x.proxyCores, 2),
          x.path === 'direct' ? '–' : fmtInt(x.rpsPerProxyCore),
          Number.isFinite(x.perCoreVsHaproxy) ? `**${fmt(x.perCoreVsHaproxy, 2)}×**` : '–',
          Number.isFinite(x.vsDirect) ? `${fmt(x.vsDirect, 2)}×` : '–',
          roleList(x.cpuSecondsPer1k, (v) => fmt(v * 1000, 0)),
          String(x.errors),
          x.cpuBusy,
        ]),
      ),
    );
  }
  if (lat.length > 0) {
    out.push('', `### Latency at a fixed ${s.rate} req/s (open loop, ${s.latencyConnections} connections, measured from each request's scheduled time; ms)`, '');
    out.push(
      table(
        ['protocol', 'path', 'p50', 'p90', 'p99 (runs: min–max)', 'added p50 / p90 / p99 over direct', 'vCPU per 1000 req/s', 'RSS peak, MiB', 'PSS / private peak, MiB', 'failed', 'generator lag p99', 'CPUs busy'],
        lat.map((x) => [
          x.protocol,
          PATH_LABEL[x.path] + (x.servedRps < 0.95 * s.rate ? ` ⚠ overloaded: served ${fmtInt(x.servedRps)} req/s` : ''),
          ms(x.p50),
          ms(x.p90),
          `${ms(x.p99)} (${ms(x.p99Min)}–${ms(x.p99Max)})`,
          x.path === 'direct' ? '–' : `${signedMs(x.addedP50)} / ${signedMs(x.addedP90)} / ${signedMs(x.addedP99)}`,
          roleList(x.vcpuPer1kRps, (v) => fmt(v, 3)),
          roleList(x.rssPeakMiB, (v) => fmt(v)),
          Object.keys(x.pssPeakMiB).length === 0
            ? '–'
            : Object.keys(x.pssPeakMiB).map((k) => `${Object.keys(x.pssPeakMiB).length > 1 ? `${k.replace(' sidecar', '')} ` : ''}${fmt(x.pssPeakMiB[k] ?? NaN)} / ${fmt(x.anonPeakMiB[k] ?? NaN)}`).join(', '),
          String(x.failed + x.lost),
          ms(x.sendLagP99),
          x.cpuBusy,
        ]),
      ),
    );
    out.push(
      '',
      'Generator lag: how late the generator itself sent requests (p99, ms); it is part of every latency above, so compare it with the direct row before reading a tail. ' +
        'CPUs busy: how busy each CPU was during the measurement (median over runs), everything on the machine included; the proxies under test were alone on their CPU only when its figure is close to their own CPU use. ' +
        "Memory: RSS counts every resident page, including those of the node binary and its libraries, which every Node process on a machine shares (a Weft proxy keeps mapped only those it used in the last minute, ~20 MiB; a process that does not, ~40); " +
        'PSS divides each shared page among the processes mapping it, so it is what one more sidecar adds to a node that already runs Node processes; ' +
        "private is the process's own anonymous memory (V8 heap, malloc, stacks). From /proc/<pid>/smaps_rollup, sampled every second.",
    );
  }
  out.push(...baselineSection(r));
  const idle = idleMemoryRows([...r.latency, ...r.throughput]);
  if (idle.length > 0) {
    out.push(
      '',
      `Idle memory before traffic, settled 20 s after start-up (MiB, RSS / PSS / private; RSS 3 s after start-up in brackets): ${idle.map((x) => `${x.proxy} ${fmt(x.rss)} / ${fmt(x.pss)} / ${fmt(x.anon)} (${fmt(x.rssAt3s)})`).join('; ')}.`,
    );
  } else if (Object.keys(r.idleRss).length > 0) {
    out.push('', `Idle RSS after start-up (MiB): ${Object.entries(r.idleRss).map(([k, v]) => `${k} ${fmt(v)}`).join('; ')}.`);
  }
  if (r.controlPlane.length > 0) {
    out.push('', '### Control plane (one `weft control-plane` process; N simulated sidecars on raw grpc-js ADS streams, delta or SotW, ACKing)', '');
    out.push(
      table(
        ['proxies', 'xDS', 'Services / endpoints', 'synced', 'sync time p50 / p99, s', 'route edit → all ACKed, p50 / p99, ms', 'RSS idle / peak, MiB', 'CPU s (wall s)', 'streams lost', 'received per proxy to sync, KiB', 'received per proxy per edit, KiB', 'simulator busy during edits'],
        r.controlPlane.map((c) => [
          String(c.proxies),
          c.protocol ?? 'sotw',
          `${c.services} / ${c.endpoints}`,
          `${c.synced}/${c.proxies}`,
          c.syncMs ? `${fmt(c.syncMs.p50 / 1000, 1)} / ${fmt(c.syncMs.p99 / 1000, 1)}` : '–',
          c.edits.length === 0 ? `not measured: ${c.synced}/${c.proxies} synced within the bound` : `${ms(c.convergeP50Ms)} / ${ms(c.convergeP99Ms)}`,
          `${fmt(c.rssIdleMiB)} / ${fmt(c.rssPeakMiB)}`,
          `${fmt(c.cpuSeconds, 1)} (${fmt(c.wallSeconds, 0)})`,
          c.streamErrors > 0 ? `${c.streamErrors} (${c.firstError ?? ''})` : '0',
          // Older results had only the RouteConfiguration's size (all of the routes before VHDS).
          c.syncBytes !== undefined ? fmt(c.syncBytes / 1024) : c.rdsBytes === undefined ? '–' : `RDS ${fmt(c.rdsBytes / 1024)}`,
          c.editBytes === undefined || Number.isNaN(c.editBytes) ? '–' : fmt(c.editBytes / 1024, c.editBytes < 10 * 1024 ? 2 : 0),
          c.simBusy === undefined || Number.isNaN(c.simBusy) ? '–' : `${fmt(100 * c.simBusy)} %`,
        ]),
      ),
    );
  }
  if (r.identity.length > 0) {
    out.push('', '### Identity', '');
    out.push(table(['measure', 'value', 'note'], r.identity.map((x) => [x.name, `${fmt(x.value, x.value < 10 ? 2 : 0)} ${x.unit}`, x.note ?? ''])));
  }
  const t = targets(r, tp, lat);
  if (t.length > 0) {
    out.push('', '### Against the targets', '');
    out.push(table(['target', 'measured', 'met'], t.map((x) => [x.target, x.measured, x.met === undefined ? '–' : x.met ? 'yes' : '**no**'])));
  }
  if (r.notes.length > 0) out.push('', ...r.notes.map((n) => `- ${n}`));
  out.push('', `Produced by: \`${r.meta.command}\``);
  return out.join('\n') + '\n';
}
