// `weft up` with ambient workloads (root): a network lab with one pod per WorkloadEntry at its
// `spec.address`, one node proxy (`weft proxy --mode ambient`) per node the entries name, run
// in the root namespace like a hostNetwork DaemonSet pod, a `weft proxy --mode waypoint` inside
// each waypoint's pod (its way to the control plane: a relay on the pod's loopback), and each
// workload's command inside its pod with no HTTP_PROXY — the pod's traffic is captured.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import { waypointNameOf, workloadKey, type Model, type WorkloadEntry } from '../../control-plane/model/index.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';
import { STATS_PREFIX, type DemoStats } from '../demo/client.js';
import type { UpContext, UpMode } from '../up.js';
import { weightsOf, type NodeProxyView, type Weights, type WorkloadView } from '../up-view.js';
import { podAddressProblem, podRange, type PodRange } from './addresses.js';
import { assertLabPrerequisites, buildLab, type HostsEntry, type Lab } from './lab.js';
import { httpInNetns, relayIntoNetns, type Relay } from './netns-io.js';
import { commandArgv, fetchOk, terminate, untilTrue } from './processes.js';

/** The lab `weft up` builds: its namespaces' prefix and the pods' range. */
export const UP_LAB = Object.freeze({ prefix: 'weftup', podCidr: '10.244.0.0/24' });
/** On a waypoint pod's loopback: relayed to the control plane's xDS + CA (TLS) port. */
const XDS_RELAY_PORT = 15012;
/** A waypoint's admin port, inside its pod (127.0.0.1 there). */
const WAYPOINT_ADMIN_PORT = 15000;
const CLUSTER_DOMAIN = 'cluster.local';

type Role = 'ambient' | 'waypoint' | 'none';

/** Whether `weft up` should run this config in ambient mode: some workload is enrolled. */
export function isAmbientConfig(model: Model): boolean {
  return model.workloadEntries.some((w) => model.dataplaneMode(w, false) === 'ambient');
}

function roleOf(model: Model, w: WorkloadEntry): Role {
  if (waypointNameOf(w) !== undefined) return 'waypoint';
  return model.dataplaneMode(w, false) === 'ambient' ? 'ambient' : 'none';
}

/** Every Service ClusterIP under each of its names, for the pods' hosts files. */
export function hostsOf(model: Model): HostsEntry[] {
  return model.services
    .filter((s) => s.spec.clusterIP && s.spec.clusterIP !== 'None')
    .map((s) => {
      const { name, namespace } = s.metadata;
      return { ip: s.spec.clusterIP!, names: [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`] };
    });
}

/** The YAML file under `dir` that defines kind/namespace/name (for messages naming the file). */
export function sourceFileOf(dir: string, kind: string, namespace: string, name: string): string | undefined {
  const files: string[] = [];
  const visit = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const full = path.join(d, e.name);
      if (e.isDirectory()) visit(full);
      else if (/\.ya?ml$/.test(e.name)) files.push(full);
    }
  };
  visit(dir);
  for (const file of files.sort()) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const o = doc.toJS() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
      if (o?.kind === kind && o.metadata?.name === name && (o.metadata.namespace ?? 'default') === namespace) return file;
    }
  }
  return undefined;
}

/**
 * What is wrong with the workloads for a lab on `range`: each problem names the file, the
 * object, the field and the value. Empty when the lab can be built.
 */
export function ambientProblems(model: Model, range: PodRange, configDir: string): string[] {
  const problems: string[] = [];
  const where = (w: WorkloadEntry) => {
    const file = sourceFileOf(configDir, 'WorkloadEntry', w.metadata.namespace, w.metadata.name);
    return `${file ? path.relative(process.cwd(), file) || file : configDir}: WorkloadEntry ${w.metadata.namespace}/${w.metadata.name}`;
  };
  const byAddress = new Map<string, WorkloadEntry>();
  for (const w of model.workloadEntries) {
    const problem = podAddressProblem(range, w.spec.address);
    if (problem) {
      problems.push(`${where(w)} spec.address: ${problem} (each workload is a pod of the lab, so its address must be a pod address there)`);
      continue;
    }
    const other = byAddress.get(w.spec.address);
    if (other) problems.push(`${where(w)} spec.address: ${w.spec.address} is also the address of ${other.metadata.namespace}/${other.metadata.name}; each pod needs its own`);
    byAddress.set(w.spec.address, w);
    if (roleOf(model, w) === 'ambient' && w.spec.nodeName === undefined) {
      problems.push(`${where(w)} spec.nodeName: required for an ambient workload, it names the node whose proxy carries the pod`);
    }
  }
  return problems;
}

interface PodRun {
  /** `name.namespace`, the key the mesh uses; also the pod's name in the lab. */
  readonly key: string;
  /** ambient ⇄ none changes in place: enrollment needs no restart, the node proxy follows the label. */
  role: Role;
  readonly ip: string;
  node: string | undefined;
  readonly namespace: string;
  readonly name: string;
  app?: ChildProcess;
  waypoint?: ChildProcess;
  relay?: Relay;
  stats?: DemoStats;
  lastLine?: string;
  state: string;
  ready: boolean;
}

interface NodeRun {
  readonly node: string;
  proxy?: ChildProcess;
  admin?: number;
  ready: boolean;
}

interface PodStatus {
  key: string;
  state: string;
  certificate?: unknown;
  reason?: string;
}

/** Starts ambient mode: checks, the lab, node proxies, waypoints, then the workloads. */
export async function startAmbientMode(ctx: UpContext): Promise<UpMode> {
  const model = ctx.cp.model();
  const ambientKeys = model.workloadEntries.filter((w) => roleOf(model, w) === 'ambient').map(workloadKey);
  if (process.getuid?.() !== 0) {
    throw new WeftError(
      ErrorCode.PERMISSION_DENIED,
      `${ctx.configDir}: its workloads are ambient (${ambientKeys.join(', ')}), and ambient mode needs root: weft up builds a network namespace for each pod, ` +
        'and the node proxy opens its listeners inside those namespaces and installs their redirect rules (CAP_SYS_ADMIN and CAP_NET_ADMIN)',
      { hint: 'run it as root (e.g. sudo), or try a sidecar example such as examples/canary' },
    );
  }
  assertLabPrerequisites();
  const range = podRange(UP_LAB.podCidr);
  const problems = ambientProblems(model, range, ctx.configDir);
  if (problems.length > 0) throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot run ${ctx.configDir} in ambient mode:\n  ${problems.join('\n  ')}`);

  const { children, log } = ctx;
  const pods = new Map<string, PodRun>();
  const nodes = new Map<string, NodeRun>();
  const lab: Lab = await buildLab({ prefix: UP_LAB.prefix, podCidr: UP_LAB.podCidr, hosts: hostsOf(model) });
  log.info('lab built', { prefix: UP_LAB.prefix, range: UP_LAB.podCidr });
  // Should this process end without stopping in order (an uncaught error), the pods go with it.
  const onExit = () => lab.teardownSync();
  process.on('exit', onExit);

  const tokenFile = (namespace: string, name: string) => path.join(ctx.stateDir, 'tokens', namespace, `${name}.token`);
  const waitFile = (file: string) => untilTrue(async () => existsSync(file), 30_000, ctx.stopping);

  // ---- node proxies (root namespace, every port chosen by the kernel, admin on 127.0.0.1) ----
  const startNode = async (node: string) => {
    const n: NodeRun = { node, ready: false };
    nodes.set(node, n);
    const token = path.join(ctx.stateDir, 'tokens', 'nodes', `${node}.token`);
    if (!(await waitFile(token))) throw new WeftError(ErrorCode.INTERNAL, `the control plane wrote no node token ${token} within 30 s`);
    n.proxy = children.spawn(
      `node-proxy ${node}`,
      [
        process.execPath, ctx.cliMain, 'proxy', '--mode', 'ambient', '--node', node,
        '--xds', ctx.xdsTarget, '--xds-root-cert', ctx.rootCertFile, '--token-file', token,
        '--bind-address', '127.0.0.1', '--admin-port', '0', '--stats-port', '0', '--health-port', '0',
        '--drain-seconds', '1', '--state-file', path.join(ctx.stateDir, 'nodes', `${node}.agent.json`),
        // The lab's node proxies run in this machine's own namespace, which is no Kubernetes
        // node (no kubelet): its nat table is not the lab's to change.
        '--kubelet-probe-rules', 'false',
      ],
      {
        onLine: (line) => {
          if (line.startsWith('weft-proxy-listening ')) n.admin = (JSON.parse(line.slice('weft-proxy-listening '.length)) as { admin: number }).admin;
        },
      },
    );
  };

  // ---- pods: a waypoint's proxy, or the workload's command ----
  const startWaypoint = async (p: PodRun) => {
    const lp = lab.pod(p.key);
    const token = tokenFile(p.namespace, p.name);
    if (!(await waitFile(token))) throw new WeftError(ErrorCode.INTERNAL, `the control plane wrote no token ${token} within 30 s`);
    p.relay = await relayIntoNetns(lp.nsPath, '127.0.0.1', XDS_RELAY_PORT, { host: '127.0.0.1', port: ctx.cp.xdsTlsAddress!.port });
    p.waypoint = children.spawn(
      `${p.key} waypoint`,
      lab.exec(p.key, [
        process.execPath, ctx.cliMain, 'proxy', '--mode', 'waypoint', '--workload', p.key, '--token-file', token,
        '--xds', `127.0.0.1:${XDS_RELAY_PORT}`, '--xds-root-cert', ctx.rootCertFile, '--drain-seconds', '1',
      ]),
    );
  };

  const startApp = (p: PodRun, w: WorkloadEntry) => {
    if (!w.spec.command || w.spec.command.length === 0 || p.app) return;
    // The pod's traffic is captured by its own rules: a proxy in the environment would bypass them.
    const env: NodeJS.ProcessEnv = { ...process.env, ...w.spec.env, WEFT_WORKLOAD: p.key };
    for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy']) delete env[k];
    p.app = children.spawn(p.key, lab.exec(p.key, commandArgv(w.spec.command, ctx.cliMain)), {
      env,
      onLine: (l) => {
        if (l.startsWith(STATS_PREFIX)) p.stats = JSON.parse(l.slice(STATS_PREFIX.length)) as DemoStats;
        else p.lastLine = l;
      },
    });
  };

  const stopPod = async (p: PodRun) => {
    pods.delete(p.key);
    await terminate(p.app);
    await terminate(p.waypoint);
    await p.relay?.close();
    await lab.removePod(p.key);
  };

  const podStatuses = async (): Promise<Map<string, PodStatus>> => {
    const out = new Map<string, PodStatus>();
    for (const n of nodes.values()) {
      if (n.admin === undefined) continue;
      try {
        const res = await fetch(`http://127.0.0.1:${n.admin}/ambient/pods`, { signal: AbortSignal.timeout(1000) });
        for (const s of (await res.json()) as PodStatus[]) out.set(s.key, s);
      } catch {
        // not answering yet
      }
    }
    return out;
  };

  /** Refreshes readiness: node proxies, pods (as their node proxy sees them), waypoints. */
  const refresh = async () => {
    for (const n of nodes.values()) n.ready = n.admin !== undefined && (await fetchOk(`http://127.0.0.1:${n.admin}/ready`));
    const statuses = await podStatuses();
    for (const p of pods.values()) {
      if (p.role === 'ambient') {
        const s = statuses.get(`${p.namespace}/${p.name}`);
        p.ready = s?.state === 'enrolled' && s.certificate !== undefined;
        p.state = s ? (p.ready ? 'enrolled' : `${s.state}${s.state === 'enrolled' ? ' (no certificate yet)' : ''}${s.reason ? `: ${s.reason}` : ''}`) : 'waiting for its node proxy';
      } else if (p.role === 'waypoint') {
        const r = await httpInNetns(lab.pod(p.key).nsPath, WAYPOINT_ADMIN_PORT, '/ready', { timeoutMs: 1000 }).catch(() => undefined);
        p.ready = r?.status === 200;
        p.state = p.ready ? 'ready' : 'starting';
      } else {
        p.ready = p.app !== undefined && p.app.exitCode === null;
        p.state = p.ready ? 'running (not in the mesh)' : 'no command';
      }
    }
  };

  // ---- reconcile: the lab and its processes follow the config ----
  const apply = async (m: Model) => {
    lab.setHosts(hostsOf(m));
    const desired = new Map(m.workloadEntries.map((w) => [workloadKey(w), w]));
    for (const p of [...pods.values()]) {
      const w = desired.get(p.key);
      const role = w && roleOf(m, w);
      // A new address is a new pod; becoming (or ceasing to be) a waypoint changes what runs in it.
      if (!w || w.spec.address !== p.ip || (role === 'waypoint') !== (p.role === 'waypoint')) await stopPod(p);
      else {
        p.role = role!;
        p.node = w.spec.nodeName;
      }
    }
    for (const node of m.nodes) if (!nodes.has(node)) await startNode(node);
    const fresh = [...desired.entries()].filter(([key]) => !pods.has(key));
    const badNow = new Set(ambientProblems(m, range, ctx.configDir));
    if (badNow.size > 0) log.error('workloads left out of the lab', { problems: [...badNow].join('; ') });
    const ok = fresh.filter(([, w]) => podAddressProblem(range, w.spec.address) === undefined && ![...pods.values()].some((p) => p.ip === w.spec.address));
    await lab.addPods(ok.map(([key, w]) => ({ name: key, ip: w.spec.address })));
    for (const [key, w] of ok) {
      const p: PodRun = { key, role: roleOf(m, w), ip: w.spec.address, node: w.spec.nodeName, namespace: w.metadata.namespace, name: w.metadata.name, state: 'starting', ready: false };
      pods.set(key, p);
      if (p.role === 'waypoint') await startWaypoint(p);
    }
    return ok.map(([key, w]) => ({ p: pods.get(key)!, w }));
  };

  let chain: Promise<unknown> = Promise.resolve();
  let stopped = false;
  const enqueue = (m: Model) => {
    chain = chain.then(async () => {
      if (stopped) return;
      try {
        const added = await apply(m);
        // A pod added while running starts its app once its node proxy carries it.
        for (const { p, w } of added) {
          void untilTrue(async () => (await refresh(), p.role !== 'ambient' || p.ready), 60_000, () => stopped).then(() => !stopped && pods.get(p.key) === p && startApp(p, w));
        }
      } catch (err) {
        log.error('could not follow the config change', { error: errorMessage(err) });
      }
    });
  };

  const stopAll = async (): Promise<string[]> => {
    stopped = true;
    await chain;
    // Workloads first, then waypoints, then the node proxies (their sockets live in the pods),
    // and the lab last.
    await Promise.all([...pods.values()].map((p) => terminate(p.app)));
    await Promise.all([...pods.values()].map(async (p) => (await terminate(p.waypoint), await p.relay?.close())));
    await Promise.all([...nodes.values()].map((n) => terminate(n.proxy)));
    const left = await lab.teardown();
    process.off('exit', onExit);
    if (left.length > 0) log.warn('the lab left things behind', { left: left.join(', ') });
    return left.map((l) => `lab: ${l}`);
  };

  // Changes made while the first pods come up wait their turn behind them (`chain`).
  const firstApply = apply(model);
  chain = firstApply.catch(() => undefined);
  const unsubscribe = ctx.cp.onModel(enqueue);
  try {
    const first = await firstApply;
    // Like holdApplicationUntilProxyStarts, for the whole mesh: the workloads start once every
    // node proxy holds its pods (rules, listeners, certificates) and every waypoint is ready.
    const ready = await untilTrue(async () => (await refresh(), [...nodes.values()].every((n) => n.ready) && [...pods.values()].every((p) => p.role === 'none' || p.ready)), 90_000, ctx.stopping);
    if (!ready && !ctx.stopping()) {
      const waiting = [...[...nodes.values()].filter((n) => !n.ready).map((n) => `node proxy ${n.node}`), ...[...pods.values()].filter((p) => p.role !== 'none' && !p.ready).map((p) => `${p.key} (${p.state})`)];
      log.warn('mesh not ready after 90 s; starting the workloads anyway', { waiting: waiting.join(', ') });
    }
    for (const { p, w } of first) if (pods.get(p.key) === p) startApp(p, w);
  } catch (err) {
    unsubscribe();
    await stopAll();
    throw err;
  }

  return {
    async view() {
      await refresh();
      const weights: Weights = {};
      for (const p of pods.values()) {
        if (p.role !== 'waypoint' || !p.ready) continue;
        const dump = await httpInNetns(lab.pod(p.key).nsPath, WAYPOINT_ADMIN_PORT, '/config_dump', { timeoutMs: 1000 }).catch(() => undefined);
        if (dump?.status === 200) Object.assign(weights, weightsOf(JSON.parse(dump.body)));
      }
      const workloads: WorkloadView[] = [...pods.values()].map((p) => ({
        key: p.key,
        ready: p.ready,
        hasApp: p.app !== undefined,
        ports: undefined,
        stats: p.stats,
        weights: p.stats && Object.keys(weights).length > 0 ? weights : undefined,
        lastLine: p.lastLine,
        ambient: { mode: p.role, ip: p.ip, ...(p.node ? { node: p.node } : {}), state: p.state },
      }));
      const nodeViews: NodeProxyView[] = [...nodes.values()].map((n) => ({ node: n.node, ready: n.ready, admin: n.admin }));
      return { workloads, ambient: { nodes: nodeViews, podCidr: UP_LAB.podCidr } };
    },
    async stop() {
      unsubscribe();
      return stopAll();
    },
  };
}
