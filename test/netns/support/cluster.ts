// A cluster in a box: two "nodes" and their "pods", every one a network namespace, wired by the
// reference CNI plugins as a runtime would (layout `bridge`: bridge + host-local per node;
// layout `ptp`: routed ptp + host-local), the nodes joined by a veth with routes between their
// pod CIDRs. Each pod gets kube-proxy's Service DNAT rules, an /etc/netns hosts file naming the
// Services' ClusterIPs, `weft iptables apply` (its init container), its app and its sidecar
// (`weft proxy --capture` as UID 1337); the control plane runs in node 1. Nothing is created in
// the root namespace; teardown removes every namespace, file and process, and reports leftovers.
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventually } from '../../support/eventually.js';
import { cniAdd, cniDel, type CniCall } from './cni.js';
import { CLI, cniDir, FIXTURES, namespacesWith, NODE, nsh, removeLeftovers, sh, shAsync, start, type Proc, type RunResult } from './host.js';
import { kubeProxyRules, type ServicePortRules } from './kube-proxy.js';

export type Layout = 'bridge' | 'ptp';
export const PROXY_UID = 1337;

export interface PodSpec {
  readonly name: string;
  readonly node: 1 | 2;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** WorkloadEntry ports (name → app port). */
  readonly ports: Readonly<Record<string, number>>;
  /** Arguments of fixtures/apps.js, if the pod runs a server app. */
  readonly app?: readonly string[];
  /** Extra flags for its `weft iptables apply`. */
  readonly iptables?: readonly string[];
  /** `sidecar` (default): capture rules and a sidecar; `ambient`: enrolled with the label
   *  `weft.dev/dataplane-mode: ambient`, carried by its node's proxy; `none`: no mesh at all
   *  (until a test enrolls it with setPodLabels). */
  readonly mode?: 'sidecar' | 'ambient' | 'none' | 'waypoint';
}

export interface ServiceSpec {
  readonly name: string;
  readonly clusterIP: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly ports: ReadonlyArray<{ readonly name: string; readonly port: number; readonly targetPort: number }>;
}

export interface ClusterOptions {
  readonly layout: Layout;
  /** Every namespace, /etc/netns entry and temp dir is named with it. */
  readonly prefix: string;
  /** Second octet of the pod CIDRs (10.<n>.1.0/24, 10.<n>.2.0/24) and node link (192.168.<n>.0/24). */
  readonly net: number;
  readonly pods: readonly PodSpec[];
  readonly services: readonly ServiceSpec[];
  /** Extra YAML for the control plane (routes). */
  readonly extraYaml: string;
  /** Which iptables backend kube-proxy's rules go into (the sidecar must find and share it). */
  readonly kubeProxyBackend: 'nft' | 'legacy';
  readonly detectTimeoutMs: number;
  /** Run an ambient node proxy (`weft proxy --mode ambient`) in each node. */
  readonly ambient?: boolean;
}

/** An ambient node proxy, run as root in its node namespace (a DaemonSet pod with hostNetwork). */
export interface NodeProxy {
  /** GET (or POST) on its admin port (127.0.0.1 in the node namespace). */
  admin(path: string, method?: 'GET' | 'POST'): Promise<{ status: number; body: string }>;
  /** SIGTERM, wait for exit, start again (same flags). */
  restart(): Promise<void>;
  /** SIGTERM and wait for exit; start() runs it again (same flags). */
  stop(): Promise<void>;
  start(): void;
  output(): string;
}

export interface Pod {
  readonly spec: PodSpec;
  readonly ns: string;
  readonly ip: string;
  /** What `weft iptables apply` printed. */
  iptablesApply?: string;
  /** Labels set by setPodLabels, over the spec's. */
  labels?: Readonly<Record<string, string>>;
}

/** Requests carried out by a fixtures/agent.js process inside a namespace. */
export interface Agent {
  /** `count` GETs, ten at a time; `ms` is the whole batch's wall time. */
  /** `fresh`: on connections of its own (connections kept from earlier calls keep their old path). */
  http(url: string, count: number, opts?: { fresh?: boolean }): Promise<{ statuses: Record<string, number>; versions: Record<string, number>; peers: Record<string, number>; errors: string[]; errorCount: number; sample: string; ms: number }>;
  tcp(host: string, port: number, lines: string[], greeting?: boolean): Promise<{ firstByteMs?: number; greeting?: string; replies: string[]; error?: string }>;
}

export interface Cluster {
  readonly opts: ClusterOptions;
  readonly nodes: readonly [string, string];
  readonly nodeIps: readonly [string, string];
  readonly pods: ReadonlyMap<string, Pod>;
  /** The client pod's unmodified app. */
  agent(pod: string): Promise<Agent>;
  /** A prober in node 1 (reaches every pod IP, like a kubelet). */
  readonly prober: Agent;
  /** Writes (yaml) or removes (undefined) a file in the control plane's config directory. */
  config(file: string, yaml: string | undefined): void;
  /** `weft iptables <args>` inside a pod, as its init container would run it. */
  weftIptables(pod: string, args: readonly string[]): Promise<RunResult>;
  /** tcpdump -i any in a node namespace, until the returned stop(); then the pcap bytes. */
  capture(node: 1 | 2): Promise<{ stop(): Promise<Buffer>; file: string }>;
  /** Output of every process, for failure messages. */
  logs(): string;
  /** The control plane's state directory (CA root cert, tokens). */
  readonly stateDir: string;
  /** Rewrites a pod's WorkloadEntry labels (mesh.yaml), e.g. to enroll it in ambient mode. */
  setPodLabels(pod: string, labels: Readonly<Record<string, string>>): void;
  /** The node proxies (with `ambient: true`). */
  nodeProxy(node: 1 | 2): NodeProxy;
  /** Milliseconds each build phase took. */
  readonly timings: Readonly<Record<string, number>>;
  /** Removes everything; resolves with what could not be removed (must be empty). */
  teardown(): Promise<string[]>;
}

function labelsYaml(l: Readonly<Record<string, string>>): string {
  return `{ ${Object.entries(l).map(([k, v]) => `${k}: ${v}`).join(', ')} }`;
}

/** The node name a pod's WorkloadEntry carries (`spec.nodeName`). */
export function nodeName(node: 1 | 2): string {
  return `n${node}`;
}

function podLabels(p: Pod): Readonly<Record<string, string>> {
  return {
    ...p.spec.labels,
    ...(p.spec.mode === 'ambient' ? { 'weft.dev/dataplane-mode': 'ambient' } : {}),
    ...(p.spec.mode === 'waypoint' ? { 'gateway.networking.k8s.io/gateway-name': p.spec.name } : {}),
    ...p.labels,
  };
}

function configYaml(o: ClusterOptions, pods: ReadonlyMap<string, Pod>): string {
  const services = o.services.map(
    (s) => `apiVersion: v1
kind: Service
metadata: { name: ${s.name}, namespace: default }
spec:
  clusterIP: ${s.clusterIP}
  selector: ${labelsYaml(s.selector)}
  ports:
${s.ports.map((p) => `    - { name: ${p.name}, port: ${p.port}, targetPort: ${p.targetPort} }`).join('\n')}
`,
  );
  const workloads = [...pods.values()].map(
    (p) => `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${p.spec.name}, namespace: default, labels: ${labelsYaml(podLabels(p))} }
spec:
  address: ${p.ip}
  nodeName: ${nodeName(p.spec.node)}
  serviceAccount: ${p.spec.serviceAccount}
  ports: ${Object.keys(p.spec.ports).length > 0 ? labelsYaml(Object.fromEntries(Object.entries(p.spec.ports).map(([k, v]) => [k, String(v)]))) : '{}'}
`,
  );
  return [...services, ...workloads, o.extraYaml].join('---\n');
}

function selects(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function serviceRules(o: ClusterOptions, pods: ReadonlyMap<string, Pod>): ServicePortRules[] {
  return o.services.flatMap((s) =>
    s.ports.map((p) => ({
      namespace: 'default',
      name: s.name,
      portName: p.name,
      clusterIP: s.clusterIP,
      port: p.port,
      endpoints: [...pods.values()].filter((pod) => selects(s.selector, pod.spec.labels)).map((pod) => ({ ip: pod.ip, port: p.targetPort })),
    })),
  );
}

function hostsFile(o: ClusterOptions): string {
  const lines = ['127.0.0.1 localhost'];
  for (const s of o.services) lines.push(`${s.clusterIP} ${s.name} ${s.name}.default ${s.name}.default.svc ${s.name}.default.svc.cluster.local`);
  return lines.join('\n') + '\n';
}

function startAgent(name: string, ns: string): { proc: Proc; agent: Agent; ready: Promise<string> } {
  const proc = start(name, 'ip', ['netns', 'exec', ns, NODE, path.join(FIXTURES, 'agent.js')]);
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let buf = '';
  proc.child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.startsWith('agent-result ')) continue;
      const msg = JSON.parse(line.slice(13)) as { id: number; result?: unknown; error?: string };
      const w = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (msg.error !== undefined) w?.reject(new Error(msg.error));
      else w?.resolve(msg.result);
    }
  });
  const call = (op: Record<string, unknown>) =>
    new Promise<never>((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      proc.child.stdin!.write(JSON.stringify({ ...op, id }) + '\n');
    });
  const agent: Agent = {
    http: (url, count, opts) => call({ op: 'http', url, count, ...opts }),
    tcp: (host, port, lines, greeting = false) => call({ op: 'tcp', host, port, lines, greeting }),
  };
  return { proc, agent, ready: proc.waitFor(/^agent-ready/) };
}

/** Builds the cluster; on any failure, removes what was built and rethrows. */
export async function buildCluster(o: ClusterOptions): Promise<Cluster> {
  removeLeftovers(o.prefix);
  const cniPath = cniDir()!;
  const tmp = mkdtempSync(path.join(os.tmpdir(), `${o.prefix}-`));
  chmodSync(tmp, 0o755);
  const procs: Proc[] = [];
  const nodes = [`${o.prefix}-n1`, `${o.prefix}-n2`] as const;
  const nodeIps = [`192.168.${o.net}.1`, `192.168.${o.net}.2`] as const;
  const podCidr = (n: 1 | 2) => `10.${o.net}.${n}.0/24`;
  const pods = new Map<string, Pod>();
  const cniCalls: CniCall[] = [];
  const etcDirs: string[] = [];

  const netConf = (n: 1 | 2): Record<string, unknown> => {
    const ipam = { type: 'host-local', ranges: [[{ subnet: podCidr(n) }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(tmp, `ipam-n${n}`) };
    return o.layout === 'bridge'
      ? { cniVersion: '1.0.0', name: `${o.prefix}-net`, type: 'bridge', bridge: 'wbr0', isGateway: true, isDefaultGateway: false, ipMasq: false, hairpinMode: true, ipam }
      : { cniVersion: '1.0.0', name: `${o.prefix}-net`, type: 'ptp', ipMasq: false, ipam };
  };

  const teardown = async (): Promise<string[]> => {
    const problems: string[] = [];
    await Promise.all(procs.map((p) => p.stop().catch((e: Error) => problems.push(`stop ${p.name}: ${e.message}`))));
    for (const c of [...cniCalls].reverse()) {
      try {
        cniDel(c);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const ns of [...[...pods.values()].map((p) => p.ns), ...nodes]) sh('ip', ['netns', 'del', ns], { allowFail: true });
    for (const d of etcDirs) rmSync(d, { recursive: true, force: true });
    try {
      // The directory itself goes too once empty (runs may overlap, so "who made it" is unknowable).
      if (existsSync('/etc/netns') && readdirSync('/etc/netns').length === 0) rmdirSync('/etc/netns');
    } catch {
      // another run put its pods' files there meanwhile: it is theirs now
    }
    rmSync(tmp, { recursive: true, force: true });
    removeLeftovers(o.prefix); // anything a half-built cluster left
    const left = [
      ...namespacesWith(o.prefix).map((n) => `namespace ${n}`),
      ...(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => d.startsWith(o.prefix)).map((d) => `/etc/netns/${d}`) : []),
      ...(existsSync(tmp) ? [tmp] : []),
      ...procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null).map((p) => `process ${p.name} (${p.child.pid})`),
    ];
    return [...left, ...problems.filter((p) => !/not found|no such file|does not exist/i.test(p)).map((p) => `teardown: ${p}`)];
  };

  const timings: Record<string, number> = {};
  let mark = performance.now();
  const phase = (name: string) => {
    const now = performance.now();
    timings[name] = Math.round(now - mark);
    mark = now;
  };

  try {
    // 1. Nodes: two namespaces, a veth between them, routes to each other's pod CIDR.
    for (const ns of nodes) {
      sh('ip', ['netns', 'add', ns]);
      sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // The node's own forwarding switch (per namespace; the root one is never touched).
      nsh(ns, 'sh', ['-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward']);
    }
    sh('ip', ['-n', nodes[0], 'link', 'add', 'node0', 'type', 'veth', 'peer', 'name', 'node0', 'netns', nodes[1]]);
    for (const i of [0, 1] as const) {
      sh('ip', ['-n', nodes[i], 'addr', 'add', `${nodeIps[i]}/24`, 'dev', 'node0']);
      sh('ip', ['-n', nodes[i], 'link', 'set', 'node0', 'up']);
    }
    sh('ip', ['-n', nodes[0], 'route', 'add', podCidr(2), 'via', nodeIps[1]]);
    sh('ip', ['-n', nodes[1], 'route', 'add', podCidr(1), 'via', nodeIps[0]]);

    // 2. Pods: a namespace each, loopback and the pod network by CNI ADD, a hosts file.
    for (const spec of o.pods) {
      const ns = `${o.prefix}-${spec.name}`;
      sh('ip', ['netns', 'add', ns]);
      const node = nodes[spec.node - 1]!;
      const lo: CniCall = { nodeNs: node, podNs: ns, ifname: 'lo', cniPath, config: { cniVersion: '1.0.0', name: 'lo', type: 'loopback' } };
      cniAdd(lo);
      cniCalls.push(lo);
      const eth: CniCall = { nodeNs: node, podNs: ns, ifname: 'eth0', cniPath, config: netConf(spec.node) };
      const { ip } = cniAdd(eth);
      cniCalls.push(eth);
      pods.set(spec.name, { spec, ns, ip });
      const etc = path.join('/etc/netns', ns);
      mkdirSync(etc, { recursive: true });
      etcDirs.push(etc);
      writeFileSync(path.join(etc, 'hosts'), hostsFile(o));
    }

    phase('namespaces + CNI');

    // 3. The control plane, in node 1, on the node's address.
    const configDir = path.join(tmp, 'config');
    const stateDir = path.join(tmp, 'state');
    mkdirSync(configDir);
    writeFileSync(path.join(configDir, 'mesh.yaml'), configYaml(o, pods));
    const cp = start('control-plane', 'ip', [
      'netns', 'exec', nodes[0], NODE, CLI, 'control-plane', '--config', configDir, '--state-dir', stateDir,
      '--host', nodeIps[0], '--xds-port', '15010', '--xds-tls-port', '15012', '--monitor-port', '15014',
    ]);
    procs.push(cp);

    // 4. Each pod's "init container": kube-proxy's rules (as if kube-proxy ran there), then ours.
    const rules = kubeProxyRules(serviceRules(o, pods));
    const sidecarPods = [...pods.values()].filter((p) => (p.spec.mode ?? 'sidecar') === 'sidecar');
    await Promise.all(
      [...pods.values()].map(async (pod) => {
        nsh(pod.ns, `iptables-${o.kubeProxyBackend}-restore`, ['--noflush'], { input: rules });
        if (!sidecarPods.includes(pod)) return;
        pod.iptablesApply = (await shAsync('ip', ['netns', 'exec', pod.ns, NODE, CLI, 'iptables', 'apply', ...(pod.spec.iptables ?? [])])).stdout.trim();
      }),
    );

    phase('init containers (kube-proxy rules, weft iptables apply)');

    // 5. Apps, then sidecars as UID 1337 once the CA and the bootstrap tokens exist.
    for (const pod of pods.values()) {
      if (!pod.spec.app) continue;
      const app = start(`app ${pod.spec.name}`, 'ip', ['netns', 'exec', pod.ns, NODE, path.join(FIXTURES, 'apps.js'), ...pod.spec.app]);
      procs.push(app);
      await app.waitFor(/^app-listening/);
    }
    const rootCert = path.join(stateDir, 'ca', 'root-cert.pem');
    // Pods with a proxy of their own: sidecars, and waypoints (the same binary in waypoint mode).
    const proxiedPods = [...pods.values()].filter((p) => (p.spec.mode ?? 'sidecar') === 'sidecar' || p.spec.mode === 'waypoint');
    const tokenOf = (p: Pod) => path.join(stateDir, 'tokens', 'default', `${p.spec.name}.token`);
    await eventually(() => {
      if (!existsSync(rootCert) || proxiedPods.some((p) => !existsSync(tokenOf(p)))) throw new Error(`waiting for the CA and tokens:\n${cp.output().slice(-2000)}`);
    }, { timeoutMs: 30_000, message: 'control plane state' });
    for (const pod of proxiedPods) {
      const dir = path.join(tmp, 'pods', pod.spec.name);
      mkdirSync(dir, { recursive: true, mode: 0o755 });
      chmodSync(path.join(tmp, 'pods'), 0o755);
      copyFileSync(tokenOf(pod), path.join(dir, 'token'));
      copyFileSync(rootCert, path.join(dir, 'root-cert.pem'));
      chownSync(path.join(dir, 'token'), PROXY_UID, PROXY_UID);
      chmodSync(path.join(dir, 'token'), 0o600);
      chmodSync(path.join(dir, 'root-cert.pem'), 0o644);
      procs.push(
        start(`sidecar ${pod.spec.name}`, 'ip', [
          'netns', 'exec', pod.ns, 'setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups', '--',
          NODE, CLI, 'proxy', '--xds', `${nodeIps[0]}:15012`, '--xds-root-cert', path.join(dir, 'root-cert.pem'),
          '--workload', `${pod.spec.name}.default`, '--token-file', path.join(dir, 'token'),
          ...(pod.spec.mode === 'waypoint' ? ['--mode', 'waypoint'] : ['--capture']),
          '--protocol-detection-timeout', String(o.detectTimeoutMs), '--drain-seconds', '0',
        ]),
      );
    }

    phase('apps, control plane state, sidecars started');

    // 6. A prober in node 1; every sidecar ready (certificate and complete config).
    const prober = startAgent('prober', nodes[0]);
    procs.push(prober.proc);
    await prober.ready;
    // Node proxies (ambient): root in the node namespace, as a hostNetwork DaemonSet pod.
    const nodeProxies = new Map<1 | 2, { proc: Proc; args: string[] }>();
    if (o.ambient) {
      for (const n of [1, 2] as const) {
        const token = path.join(stateDir, 'tokens', 'nodes', `${nodeName(n)}.token`);
        await eventually(() => {
          if (!existsSync(token)) throw new Error(`waiting for ${token}:\n${cp.output().slice(-2000)}`);
        }, { timeoutMs: 30_000, message: `node token for ${nodeName(n)}` });
        const args = [
          'netns', 'exec', nodes[n - 1]!, NODE, CLI, 'proxy', '--mode', 'ambient', '--node', nodeName(n),
          '--xds', `${nodeIps[0]}:15012`, '--xds-root-cert', rootCert, '--token-file', token,
          '--reconcile-interval', '1000', '--drain-seconds', '0', '--state-file', path.join(tmp, `agent-n${n}.json`),
        ];
        const proc = start(`node-proxy n${n}`, 'ip', args);
        procs.push(proc);
        nodeProxies.set(n, { proc, args });
      }
    }
    const adminOf = (n: 1 | 2) => async (p: string, method: 'GET' | 'POST' = 'GET') => {
      const script = `fetch('http://127.0.0.1:15000${p}', { method: '${method}' }).then(async (r) => console.log(JSON.stringify({ status: r.status, body: await r.text() }))).catch((e) => console.log(JSON.stringify({ status: 0, body: String(e) })))`;
      const r = await shAsync('ip', ['netns', 'exec', nodes[n - 1]!, NODE, '-e', script], { allowFail: true });
      return JSON.parse(r.stdout.trim().split('\n').pop() || '{"status":0,"body":"no output"}') as { status: number; body: string };
    };
    await eventually(async () => {
      for (const n of nodeProxies.keys()) {
        const r = await adminOf(n)('/ready');
        if (r.status !== 200) throw new Error(`node proxy n${n}: ${r.status} ${r.body}`);
      }
      for (const pod of proxiedPods) {
        const r = await prober.agent.http(`http://${pod.ip}:15020/healthz/ready`, 1);
        if (r.statuses['200'] !== 1) throw new Error(`${pod.spec.name}: ${JSON.stringify(r)}`);
      }
    }, { timeoutMs: 40_000, intervalMs: 200, message: 'every sidecar and node proxy ready' });

    phase('sidecars ready');

    const agents = new Map<string, Promise<Agent>>();
    return {
      opts: o,
      timings,
      nodes,
      nodeIps,
      pods,
      prober: prober.agent,
      agent(name) {
        let a = agents.get(name);
        if (!a) {
          const pod = pods.get(name);
          if (!pod) throw new Error(`no pod ${name}`);
          const started = startAgent(`agent ${name}`, pod.ns);
          procs.push(started.proc);
          a = started.ready.then(() => started.agent);
          agents.set(name, a);
        }
        return a;
      },
      config(file, yaml) {
        if (yaml === undefined) rmSync(path.join(configDir, file), { force: true });
        else writeFileSync(path.join(configDir, file), yaml);
      },
      weftIptables(name, args) {
        const pod = pods.get(name);
        if (!pod) throw new Error(`no pod ${name}`);
        return shAsync('ip', ['netns', 'exec', pod.ns, NODE, CLI, 'iptables', ...args], { allowFail: true });
      },
      async capture(node) {
        const file = path.join(tmp, `capture-n${node}-${Date.now()}.pcap`);
        const p = start(`tcpdump n${node}`, 'ip', ['netns', 'exec', nodes[node - 1]!, 'tcpdump', '-i', 'any', '-n', '-U', '--immediate-mode', '-Z', 'root', '-w', file, 'tcp']);
        procs.push(p);
        await p.waitFor(/listening on/);
        // A capture is only read once it holds a sentinel sent after the traffic under test:
        // tcpdump writes in arrival order, so everything before it is in the file by then.
        // The sentinel goes to a sidecar's stats port, or (no sidecar on the node) to an app.
        const onNode = [...pods.values()].filter((x) => x.spec.node === node);
        const sidecar = onNode.find((x) => (x.spec.mode ?? 'sidecar') === 'sidecar');
        const withApp = onNode.find((x) => x.spec.app && Object.keys(x.spec.ports).length > 0);
        const sentinelUrl = sidecar ? `http://${sidecar.ip}:15020` : `http://${withApp!.ip}:${Object.values(withApp!.spec.ports)[0]}`;
        const read = () => (existsSync(file) ? readFileSync(file) : Buffer.alloc(0));
        return {
          file,
          async stop() {
            const sentinel = `wcap-sentinel-${Date.now()}-${Math.random().toString(36).slice(2)}`;
            const send = () => prober.agent.http(`${sentinelUrl}/${sentinel}`, 1);
            let sent = await send();
            let sentAt = Date.now();
            // Sent again each second until it shows: a few runs in a hundred, the sentinel's request
            // was answered (the prober saw the 404) yet tcpdump never wrote its packets.
            await eventually(async () => {
              if (read().includes(sentinel)) return;
              if (Date.now() - sentAt > 1000) {
                sent = await send();
                sentAt = Date.now();
              }
              throw new Error(`tcpdump n${node} has not written the sentinel yet (the prober's last request: ${JSON.stringify(sent.statuses)}, ${sent.errorCount} errors)`);
            }, { timeoutMs: 10_000, intervalMs: 20 });
            const exited = new Promise<void>((r) => p.child.once('exit', () => r()));
            p.child.kill('SIGINT');
            await exited;
            return read();
          },
        };
      },
      logs: () => procs.map((p) => `==== ${p.name}\n${p.output().slice(-3000)}`).join('\n'),
      stateDir,
      setPodLabels(name, labels) {
        const pod = pods.get(name);
        if (!pod) throw new Error(`no pod ${name}`);
        pod.labels = labels;
        writeFileSync(path.join(configDir, 'mesh.yaml'), configYaml(o, pods));
      },
      nodeProxy(n) {
        const np = nodeProxies.get(n);
        if (!np) throw new Error(`no node proxy in node ${n} (build the cluster with ambient: true)`);
        return {
          admin: adminOf(n),
          output: () => np.proc.output(),
          async restart() {
            await np.proc.stop();
            np.proc = start(`node-proxy n${n} (restarted)`, 'ip', np.args);
            procs.push(np.proc);
          },
          stop: () => np.proc.stop(),
          start() {
            np.proc = start(`node-proxy n${n} (started again)`, 'ip', np.args);
            procs.push(np.proc);
          },
        };
      },
      teardown,
    };
  } catch (err) {
    const logs = procs.map((p) => `==== ${p.name}\n${p.output().slice(-3000)}`).join('\n');
    const left = await teardown();
    throw new Error(`${(err as Error).message}\n${left.length > 0 ? `leftovers: ${left.join(', ')}\n` : ''}${logs}`);
  }
}
