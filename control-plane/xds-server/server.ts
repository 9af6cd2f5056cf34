// The ADS server: state-of-the-world and delta streams over one gRPC service, serving each proxy
// the snapshot the cache holds for it, with Envoy's version / nonce / ACK / NACK semantics.
// Pushes go through one pacer (pacer.ts) so that a change for every proxy never holds every
// response in memory at once, and responses are encoded once for all streams (encode.ts).
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { fromStruct } from '../../api/codec.js';
import {
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type Node,
} from '../../api/services.js';
import { isKnownTypeUrl, PUSH_ORDER, SHORT_NAME, TypeUrl, WILDCARD_TYPES as WILDCARD_TYPE_URLS } from '../../api/types.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { SnapshotCache } from '../snapshot/cache.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import { deltaDiff, ENCODED_RESOURCES, internSubscription, mapDiff, nextNonce, NOTHING_HELD, prepareSotw, type Holding, type Prepared } from './encode.js';
import { PushPacer } from './pacer.js';
import type { ProxySyncState, TypeSyncState } from './sync-status.js';

/** What the server knows of a connected proxy once it has authenticated. */
export interface ProxyInfo {
  readonly id: string;
  /** `name.namespace` of a sidecar's or waypoint's workload; '' for a node proxy. */
  readonly workload: string;
  readonly namespace: string;
  readonly metadata: Readonly<Record<string, unknown>>;
  /** From node metadata `MODE` (absent: sidecar). */
  readonly mode?: 'sidecar' | 'ambient' | 'waypoint';
  /** The node an ambient node proxy serves. */
  readonly node?: string;
}

export interface XdsServerHooks {
  /**
   * Authenticates a new stream from its first request's node and the call metadata.
   * Throws (any error) to refuse it; the message is sent to the proxy as UNAUTHENTICATED.
   */
  authenticate(node: Node, metadata: grpc.Metadata): Promise<ProxyInfo>;
  /** A proxy's first stream opened: the control plane builds its snapshot. */
  connected(proxy: ProxyInfo): void;
  /** A proxy's last stream closed. */
  disconnected(proxy: ProxyInfo): void;
  /** A proxy rejected a version (for metrics and route status). */
  nacked?(proxy: ProxyInfo, typeUrl: TypeUrl, message: string): void;
}

/** Types a proxy subscribes to as wildcards (api/types.ts); the others are by name. */
const WILDCARD_TYPES: ReadonlySet<string> = WILDCARD_TYPE_URLS;

export interface XdsServerOptions {
  /** Response bytes being written across all streams before further pushes wait (pacer.ts). */
  readonly pushBudgetBytes?: number;
  /** How long one write counts against that budget at most (a proxy that does not read). */
  readonly slowWriteMs?: number;
}

// A response holds its memory until the proxy has taken all of it, 64 KiB (HTTP/2 flow-control
// window) per round trip: the budget bounds memory but also how many proxies receive at once.
// 8 MiB keeps a couple of dozen first syncs (~1 MiB each at 1000 Services) moving; measured with
// 1000 delta proxies (bench `--only cp`), it synced as fast as 32 MiB did and peaked at
// 233–247 MiB instead of 303 (grpc-js copies each response per stream, and those copies are
// what piles up). A write stops counting after 2 s (a proxy that reads that slowly is not waited for).
const DEFAULTS = { pushBudgetBytes: 8 * 1024 * 1024, slowWriteMs: 2_000 };

/** One open stream as the two protocols see it: its proxy, its state, how to push to it. */
interface Stream {
  readonly proxy: ProxyInfo;
  readonly state: ProxySyncState;
  /** Types whose next push must be sent even if the version did not change (a request asked). */
  readonly forced: Set<TypeUrl>;
  /** Schedules a push of the newest snapshot through the pacer. */
  push(): void;
  /** Writes one response, accounted in the pacer until written. */
  write(response: object, bytes: number): void;
}

export class XdsServer {
  private readonly streams = new Map<string, ProxySyncState>();
  /** Streams with a response they have not ACKed yet (or NACKed). */
  private readonly unacked = new Set<ProxySyncState>();
  private readonly streamsPerProxy = new Map<string, number>();
  private readonly pacer: PushPacer;
  private readonly slowWriteMs: number;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly hooks: XdsServerHooks,
    private readonly log: Logger,
    options: XdsServerOptions = {},
  ) {
    this.pacer = new PushPacer(options.pushBudgetBytes ?? DEFAULTS.pushBudgetBytes);
    this.slowWriteMs = options.slowWriteMs ?? DEFAULTS.slowWriteMs;
  }

  /**
   * Handlers for `server.addService(preparedAdsService, ...)` (encode.ts), which sends the
   * response bodies shared across streams; with the plain `adsService` every response is
   * encoded whole.
   */
  handlers(): grpc.UntypedServiceImplementation {
    return {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
        this.sotw(call),
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) =>
        this.delta(call),
    };
  }

  /** Sync state of every open stream, for /debug/syncz. */
  syncStates(): ProxySyncState[] {
    return [...this.streams.values()];
  }

  /**
   * Sync state of the streams that have not ACKed everything they were sent: the others are in
   * sync, so a convergence check need not look at them (polled while a change is pending).
   */
  awaitingAck(): ProxySyncState[] {
    return [...this.unacked];
  }

  connectedProxies(): number {
    return this.streamsPerProxy.size;
  }

  /**
   * Common stream set-up: authenticate on the first request, register, push (paced) whenever
   * the proxy's snapshot changes, clean up on close. `flush` sends what the newest snapshot
   * holds that the stream has not been sent, or was asked for again.
   */
  private open<Req extends { node?: Node | null }>(
    call: grpc.ServerDuplexStream<Req, unknown>,
    kind: 'sotw' | 'delta',
    onRequest: (req: Req, stream: Stream) => void,
    flush: (snapshot: Snapshot, stream: Stream) => void,
  ): void {
    const streamId = randomUUID();
    let stream: Stream | undefined;
    let unwatch: (() => void) | undefined;
    const pending: Req[] = [];
    let authenticating = false;
    let closed = false;
    /** Releases of this stream's writes still in the pacer's budget. */
    const writing = new Set<() => void>();

    const pushNow = () => {
      const snapshot = stream && !closed ? this.cache.get(stream.proxy.id) : undefined;
      if (!stream || !snapshot) return;
      try {
        flush(snapshot, stream);
      } catch (err) {
        this.log.error('xDS push failed', { proxy: stream.proxy.id, error: errorMessage(err) });
      }
    };

    const close = () => {
      if (closed) return;
      closed = true;
      unwatch?.();
      this.pacer.cancel(pushNow);
      // A cancelled call never completes its writes: give their budget back.
      for (const release of [...writing]) release();
      this.streams.delete(streamId);
      if (stream) this.unacked.delete(stream.state);
      if (stream) {
        const { proxy } = stream;
        const n = (this.streamsPerProxy.get(proxy.id) ?? 1) - 1;
        if (n <= 0) {
          this.streamsPerProxy.delete(proxy.id);
          this.hooks.disconnected(proxy);
        } else this.streamsPerProxy.set(proxy.id, n);
        this.log.info('proxy disconnected', { proxy: proxy.id, stream: kind });
      }
    };

    const start = (info: ProxyInfo) => {
      const state: ProxySyncState = {
        id: info.id,
        workload: info.workload,
        namespace: info.namespace,
        stream: kind,
        connectedAt: new Date().toISOString(),
        peer: call.getPeer(),
        types: new Map(),
      };
      const s: Stream = {
        proxy: info,
        state,
        forced: new Set(),
        push: () => {
          if (!closed) this.pacer.schedule(pushNow);
        },
        write: (response, bytes) => {
          if (closed) return;
          this.unacked.add(state);
          const release = this.pacer.started(bytes);
          writing.add(release);
          // A proxy that does not read (its flow-control window stays shut) must not hold the
          // budget everyone shares: after a while its write stops counting. It holds at most this
          // one encoded response; later ones wait unencoded in the call's queue.
          const slow = setTimeout(release, this.slowWriteMs);
          slow.unref();
          call.write(response, () => {
            clearTimeout(slow);
            writing.delete(release);
            release();
          });
        },
      };
      stream = s;
      this.streams.set(streamId, state);
      const n = this.streamsPerProxy.get(info.id) ?? 0;
      this.streamsPerProxy.set(info.id, n + 1);
      this.log.info('proxy connected', { proxy: info.id, stream: kind, peer: state.peer });
      unwatch = this.cache.watch(info.id, () => s.push());
      if (n === 0) this.hooks.connected(info);
      for (const r of pending.splice(0)) onRequest(r, s);
    };

    const handle = (req: Req) => {
      if (closed) return;
      if (!stream) {
        pending.push(req);
        if (authenticating) return;
        authenticating = true;
        const node = req.node ?? {};
        this.hooks
          .authenticate(node, call.metadata)
          .then((info) => {
            if (!closed) start(info);
          })
          .catch((err: unknown) => {
            this.log.warn('refused xDS stream', { node: node.id, reason: errorMessage(err) });
            call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: errorMessage(err) });
            close();
            call.end();
          });
        return;
      }
      try {
        onRequest(req, stream);
      } catch (err) {
        this.log.error('xDS request handling failed', { proxy: stream.proxy.id, error: errorMessage(err) });
      }
    };

    call.on('data', handle);
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
    call.on('close', close);
  }

  // ---- state of the world -------------------------------------------------------------------

  private sotw(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const send = (s: Stream, typeUrl: TypeUrl, snapshot: Snapshot) => {
      const t = s.state.types.get(typeUrl);
      const resources = snapshot.types.get(typeUrl);
      if (!t || !resources) return;
      const version = resources.version;
      if (t.sentVersion === version && t.sentNonce !== undefined && !s.forced.has(typeUrl)) return;
      s.forced.delete(typeUrl);
      // The same response object (and bytes) for every stream with this set and subscription.
      const prepared = prepareSotw(typeUrl, resources, t.names);
      const { nonce } = prepared.response;
      t.sentVersion = version;
      t.sentNonce = nonce;
      s.write(prepared.response, prepared.bytes);
      this.log.debug('sent', { proxy: s.proxy.id, type: SHORT_NAME[typeUrl], version, nonce, count: prepared.count });
    };

    this.open<DiscoveryRequest>(
      call,
      'sotw',
      (req, s) => {
        const { proxy, state } = s;
        const typeUrl = req.type_url ?? '';
        if (!isKnownTypeUrl(typeUrl)) {
          this.log.warn('request for unknown type', { proxy: proxy.id, type: typeUrl });
          return;
        }
        let t = state.types.get(typeUrl);
        if (!t) state.types.set(typeUrl, (t = {}));
        const nonce = req.response_nonce ?? '';
        // A request answering an older response is stale: the proxy will answer the newer one.
        if (nonce !== '' && nonce !== t.sentNonce) return;
        if (nonce !== '') {
          if (req.error_detail?.message || req.error_detail?.code) {
            this.recordNack(proxy, typeUrl, t, t.sentVersion ?? '', nonce, req.error_detail.message ?? '');
          } else {
            t.ackedVersion = req.version_info ?? '';
            if (t.nack && t.nack.version !== t.sentVersion) t.nack = undefined;
            this.settled(state);
          }
        }
        // Most requests (every ACK) repeat the subscription: checked without building a set.
        const raw = req.resource_names ?? [];
        let namesChanged = false;
        if (!subscribedTo(t.names, typeUrl, raw)) {
          const names = subscription(typeUrl, raw);
          namesChanged = names !== t.names;
          t.names = names;
        }
        // A new stream, or a changed subscription, needs an answer even if the version is the
        // same: even a reconnecting proxy that already holds this version needs a nonce to ACK
        // before it counts the server as in sync.
        if (nonce === '' || namesChanged) {
          s.forced.add(typeUrl);
          s.push();
        }
      },
      (snapshot, s) => {
        for (const typeUrl of PUSH_ORDER) send(s, typeUrl, snapshot);
      },
    );
  }

  // ---- delta ---------------------------------------------------------------------------------

  private delta(call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>): void {
    /**
     * Per type, what the client holds. Usually a (type set, subscription) pair, both shared by
     * many streams, so a stream costs no per-resource memory and the diff to a new set is
     * computed once for every stream that held the same (deltaDiff). A reconnecting client's
     * `initial_resource_versions` are held as a map until the first response replaces them.
     */
    const held = new Map<TypeUrl, Holding>();
    /** Per type, the subscribed names ('*': wildcard), one Set shared by equal subscriptions. */
    const subscribed = new Map<TypeUrl, ReadonlySet<string>>();
    /**
     * Per type, responses not yet ACKed: what the client held before each. A NACK of any of them
     * means the client holds what it held before it (it keeps its last good state), and a later
     * response it took was a diff against that same state, which resending from there repairs.
     */
    const outstanding = new Map<TypeUrl, Map<string, { readonly before: Holding; readonly version: string }>>();

    const send = (s: Stream, typeUrl: TypeUrl, snapshot: Snapshot) => {
      const t = s.state.types.get(typeUrl);
      if (!t || !subscribed.has(typeUrl)) return;
      const force = s.forced.delete(typeUrl);
      const resources = snapshot.types.get(typeUrl);
      const names = t.names;
      const have = held.get(typeUrl) ?? NOTHING_HELD;
      if (!force && have.kind === 'set' && have.set === resources && have.names === names) return;
      const d = have.kind === 'set' ? deltaDiff(have.set, have.names, resources, names) : mapDiff(have.versions, resources, names);
      held.set(typeUrl, { kind: 'set', set: resources, names });
      if (d.changed.length === 0 && d.removed.length === 0 && !force) return;
      const nonce = nextNonce();
      const version = resources?.version ?? '';
      t.sentVersion = version;
      t.sentNonce = nonce;
      let pending = outstanding.get(typeUrl);
      if (!pending) outstanding.set(typeUrl, (pending = new Map()));
      pending.set(nonce, { before: have, version });
      const response: DeltaDiscoveryResponse & Prepared = {
        system_version_info: version,
        type_url: typeUrl,
        nonce,
        resources: d.entries,
        removed_resources: [...d.removed],
        [ENCODED_RESOURCES]: d.body,
      };
      s.write(response, d.body.length);
    };

    this.open<DeltaDiscoveryRequest>(
      call,
      'delta',
      (req, s) => {
        const { proxy, state } = s;
        const typeUrl = req.type_url ?? '';
        if (!isKnownTypeUrl(typeUrl)) return;
        let t = state.types.get(typeUrl);
        if (!t) state.types.set(typeUrl, (t = {}));
        const nonce = req.response_nonce ?? '';
        const pending = outstanding.get(typeUrl);
        if (nonce !== '' && (req.error_detail?.message || req.error_detail?.code)) {
          const rejected = pending?.get(nonce);
          if (!rejected) return; // a nonce we never sent, or one settled since
          this.recordNack(proxy, typeUrl, t, rejected.version, nonce, req.error_detail.message ?? '');
          // Back to what the client still holds: the next change is diffed from there.
          held.set(typeUrl, rejected.before);
          pending!.clear();
        } else if (nonce !== '') {
          // An ACK of an older response is stale: the client will answer the newest.
          if (nonce !== t.sentNonce) return;
          t.ackedVersion = t.sentVersion;
          pending?.clear();
          this.settled(state);
        }
        const sub = req.resource_names_subscribe ?? [];
        const unsub = req.resource_names_unsubscribe ?? [];
        const before = subscribed.get(typeUrl);
        const first = before === undefined;
        if (first) {
          const initial = Object.entries(req.initial_resource_versions ?? {});
          if (initial.length > 0) held.set(typeUrl, { kind: 'map', versions: new Map(initial) });
        }
        if (first || sub.length > 0 || unsub.length > 0) {
          const names = new Set(before);
          // An empty first subscription to a wildcard type means "everything" (legacy wildcard).
          if (first && WILDCARD_TYPES.has(typeUrl) && sub.length === 0) names.add('*');
          for (const n of sub) names.add(n);
          for (const n of unsub) names.delete(n);
          const interned = internSubscription([...names]);
          subscribed.set(typeUrl, interned);
          t.names = interned.has('*') ? undefined : interned;
          // A first request is answered even when there is nothing new (the client waits for it).
          if (first) s.forced.add(typeUrl);
          s.push();
        }
      },
      (snapshot, s) => {
        for (const typeUrl of PUSH_ORDER) send(s, typeUrl, snapshot);
      },
    );
  }

  /** A stream ACKed: it leaves `unacked` once every type it was sent is ACKed. */
  private settled(state: ProxySyncState): void {
    for (const t of state.types.values()) if (t.sentVersion !== undefined && t.ackedVersion !== t.sentVersion) return;
    this.unacked.delete(state);
  }

  private recordNack(proxy: ProxyInfo, typeUrl: TypeUrl, t: TypeSyncState, version: string, nonce: string, message: string) {
    t.nack = { version, nonce, message, at: new Date().toISOString() };
    this.log.warn('proxy rejected config (NACK)', { proxy: proxy.id, type: SHORT_NAME[typeUrl], version, reason: message });
    this.hooks.nacked?.(proxy, typeUrl, message);
  }
}

/** The subscription `names` ask for: undefined for a wildcard, else a set shared by equal ones. */
function subscription(typeUrl: string, names: readonly string[]): ReadonlySet<string> | undefined {
  if (WILDCARD_TYPES.has(typeUrl) && (names.length === 0 || names.includes('*'))) return undefined;
  return internSubscription(names);
}

/** Whether `names` asks for exactly the subscription held. */
function subscribedTo(held: ReadonlySet<string> | undefined, typeUrl: string, names: readonly string[]): boolean {
  if (WILDCARD_TYPES.has(typeUrl) && (names.length === 0 || names.includes('*'))) return held === undefined;
  if (held === undefined || names.length !== held.size) return false;
  for (const n of names) if (!held.has(n)) return false;
  return true;
}

/** Node metadata as a plain object. */
export function nodeMetadata(node: Node): Record<string, unknown> {
  return node.metadata ? fromStruct(node.metadata) : {};
}
