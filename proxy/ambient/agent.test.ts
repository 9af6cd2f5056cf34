// Tests of the node agent's reconciliation with fakes for namespaces, rules and listeners: the
// states a pod goes through, repairs counted with what was wrong, errors kept per pod and
// logged once, un-enrollment order, re-created sandboxes, and passes that never overlap.
import { describe, expect, it } from 'vitest';
import type { Fields, Logger } from '../../core/log.js';
import { eventually } from '../../test/support/eventually.js';
import { NodeAgent, type EnrolledPod, type NetnsLocator, type NodeAgentOptions, type PodListeners } from './agent.js';
import type { NetnsRef } from './netns.js';
import type { HostProbes, RedirectCheck, Redirector, Verification } from './redirect.js';

const pod = (name: string, ip: string): EnrolledPod => ({ key: `default/${name}`, ip, identity: `spiffe://cluster.local/ns/default/sa/${name}` });
const A = pod('a', '10.0.0.2');
const B = pod('b', '10.0.0.3');

function memoryLogger(lines: string[]): Logger {
  const emit = (level: string) => (msg: string, fields?: Fields) => lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error'), child: () => memoryLogger(lines) };
}

/** Everything the agent touches, as plain data, with a journal of what it did in order. */
function world() {
  const journal: string[] = [];
  const namespaces = new Map<string, NetnsRef>(); // ip → namespace
  const ids = new Map<string, string>(); // path → id (absent: gone)
  const rules = new Map<string, { kind: RedirectCheck['kind']; problems: string[] }>();
  const failing = { apply: new Set<string>(), ensure: new Set<string>(), remove: new Set<string>() };
  let gate: Promise<void> | undefined;
  let active = 0;
  let maxActive = 0;

  const addPod = (p: EnrolledPod, path = `/run/netns/${p.key.split('/')[1]}`, id = `nsfs:${path}`) => {
    namespaces.set(p.ip, { path, id });
    ids.set(path, id);
  };
  const netns: NetnsLocator = {
    find: async (ip) => namespaces.get(ip),
    identify: async (path) => ids.get(path),
  };
  const redirect: Redirector = {
    async verify(path): Promise<Verification> {
      active++;
      maxActive = Math.max(maxActive, active);
      try {
        if (gate) await gate;
        journal.push(`verify ${path}`);
        const r = rules.get(path) ?? { kind: 'absent', problems: [] };
        return { backend: 'nft', kind: r.kind, problems: r.problems };
      } finally {
        active--;
      }
    },
    async apply(path) {
      journal.push(`apply ${path}`);
      if (failing.apply.has(path)) throw new Error(`iptables-nft-restore failed in ${path}`);
      const before = rules.get(path);
      rules.set(path, { kind: 'applied', problems: [] });
      return { backend: 'nft', changed: before?.kind !== 'applied', repaired: before?.kind === 'drifted' ? before.problems : [] };
    },
    forget() {},
    async remove(path) {
      journal.push(`remove ${path}`);
      if (failing.remove.has(path)) throw new Error(`cannot remove in ${path}`);
      rules.delete(path);
      return ['nft/ipv4'];
    },
  };
  const listeners: PodListeners = {
    async ensure(p, path) {
      journal.push(`ensure ${p.key} ${path}`);
      if (failing.ensure.has(p.key)) throw new Error('port 15001 is taken');
    },
    async release(key) {
      journal.push(`release ${key}`);
    },
  };
  const logs: string[] = [];
  const repairs: string[] = [];
  const agent = (intervalMs = 60_000, concurrency = 4, extra: Partial<NodeAgentOptions> = {}) =>
    new NodeAgent({ listeners, redirect, netns, intervalMs, concurrency, log: memoryLogger(logs), onRepair: (p, what) => repairs.push(`${p}: ${what}`), ...extra });
  return {
    journal,
    namespaces,
    ids,
    rules,
    failing,
    logs,
    repairs,
    addPod,
    agent,
    hold() {
      let open!: () => void;
      gate = new Promise<void>((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
    maxActive: () => maxActive,
  };
}

describe('NodeAgent', () => {
  it('enrolls a pod: its namespace found, listeners first, then its rules (a first install is no repair)', async () => {
    const w = world();
    w.addPod(A);
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    // setDesired's own pass, then the one reconcile() asked for (which finds nothing to do).
    expect(w.journal).toEqual(['ensure default/a /run/netns/a', 'verify /run/netns/a', 'apply /run/netns/a', 'ensure default/a /run/netns/a', 'verify /run/netns/a']);
    expect(agent.status()).toEqual([{ key: 'default/a', ip: '10.0.0.2', state: 'enrolled', netns: '/run/netns/a', repairs: 0, lastVerified: expect.any(String) }]);
    expect(agent.metrics()).toEqual({ repairsTotal: 0, pods: { enrolled: 1, pending: 0, error: 0, removing: 0 } });
    expect(w.repairs).toEqual([]);
  });

  it("keeps the node's probe rules to the pods whose rules are in; a failure is logged once and retried", async () => {
    const w = world();
    w.addPod(A);
    w.addPod(B);
    const synced: string[][] = [];
    let failing = false;
    const hostProbes: HostProbes = {
      async sync(ips) {
        if (failing) throw new Error('iptables-legacy-restore --noflush failed: Permission denied');
        synced.push([...ips].sort());
        return true;
      },
    };
    w.failing.apply.add('/run/netns/b'); // b's rules cannot go in: no probe rule for it either
    const agent = w.agent(60_000, 4, { hostProbes });
    agent.setDesired([A, B]);
    await agent.reconcile();
    expect(synced.at(-1)).toEqual(['10.0.0.2']);
    w.failing.apply.clear();
    await agent.reconcile();
    expect(synced.at(-1)).toEqual(['10.0.0.2', '10.0.0.3']);
    failing = true;
    await agent.reconcile();
    await agent.reconcile();
    expect(w.logs.filter((l) => l.includes('cannot keep the node rules for kubelet probes'))).toHaveLength(1);
    failing = false;
    agent.setDesired([B]);
    await agent.reconcile();
    expect(synced.at(-1)).toEqual(['10.0.0.3']);
    expect(w.logs.some((l) => l.includes('node rules for kubelet probes work again'))).toBe(true);
  });

  it('keeps a pod pending until its namespace appears, then enrolls it', async () => {
    const w = world();
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'pending', reason: expect.stringMatching(/no network namespace on this node holds 10.0.0.2 yet/) });
    expect(w.journal).toEqual([]);
    w.addPod(A);
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'enrolled' });
    expect(agent.status()[0]!.reason).toBeUndefined();
  });

  it('repairs drift, counting it with what was wrong', async () => {
    const w = world();
    w.addPod(A);
    w.addPod(B);
    const agent = w.agent();
    agent.setDesired([A, B]);
    await agent.reconcile();
    w.rules.set('/run/netns/a', { kind: 'drifted', problems: ['jump "-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT" is missing'] });
    await agent.reconcile();
    expect(w.repairs).toEqual(['default/a: jump "-A OUTPUT -p tcp -j WEFT_AMB_OUTPUT" is missing']);
    const [a, b] = agent.status();
    expect(a).toMatchObject({ state: 'enrolled', repairs: 1, lastRepair: expect.stringMatching(/Z: jump .* is missing$/) });
    expect(b).toMatchObject({ state: 'enrolled', repairs: 0 });
    // Rules deleted outright after we installed them: drift too.
    w.rules.delete('/run/netns/b');
    await agent.reconcile();
    expect(w.repairs[1]).toBe('default/b: redirect rules are gone');
    expect(agent.metrics().repairsTotal).toBe(2);
    expect(w.logs.filter((l) => l.startsWith('warn repaired'))).toHaveLength(2);
  });

  it('keeps errors per pod, logs each once, and recovers', async () => {
    const w = world();
    w.addPod(A);
    w.addPod(B);
    w.failing.apply.add('/run/netns/a');
    const agent = w.agent();
    agent.setDesired([A, B]);
    for (let i = 0; i < 3; i++) await agent.reconcile();
    expect(agent.status().map((s) => [s.key, s.state, s.reason])).toEqual([
      ['default/a', 'error', 'iptables-nft-restore failed in /run/netns/a'],
      ['default/b', 'enrolled', undefined],
    ]);
    expect(w.logs.filter((l) => l.includes('pod not enrolled'))).toHaveLength(1);
    expect(w.logs.filter((l) => l.includes('pod enrolled'))).toHaveLength(1);
    w.failing.apply.clear();
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'enrolled', repairs: 0 });
    expect(w.logs.filter((l) => l.includes('pod enrolled'))).toHaveLength(2);
  });

  it('does not redirect a pod whose listeners cannot open', async () => {
    const w = world();
    w.addPod(A);
    w.failing.ensure.add('default/a');
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'error', reason: 'port 15001 is taken' });
    expect(w.journal.filter((j) => j.startsWith('apply'))).toEqual([]);
  });

  it('refuses a pod with another capture installed', async () => {
    const w = world();
    w.addPod(A);
    w.rules.set('/run/netns/a', { kind: 'conflict', problems: ['chain WEFT_OUTPUT of another traffic capture is installed'] });
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'error', reason: 'cannot redirect: chain WEFT_OUTPUT of another traffic capture is installed' });
    expect(w.journal.filter((j) => j.startsWith('apply'))).toEqual([]);
  });

  it('un-enrolls: rules out first, then listeners; a failed removal stays "removing" and is retried', async () => {
    const w = world();
    w.addPod(A);
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    w.journal.length = 0;
    w.failing.remove.add('/run/netns/a');
    agent.setDesired([]);
    await agent.reconcile();
    expect(agent.status()).toEqual([expect.objectContaining({ key: 'default/a', state: 'removing', reason: 'cannot remove in /run/netns/a' })]);
    expect(agent.metrics().pods.removing).toBe(1);
    w.failing.remove.clear();
    w.journal.length = 0;
    await agent.reconcile();
    expect(w.journal).toEqual(['remove /run/netns/a', 'release default/a']);
    expect(agent.status()).toEqual([]);
  });

  it("never removes rules from a namespace that is not the pod's any more", async () => {
    const w = world();
    w.addPod(A);
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    w.ids.set('/run/netns/a', 'nsfs:someone-else'); // the path now names another namespace
    w.journal.length = 0;
    agent.setDesired([]);
    await agent.reconcile();
    expect(w.journal).toEqual(['release default/a']);
  });

  it('follows a re-created sandbox: old listeners released, new ones, rules installed there', async () => {
    const w = world();
    w.addPod(A);
    const agent = w.agent();
    agent.setDesired([A]);
    await agent.reconcile();
    w.ids.delete('/run/netns/a');
    w.addPod(A, '/run/netns/a2');
    w.journal.length = 0;
    await agent.reconcile();
    expect(w.journal).toEqual(['release default/a', 'ensure default/a /run/netns/a2', 'verify /run/netns/a2', 'apply /run/netns/a2']);
    expect(agent.status()[0]).toMatchObject({ state: 'enrolled', netns: '/run/netns/a2', repairs: 0 });
    // The pod's namespace vanishes: pending, and its listeners go.
    w.namespaces.clear();
    w.journal.length = 0;
    await agent.reconcile();
    expect(w.journal).toEqual(['release default/a']);
    expect(agent.status()[0]).toMatchObject({ state: 'pending' });
  });

  it('never overlaps passes; changes during a pass schedule one more', async () => {
    const w = world();
    w.addPod(A);
    w.addPod(B);
    const agent = w.agent(60_000, 1);
    const release = w.hold();
    agent.setDesired([A]);
    const first = agent.reconcile();
    agent.setDesired([A, B]);
    const second = agent.reconcile();
    expect(second).toBe(first);
    release();
    await first;
    expect(w.maxActive()).toBe(1);
    expect(agent.status().map((s) => [s.key, s.state])).toEqual([
      ['default/a', 'enrolled'],
      ['default/b', 'enrolled'],
    ]);
    // Two passes: the one running and one for all the changes made meanwhile.
    expect(w.journal.filter((j) => j === 'verify /run/netns/a')).toHaveLength(2);
  });

  it('reconciles on its interval once started; stop leaves rules and listeners in place', async () => {
    const w = world();
    w.addPod(A);
    const agent = w.agent(20);
    agent.setDesired([A]);
    agent.start();
    await eventually(() => expect(w.journal.filter((j) => j.startsWith('verify')).length).toBeGreaterThanOrEqual(3), { timeoutMs: 5_000 });
    await agent.stop();
    const n = w.journal.length;
    agent.setDesired([]);
    await agent.reconcile();
    await new Promise((r) => setTimeout(r, 60));
    expect(w.journal.length).toBe(n);
    expect(w.journal.filter((j) => j.startsWith('remove') || j.startsWith('release'))).toEqual([]);
  });

  it('reports a bad IP as that pod\'s error', async () => {
    const w = world();
    const agent = w.agent();
    agent.setDesired([pod('x', 'not-an-ip')]);
    await agent.reconcile();
    expect(agent.status()[0]).toMatchObject({ state: 'error', reason: '"not-an-ip" is not an IP address' });
  });
});
