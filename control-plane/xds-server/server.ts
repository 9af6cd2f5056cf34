// The ADS server: state-of-the-world and delta streams over one gRPC service, serving each proxy
// the snapshot the cache holds for it, with Envoy's version / nonce / ACK / NACK semantics.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { fromStruct } from '../../api/codec.js';
import {
  adsService,
  type DeltaDiscoveryRequest,
  type DeltaDiscoveryResponse,
  type DiscoveryRequest,
  type DiscoveryResponse,
  type Node,
} from '../../api/services.js';
import { isKnownTypeUrl, PUSH_ORDER, SHORT_NAME, TypeUrl } from '../../api/types.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { SnapshotCache } from '../snapshot/cache.js';
import type { Snapshot, VersionedResource } from '../snapshot/snapshot.js';
import type { ProxySyncState, TypeSyncState } from './sync-status.js';

/** What the server knows of a connected proxy once it has authenticated. */
export interface ProxyInfo {
  readonly id: string;
  readonly workload: string;
  readonly namespace: string;
  readonly metadata: Readonly<Record<string, unknown>>;
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

/** Types a sidecar subscribes to as wildcards; the others are by name. */
const WILDCARD_TYPES = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster]);

export class XdsServer {
  private readonly streams = new Map<string, ProxySyncState>();
  private readonly streamsPerProxy = new Map<string, number>();
  private nonceCounter = 0;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly hooks: XdsServerHooks,
    private readonly log: Logger,
  ) {}

  /** Handlers for `server.addService(adsService, ...)`. */
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

  connectedProxies(): number {
    return this.streamsPerProxy.size;
  }

  private nonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  /** Common stream set-up: authenticate on the first request, register, clean up on close. */
  private open<Req extends { node?: Node | null }>(
    call: grpc.ServerDuplexStream<Req, unknown>,
    kind: 'sotw' | 'delta',
    onRequest: (req: Req, state: ProxySyncState, proxy: ProxyInfo) => void,
    onSnapshot: (snapshot: Snapshot, state: ProxySyncState, proxy: ProxyInfo) => void,
  ): void {
    const streamId = randomUUID();
    let proxy: ProxyInfo | undefined;
    let state: ProxySyncState | undefined;
    let unwatch: (() => void) | undefined;
    const pending: Req[] = [];
    let authenticating = false;
    let closed = false;

    const close = () => {
      if (closed) return;
      closed = true;
      unwatch?.();
      this.streams.delete(streamId);
      if (proxy) {
        const n = (this.streamsPerProxy.get(proxy.id) ?? 1) - 1;
        if (n <= 0) {
          this.streamsPerProxy.delete(proxy.id);
          this.hooks.disconnected(proxy);
        } else this.streamsPerProxy.set(proxy.id, n);
        this.log.info('proxy disconnected', { proxy: proxy.id, stream: kind });
      }
    };

    const handle = (req: Req) => {
      if (closed) return;
      if (!proxy || !state) {
        pending.push(req);
        if (authenticating) return;
        authenticating = true;
        const node = req.node ?? {};
        this.hooks
          .authenticate(node, call.metadata)
          .then((info) => {
            if (closed) return;
            proxy = info;
            state = {
              id: info.id,
              workload: info.workload,
              namespace: info.namespace,
              stream: kind,
              connectedAt: new Date().toISOString(),
              peer: call.getPeer(),
              types: new Map(),
            };
            this.streams.set(streamId, state);
            const n = this.streamsPerProxy.get(info.id) ?? 0;
            this.streamsPerProxy.set(info.id, n + 1);
            this.log.info('proxy connected', { proxy: info.id, stream: kind, peer: state.peer });
            unwatch = this.cache.watch(info.id, (s) => onSnapshot(s, state!, info));
            if (n === 0) this.hooks.connected(info);
            for (const r of pending.splice(0)) onRequest(r, state, info);
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
        onRequest(req, state, proxy);
      } catch (err) {
        this.log.error('xDS request handling failed', { proxy: proxy.id, error: errorMessage(err) });
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
    const send = (state: ProxySyncState, proxy: ProxyInfo, typeUrl: TypeUrl, snapshot: Snapshot) => {
      const t = state.types.get(typeUrl);
      if (!t) return;
      const resources = snapshot.types.get(typeUrl);
      if (!resources) return;
      const items = selectByName(resources.items, t.names);
      const version = resources.version;
      if (t.sentVersion === version && t.sentNonce !== undefined) return;
      const nonce = this.nonce();
      t.sentVersion = version;
      t.sentNonce = nonce;
      call.write({
        version_info: version,
        type_url: typeUrl,
        nonce,
        resources: items.map((r) => r.resource),
        control_plane: { identifier: 'weft' },
      });
      this.log.debug('sent', { proxy: proxy.id, type: SHORT_NAME[typeUrl], version, nonce, count: items.length });
    };

    this.open<DiscoveryRequest>(
      call,
      'sotw',
      (req, state, proxy) => {
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
          }
        }
        const names = subscription(typeUrl, req.resource_names ?? []);
        const namesChanged = !sameNames(t.names, names);
        t.names = names;
        const snapshot = this.cache.get(proxy.id);
        // A new stream, or a changed subscription, needs an answer even if the version is the same.
        if (snapshot && (nonce === '' || namesChanged)) {
          // Even a reconnecting proxy that already holds this version gets it again: the stream
          // needs a nonce to ACK before the proxy counts the server as in sync.
          t.sentNonce = undefined;
          send(state, proxy, typeUrl, snapshot);
        }
      },
      (snapshot, state, proxy) => {
        for (const typeUrl of PUSH_ORDER) send(state, proxy, typeUrl, snapshot);
      },
    );
  }

  // ---- delta ---------------------------------------------------------------------------------

  private delta(call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>): void {
    /** Per type, what the client holds: name → version. */
    const held = new Map<TypeUrl, Map<string, string>>();
    /** Per type, explicitly subscribed names; wildcard types track '*' too. */
    const subscribed = new Map<TypeUrl, Set<string>>();

    const send = (state: ProxySyncState, typeUrl: TypeUrl, snapshot: Snapshot, force: boolean) => {
      const t = state.types.get(typeUrl);
      const subs = subscribed.get(typeUrl);
      if (!t || !subs) return;
      const have = held.get(typeUrl) ?? new Map<string, string>();
      held.set(typeUrl, have);
      const resources = snapshot.types.get(typeUrl);
      const wildcard = subs.has('*');
      const changed: VersionedResource[] = [];
      const removed: string[] = [];
      for (const r of resources?.items.values() ?? []) {
        if (!wildcard && !subs.has(r.name)) continue;
        if (have.get(r.name) !== r.version) changed.push(r);
      }
      for (const name of have.keys()) {
        const stillThere = resources?.items.has(name) && (wildcard || subs.has(name));
        if (!stillThere) removed.push(name);
      }
      if (changed.length === 0 && removed.length === 0 && !force) return;
      for (const r of changed) have.set(r.name, r.version);
      for (const n of removed) have.delete(n);
      const nonce = this.nonce();
      t.sentVersion = resources?.version ?? '';
      t.sentNonce = nonce;
      call.write({
        system_version_info: resources?.version ?? '',
        type_url: typeUrl,
        nonce,
        resources: changed.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
        removed_resources: removed,
      });
    };

    this.open<DeltaDiscoveryRequest>(
      call,
      'delta',
      (req, state, proxy) => {
        const typeUrl = req.type_url ?? '';
        if (!isKnownTypeUrl(typeUrl)) return;
        let t = state.types.get(typeUrl);
        if (!t) state.types.set(typeUrl, (t = {}));
        const nonce = req.response_nonce ?? '';
        if (nonce !== '') {
          if (nonce !== t.sentNonce) return;
          if (req.error_detail?.message || req.error_detail?.code) {
            this.recordNack(proxy, typeUrl, t, t.sentVersion ?? '', nonce, req.error_detail.message ?? '');
            // The client did not take what we sent: forget it, so the next change resends it.
            held.set(typeUrl, new Map());
          } else t.ackedVersion = t.sentVersion;
        }
        let subs = subscribed.get(typeUrl);
        const first = !subs;
        if (!subs) {
          subs = new Set();
          subscribed.set(typeUrl, subs);
          // An empty first subscription to a wildcard type means "everything" (legacy wildcard).
          if (WILDCARD_TYPES.has(typeUrl) && (req.resource_names_subscribe ?? []).length === 0) subs.add('*');
          const initial = req.initial_resource_versions ?? {};
          held.set(typeUrl, new Map(Object.entries(initial)));
        }
        for (const n of req.resource_names_subscribe ?? []) subs.add(n);
        for (const n of req.resource_names_unsubscribe ?? []) {
          subs.delete(n);
        }
        t.names = subs.has('*') ? undefined : new Set(subs);
        const snapshot = this.cache.get(proxy.id);
        if (snapshot && (first || (req.resource_names_subscribe ?? []).length > 0 || (req.resource_names_unsubscribe ?? []).length > 0)) {
          send(state, typeUrl, snapshot, first);
        }
      },
      (snapshot, state) => {
        for (const typeUrl of PUSH_ORDER) send(state, typeUrl, snapshot, false);
      },
    );
  }

  private recordNack(proxy: ProxyInfo, typeUrl: TypeUrl, t: TypeSyncState, version: string, nonce: string, message: string) {
    t.nack = { version, nonce, message, at: new Date().toISOString() };
    this.log.warn('proxy rejected config (NACK)', { proxy: proxy.id, type: SHORT_NAME[typeUrl], version, reason: message });
    this.hooks.nacked?.(proxy, typeUrl, message);
  }
}

function subscription(typeUrl: string, names: readonly string[]): ReadonlySet<string> | undefined {
  if (WILDCARD_TYPES.has(typeUrl) && (names.length === 0 || names.includes('*'))) return undefined;
  return new Set(names);
}

function sameNames(a: ReadonlySet<string> | undefined, b: ReadonlySet<string> | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.size !== b.size) return false;
  for (const n of a) if (!b.has(n)) return false;
  return true;
}

function selectByName(items: ReadonlyMap<string, VersionedResource>, names: ReadonlySet<string> | undefined): VersionedResource[] {
  if (names === undefined) return [...items.values()];
  const out: VersionedResource[] = [];
  for (const n of names) {
    const r = items.get(n);
    if (r) out.push(r);
  }
  return out;
}

/** Node metadata as a plain object. */
export function nodeMetadata(node: Node): Record<string, unknown> {
  return node.metadata ? fromStruct(node.metadata) : {};
}
