// Leader election with a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it:
// acquire the Lease when it is free or its holder stopped renewing (judged on our own clock,
// never on the holder's timestamps), renew it every retry period, and give leadership up when
// renewing has failed for the renew deadline. Writes use resourceVersion, so two replicas can
// never both win. Only the leader writes to the cluster (status, ConfigMaps, webhook config).
import crypto from 'node:crypto';
import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { delay } from '../../../core/backoff.js';
import type { Logger } from '../../../core/log.js';
import { Watch } from '../../../core/watch.js';
import { apiErrorMessage, isConflict, isNotFound } from './client.js';

export interface LeaderElectionOptions {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly name: string;
  /** Unique per replica (pod name plus a random suffix). */
  readonly identity: string;
  readonly leaseDurationSeconds?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  readonly log: Logger;
}

/** RFC 3339 with microseconds: the MicroTime format the API expects in Lease times. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function replicaIdentity(podName = process.env.POD_NAME ?? process.env.HOSTNAME ?? 'weft'): string {
  return `${podName}_${crypto.randomBytes(4).toString('hex')}`;
}

export class LeaderElector {
  /** True while this replica holds the Lease. */
  readonly leading = new Watch<boolean>(false);
  private readonly api: CoordinationV1Api;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  /** What we last saw of the Lease, and when (our clock), to judge expiry without trusting theirs. */
  private observed: { holder: string; renewTime: string; resourceVersion: string; at: number } | undefined;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(private readonly opts: LeaderElectionOptions) {
    this.api = opts.kc.makeApiClient(CoordinationV1Api);
    this.leaseMs = (opts.leaseDurationSeconds ?? 15) * 1000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  get identity(): string {
    return this.opts.identity;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops campaigning and, if leading, releases the Lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    if (this.leading.get()) {
      this.leading.set(false);
      await this.release().catch((err: unknown) => this.opts.log.warn('could not release the lease', { error: apiErrorMessage(err) }));
    }
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    let lastRenew = 0;
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.opts.log.warn('lease update failed', { lease: `${this.opts.namespace}/${this.opts.name}`, error: apiErrorMessage(err) });
      }
      if (signal.aborted) break;
      const now = Date.now();
      if (ok) {
        lastRenew = now;
        if (!this.leading.get()) {
          this.opts.log.info('became the leader', { lease: `${this.opts.namespace}/${this.opts.name}`, identity: this.opts.identity });
          this.leading.set(true);
        }
      } else if (this.leading.get() && now - lastRenew > this.renewDeadlineMs) {
        this.opts.log.warn('lost leadership: could not renew the lease in time', { identity: this.opts.identity });
        this.leading.set(false);
      }
      await delay(this.retryMs, signal);
    }
  }

  /** One attempt; true when we hold the Lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.opts;
    const now = Date.now();
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const body = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace },
        spec: this.specFor(now, now, 0),
      } as unknown as V1Lease;
      try {
        await this.api.createNamespacedLease({ namespace, body });
        return true;
      } catch (createErr) {
        if (isConflict(createErr)) return false; // another replica created it first
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewTime = String((spec.renewTime as unknown) ?? '');
    const rv = lease.metadata?.resourceVersion ?? '';
    if (!this.observed || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, resourceVersion: rv, at: now };
    }
    const duration = (spec.leaseDurationSeconds ?? 15) * 1000;
    const heldByOther = holder !== '' && holder !== identity && now < this.observed.at + duration;
    if (heldByOther) return false;
    const acquiring = holder !== identity;
    const acquireTime = acquiring ? now : Date.parse(String((spec.acquireTime as unknown) ?? '')) || now;
    const transitions = (spec.leaseTransitions ?? 0) + (acquiring ? 1 : 0);
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { ...lease.metadata, resourceVersion: rv },
      spec: this.specFor(acquireTime, now, transitions),
    } as unknown as V1Lease;
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body });
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote it between our read and write
      throw err;
    }
  }

  private specFor(acquireMs: number, renewMs: number, transitions: number): Record<string, unknown> {
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.round(this.leaseMs / 1000),
      // MicroTime strings: client-node passes them through unchanged.
      acquireTime: microTime(acquireMs),
      renewTime: microTime(renewMs),
      leaseTransitions: transitions,
    };
  }

  private async release(): Promise<void> {
    const { namespace, name } = this.opts;
    const lease = await this.api.readNamespacedLease({ name, namespace });
    if (lease.spec?.holderIdentity !== this.opts.identity) return;
    const body = {
      ...lease,
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 },
    } as unknown as V1Lease;
    await this.api.replaceNamespacedLease({ name, namespace, body });
  }
}
