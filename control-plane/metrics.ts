// Control-plane metrics for the monitoring port (Prometheus exposition via prom-client), under
// istiod's names where one exists, so Istio's control-plane dashboard and alerts apply: pushes
// and push time per xDS type, convergence time, NACKs by type (and proxies rejecting right
// now), connected proxies, certificates issued.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SHORT_NAME, TypeUrl } from '../api/types.js';

/** Istio's `type` label values: lower-case short names (`cds`, `eds`, `lds`, `rds`, `vhds`, `sds`). */
export function typeLabel(typeUrl: TypeUrl): string {
  return SHORT_NAME[typeUrl].toLowerCase();
}

/** The slice of xDS sync state the metrics read (control-plane/xds-server/sync-status.ts). */
export interface SyncView {
  readonly id: string;
  readonly types: ReadonlyMap<TypeUrl, { readonly sentVersion?: string; readonly ackedVersion?: string; readonly nack?: { readonly version: string } }>;
}

export function createControlPlaneMetrics() {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'weft_control_plane_' });
  let syncSource: () => readonly SyncView[] = () => [];

  // istiod's per-type "proxies currently rejecting" gauges, computed at scrape time.
  const rejecting = (typeUrl: TypeUrl) =>
    new Gauge({
      name: `pilot_xds_${typeLabel(typeUrl)}_reject`,
      help: `Proxies whose latest ${SHORT_NAME[typeUrl]} push they rejected (NACKed) and not yet replaced by one they accepted`,
      registers,
      collect() {
        this.set(syncSource().filter((p) => nacking(p, typeUrl)).length);
      },
    });

  return {
    registry,
    /** Where the per-proxy sync state comes from (the xDS server), once it exists. */
    watchSync(source: () => readonly SyncView[]): void {
      syncSource = source;
    },
    pushes: new Counter({ name: 'pilot_xds_pushes', help: 'xDS pushes: a proxy was given a new version of one resource type', labelNames: ['type'], registers }),
    pushTime: new Histogram({
      name: 'pilot_xds_push_time',
      help: 'Seconds to translate the model for one proxy and build its snapshot',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    }),
    convergence: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'Seconds from a config change until every connected proxy has acknowledged the config it produced',
      buckets: [0.1, 0.5, 1, 3, 5, 10, 20, 30],
      registers,
    }),
    rejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'Config pushes rejected by proxies (NACKs), by xDS type', labelNames: ['type'], registers }),
    rejectingProxies: [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.VirtualHost].map(rejecting),
    connected: new Gauge({ name: 'pilot_xds', help: 'Connected xDS proxies', registers }),
    configProblems: new Gauge({ name: 'weft_config_problems', help: 'Problems in the watched configuration', registers }),
    inconsistent: new Counter({ name: 'weft_snapshot_inconsistent_total', help: 'Snapshots refused by the consistency check', registers }),
    certsIssued: new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'Certificates issued', registers }),
  };
}

export type ControlPlaneMetrics = ReturnType<typeof createControlPlaneMetrics>;

function nacking(p: SyncView, typeUrl: TypeUrl): boolean {
  const t = p.types.get(typeUrl);
  return t?.nack !== undefined && t.nack.version === t.sentVersion;
}

/**
 * Convergence: from a config change until every proxy that was connected when its snapshots
 * were built has ACKed the versions they carry (or moved past them, or left). One change is
 * tracked at a time; a change arriving meanwhile extends it (the clock keeps the first start).
 * Polls the sync state only while a change is pending.
 */
export class ConvergenceTracker {
  private since: number | undefined;
  private expected = new Map<string, Map<TypeUrl, string>>();
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(
    private readonly observe: (seconds: number) => void,
    private readonly sync: () => readonly SyncView[],
    private readonly opts: { pollMs?: number; timeoutMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return this.opts.now ? this.opts.now() : performance.now();
  }

  /** The config changed (the model was rebuilt from a source event). */
  changed(): void {
    this.since ??= this.now();
  }

  /**
   * The snapshots for the pending change are published: `expected` holds, per proxy, the
   * version of each type it must ACK. Called after every rebuild; ignored when no change is
   * pending (a sidecar came or went).
   */
  published(expected: Map<string, Map<TypeUrl, string>>): void {
    if (this.since === undefined) return;
    this.expected = expected;
    this.deadline = this.now() + (this.opts.timeoutMs ?? 60_000);
    if (!this.timer) this.poll();
  }

  private poll(): void {
    this.timer = undefined;
    if (this.since === undefined) return;
    const byId = new Map(this.sync().map((p) => [p.id, p]));
    let done = true;
    for (const [id, types] of this.expected) {
      const state = byId.get(id);
      if (!state) continue; // disconnected: nothing left to wait for
      for (const [typeUrl, version] of types) {
        const t = state.types.get(typeUrl);
        // A type the proxy has not subscribed to (yet) is not waited for.
        if (!t || t.sentVersion === undefined) continue;
        const settled = t.ackedVersion === version || t.sentVersion !== version;
        if (!settled) done = false;
      }
    }
    const now = this.now();
    if (done) {
      this.observe((now - this.since) / 1000);
      this.since = undefined;
      this.expected = new Map();
      return;
    }
    if (now > this.deadline) {
      // Some proxy never ACKed (it NACKed, or hangs): not a convergence, and no longer pending.
      this.since = undefined;
      this.expected = new Map();
      return;
    }
    this.timer = setTimeout(() => this.poll(), this.opts.pollMs ?? 25);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.since = undefined;
  }
}

/** The parts of a snapshot the push counter reads (control-plane/snapshot/snapshot.ts). */
export interface VersionedTypes {
  readonly types: ReadonlyMap<TypeUrl, { readonly version: string }>;
}

/**
 * Counts a push per type whose version differs from the proxy's previous snapshot (what the
 * xDS server will send), and returns every type's version (what the proxy must ACK).
 */
export function countPushes(pushes: ControlPlaneMetrics['pushes'], snapshot: VersionedTypes, previous: VersionedTypes | undefined): Map<TypeUrl, string> {
  const versions = new Map<TypeUrl, string>();
  for (const [typeUrl, t] of snapshot.types) {
    versions.set(typeUrl, t.version);
    if (previous?.types.get(typeUrl)?.version !== t.version) pushes.inc({ type: typeLabel(typeUrl) });
  }
  return versions;
}
