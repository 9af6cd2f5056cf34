// The node agent (inside the node proxy): keeps every pod enrolled on this node redirected to
// the node proxy — finds the pod's network namespace, verifies its redirect rules (repairing
// and counting drift), asks the node proxy for the pod's listeners — and returns pods that left
// to direct traffic. One reconcile pass at a time; errors stay with their pod.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { sharedNetnsFinder, type NetnsRef } from './netns.js';
import { iptablesRedirector, type HostProbes, type Redirector } from './redirect.js';

export interface EnrolledPod {
  /** `namespace/name`. */
  readonly key: string;
  readonly ip: string;
  /** The pod's SPIFFE ID. */
  readonly identity: string;
}

/** The pod's in-pod listeners; provided by the node proxy. Called by the agent only, never for
 *  two pods' passes at once with the same key. */
export interface PodListeners {
  /** Opens (or checks) the pod's 15001/15006/15008 listeners in its netns; idempotent. Called
   *  every pass for every desired pod whose namespace is known; a new `nsPath` means the pod's
   *  sandbox was re-created and the old listeners are useless. */
  ensure(pod: EnrolledPod, nsPath: string): Promise<void>;
  /** Closes them (the pod left the node, was un-enrolled, or lost its namespace). */
  release(podKey: string): Promise<void>;
}

export type PodState = 'enrolled' | 'pending' | 'error' | 'removing';
export const POD_STATES: readonly PodState[] = ['enrolled', 'pending', 'error', 'removing'];

export interface PodStatus {
  readonly key: string;
  readonly ip: string;
  readonly state: PodState;
  readonly netns?: string;
  /** Why the pod is pending, in error, or still being removed. */
  readonly reason?: string;
  /** When its rules and listeners were last found (or made) right (ISO 8601). */
  readonly lastVerified?: string;
  /** Drift found and repaired since the agent started. */
  readonly repairs: number;
  /** What the last repair fixed, and when. */
  readonly lastRepair?: string;
}

/** Where pods' namespaces are found (injectable for tests). */
export interface NetnsLocator {
  find(ip: string): Promise<NetnsRef | undefined>;
  /** The identity of the namespace at `nsPath` now; undefined when it is gone. */
  identify(nsPath: string): Promise<string | undefined>;
}

export interface NodeAgentOptions {
  readonly listeners: PodListeners;
  /** Default: iptables in the pod's namespace with the standard ports. */
  readonly redirect?: Redirector;
  /** The node's rules that let the kubelet's probes reach redirected pods (redirect.ts,
   *  PROBE_SOURCE); kept to the pods whose rules are in after every pass. Default: none. */
  readonly hostProbes?: HostProbes;
  readonly netns?: NetnsLocator;
  /** Between passes; default 5000. */
  readonly intervalMs?: number;
  /** Pods worked on at once within a pass; default 4. */
  readonly concurrency?: number;
  readonly log: Logger;
  /** Told of every repair (pod key, what was wrong). */
  readonly onRepair?: (pod: string, what: string) => void;
  /**
   * Where the agent remembers which pods' namespaces hold its rules, so that after a restart it
   * can take the rules out of a pod that was un-enrolled (or left the node) while it was down;
   * without it such a pod would stay redirected to listeners nobody opens. Default: none.
   */
  readonly stateFile?: string;
}

/** What the state file holds per pod: enough to find its rules again, and to be sure it is the
 *  same namespace (its identity), not a new one that reuses the path or the IP. */
interface RememberedPod {
  readonly pod: EnrolledPod;
  readonly netns: NetnsRef;
}

/** Prometheus-friendly numbers (the node proxy registers them). */
export interface AgentMetrics {
  readonly repairsTotal: number;
  readonly pods: Readonly<Record<PodState, number>>;
}

interface PodRecord {
  pod: EnrolledPod;
  state: PodState;
  reason?: string;
  netns?: NetnsRef;
  lastVerified?: string;
  repairs: number;
  lastRepair?: string;
  /** Our rules went into `netns`: finding them absent later is drift, not a first install. */
  installed: boolean;
  /** The namespace identity the listeners were opened in. */
  listeningIn?: string;
  /** State and reason last logged, so that a pod stuck in one state logs once. */
  logged?: string;
}

export class NodeAgent {
  private readonly listeners: PodListeners;
  private readonly redirect: Redirector;
  private readonly netns: NetnsLocator;
  private readonly log: Logger;
  private desired = new Map<string, EnrolledPod>();
  private readonly pods = new Map<string, PodRecord>();
  private repairs = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private pass: Promise<void> | undefined;
  private dirty = false;
  /** No pass runs before the first setDesired: until then "not desired" means "not known yet". */
  private haveDesired = false;
  private saved = '';
  /** The last failure of the node's probe rules, logged once until it changes or clears. */
  private hostProbesError: string | undefined;

  constructor(private readonly opts: NodeAgentOptions) {
    this.listeners = opts.listeners;
    this.redirect = opts.redirect ?? iptablesRedirector();
    this.netns = opts.netns ?? sharedNetnsFinder();
    this.log = opts.log;
    for (const r of this.restore()) {
      this.pods.set(r.pod.key, { pod: r.pod, state: 'pending', reason: 'enrolled before a restart; waiting for the config', repairs: 0, installed: true, netns: r.netns });
    }
  }

  /** The pods that should be enrolled on this node (from xDS, once the config lists them);
   *  reconciles at once. */
  setDesired(pods: readonly EnrolledPod[]): void {
    this.desired = new Map(pods.map((p) => [p.key, p]));
    this.haveDesired = true;
    if (!this.stopped) this.reconcile().catch((err) => this.log.error('reconcile pass failed', { error: errorMessage(err) }));
  }

  /** Runs a pass now and then every `intervalMs`. */
  start(): void {
    if (this.timer || this.stopped) return;
    const pass = () => this.reconcile().catch((err) => this.log.error('reconcile pass failed', { error: errorMessage(err) }));
    this.timer = setInterval(pass, this.opts.intervalMs ?? 5000);
    this.timer.unref();
    void pass();
  }

  /** Stops reconciling and waits for a running pass. Rules and listeners stay as they are: while
   *  the node proxy restarts, enrolled pods fail closed rather than leak out unencrypted. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await this.pass;
  }

  /**
   * Runs a reconcile pass that starts after this call, and resolves when it is done. Passes
   * never overlap: a call during a pass schedules one more after it (calls coalesce). After
   * stop(), does nothing.
   */
  reconcile(): Promise<void> {
    if (this.stopped) return this.pass ?? Promise.resolve();
    this.dirty = true;
    this.pass ??= this.loop();
    return this.pass;
  }

  status(): PodStatus[] {
    return [...this.pods.values()]
      .map((r) => ({
        key: r.pod.key,
        ip: r.pod.ip,
        state: r.state,
        repairs: r.repairs,
        ...(r.netns ? { netns: r.netns.path } : {}),
        ...(r.reason !== undefined ? { reason: r.reason } : {}),
        ...(r.lastVerified ? { lastVerified: r.lastVerified } : {}),
        ...(r.lastRepair ? { lastRepair: r.lastRepair } : {}),
      }))
      .sort((a, b) => a.key.localeCompare(b.key));
  }

  metrics(): AgentMetrics {
    const pods = Object.fromEntries(POD_STATES.map((s) => [s, 0])) as Record<PodState, number>;
    for (const r of this.pods.values()) pods[r.state]++;
    return { repairsTotal: this.repairs, pods };
  }

  private async loop(): Promise<void> {
    try {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.runPass();
      }
    } finally {
      // Synchronously after the last check of `dirty`: a reconcile() from here on starts a new loop.
      this.pass = undefined;
    }
  }

  private async runPass(): Promise<void> {
    if (!this.haveDesired) return;
    const desired = this.desired;
    const work: Array<() => Promise<void>> = [];
    for (const [key, rec] of this.pods) {
      if (desired.has(key)) continue;
      work.push(() => this.removePod(rec));
    }
    for (const pod of desired.values()) {
      let rec = this.pods.get(pod.key);
      if (!rec) this.pods.set(pod.key, (rec = { pod, state: 'pending', reason: 'not reconciled yet', repairs: 0, installed: false }));
      rec.pod = pod;
      const r = rec;
      work.push(() => this.syncPod(r));
    }
    await limit(work, this.opts.concurrency ?? 4);
    await this.syncHostProbes();
    await this.persist();
  }

  /** The node's probe rules follow the pods whose redirect rules are in. */
  private async syncHostProbes(): Promise<void> {
    const probes = this.opts.hostProbes;
    if (!probes) return;
    const ips = [...this.pods.values()].filter((r) => r.installed).map((r) => r.pod.ip);
    try {
      if (await probes.sync(ips)) this.log.info('node rules for kubelet probes updated', { pods: ips.length });
      if (this.hostProbesError !== undefined) this.log.info('node rules for kubelet probes work again');
      this.hostProbesError = undefined;
    } catch (err) {
      const message = errorMessage(err);
      if (message !== this.hostProbesError) this.log.warn('cannot keep the node rules for kubelet probes: probes to enrolled pods under STRICT mTLS will fail', { error: message });
      this.hostProbesError = message;
    }
  }

  private restore(): RememberedPod[] {
    const file = this.opts.stateFile;
    if (!file || !existsSync(file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as RememberedPod[];
      if (!Array.isArray(parsed)) throw new Error('not a list');
      return parsed.filter((r) => typeof r?.pod?.key === 'string' && typeof r.netns?.path === 'string' && typeof r.netns?.id === 'string');
    } catch (err) {
      this.log.warn('ignoring an unreadable agent state file', { file, error: errorMessage(err) });
      return [];
    }
  }

  /** Writes which namespaces hold our rules (atomically, only when it changed). */
  private async persist(): Promise<void> {
    const file = this.opts.stateFile;
    if (!file) return;
    const remembered: RememberedPod[] = [...this.pods.values()]
      .filter((r) => r.installed && r.netns)
      .map((r) => ({ pod: r.pod, netns: r.netns! }))
      .sort((a, b) => a.pod.key.localeCompare(b.pod.key));
    const text = JSON.stringify(remembered);
    if (text === this.saved) return;
    try {
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(`${file}.tmp`, text, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
      this.saved = text;
    } catch (err) {
      this.log.warn('cannot write the agent state file', { file, error: errorMessage(err) });
    }
  }

  /** One desired pod: namespace, then listeners, then rules (so that redirected traffic always
   *  finds a listener). */
  private async syncPod(rec: PodRecord): Promise<void> {
    const { pod } = rec;
    try {
      if (!isIP(pod.ip)) throw new Error(`${JSON.stringify(pod.ip)} is not an IP address`);
      const ns = await this.netns.find(pod.ip);
      if (!ns) {
        await this.forgetNamespace(rec);
        this.set(rec, 'pending', `no network namespace on this node holds ${pod.ip} yet (the pod is not running here, or its sandbox is being created)`);
        return;
      }
      if (rec.netns && rec.netns.id !== ns.id) {
        this.log.info('the pod has a new network namespace (sandbox re-created)', { pod: pod.key, from: rec.netns.path, to: ns.path });
        const old = rec.netns;
        if ((await this.netns.identify(old.path)) === old.id) await this.redirect.remove(old.path);
        await this.forgetNamespace(rec);
      }
      rec.netns = ns;

      await this.listeners.ensure(pod, ns.path);
      rec.listeningIn = ns.id;

      const v = await this.redirect.verify(ns.path);
      if (v.kind === 'conflict') throw new Error(`cannot redirect: ${v.problems.join('; ')}`);
      if (v.kind !== 'applied') {
        // Rules of ours that changed are drift whenever found; rules that are gone are drift
        // only where this agent put them (otherwise it is the pod's first install).
        const drift = v.kind === 'drifted' || rec.installed;
        const report = await this.redirect.apply(ns.path);
        if (drift && report.changed) this.recordRepair(rec, report.repaired.length > 0 ? report.repaired.join('; ') : v.problems.join('; ') || 'redirect rules are gone');
        else if (report.changed) this.log.info('redirect rules installed', { pod: pod.key, netns: ns.path, backend: report.backend });
      }
      rec.installed = true;
      rec.lastVerified = new Date().toISOString();
      this.set(rec, 'enrolled', undefined);
    } catch (err) {
      this.set(rec, 'error', errorMessage(err));
    }
  }

  /** A pod no longer desired: rules out first (traffic goes direct), then its listeners. */
  private async removePod(rec: PodRecord): Promise<void> {
    this.set(rec, 'removing', rec.state === 'removing' ? rec.reason : undefined);
    try {
      // Only the namespace the rules went into, if it still exists: its IP may belong to
      // another pod by now.
      if (rec.netns && (await this.netns.identify(rec.netns.path)) === rec.netns.id) {
        await this.redirect.remove(rec.netns.path);
      }
      if (rec.netns) this.redirect.forget(rec.netns.path);
      await this.listeners.release(rec.pod.key);
      this.pods.delete(rec.pod.key);
      this.log.info('pod un-enrolled: its traffic goes direct again', { pod: rec.pod.key });
    } catch (err) {
      this.set(rec, 'removing', errorMessage(err));
    }
  }

  /** The pod's namespace is gone or replaced: its rules went with it; close its listeners. */
  private async forgetNamespace(rec: PodRecord): Promise<void> {
    if (rec.listeningIn !== undefined) {
      await this.listeners.release(rec.pod.key);
      rec.listeningIn = undefined;
    }
    if (rec.netns) this.redirect.forget(rec.netns.path);
    rec.netns = undefined;
    rec.installed = false;
  }

  private recordRepair(rec: PodRecord, what: string): void {
    rec.repairs++;
    this.repairs++;
    rec.lastRepair = `${new Date().toISOString()}: ${what}`;
    this.log.warn('repaired the pod\'s redirect rules', { pod: rec.pod.key, netns: rec.netns?.path, what });
    try {
      this.opts.onRepair?.(rec.pod.key, what);
    } catch (err) {
      this.log.error('onRepair callback failed', { error: errorMessage(err) });
    }
  }

  /** Sets a pod's state; logs only when state or reason changed. */
  private set(rec: PodRecord, state: PodState, reason: string | undefined): void {
    rec.state = state;
    if (reason === undefined) delete rec.reason;
    else rec.reason = reason;
    const now = `${state}|${reason ?? ''}`;
    if (rec.logged === now) return;
    rec.logged = now;
    const fields = { pod: rec.pod.key, ip: rec.pod.ip, ...(rec.netns ? { netns: rec.netns.path } : {}), ...(reason ? { reason } : {}) };
    if (state === 'error') this.log.warn('pod not enrolled', fields);
    else if (state === 'enrolled') this.log.info('pod enrolled', fields);
    else if (state === 'pending') this.log.info('pod pending', fields);
    else if (reason) this.log.warn('pod removal failed, will retry', fields);
  }
}

/** Runs the tasks with at most `n` at once. Tasks do not throw (each catches its own). */
async function limit(tasks: ReadonlyArray<() => Promise<void>>, n: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) await tasks[next++]!();
  };
  await Promise.all(Array.from({ length: Math.min(n, tasks.length) }, worker));
}
