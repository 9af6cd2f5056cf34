// In-pod redirection for ambient mode on real pod networking: a node namespace and two pod
// namespaces wired by the reference CNI (bridge + host-local); this test process plays the node
// proxy — its listeners live inside the pods' namespaces (native sockets), the node agent finds
// the pods by IP and keeps their redirect rules — and shows where each kind of connection lands.
// Also the redirect rules alone on both iptables backends. Needs root (CI runs as root).
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Fields, Logger } from '../../core/log.js';
import { NodeAgent, type EnrolledPod, type PodListeners } from '../../proxy/ambient/agent.js';
import { connectInNetns, findNetnsByIp, listenInNetns, PROXY_MARK } from '../../proxy/ambient/netns.js';
import { iptablesRedirector, redirectRules, redirectSpec } from '../../proxy/ambient/redirect.js';
import { originalDst } from '../../proxy/capture/original-dst.js';
import { eventually } from '../support/eventually.js';
import { cniAdd, cniDel, type CniCall } from './support/cni.js';
import { cniDir, namespacesWith, NODE, nsh, removeLeftovers, REPO, sh, shAsync } from './support/host.js';

const PREFIX = 'wagent';
const NODE_NS = `${PREFIX}-node`;
const SUBNET = '10.120.1.0/24';
const GATEWAY = '10.120.1.1';
const ADDON = path.join(REPO, 'native', 'build', 'Release', 'weft_capture.node');
const nsPath = (name: string) => `/run/netns/${name}`;

/** What this test needs; a missing piece fails the suite (CI runs as root), never skips it. */
function assertPrerequisites(): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces, iptables and CNI plugins need it; CI runs as root)');
  for (const p of ['ip', 'nsenter', 'setpriv', 'iptables', 'iptables-nft-save', 'iptables-nft-restore', 'iptables-legacy-save', 'iptables-legacy-restore']) {
    if (sh('sh', ['-c', `command -v ${p}`], { allowFail: true }).status !== 0) missing.push(`${p} (see .ci/apt-packages)`);
  }
  const cni = cniDir();
  if (!cni) missing.push('the reference CNI plugins (Debian package containernetworking-plugins)');
  if (!existsSync(ADDON)) missing.push(`${ADDON} (npm run build:native)`);
  if (missing.length > 0) throw new Error(`test/netns/ambient-agent cannot run; missing: ${missing.join('; ')}`);
}

/** A logger that keeps every line, for failure messages and log assertions. */
function memoryLogger(lines: string[], component = 'agent'): Logger {
  const emit = (level: string) => (msg: string, fields?: Fields) => lines.push(`${level} ${component} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: (c) => memoryLogger(lines, `${component}.${c}`) };
}

/** What a test server answers: which listener took the connection, and what it saw. */
interface Seen {
  readonly listener: string;
  readonly pod: string;
  /** The original destination (getsockopt SO_ORIGINAL_DST; conntrack knows it for any tracked
   *  connection, so an unredirected one reports its own local address). */
  readonly orig: string | null;
  readonly local: string;
  /** Whether a REDIRECT changed the destination. */
  readonly redirected: boolean;
  readonly remote: string;
}

function reporter(listener: string, pod: string): net.Server {
  return net.createServer((socket) => {
    const o = originalDst(socket);
    const orig = o ? `${o.address}:${o.port}` : null;
    const local = `${socket.localAddress}:${socket.localPort}`;
    const seen: Seen = { listener, pod, orig, local, remote: socket.remoteAddress ?? '', redirected: orig !== null && orig !== local };
    socket.end(JSON.stringify(seen) + '\n');
  });
}

async function answer(socket: net.Socket): Promise<Seen> {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (c: string) => (text += c));
  await new Promise<void>((resolve, reject) => {
    socket.once('end', () => resolve());
    socket.once('error', reject);
    socket.setTimeout(5_000, () => reject(new Error('no answer within 5 s')));
  });
  socket.destroy();
  return JSON.parse(text) as Seen;
}

/** Connects from inside namespace `ns` (mark 0: as the pod's app; PROXY_MARK: as the node proxy). */
async function ask(ns: string, host: string, port: number, mark: number): Promise<Seen> {
  return answer(await connectInNetns(nsPath(ns), host, port, { mark, timeoutMs: 5_000 }));
}

/** The same from a real process in the pod (an unmodified app). */
async function askAsApp(ns: string, host: string, port: number): Promise<Seen> {
  const script = `const s = require('net').connect(${port}, ${JSON.stringify(host)}); let t = ''; s.on('data', (c) => t += c); s.on('end', () => process.stdout.write(t)); s.on('error', (e) => { console.error(e.message); process.exit(1); });`;
  const r = await shAsync('ip', ['netns', 'exec', ns, NODE, '-e', script]);
  return JSON.parse(r.stdout) as Seen;
}

function natRules(ns: string): string {
  return ['nft', 'legacy'].map((b) => nsh(ns, `iptables-${b}-save`, ['-t', 'nat']).stdout).join('\n');
}

const servers: net.Server[] = [];
async function serve(server: net.Server, ns: string, host: string, port: number, mark = 0): Promise<net.Server> {
  await listenInNetns(server, nsPath(ns), host, port, mark);
  servers.push(server);
  return server;
}

function closeServer(s: net.Server): Promise<void> {
  return new Promise((r) => (s.listening ? s.close(() => r()) : r()));
}

describe('ambient in-pod redirection: node agent, native netns sockets, redirect rules', () => {
  let tmp: string;
  const cniCalls: CniCall[] = [];
  const pods = new Map<string, { ns: string; ip: string }>();
  const logs: string[] = [];
  let ownNetns: string;
  let agent: NodeAgent | undefined;
  const ip = (p: string) => pods.get(p)!.ip;
  const ns = (p: string) => pods.get(p)!.ns;
  const enrolled = (p: string): EnrolledPod => ({ key: `default/${p}`, ip: ip(p), identity: `spiffe://cluster.local/ns/default/sa/${p}` });

  // The test plays the node proxy: each enrolled pod gets three listeners in its namespace.
  const inPod = new Map<string, { nsPath: string; servers: net.Server[] }>();
  const calls = { ensure: 0, release: [] as string[] };
  const listeners: PodListeners = {
    async ensure(pod, path) {
      calls.ensure++;
      const have = inPod.get(pod.key);
      if (have?.nsPath === path && have.servers.every((s) => s.listening)) return;
      if (have) await Promise.all(have.servers.map(closeServer));
      const name = pod.key.split('/')[1]!;
      const made = [reporter('outbound', name), reporter('inbound', name), reporter('hbone', name)];
      inPod.set(pod.key, { nsPath: path, servers: made });
      await listenInNetns(made[0]!, path, '0.0.0.0', 15001, PROXY_MARK);
      await listenInNetns(made[1]!, path, '0.0.0.0', 15006, PROXY_MARK);
      await listenInNetns(made[2]!, path, '0.0.0.0', 15008, PROXY_MARK);
    },
    async release(key) {
      calls.release.push(key);
      const have = inPod.get(key);
      inPod.delete(key);
      if (have) await Promise.all(have.servers.map(closeServer));
    },
  };

  const withLogs = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      (err as Error).message += `\nagent status: ${JSON.stringify(agent?.status(), null, 1)}\nlogs:\n${logs.slice(-40).join('\n')}`;
      throw err;
    }
  };

  beforeAll(() => {
    assertPrerequisites();
    removeLeftovers(PREFIX);
    ownNetns = readlinkSync('/proc/self/ns/net');
    tmp = mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
    const cniPath = cniDir()!;
    sh('ip', ['netns', 'add', NODE_NS]);
    sh('ip', ['-n', NODE_NS, 'link', 'set', 'lo', 'up']);
    for (const p of ['a', 'b']) {
      const podNs = `${PREFIX}-${p}`;
      sh('ip', ['netns', 'add', podNs]);
      const lo: CniCall = { nodeNs: NODE_NS, podNs, ifname: 'lo', cniPath, config: { cniVersion: '1.0.0', name: 'lo', type: 'loopback' } };
      cniAdd(lo);
      cniCalls.push(lo);
      const ipam = { type: 'host-local', ranges: [[{ subnet: SUBNET }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: path.join(tmp, 'ipam') };
      const eth: CniCall = {
        nodeNs: NODE_NS,
        podNs,
        ifname: 'eth0',
        cniPath,
        config: { cniVersion: '1.0.0', name: `${PREFIX}-net`, type: 'bridge', bridge: 'wbr0', isGateway: true, ipMasq: false, hairpinMode: true, ipam },
      };
      pods.set(p, { ns: podNs, ip: cniAdd(eth).ip });
      cniCalls.push(eth);
    }
  }, 60_000);

  afterAll(async () => {
    await agent?.stop();
    // Sockets keep their namespace alive: close them before the namespaces go.
    await Promise.all([...servers, ...[...inPod.values()].flatMap((p) => p.servers)].map(closeServer));
    const problems: string[] = [];
    for (const c of cniCalls.reverse()) {
      try {
        cniDel(c);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    for (const n of [...[...pods.values()].map((p) => p.ns), NODE_NS]) sh('ip', ['netns', 'del', n], { allowFail: true });
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    removeLeftovers(PREFIX);
    expect(problems, 'CNI DEL').toEqual([]);
    expect(namespacesWith(PREFIX), 'namespaces left behind').toEqual([]);
    expect(readdirTmp(), 'temp dirs left behind').toEqual([]);
    // The test process (in the root namespace) made sockets in other namespaces only: it is
    // still where it was, and the root namespace holds none of our rules.
    expect(readlinkSync('/proc/self/ns/net')).toBe(ownNetns);
    expect(readlinkSync(`/proc/self/task/${process.pid}/ns/net`)).toBe(ownNetns);
    expect(sh('iptables-nft-save', ['-t', 'nat']).stdout).not.toMatch(/WEFT_AMB_/);
    // Reading a legacy table that does not exist would create it: read it only if it is there.
    if (readFileSync('/proc/net/ip_tables_names', 'utf8').split('\n').includes('nat')) {
      expect(sh('iptables-legacy-save', ['-t', 'nat']).stdout).not.toMatch(/WEFT_AMB_/);
    }
  }, 60_000);

  const readdirTmp = () => sh('ls', [os.tmpdir()]).stdout.split('\n').filter((d) => d.startsWith(`${PREFIX}-`));

  it('makes sockets inside a pod: a connection from the pod to itself has the pod IP as its local address', async () => {
    await serve(reporter('app', 'a'), ns('a'), '0.0.0.0', 8080);
    await serve(reporter('app', 'b'), ns('b'), '0.0.0.0', 8080);
    await serve(reporter('node', 'node'), NODE_NS, GATEWAY, 9000);

    const socket = await connectInNetns(nsPath(ns('a')), ip('a'), 8080, { mark: PROXY_MARK });
    expect(socket.localAddress).toBe(ip('a'));
    expect(socket.remoteAddress).toBe(ip('a'));
    const seen = await answer(socket);
    expect(seen).toMatchObject({ listener: 'app', pod: 'a', remote: ip('a') });
    // Out through the pod's interface, with the pod's address.
    expect(await ask(ns('a'), GATEWAY, 9000, PROXY_MARK)).toMatchObject({ listener: 'node', remote: ip('a') });
    // The listening socket is the pod's: its own ss shows it.
    expect(nsh(ns('a'), 'ss', ['-Htln', 'sport = :8080']).stdout).toMatch(/0\.0\.0\.0:8080/);
  });

  it('explains missing privileges and missing namespaces', async () => {
    const script = `try { require(${JSON.stringify(ADDON)}).netnsListen(${JSON.stringify(nsPath(ns('a')))}, '0.0.0.0', 15999, 0); } catch (e) { console.log(e.code + ': ' + e.message); }`;
    const r = sh('setpriv', ['--reuid=1337', '--regid=1337', '--clear-groups', '--inh-caps=-all', '--', NODE, '-e', script]);
    expect(r.stdout).toMatch(/^EPERM: setns in network namespace .*CAP_SYS_ADMIN.*CAP_NET_ADMIN/);
    await expect(connectInNetns('/run/netns/wagent-missing', ip('a'), 8080)).rejects.toThrow(/cannot connect to .* from network namespace \/run\/netns\/wagent-missing: open in network namespace .*No such file/);
    await expect(listenInNetns(net.createServer(), nsPath(ns('a')), 'localhost', 1)).rejects.toThrow(/must be an IP address/);
    const taken = net.createServer();
    await expect(listenInNetns(taken, nsPath(ns('a')), '0.0.0.0', 8080)).rejects.toThrow(/bind 0.0.0.0:8080 .*Address already in use/);
  });

  it("finds each pod's namespace by its IP, never the caller's own", async () => {
    expect(await findNetnsByIp(ip('a'))).toBe(nsPath(ns('a')));
    expect(await findNetnsByIp(ip('b'))).toBe(nsPath(ns('b')));
    expect(await findNetnsByIp(GATEWAY)).toBe(nsPath(NODE_NS));
    expect(await findNetnsByIp('10.120.1.250')).toBeUndefined();
    const own = Object.values(os.networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4');
    if (own) expect(await findNetnsByIp(own.address)).toBeUndefined();
  });

  it("after setDesired, the pod's app reaching another pod lands on the in-pod 15001 with the original destination", () =>
    withLogs(async () => {
      agent = new NodeAgent({ listeners, intervalMs: 300, log: memoryLogger(logs), onRepair: (pod, what) => logs.push(`onRepair ${pod}: ${what}`) });
      const ghost: EnrolledPod = { key: 'default/ghost', ip: '10.120.1.250', identity: 'spiffe://cluster.local/ns/default/sa/ghost' };
      agent.setDesired([enrolled('a'), enrolled('b'), ghost]);
      await agent.reconcile();
      const status = agent.status();
      expect(status.map((s) => [s.key, s.state])).toEqual([
        ['default/a', 'enrolled'],
        ['default/b', 'enrolled'],
        ['default/ghost', 'pending'],
      ]);
      expect(status[0]).toMatchObject({ netns: nsPath(ns('a')), repairs: 0 });
      expect(status[2]!.reason).toMatch(/no network namespace on this node holds 10.120.1.250/);
      expect(agent.metrics()).toEqual({ repairsTotal: 0, pods: { enrolled: 2, pending: 1, error: 0, removing: 0 } });

      // A real process in pod a: redirected to a's own 15001, original destination kept.
      expect(await askAsApp(ns('a'), ip('b'), 8080)).toMatchObject({ listener: 'outbound', pod: 'a', orig: `${ip('b')}:8080`, remote: ip('a') });
      expect(await ask(ns('a'), GATEWAY, 9000, 0)).toMatchObject({ listener: 'outbound', pod: 'a', orig: `${GATEWAY}:9000` });
      // Loopback stays in the pod.
      expect(await ask(ns('a'), '127.0.0.1', 8080, 0)).toMatchObject({ listener: 'app', pod: 'a' });
    }));

  it('a connection made with connectInNetns and the proxy mark is not redirected', () =>
    withLogs(async () => {
      expect(await ask(ns('a'), GATEWAY, 9000, PROXY_MARK)).toMatchObject({ listener: 'node', redirected: false, remote: ip('a') });
      // Past a's rules, it reaches pod b as inbound traffic: b's 15006.
      expect(await ask(ns('a'), ip('b'), 8080, PROXY_MARK)).toMatchObject({ listener: 'inbound', pod: 'b', orig: `${ip('b')}:8080`, redirected: true, remote: ip('a') });
    }));

  it('inbound TCP to the pod goes to 15006; HBONE on 15008 is not redirected', () =>
    withLogs(async () => {
      expect(await ask(NODE_NS, ip('a'), 8080, 0)).toMatchObject({ listener: 'inbound', pod: 'a', orig: `${ip('a')}:8080`, redirected: true, remote: GATEWAY });
      expect(await ask(NODE_NS, ip('a'), 15008, 0)).toMatchObject({ listener: 'hbone', pod: 'a', redirected: false, local: `${ip('a')}:15008` });
      expect(await ask(ns('b'), ip('a'), 15008, PROXY_MARK)).toMatchObject({ listener: 'hbone', pod: 'a', redirected: false, remote: ip('b') });
    }));

  it("flushing the pod's nat rules is detected and repaired; traffic is redirected again", () =>
    withLogs(async () => {
      const a = agent!;
      a.start();
      // The plain `iptables` sees the agent's rules (the same backend), then flushes them.
      expect(nsh(ns('a'), 'iptables-save', ['-t', 'nat']).stdout).toMatch(/-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT/);
      nsh(ns('a'), 'iptables', ['-t', 'nat', '-F']);
      await eventually(() => expect(a.status()[0]).toMatchObject({ key: 'default/a', state: 'enrolled', repairs: 1 }), { timeoutMs: 10_000, intervalMs: 50 });
      const repaired = a.status()[0]!;
      expect(repaired.lastRepair).toMatch(/jump "-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT" is missing/);
      expect(repaired.lastRepair).toMatch(/chain WEFT_AMB_PREROUTING is empty/);
      expect(a.status()[1]).toMatchObject({ key: 'default/b', repairs: 0 });
      expect(a.metrics().repairsTotal).toBe(1);
      expect(logs.filter((l) => l.startsWith('onRepair default/a'))).toHaveLength(1);
      expect(await askAsApp(ns('a'), ip('b'), 8080)).toMatchObject({ listener: 'outbound', pod: 'a', orig: `${ip('b')}:8080` });
      expect(await ask(NODE_NS, ip('a'), 8080, 0)).toMatchObject({ listener: 'inbound', pod: 'a' });

      // A changed rule is drift too, and says what changed.
      nsh(ns('a'), 'iptables', ['-t', 'nat', '-R', 'WEFT_AMB_OUTPUT', '3', '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', '16001']);
      await a.reconcile();
      expect(a.status()[0]).toMatchObject({ state: 'enrolled', repairs: 2 });
      expect(a.status()[0]!.lastRepair).toMatch(/installed "-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 16001" vs wanted "-A WEFT_AMB_OUTPUT -p tcp -j REDIRECT --to-ports 15001"/);
      expect(await ask(ns('a'), GATEWAY, 9000, 0)).toMatchObject({ listener: 'outbound', pod: 'a' });
      // Passes that find nothing wrong log nothing new.
      const before = logs.length;
      await a.reconcile();
      await a.reconcile();
      expect(logs.slice(before)).toEqual([]);
    }));

  it('setDesired([]) restores direct traffic and releases the listeners', () =>
    withLogs(async () => {
      const a = agent!;
      a.setDesired([]);
      await a.reconcile();
      expect(a.status()).toEqual([]);
      expect(calls.release.sort()).toEqual(['default/a', 'default/b', 'default/ghost']);
      expect(inPod.size).toBe(0);
      for (const p of ['a', 'b']) expect(natRules(ns(p))).not.toMatch(/WEFT_AMB_/);
      expect(await askAsApp(ns('a'), ip('b'), 8080)).toMatchObject({ listener: 'app', pod: 'b', redirected: false, remote: ip('a') });
      expect(await ask(ns('a'), GATEWAY, 9000, 0)).toMatchObject({ listener: 'node', remote: ip('a') });
      expect(await ask(NODE_NS, ip('a'), 8080, 0)).toMatchObject({ listener: 'app', pod: 'a', remote: GATEWAY });
      await a.stop();
    }));
});

describe.each(['nft', 'legacy'] as const)('redirect rules alone, iptables-%s', (backend) => {
  const NS = `${PREFIX}-rules-${backend}`;
  const save = () => nsh(NS, `iptables-${backend}-save`, ['-t', 'nat']).stdout;
  const save6 = () => nsh(NS, `ip6tables-${backend}-save`, ['-t', 'nat']).stdout;
  const ours = (text: string) => text.split('\n').filter((l) => l.startsWith('-A ') && /WEFT_AMB_/.test(l)).sort();

  beforeAll(() => {
    assertPrerequisites();
    sh('ip', ['netns', 'del', NS], { allowFail: true });
    sh('ip', ['netns', 'add', NS]);
  });
  afterAll(() => {
    sh('ip', ['netns', 'del', NS], { allowFail: true });
    expect(namespacesWith(NS)).toEqual([]);
  });

  it('installs exactly the generated rules (IPv4 and IPv6), idempotently; refuses next to a sidecar; removes only its own', async () => {
    const r = iptablesRedirector({ backend, ipv6: true, spec: { outboundPort: 16001 } });
    const p = nsPath(NS);
    expect(await r.verify(p)).toMatchObject({ kind: 'absent' });
    expect(await r.apply(p)).toEqual({ backend, changed: true, repaired: [] });
    const want = (f: 4 | 6) => {
      const rs = redirectRules(redirectSpec({ outboundPort: 16001 }), f);
      return [...rs.rules, ...rs.jumps].sort();
    };
    expect(ours(save())).toEqual(want(4));
    expect(ours(save6())).toEqual(want(6));
    const first = save().replace(/^#.*\n/gm, '');
    expect(await r.apply(p)).toEqual({ backend, changed: false, repaired: [] });
    expect(save().replace(/^#.*\n/gm, '')).toBe(first);
    expect(await r.verify(p)).toEqual({ backend, kind: 'applied', problems: [] });

    // IPv6 flushed only: drift in that family, named.
    nsh(NS, `ip6tables-${backend}`, ['-t', 'nat', '-F', 'WEFT_AMB_OUTPUT']);
    const v = await r.verify(p);
    expect(v.kind).toBe('drifted');
    expect(v.problems).toEqual(['IPv6: chain WEFT_AMB_OUTPUT is empty (3 rules wanted)']);
    expect((await r.apply(p)).repaired).toEqual(v.problems);
    expect(ours(save6())).toEqual(want(6));

    // A sidecar's capture chains in the pod: refused, nothing changed; remove leaves them alone.
    expect(await r.remove(p)).toEqual([`${backend}/ipv4`, `${backend}/ipv6`]);
    nsh(NS, `iptables-${backend}-restore`, ['--noflush'], { input: '*nat\n:WEFT_OUTPUT - [0:0]\n-A OUTPUT -p tcp -j WEFT_OUTPUT\nCOMMIT\n' });
    const sidecar = save().replace(/^#.*\n/gm, '');
    await expect(r.apply(p)).rejects.toThrow(/chain WEFT_OUTPUT of another traffic capture .* is installed/);
    expect(save().replace(/^#.*\n/gm, '')).toBe(sidecar);
    expect(await r.verify(p)).toMatchObject({ kind: 'conflict' });
    expect(await r.remove(p)).toEqual([]);
    expect(save()).toMatch(/-A OUTPUT -p tcp -j WEFT_OUTPUT/);
  });
});
