// Rebuilding the proxies' snapshots when the model or the connected proxies change. What does
// not depend on the proxy is translated once per rebuild, and kept as it was when nothing in it
// changed; a proxy's own part is rebuilt only when its inputs changed; and a rebuild for every
// proxy runs in slices that yield to the event loop, so that ACKs are read, pushes go out and
// keepalives are answered while a thousand proxies are rebuilt.
import { setImmediate as yieldToIo } from 'node:timers/promises';
import type { Plain } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import type { Model } from '../model/index.js';
import { translateProxy, type ProxyNode, type SharedTranslation } from '../translate/index.js';
import type { OutboundRoutes } from '../translate/route-config.js';
import type { MemorySnapshotCache } from './cache.js';
import { buildSnapshot, type Snapshot } from './snapshot.js';

/** Work between two yields to the event loop during a rebuild of every proxy. */
const SLICE_MS = 10;

export interface RebuilderOptions {
  readonly cache: MemorySnapshotCache;
  /** Wait after a change of the connected proxies before rebuilding (they come in bursts). */
  readonly debounceMs: number;
  /** Work between two yields to the event loop in a rebuild of every proxy (default 10 ms). */
  readonly sliceMs?: number;
  /** The current model. */
  model(): Model;
  /** The shared translation of the current model and connected sidecars (translateShared). */
  translateShared(): SharedTranslation;
  /** Ids of every connected proxy. */
  proxies(): Iterable<string>;
  /** What to build for a connected proxy; undefined once it left. */
  proxy(id: string): ProxyNode | undefined;
  /** The ROOTCA secret every proxy is sent. */
  rootSecret(): Plain;
  /** A new snapshot is published for `id`; returns the versions of each type it must ACK. */
  published(id: string, snapshot: Snapshot, previous: Snapshot | undefined, buildMs: number): Map<TypeUrl, string>;
  /**
   * A snapshot could not be built (or was inconsistent): the proxy keeps its last good one.
   * `id` is undefined when the shared translation failed: every proxy keeps its last good one.
   */
  failed(id: string | undefined, err: unknown): void;
  /** A rebuild of every proxy finished: per proxy, the versions it must ACK. */
  rebuilt(expected: Map<string, Map<TypeUrl, string>>): void;
}

/** The inputs a proxy's snapshot was built from: equal inputs, equal snapshot. */
interface Inputs {
  readonly shared: SharedTranslation;
  readonly root: Plain;
  readonly node: ProxyNode;
}

export class Rebuilder {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly inputs = new Map<string, Inputs>();
  private shared: SharedTranslation | undefined;
  /** The route configurations `shared` handed out, by client namespace. */
  private routeConfigs = new Map<string, OutboundRoutes>();
  private root: Plain | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  /** scheduleNow() asked for a rebuild that has not started yet. */
  private startPending = false;
  private again = false;
  private stopped = false;

  constructor(private readonly opts: RebuilderOptions) {}

  /** The last snapshot built for a proxy. */
  snapshot(id: string): Snapshot | undefined {
    return this.snapshots.get(id);
  }

  /** A proxy left: forget its snapshot (the caller removes it from the cache). */
  forget(id: string): void {
    this.snapshots.delete(id);
    this.inputs.delete(id);
  }

  /**
   * Builds and publishes the snapshots of just-connected proxies at once. The shared part of the
   * last rebuild is reused while the model is unchanged: their peers' endpoints follow in the
   * rebuild scheduled with them, so N proxies connecting at once cost one shared translation.
   */
  buildNow(ids: readonly string[]): void {
    const model = this.opts.model();
    const shared = this.shared?.model === model ? this.shared : this.refreshShared();
    const root = this.refreshRoot();
    for (const id of ids) this.build(id, shared, root);
  }

  /** Rebuilds every proxy after the debounce (connected proxies changed, roots rotated). */
  schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.start();
    }, this.opts.debounceMs);
  }

  /** Rebuilds every proxy as soon as possible: the model changed (its source debounced already). */
  scheduleNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    this.startPending = true;
    setImmediate(() => {
      this.startPending = false;
      this.start();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Waits for a rebuild that is running or about to start (scheduleNow) to finish (tests). */
  async settled(): Promise<void> {
    while (this.running || this.startPending) await (this.running ?? new Promise((r) => setImmediate(r)));
  }

  private start(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.rebuildAll().finally(() => {
      this.running = undefined;
      if (this.again && !this.stopped) {
        this.again = false;
        this.start();
      }
    });
  }

  /** Every connected proxy, in slices; proxies whose inputs are unchanged keep their snapshot. */
  private async rebuildAll(): Promise<void> {
    let shared: SharedTranslation;
    let root: Plain;
    try {
      shared = this.refreshShared();
      root = this.refreshRoot();
    } catch (err) {
      this.opts.failed(undefined, err);
      return;
    }
    const expected = new Map<string, Map<TypeUrl, string>>();
    let slice = performance.now();
    for (const id of [...this.opts.proxies()]) {
      if (performance.now() - slice >= (this.opts.sliceMs ?? SLICE_MS)) {
        await yieldToIo();
        if (this.stopped) return;
        slice = performance.now();
      }
      const versions = this.unchanged(id, shared, root) ?? this.build(id, shared, root);
      if (versions) expected.set(id, versions);
    }
    this.opts.rebuilt(expected);
  }

  /** The versions of a proxy's snapshot if its inputs did not change since it was built. */
  private unchanged(id: string, shared: SharedTranslation, root: Plain): Map<TypeUrl, string> | undefined {
    const before = this.inputs.get(id);
    const snapshot = this.snapshots.get(id);
    // A node proxy's translation reads the live sidecar directory: never assume it unchanged.
    if (!before || !snapshot || before.node.mode === 'ambient') return undefined;
    if (before.shared !== shared || before.root !== root || before.node !== this.opts.proxy(id)) return undefined;
    return new Map([...snapshot.types].map(([t, r]) => [t, r.version]));
  }

  private build(id: string, shared: SharedTranslation, root: Plain): Map<TypeUrl, string> | undefined {
    const node = this.opts.proxy(id);
    if (!node) return undefined;
    try {
      const started = performance.now();
      const set = translateProxy(shared, node);
      const secrets = new Map(set[TypeUrl.Secret] ?? []);
      secrets.set('ROOTCA', root);
      set[TypeUrl.Secret] = secrets;
      const previous = this.snapshots.get(id);
      const snapshot = buildSnapshot(set, previous);
      this.opts.cache.set(id, snapshot);
      this.snapshots.set(id, snapshot);
      this.inputs.set(id, { shared, root, node });
      return this.opts.published(id, snapshot, previous, performance.now() - started);
    } catch (err) {
      this.opts.failed(id, err);
      return undefined;
    }
  }

  /**
   * Translates the shared part again and keeps what did not change as the very objects it was
   * (so their encodings, and every proxy's sets holding them, are reused as they are). When
   * nothing changed — the usual case of a proxy connecting or leaving — the previous shared
   * translation itself is kept, and proxies built from it need no rebuild.
   */
  private refreshShared(): SharedTranslation {
    const fresh = this.opts.translateShared();
    const before = this.shared;
    if (!before || !knownShape(fresh) || !knownShape(before)) {
      this.routeConfigs = new Map();
      return (this.shared = fresh);
    }
    const clusters = keepEqual(fresh.outbound.clusters, before.outbound.clusters);
    const assignments = keepEqual(fresh.outbound.assignments, before.outbound.assignments);
    // Without waypoints the sidecars' endpoints are the outbound ones themselves.
    const sidecarAssignments =
      fresh.sidecarAssignments === fresh.outbound.assignments ? assignments : keepEqual(fresh.sidecarAssignments, before.sidecarAssignments);
    const outboundListener = samePlain(fresh.outboundListener, before.outboundListener) ? before.outboundListener : fresh.outboundListener;
    const vipListeners = keepEqual(new Map(fresh.vipListeners), new Map(before.vipListeners));
    const unchanged =
      fresh.model === before.model &&
      fresh.directory === before.directory &&
      samePlain(fresh.options, before.options) &&
      clusters === before.outbound.clusters &&
      assignments === before.outbound.assignments &&
      sidecarAssignments === before.sidecarAssignments &&
      outboundListener === before.outboundListener &&
      sameValues(vipListeners, before.vipListeners);
    if (unchanged) return before;
    // Route configurations depend on the model only; a namespace's is kept if it came out equal.
    // (Nothing here holds on to `fresh`: its duplicates of the kept resources are garbage.)
    const kept = this.routeConfigs;
    const routeConfigs = new Map<string, OutboundRoutes>();
    this.routeConfigs = routeConfigs;
    const translateRoutes = fresh.routeConfigFor;
    const shared: SharedTranslation = {
      ...fresh,
      outbound: { ...fresh.outbound, clusters, assignments },
      sidecarAssignments,
      outboundListener,
      vipListeners: [...vipListeners],
      routeConfigFor(namespace: string, sidecar = true): OutboundRoutes {
        const key = `${sidecar ? 'sidecar' : 'waypoint'}|${namespace}`;
        let rc = routeConfigs.get(key);
        if (!rc) {
          const made = translateRoutes.call(shared, namespace, sidecar);
          const old = kept.get(key);
          kept.delete(key);
          // Virtual hosts that came out equal keep their objects (and encodings): a route edit
          // makes one new VHDS resource, not a thousand.
          if (old) {
            const config = samePlain(made.config, old.config) ? old.config : made.config;
            const virtualHosts = keepEqual(made.virtualHosts, old.virtualHosts);
            rc = config === old.config && virtualHosts === old.virtualHosts ? old : { config, virtualHosts };
          } else rc = made;
          routeConfigs.set(key, rc);
        }
        return rc;
      },
    };
    return (this.shared = shared);
  }

  private refreshRoot(): Plain {
    const fresh = this.opts.rootSecret();
    if (!this.root || !samePlain(this.root, fresh)) this.root = fresh;
    return this.root;
  }
}

/** The SharedTranslation fields kept across rebuilds; one this does not know disables it. */
const KNOWN_FIELDS = new Set(['model', 'options', 'directory', 'outbound', 'sidecarAssignments', 'outboundListener', 'vipListeners', 'routeConfigFor', 'ambient']);
const KNOWN_OUTBOUND = new Set(['clusters', 'assignments']);

function knownShape(s: SharedTranslation): boolean {
  return Object.keys(s).every((k) => KNOWN_FIELDS.has(k)) && Object.keys(s.outbound).every((k) => KNOWN_OUTBOUND.has(k));
}

/**
 * `fresh` with each value equal to the one `before` holds under its name replaced by that one;
 * `before` itself when that makes them the same.
 */
function keepEqual<V>(fresh: ReadonlyMap<string, V>, before: ReadonlyMap<string, V>): Map<string, V> {
  const out = new Map<string, V>();
  let same = fresh.size === before.size;
  for (const [name, value] of fresh) {
    const old = before.get(name);
    const kept = old !== undefined && (old === value || samePlain(value, old)) ? old : value;
    if (kept !== old) same = false;
    out.set(name, kept);
  }
  return same ? (before as Map<string, V>) : out;
}

function sameValues<V>(a: ReadonlyMap<string, V>, b: ReadonlyArray<[string, V]>): boolean {
  return a.size === b.length && b.every(([name, v]) => a.get(name) === v);
}

/** Deep equality of JSON-like values (what the translator produces). */
function samePlain(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!samePlain(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b) || Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (a instanceof Uint8Array) return Buffer.compare(a, b as Uint8Array) === 0;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k) || !samePlain((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}
