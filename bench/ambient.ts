// The ambient benchmark (`node dist/bench/run.js --only ambient`, root only, never part of
// npm test), in one lab (cli/lab/: pods as network namespaces on one bridge) and one run:
// the node proxy's memory with 1, 10 and 100 enrolled pods (base + per-pod increment), then
// HTTP/1.1 throughput (wrk inside the client pod: keep-alive, and with `Connection: close` the
// cost of a new connection) and fixed-rate latency (bench/load/openloop.ts) over three paths side by side — direct (no mesh), ambient (the node proxy carries both pods,
// HBONE + mTLS) and a sidecar pair (`weft iptables apply` + `weft proxy --capture` as UID 1337) —
// with the proxies' CPU from /proc. The control plane and the node proxy run in the node's
// namespace, as a hostNetwork control plane and DaemonSet would.
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { assertLabPrerequisites, buildLab, type Lab, type LabPod } from '../cli/lab/lab.js';
import { httpInNetns } from '../cli/lab/netns-io.js';
import type { CpuPlan } from './lib/dataplane-env.js';
import { weftCli } from './lib/mesh.js';
import { resultLine, rssMiB, runMeasured, runToEnd, start, type Child, type Measured } from './lib/proc.js';
import { median, ratio, spread, type LatencySummary } from './lib/stats.js';
import { parseWrk } from './lib/tools.js';

const OPEN_LOOP = fileURLToPath(new URL('./load/openloop.js', import.meta.url));
const LAB = { prefix: 'wbench', podCidr: '10.245.0.0/24' } as const;
const NODE_NAME = 'bench-node';
const MESH_NS = 'bench';
const APP_PORT = 8080;
const SERVICE_PORT = 80;
/** The sidecar Service's second port, named tcp: both sidecars relay bytes (L4). */
const TCP_SERVICE_PORT = 81;
const PROXY_UID = 1337;
const BODY = 'hello from the weft ambient bench\n';

export type AmbientPath = 'direct' | 'ambient' | 'sidecar' | 'sidecar-tcp';
/** Every path; the TCP one only in the new-connection rows (what it adds is a handshake per connection). */
const PATHS: readonly AmbientPath[] = ['direct', 'ambient', 'sidecar', 'sidecar-tcp'];
const LABEL: Record<AmbientPath, string> = {
  direct: 'direct (client pod → server pod)',
  ambient: 'ambient (node proxy, HBONE + mTLS)',
  sidecar: 'sidecar pair (2 captured sidecars + mTLS)',
  'sidecar-tcp': 'sidecar pair, TCP port (L4: HBONE streams between the sidecars)',
};
/** Each path's pods, and (mesh paths) the Service VIP and port the client calls. */
const PODS: Record<AmbientPath, { client: string; server: string; vip?: string; port?: number }> = {
  direct: { client: 'direct-client', server: 'direct-server' },
  ambient: { client: 'amb-client', server: 'amb-server', vip: '10.96.45.2' },
  sidecar: { client: 'sc-client', server: 'sc-server', vip: '10.96.45.3' },
  'sidecar-tcp': { client: 'sc-client', server: 'sc-server', vip: '10.96.45.3', port: TCP_SERVICE_PORT },
};
/** The path whose backend (and server pod) a path shares. */
const BACKEND_OF: Record<AmbientPath, AmbientPath> = { direct: 'direct', ambient: 'ambient', sidecar: 'sidecar', 'sidecar-tcp': 'sidecar' };

export interface AmbientSettings {
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly runs: number;
  /** wrk keep-alive connections. */
  readonly http1Connections: number;
  /** Fixed-rate latency: requests per second over this many connections. */
  readonly rate: number;
  readonly latencyConnections: number;
  /** Enrolled-pod counts the node proxy's memory is measured at. */
  readonly memoryPods: readonly number[];
  readonly cpus: CpuPlan;
}

export interface ProxyCost {
  readonly role: string;
  readonly cores: number;
  readonly cpuSecondsPer1k: number;
  readonly rssPeakMiB: number;
}

export interface MemoryPoint {
  readonly pods: number;
  /** Median of the samples, MiB. */
  readonly rssMiB: number;
  readonly samples: readonly number[];
}

interface Sample {
  readonly run: number;
  readonly path: AmbientPath;
  readonly proxies: readonly ProxyCost[];
  readonly backendCores: number;
  /** Busy fraction of each CPU over the window (the whole machine, other users included). */
  readonly coreBusy: Record<string, number>;
}
export interface ThroughputSample extends Sample {
  /** keep-alive: wrk's connections carry every request; close: each request on a new connection. */
  readonly connections: 'keep-alive' | 'close';
  readonly rps: number;
  readonly errors: number;
  readonly proxyCores: number;
}
export interface LatencySample extends Sample {
  readonly latencyMs: LatencySummary;
  readonly ok: number;
  readonly failed: number;
  readonly lost: number;
  readonly sendLagP99Ms: number;
  readonly servedRps: number;
}

export interface AmbientResults {
  readonly settings: Omit<AmbientSettings, 'cpus'>;
  readonly memory: readonly MemoryPoint[];
  /** Least squares over the enrolled counts: RSS ≈ baseMiB + perPodMiB × pods. */
  readonly fit: { readonly baseMiB: number; readonly perPodMiB: number };
  /** Seconds until the node proxy held each count's pods (rules, listeners, certificates). */
  readonly enrollSeconds: Record<number, number>;
  readonly throughput: readonly ThroughputSample[];
  readonly latency: readonly LatencySample[];
  readonly notes: readonly string[];
}

// ---- the mesh's config ------------------------------------------------------------------------

function workload(name: string, labels: Record<string, string>, ip: string, ports: Record<string, number>): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ');
  const p = Object.entries(ports).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${MESH_NS}, labels: { ${l} } }
spec: { address: ${ip}, nodeName: ${NODE_NAME}, serviceAccount: ${name}, ports: { ${p} } }
`;
}

/** Services for the two mesh paths; the ambient pair enrolled or not; `idle` enrolled pods. */
function meshYaml(lab: Lab, enrollPair: boolean, idle: readonly LabPod[]): string {
  const service = (name: string, vip: string, tcp = false) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${MESH_NS} }
spec:
  clusterIP: ${vip}
  selector: { app: ${name} }
  ports: [{ name: http, port: ${SERVICE_PORT}, targetPort: ${APP_PORT} }${tcp ? `, { name: tcp, port: ${TCP_SERVICE_PORT}, targetPort: ${APP_PORT} }` : ''}]
`;
  const mode = { 'weft.dev/dataplane-mode': enrollPair ? 'ambient' : 'none' };
  return [
    service('echo-ambient', PODS.ambient.vip!),
    service('echo-sidecar', PODS.sidecar.vip!, true),
    workload('amb-client', { app: 'amb-client', ...mode }, lab.pod('amb-client').ip, {}),
    workload('amb-server', { app: 'echo-ambient', ...mode }, lab.pod('amb-server').ip, { http: APP_PORT }),
    workload('sc-client', { app: 'sc-client' }, lab.pod('sc-client').ip, {}),
    workload('sc-server', { app: 'echo-sidecar' }, lab.pod('sc-server').ip, { http: APP_PORT }),
    ...idle.map((p) => workload(p.name, { app: 'idle', 'weft.dev/dataplane-mode': 'ambient' }, p.ip, {})),
  ].join('---\n');
}

const haproxyConfig = () => `global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fixed
  bind 0.0.0.0:${APP_PORT}
  http-request return status 200 content-type text/plain string "${BODY.replace('\n', '\\n')}"
`;

// ---- waiting ----------------------------------------------------------------------------------

async function waitUntil<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`ambient bench: ${what} not within ${timeoutMs / 1000} s${last ? ` (last: ${(last as Error).message})` : ''}`);
}

interface PodView {
  key: string;
  state: string;
  certificate?: unknown;
  connections?: { outbound: number; inboundHbone: number };
}

// ---- the measurements -------------------------------------------------------------------------

function costs(proxies: readonly { role: string; child: Child }[], m: Measured, ok: number): ProxyCost[] {
  return proxies.map(({ role, child }) => {
    const cpu = m.cpu.get(child.pid) ?? NaN;
    return { role, cores: cpu / m.wallSeconds, cpuSecondsPer1k: ok > 0 ? cpu / (ok / 1000) : NaN, rssPeakMiB: m.rssPeak.get(child.pid) ?? NaN };
  });
}

function leastSquares(points: readonly MemoryPoint[]): { baseMiB: number; perPodMiB: number } {
  const xs = points.map((p) => p.pods);
  const ys = points.map((p) => p.rssMiB);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  const slope = sxx > 0 ? xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / sxx : NaN;
  return { baseMiB: my - slope * mx, perPodMiB: slope };
}

/** What the steps share: the lab, the processes under test, and the node proxy's admin port. */
interface Bench {
  readonly s: AmbientSettings;
  readonly log: (line: string) => void;
  readonly dir: string;
  readonly lab: Lab;
  readonly cli: string;
  readonly keep: (c: Child) => Child;
  readonly configDir: string;
  readonly stateDir: string;
  /** The node's namespace, where the control plane and the node proxy run. */
  readonly nodeNsPath: string;
  backends: Record<AmbientPath, Child>;
  sidecars: Child[];
  nodeProxy: Child;
}

/** Builds the lab and everything in it, measures, and removes it all (also on failure). */
export async function ambientBench(dir: string, s: AmbientSettings, log: (line: string) => void): Promise<AmbientResults> {
  assertLabPrerequisites(['wrk', 'haproxy', 'setpriv', 'taskset']);
  const cli = weftCli();
  if (!existsSync(cli)) throw new Error(`ambient bench: no Weft CLI at ${cli} (run npm run build)`);
  const maxIdle = Math.max(0, ...s.memoryPods);
  const fixed = [...new Set(Object.values(PODS).flatMap((p) => [p.client, p.server]))];
  const lab = await buildLab({
    prefix: LAB.prefix,
    podCidr: LAB.podCidr,
    pods: [...fixed.map((name) => ({ name })), ...Array.from({ length: maxIdle }, (_, i) => ({ name: `idle-${String(i + 1).padStart(3, '0')}` }))],
    hosts: [
      { ip: PODS.ambient.vip!, names: ['echo-ambient', `echo-ambient.${MESH_NS}`] },
      { ip: PODS.sidecar.vip!, names: ['echo-sidecar', `echo-sidecar.${MESH_NS}`] },
    ],
  });
  const onExit = () => lab.teardownSync();
  process.on('exit', onExit);
  const children: Child[] = [];
  const b = { s, log, dir, lab, cli, keep: (c: Child) => (children.push(c), c), configDir: path.join(dir, 'ambient-config'), stateDir: path.join(dir, 'ambient-state'), nodeNsPath: `/run/netns/${lab.nodeNs}` };
  // The sidecars (UID 1337) read their token and roots here; the run's work dir is private.
  const podFiles = mkdtempSync(path.join(os.tmpdir(), `${LAB.prefix}-pods-`));
  chmodSync(podFiles, 0o755);
  try {
    const bench = await startMesh(b, podFiles);
    const memory = await measureMemory(bench);
    await readyForTraffic(bench);
    const throughput: ThroughputSample[] = [];
    const latency: LatencySample[] = [];
    for (let run = 1; run <= s.runs; run++) {
      // Rotate the order of paths from run to run, so no path always goes first.
      for (const p of PATHS.map((_, i) => PATHS[(i + run - 1) % PATHS.length]!)) {
        if (p !== 'sidecar-tcp') {
          throughput.push(await throughputRun(bench, run, p, 'keep-alive'));
          latency.push(await latencyRun(bench, run, p));
        }
        throughput.push(await throughputRun(bench, run, p, 'close'));
      }
    }
    const { cpus: _cpus, ...settings } = s;
    return { settings, ...memory, throughput, latency, notes: NOTES };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(podFiles, { recursive: true, force: true });
    const left = await lab.teardown();
    process.off('exit', onExit);
    if (left.length > 0) log(`ambient bench: the lab left ${left.join(', ')}`);
  }
}

const NOTES = [
  'Ambient is L4 here (no waypoint): the node proxy relays bytes over HBONE (HTTP/2 CONNECT over mTLS) between the two pods\' in-pod listeners; the sidecar pair parses HTTP/1.1 on both sides (the Service port is named http), so the two mesh rows do different work per request.',
  `The TCP sidecar row calls the same Service on its second port (${TCP_SERVICE_PORT}, named tcp): both sidecars relay bytes, each client connection an HBONE stream (HTTP/2 CONNECT) on the client sidecar's pooled mTLS connection to the server sidecar's 15008.`,
  'The mesh paths call a Service ClusterIP (redirected inside the client pod); direct calls the server pod\'s IP (the lab runs no kube-proxy).',
  'One node proxy carries both ambient pods, so its CPU is the whole cost of the ambient path; the sidecar path\'s is the sum of its two sidecars (all on the proxy CPU).',
  'CPUs busy: CPU 0 (load generator, backends, control plane) / CPU 1 (proxies), everything on the machine included; a proxy that used well under one core while CPU 1 was near 100 % was sharing it with other work.',
];

/** The control plane, a backend per server pod, the sidecar pair and the node proxy, each started and ready. */
async function startMesh(b: Omit<Bench, 'backends' | 'sidecars' | 'nodeProxy'>, podFiles: string): Promise<Bench> {
  const { s, lab, cli, dir, keep } = b;
  const node = process.execPath;
  const gateway = lab.range.gateway;
  mkdirSync(b.configDir, { recursive: true });
  writeFileSync(path.join(b.configDir, 'mesh.yaml'), meshYaml(lab, false, []));
  b.log(`ambient: lab ${LAB.prefix} (${lab.pods.size} pods on ${LAB.podCidr}); control plane and node proxy in ${lab.nodeNs}`);

  // 1. The control plane, in the node's namespace on the bridge address (pods reach it there).
  keep(start('ambient-cp', 'ip', ['netns', 'exec', lab.nodeNs, node, cli, 'control-plane', '--config', b.configDir, '--state-dir', b.stateDir,
    '--host', gateway, '--xds-port', '15010', '--xds-tls-port', '15012', '--monitor-port', '15014'], { cpu: s.cpus.load, logFile: path.join(dir, 'ambient-cp.log') }));
  await waitUntil('control plane ready', 30_000, async () => ((await httpInNetns(b.nodeNsPath, 15014, '/ready', { host: gateway })).status === 200 ? true : undefined));
  const rootCert = path.join(b.stateDir, 'ca', 'root-cert.pem');
  const token = (name: string) => path.join(b.stateDir, 'tokens', MESH_NS, `${name}.token`);
  const nodeToken = path.join(b.stateDir, 'tokens', 'nodes', `${NODE_NAME}.token`);
  await waitUntil('CA and tokens', 30_000, async () => ([rootCert, nodeToken, token('sc-client'), token('sc-server')].every(existsSync) ? true : undefined));

  // 2. A fixed-response HTTP server in each server pod.
  const backends = {} as Record<AmbientPath, Child>;
  writeFileSync(path.join(dir, 'ambient-backend.cfg'), haproxyConfig());
  for (const p of PATHS.filter((x) => BACKEND_OF[x] === x)) {
    backends[p] = keep(start(`backend ${p}`, 'ip', ['netns', 'exec', lab.pod(PODS[p].server).ns, 'haproxy', '-db', '-f', path.join(dir, 'ambient-backend.cfg')],
      { cpu: s.cpus.load, logFile: path.join(dir, `ambient-backend-${p}.log`) }));
    await waitUntil(`backend in ${PODS[p].server}`, 10_000, async () => ((await httpInNetns(lab.pod(PODS[p].server).nsPath, APP_PORT, '/')).status === 200 ? true : undefined));
  }

  // 3. The sidecar pair: capture rules (the init container's job), then the proxies as UID 1337.
  const sidecars: Child[] = [];
  for (const name of [PODS.sidecar.client, PODS.sidecar.server]) {
    const r = await runToEnd(`iptables ${name}`, 'ip', ['netns', 'exec', lab.pod(name).ns, node, cli, 'iptables', 'apply'], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`weft iptables apply in ${name} failed (${r.code}): ${r.stderr.trim()}`);
    const own = path.join(podFiles, name);
    mkdirSync(own, { mode: 0o755 });
    copyFileSync(token(name), path.join(own, 'token'));
    copyFileSync(rootCert, path.join(own, 'root-cert.pem'));
    chownSync(path.join(own, 'token'), PROXY_UID, PROXY_UID);
    chmodSync(path.join(own, 'token'), 0o600);
    chmodSync(path.join(own, 'root-cert.pem'), 0o644);
    sidecars.push(keep(start(`sidecar ${name}`, 'ip', [
      'netns', 'exec', lab.pod(name).ns, 'setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--',
      node, cli, 'proxy', '--capture', '--xds', `${gateway}:15012`, '--xds-root-cert', path.join(own, 'root-cert.pem'),
      '--workload', `${name}.${MESH_NS}`, '--token-file', path.join(own, 'token'), '--drain-seconds', '0',
    ], { cpu: s.cpus.proxy, logFile: path.join(dir, `ambient-sidecar-${name}.log`) })));
  }

  // 4. The node proxy, root in the node's namespace (a hostNetwork DaemonSet pod), on the proxy CPU.
  const nodeProxy = keep(start('node-proxy', 'ip', [
    'netns', 'exec', lab.nodeNs, node, cli, 'proxy', '--mode', 'ambient', '--node', NODE_NAME, '--xds', `${gateway}:15012`,
    '--xds-root-cert', rootCert, '--token-file', nodeToken, '--reconcile-interval', '5000', '--drain-seconds', '0',
    '--state-file', path.join(dir, 'ambient-agent.json'),
  ], { cpu: s.cpus.proxy, logFile: path.join(dir, 'ambient-node-proxy.log') }));
  const bench: Bench = { ...b, backends, sidecars, nodeProxy };
  await holding(bench, [], 60_000);
  return bench;
}

async function admin(b: Bench, urlPath: string): Promise<string> {
  const r = await httpInNetns(b.nodeNsPath, 15000, urlPath, { timeoutMs: 3_000 });
  if (r.status !== 200) throw new Error(`node proxy ${urlPath}: ${r.status} ${r.body.trim().slice(0, 300)}`);
  return r.body;
}

const podViews = async (b: Bench) => JSON.parse(await admin(b, '/ambient/pods')) as PodView[];

/** Resolves once the node proxy carries exactly `keys` (namespace/name), each enrolled with its certificate. */
function holding(b: Bench, keys: readonly string[], timeoutMs: number): Promise<true> {
  return waitUntil(`node proxy holding ${keys.length} pod(s)`, timeoutMs, async () => {
    const view = await podViews(b);
    const ok = view.length === keys.length && keys.every((k) => view.some((v) => v.key === k && v.state === 'enrolled' && v.certificate !== undefined));
    return ok && (await admin(b, '/ready')) ? true : undefined;
  });
}

/** The node proxy's RSS with no pod, then with each count of enrolled pods that only exist. */
async function measureMemory(b: Bench): Promise<Pick<AmbientResults, 'memory' | 'fit' | 'enrollSeconds'>> {
  const idlePods = [...b.lab.pods.values()].filter((p) => p.name.startsWith('idle-'));
  const rssNow = async () => {
    const samples: number[] = [];
    for (let i = 0; i < 12; i++) {
      samples.push(rssMiB(b.nodeProxy.pid));
      await new Promise((r) => setTimeout(r, 250));
    }
    return samples;
  };
  await new Promise((r) => setTimeout(r, 2_000));
  const idle = await rssNow();
  const memory: MemoryPoint[] = [{ pods: 0, rssMiB: median(idle), samples: idle }];
  b.log(`ambient memory: node proxy with 0 pods: ${median(idle).toFixed(1)} MiB`);
  const enrollSeconds: Record<number, number> = {};
  for (const n of [...b.s.memoryPods].sort((x, y) => x - y)) {
    const chosen = idlePods.slice(0, n);
    const t0 = performance.now();
    writeFileSync(path.join(b.configDir, 'mesh.yaml'), meshYaml(b.lab, false, chosen));
    await holding(b, chosen.map((p) => `${MESH_NS}/${p.name}`), 60_000 + n * 2_000);
    enrollSeconds[n] = (performance.now() - t0) / 1000;
    // Settle: let start-up garbage be collected before sampling.
    await new Promise((r) => setTimeout(r, 3_000));
    const samples = await rssNow();
    memory.push({ pods: n, rssMiB: median(samples), samples });
    b.log(`ambient memory: ${n} pod(s) enrolled in ${enrollSeconds[n]!.toFixed(1)} s; node proxy RSS ${median(samples).toFixed(1)} MiB`);
  }
  return { memory, fit: leastSquares(memory.filter((m) => m.pods > 0)), enrollSeconds };
}

/** Where a path's client connects: the Service VIP (mesh paths) or the server pod (direct). */
function target(b: Bench, p: AmbientPath): { host: string; port: number } {
  return { host: PODS[p].vip ?? b.lab.pod(PODS[p].server).ip, port: PODS[p].port ?? (PODS[p].vip ? SERVICE_PORT : APP_PORT) };
}

/** The ambient pair enrolled (the idle pods released), the sidecars ready, and every path answering
 *  from inside its client pod — the ambient one through the node proxy. */
async function readyForTraffic(b: Bench): Promise<void> {
  const client = `${MESH_NS}/${PODS.ambient.client}`;
  writeFileSync(path.join(b.configDir, 'mesh.yaml'), meshYaml(b.lab, true, []));
  await holding(b, [client, `${MESH_NS}/${PODS.ambient.server}`], 60_000);
  for (const name of [PODS.sidecar.client, PODS.sidecar.server]) {
    await waitUntil(`sidecar ${name} ready`, 60_000, async () => ((await httpInNetns(b.lab.pod(name).nsPath, 15000, '/ready')).status === 200 ? true : undefined));
  }
  const outbound = async () => (await podViews(b)).find((v) => v.key === client)?.connections?.outbound ?? 0;
  const before = await outbound();
  for (const p of PATHS) {
    const t = target(b, p);
    await waitUntil(`a request over the ${p} path`, 30_000, async () => {
      const res = await httpInNetns(b.lab.pod(PODS[p].client).nsPath, t.port, '/', { host: t.host, timeoutMs: 5_000 });
      return res.status === 200 && res.body === BODY ? true : undefined;
    });
    b.log(`ambient: the ${p} path answers, from ${PODS[p].client} to ${t.host}:${t.port}`);
  }
  if (!((await outbound()) > before)) throw new Error('ambient bench: the ambient request did not go through the node proxy (its outbound count did not move)');
}

const PROXY_ROLES: Record<AmbientPath, (b: Bench) => { role: string; child: Child }[]> = {
  direct: () => [],
  ambient: (b) => [{ role: 'node proxy', child: b.nodeProxy }],
  sidecar: (b) => [{ role: 'client sidecar', child: b.sidecars[0]! }, { role: 'server sidecar', child: b.sidecars[1]! }],
  'sidecar-tcp': (b) => PROXY_ROLES.sidecar(b),
};

const backend = (b: Bench, p: AmbientPath) => b.backends[BACKEND_OF[p]];
const measuredPids = (b: Bench, p: AmbientPath) => [...PROXY_ROLES[p](b).map((x) => x.child.pid), backend(b, p).pid];

/** wrk inside the client pod, closed loop, after an unmeasured warm-up; with `close`, every
 *  request on a new connection (wrk sends `Connection: close`). */
async function throughputRun(b: Bench, run: number, p: AmbientPath, connections: 'keep-alive' | 'close'): Promise<ThroughputSample> {
  const { s } = b;
  const t = target(b, p);
  const url = `http://${t.host}:${t.port}/`;
  const ns = b.lab.pod(PODS[p].client).ns;
  const close = connections === 'close' ? ['-H', 'Connection: close'] : [];
  // Through a proxy the response's FIN trails its bytes, so wrk closes first and keeps the
  // TIME_WAIT: thousands per second, on one destination, exhaust the client pod's ephemeral
  // ports within seconds and wrk's connect() then measures the port search. Reusing TIME_WAIT
  // ports (timestamps make it safe) keeps the load generator out of the figure.
  if (connections === 'close') await runToEnd('sysctl', 'ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'], { timeoutMs: 10_000 });
  const base = ['netns', 'exec', ns, 'wrk', '-t1', ...close, `-c${s.http1Connections}`];
  if (s.warmupSeconds > 0) await runToEnd('wrk-warmup', 'ip', [...base, `-d${s.warmupSeconds}s`, url], { cpu: s.cpus.load, timeoutMs: (s.warmupSeconds + 20) * 1000 });
  const m = await runMeasured('wrk', 'ip', [...base, `-d${s.seconds}s`, '--timeout', '10s', url], { cpu: s.cpus.load, timeoutMs: (s.seconds + 30) * 1000 }, measuredPids(b, p));
  const w = parseWrk(m.stdout, s.seconds);
  const proxies = costs(PROXY_ROLES[p](b), m, w.ok);
  const proxyCores = proxies.reduce((a, x) => a + x.cores, 0);
  b.log(`ambient run ${run} ${connections === 'close' ? 'new connections' : 'throughput'} ${p}: ${Math.round(w.rps)} req/s${proxies.length ? `, proxy ${proxyCores.toFixed(2)} cores` : ''}${w.errors ? `, ${w.errors} errors` : ''}`);
  return { run, path: p, connections, rps: w.rps, errors: w.errors, proxies, proxyCores, backendCores: (m.cpu.get(backend(b, p).pid) ?? NaN) / m.wallSeconds, coreBusy: m.cores };
}

/** The open-loop generator inside the client pod, at the fixed rate. */
async function latencyRun(b: Bench, run: number, p: AmbientPath): Promise<LatencySample> {
  const { s } = b;
  const t = target(b, p);
  const m = await runMeasured('openloop', 'ip', [
    'netns', 'exec', b.lab.pod(PODS[p].client).ns, process.execPath, OPEN_LOOP, '--proto', 'http1', '--host', t.host, '--port', String(t.port),
    '--authority', `${t.host}:${t.port}`, '--rate', String(s.rate), '--connections', String(s.latencyConnections), '--duration', String(s.seconds),
    '--warmup', String(s.warmupSeconds),
  ], { cpu: s.cpus.load, timeoutMs: (s.seconds + s.warmupSeconds + 60) * 1000 }, measuredPids(b, p));
  const r = resultLine<{ ok: number; failed: number; lost: number; latencyMs: LatencySummary; sendLagMs: LatencySummary }>(m.stdout);
  b.log(`ambient run ${run} latency ${p}: p50 ${r.latencyMs.p50.toFixed(2)} p90 ${r.latencyMs.p90.toFixed(2)} p99 ${r.latencyMs.p99.toFixed(2)} ms${r.failed + r.lost ? `, ${r.failed + r.lost} failed` : ''}`);
  return {
    run, path: p, latencyMs: r.latencyMs, ok: r.ok, failed: r.failed, lost: r.lost, sendLagP99Ms: r.sendLagMs.p99, servedRps: r.ok / s.seconds,
    proxies: costs(PROXY_ROLES[p](b), m, r.ok), backendCores: (m.cpu.get(backend(b, p).pid) ?? NaN) / m.wallSeconds, coreBusy: m.cores,
  };
}

// ---- summaries and Markdown -------------------------------------------------------------------

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '–');
const fmtInt = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const ms = (x: number) => (Number.isFinite(x) ? (Math.abs(x) < 10 ? x.toFixed(2) : x.toFixed(1)) : '–');
const signedMs = (x: number) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${ms(x)}` : '–');

function perRole(samples: readonly { proxies: readonly ProxyCost[] }[], f: (c: ProxyCost) => number, show: (v: number) => string): string {
  const roles = [...new Set(samples.flatMap((x) => x.proxies.map((q) => q.role)))];
  if (roles.length === 0) return '–';
  return roles.map((role) => `${roles.length > 1 ? `${role.replace(' sidecar', '')} ` : ''}${show(median(samples.map((x) => f(x.proxies.find((q) => q.role === role)!))))}`).join(', ');
}

/** Median busy share of each CPU over the runs, e.g. "61 % / 53 %" (CPU 0 / CPU 1, whole machine). */
function busy(xs: readonly { coreBusy: Record<string, number> }[]): string {
  const cpus = [...new Set(xs.flatMap((x) => Object.keys(x.coreBusy)))].sort((a, b) => Number(a) - Number(b));
  return cpus.map((c) => `${fmt(100 * median(xs.map((x) => x.coreBusy[c] ?? NaN)))} %`).join(' / ');
}

/** The summary rows (also in the JSON). */
export function ambientSummary(r: AmbientResults) {
  const runs = [...new Set(r.throughput.map((x) => x.run))];
  const inRun = <T extends { run: number; path: AmbientPath }>(xs: readonly T[], p: AmbientPath, run: number) => xs.find((x) => x.path === p && x.run === run);
  const closedLoop = (connections: ThroughputSample['connections']) => {
    // Samples from before the churn rows existed have no `connections`: keep-alive.
    const samples = r.throughput.filter((x) => (x.connections ?? 'keep-alive') === connections);
    return PATHS.filter((p) => samples.some((x) => x.path === p)).map((p) => {
      const xs = samples.filter((x) => x.path === p);
      const sp = spread(xs.map((x) => x.rps));
      return {
        path: p,
        rps: median(xs.map((x) => x.rps)),
        rpsMin: sp.min,
        rpsMax: sp.max,
        vsDirect: p === 'direct' ? NaN : median(runs.map((run) => ratio(inRun(samples, p, run)?.rps ?? NaN, inRun(samples, 'direct', run)?.rps ?? NaN))),
        proxyCores: median(xs.map((x) => x.proxyCores)),
        rpsPerProxyCore: p === 'direct' ? NaN : median(xs.map((x) => ratio(x.rps, x.proxyCores))),
        cpuMsPer1k: perRole(xs, (c) => c.cpuSecondsPer1k * 1000, (v) => fmt(v)),
        backendCores: median(xs.map((x) => x.backendCores)),
        errors: xs.reduce((a, x) => a + x.errors, 0),
        cpuBusy: busy(xs),
      };
    });
  };
  const throughput = closedLoop('keep-alive');
  const newConnections = closedLoop('close');
  const latency = PATHS.filter((p) => r.latency.some((x) => x.path === p)).map((p) => {
    const xs = r.latency.filter((x) => x.path === p);
    const added = (q: 'p50' | 'p90' | 'p99') =>
      p === 'direct' ? NaN : median(runs.map((run) => (inRun(r.latency, p, run)?.latencyMs[q] ?? NaN) - (inRun(r.latency, 'direct', run)?.latencyMs[q] ?? NaN)));
    const p99 = spread(xs.map((x) => x.latencyMs.p99));
    return {
      path: p,
      p50: median(xs.map((x) => x.latencyMs.p50)),
      p90: median(xs.map((x) => x.latencyMs.p90)),
      p99: median(xs.map((x) => x.latencyMs.p99)),
      p99Min: p99.min,
      p99Max: p99.max,
      addedP50: added('p50'),
      addedP90: added('p90'),
      addedP99: added('p99'),
      vcpuPer1kRps: perRole(xs, (c) => c.cpuSecondsPer1k, (v) => fmt(v, 3)),
      rssPeakMiB: perRole(xs, (c) => c.rssPeakMiB, (v) => fmt(v)),
      failed: xs.reduce((a, x) => a + x.failed + x.lost, 0),
      servedRps: median(xs.map((x) => x.servedRps)),
      sendLagP99: median(xs.map((x) => x.sendLagP99Ms)),
      cpuBusy: busy(xs),
    };
  });
  const perPodMB = r.fit.perPodMiB * 1.048576;
  return { throughput, newConnections, latency, memory: { ...r.fit, perPodMB, goalMet: Number.isFinite(perPodMB) ? perPodMB <= 0.5 : undefined } };
}

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((x) => `| ${x.join(' | ')} |`)].join('\n');
}

export function ambientMarkdown(r: AmbientResults): string {
  const s = r.settings;
  const sum = ambientSummary(r);
  const out: string[] = ['', '### Ambient mode (bench/ambient.ts: pods are network namespaces on one bridge; control plane and node proxy in the node\'s namespace)', ''];
  out.push('Node proxy memory (RSS from /proc, median of 12 samples over 3 s, 3 s after the pods were held; the enrolled pods only exist, no app):', '');
  out.push(table(['enrolled pods', 'RSS, MiB', 'time to hold them, s'], r.memory.map((m) => [String(m.pods), fmt(m.rssMiB, 1), m.pods === 0 ? '–' : fmt(r.enrollSeconds[m.pods] ?? NaN, 1)])));
  out.push(
    '',
    `Fit over ${r.memory.filter((m) => m.pods > 0).map((m) => m.pods).join(', ')} pods: **${fmt(r.fit.baseMiB, 1)} MiB base + ${fmt(r.fit.perPodMiB * 1024)} KiB per pod** ` +
      `(${fmt(sum.memory.perPodMB, 3)} MB per pod; goal ≤ 0.5 MB: ${sum.memory.goalMet === undefined ? '–' : sum.memory.goalMet ? 'met' : '**not met**'}).`,
  );
  if (sum.throughput.length > 0) {
    out.push('', `HTTP/1.1 throughput (wrk in the client pod, ${s.http1Connections} keep-alive connections, ${s.seconds} s after ${s.warmupSeconds} s of warm-up; median of ${s.runs} run(s)):`, '');
    out.push(
      table(
        ['path', 'req/s (min–max)', 'vs direct', 'proxy CPU, cores', 'req/s per proxy core', 'CPU-ms per 1000 req', 'errors', 'CPUs busy'],
        sum.throughput.map((x) => [
          LABEL[x.path],
          `${fmtInt(x.rps)} (${fmtInt(x.rpsMin)}–${fmtInt(x.rpsMax)})`,
          Number.isFinite(x.vsDirect) ? `**${fmt(x.vsDirect, 2)}×**` : '–',
          x.path === 'direct' ? `– (backend ${fmt(x.backendCores, 2)})` : fmt(x.proxyCores, 2),
          fmtInt(x.rpsPerProxyCore),
          x.cpuMsPer1k,
          String(x.errors),
          x.cpuBusy,
        ]),
      ),
    );
  }
  if (sum.newConnections.length > 0) {
    out.push('', `New connections (wrk as above, each request with \`Connection: close\`: a TCP connection per request, through every proxy on the path; the client pod reuses TIME_WAIT ports, tcp_tw_reuse=1; median of ${s.runs} run(s)):`, '');
    out.push(
      table(
        ['path', 'connections/s (min–max)', 'vs direct', 'proxy CPU, cores', 'CPU-ms per 1000 connections', 'errors', 'CPUs busy'],
        sum.newConnections.map((x) => [
          LABEL[x.path],
          `${fmtInt(x.rps)} (${fmtInt(x.rpsMin)}–${fmtInt(x.rpsMax)})`,
          Number.isFinite(x.vsDirect) ? `**${fmt(x.vsDirect, 2)}×**` : '–',
          x.path === 'direct' ? `– (backend ${fmt(x.backendCores, 2)})` : fmt(x.proxyCores, 2),
          x.cpuMsPer1k,
          String(x.errors),
          x.cpuBusy,
        ]),
      ),
    );
  }
  if (sum.latency.length > 0) {
    out.push('', `Latency at a fixed ${s.rate} req/s (bench/load/openloop.ts in the client pod, ${s.latencyConnections} connections; ms):`, '');
    out.push(
      table(
        ['path', 'p50', 'p90', 'p99 (runs: min–max)', 'added p50 / p90 / p99 over direct', 'vCPU per 1000 req/s', 'RSS peak, MiB', 'failed', 'generator lag p99', 'CPUs busy'],
        sum.latency.map((x) => [
          LABEL[x.path] + (x.servedRps < 0.95 * s.rate ? ` ⚠ served ${fmtInt(x.servedRps)} req/s` : ''),
          ms(x.p50),
          ms(x.p90),
          `${ms(x.p99)} (${ms(x.p99Min)}–${ms(x.p99Max)})`,
          x.path === 'direct' ? '–' : `${signedMs(x.addedP50)} / ${signedMs(x.addedP90)} / ${signedMs(x.addedP99)}`,
          x.vcpuPer1kRps,
          x.rssPeakMiB,
          String(x.failed),
          ms(x.sendLagP99),
          x.cpuBusy,
        ]),
      ),
    );
  }
  out.push('', ...r.notes.map((n) => `- ${n}`));
  return out.join('\n') + '\n';
}
