// Responses shared across streams. State of the world: what a stream is sent of a type set
// depends only on the set and the stream's subscription, so the whole response (resources,
// version and nonce: a nonce only has to tell one stream's responses apart) is encoded once and
// every stream subscribed alike sends the same bytes. Delta: each resource entry is encoded once
// and a response is its header plus the entries it carries (protobuf takes fields in any order).
// A response without prepared bytes is encoded whole, so the server also works with the plain
// `adsService` definition (tests use it).
import type * as grpc from '@grpc/grpc-js';
import type { PackedAny } from '../../api/codec.js';
import { messageType } from '../../api/protos.js';
import { adsService, type DeltaDiscoveryResponse, type DiscoveryResponse } from '../../api/services.js';
import type { TypeUrl } from '../../api/types.js';
import { WeakInterner } from '../snapshot/intern.js';
import type { TypeResources, VersionedResource } from '../snapshot/snapshot.js';

/** A state-of-the-world response, encoded whole. */
export const ENCODED_MESSAGE = Symbol('weft.encodedMessage');
/** The encoded `resources` field of a delta response. */
export const ENCODED_RESOURCES = Symbol('weft.encodedResources');

export interface Prepared {
  [ENCODED_MESSAGE]?: Buffer;
  [ENCODED_RESOURCES]?: Buffer;
}

const D = 'envoy.service.discovery.v3';
let sotwType: ReturnType<typeof messageType> | undefined;
let deltaType: ReturnType<typeof messageType> | undefined;
const sotw = () => (sotwType ??= messageType(`${D}.DiscoveryResponse`));
const delta = () => (deltaType ??= messageType(`${D}.DeltaDiscoveryResponse`));

const asBuffer = (u: Uint8Array): Buffer => (Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength));

/**
 * Nonces, unique in the process: prepared responses (and their nonces) are shared by every
 * server in it, so no server may count its own.
 */
let nonces = 0;
export function nextNonce(): string {
  return (++nonces).toString(36);
}

// ---- subscriptions ------------------------------------------------------------------------

const subscriptions = new WeakInterner<ReadonlySet<string>>();
const keys = new WeakMap<ReadonlySet<string>, string>();
/** The subscriptions interned last: a new stream usually asks for one of them. */
const recentSubscriptions: ReadonlySet<string>[] = [];

function keyOfNames(names: Iterable<string>): string {
  return `=${[...new Set(names)].sort().join('\n')}`;
}

function holdsExactly(set: ReadonlySet<string>, names: readonly string[]): boolean {
  if (set.size !== names.length) return false;
  for (const n of names) if (!set.has(n)) return false;
  return true;
}

/**
 * A subscription to these names, as one Set shared by every stream subscribed to the same
 * names: proxies mostly ask for the same thousand endpoint names, which are then held once.
 */
export function internSubscription(names: readonly string[]): ReadonlySet<string> {
  const recent = recentSubscriptions.find((s) => holdsExactly(s, names));
  if (recent) return recent;
  const key = keyOfNames(names);
  const set = subscriptions.intern(key, () => {
    const made: ReadonlySet<string> = new Set(names);
    keys.set(made, key);
    return made;
  });
  recentSubscriptions.unshift(set);
  recentSubscriptions.length = Math.min(recentSubscriptions.length, 8);
  return set;
}

/** A stable key for a subscription: `*` for a wildcard, else the names in order. */
function subscriptionKey(names: ReadonlySet<string> | undefined): string {
  if (names === undefined) return '*';
  let key = keys.get(names);
  if (key === undefined) keys.set(names, (key = keyOfNames(names)));
  return key;
}

// ---- state of the world -------------------------------------------------------------------

/** The response for one type set and one subscription, the same for every stream. */
export interface PreparedResponse {
  readonly response: DiscoveryResponse & Prepared;
  /** How many resources it carries. */
  readonly count: number;
  /** Its encoded size. */
  readonly bytes: number;
}

/** Per type set, per subscription (see subscriptionKey). */
const prepared = new WeakMap<TypeResources, Map<string, PreparedResponse>>();

/**
 * The response carrying what a stream subscribed to `names` (undefined: all) gets of `set`.
 * Streams with equal subscriptions share it; a subscription set must not be mutated once used.
 */
export function prepareSotw(typeUrl: TypeUrl, set: TypeResources, names: ReadonlySet<string> | undefined): PreparedResponse {
  let bySubscription = prepared.get(set);
  if (!bySubscription) prepared.set(set, (bySubscription = new Map()));
  const key = subscriptionKey(names);
  let out = bySubscription.get(key);
  if (!out) {
    const items = [...set.items.values()].filter((r) => names === undefined || names.has(r.name));
    const plain: DiscoveryResponse = {
      version_info: set.version,
      type_url: typeUrl,
      nonce: nextNonce(),
      resources: items.map((r): PackedAny => r.resource) as DiscoveryResponse['resources'],
      control_plane: { identifier: 'weft' },
    };
    const message = asBuffer(sotw().encode(plain).finish());
    out = { response: { ...plain, [ENCODED_MESSAGE]: message }, count: items.length, bytes: message.length };
    bySubscription.set(key, out);
  }
  return out;
}

// ---- delta --------------------------------------------------------------------------------

/** One delta `Resource` entry (name, version, Any) as it sits in the `resources` field. */
const deltaEntries = new WeakMap<VersionedResource, Buffer>();

/** The `resources` field (repeated Resource) of a delta response holding `items`. */
export function deltaResources(items: readonly VersionedResource[]): Buffer {
  const parts = items.map((r) => {
    let bytes = deltaEntries.get(r);
    if (!bytes) {
      bytes = asBuffer(delta().encode({ resources: [{ name: r.name, version: r.version, resource: r.resource }] }).finish());
      deltaEntries.set(r, bytes);
    }
    return bytes;
  });
  return Buffer.concat(parts);
}

/** What a delta client holds of one type, as the server tracks it. */
export type Holding =
  /** The subscribed part of `set` (`names` undefined: all of it); `set` undefined: nothing. */
  | { readonly kind: 'set'; readonly set: TypeResources | undefined; readonly names: ReadonlySet<string> | undefined }
  /** Versions a reconnecting client said it holds (`initial_resource_versions`). */
  | { readonly kind: 'map'; readonly versions: ReadonlyMap<string, string> };

export const NOTHING_HELD: Holding = { kind: 'set', set: undefined, names: undefined };

/** What one delta response carries, and its encoded `resources` field. */
export interface DeltaDiff {
  readonly changed: readonly VersionedResource[];
  readonly removed: readonly string[];
  /** `changed` as delta `Resource` entries, and encoded (the response's `resources` field). */
  readonly entries: DeltaDiscoveryResponse['resources'];
  readonly body: Buffer;
}

function diffOf(changed: VersionedResource[], removed: string[]): DeltaDiff {
  return { changed, removed, entries: changed.map((r) => ({ name: r.name, version: r.version, resource: r.resource })), body: deltaResources(changed) };
}

const ids = new WeakMap<object, number>();
let nextId = 0;
function idOf(o: object | undefined, none: string): string {
  if (o === undefined) return none;
  let id = ids.get(o);
  if (id === undefined) ids.set(o, (id = ++nextId));
  return String(id);
}

/** Per target set: diffs by (held set, held subscription, new subscription). */
const diffs = new WeakMap<TypeResources, Map<string, DeltaDiff>>();
const NO_SET: TypeResources = { version: '', items: new Map() };

function subscribedItems(set: TypeResources, names: ReadonlySet<string> | undefined): VersionedResource[] {
  return [...set.items.values()].filter((r) => names === undefined || names.has(r.name));
}

/**
 * The delta from holding the `fromNames` part of `from` to holding the `toNames` part of `to`
 * (names undefined: all). Memoised: every stream that held the same moves the same way, so a
 * change for a thousand proxies is diffed and encoded once. Sets and subscriptions are shared,
 * immutable objects (snapshot.ts, internSubscription).
 */
export function deltaDiff(
  from: TypeResources | undefined, fromNames: ReadonlySet<string> | undefined,
  to: TypeResources | undefined, toNames: ReadonlySet<string> | undefined,
): DeltaDiff {
  const target = to ?? NO_SET;
  let byKey = diffs.get(target);
  if (!byKey) diffs.set(target, (byKey = new Map()));
  const key = `${idOf(from, '-')}|${idOf(fromNames, '*')}|${idOf(toNames, '*')}`;
  let d = byKey.get(key);
  if (!d) {
    const held = (name: string) => (from && (fromNames === undefined || fromNames.has(name)) ? from.items.get(name) : undefined);
    const changed = subscribedItems(target, toNames).filter((r) => held(r.name)?.version !== r.version);
    const removed: string[] = [];
    if (from) {
      for (const name of fromNames ?? from.items.keys()) {
        if (!from.items.has(name)) continue;
        if (!target.items.has(name) || (toNames !== undefined && !toNames.has(name))) removed.push(name);
      }
    }
    d = diffOf(changed, removed);
    byKey.set(key, d);
  }
  return d;
}

/** The delta from versions a reconnecting client reported to the `names` part of `to` (not shared). */
export function mapDiff(versions: ReadonlyMap<string, string>, to: TypeResources | undefined, names: ReadonlySet<string> | undefined): DeltaDiff {
  const target = to ?? NO_SET;
  const changed = subscribedItems(target, names).filter((r) => versions.get(r.name) !== r.version);
  const removed = [...versions.keys()].filter((n) => !target.items.has(n) || (names !== undefined && !names.has(n)));
  return diffOf(changed, removed);
}

// ---- the service ----------------------------------------------------------------------------

function serializeSotw(m: DiscoveryResponse & Prepared): Buffer {
  return m[ENCODED_MESSAGE] ?? adsService.StreamAggregatedResources.responseSerialize(m);
}

function serializeDelta(m: DeltaDiscoveryResponse & Prepared): Buffer {
  const body = m[ENCODED_RESOURCES];
  if (!body) return adsService.DeltaAggregatedResources.responseSerialize(m);
  const head = delta().encode({ system_version_info: m.system_version_info, type_url: m.type_url, nonce: m.nonce, removed_resources: m.removed_resources }).finish();
  return Buffer.concat([head, body]);
}

/** Envoy's ADS service, answering with the prepared bytes: what the control plane serves. */
export const preparedAdsService = {
  StreamAggregatedResources: { ...adsService.StreamAggregatedResources, responseSerialize: serializeSotw },
  DeltaAggregatedResources: { ...adsService.DeltaAggregatedResources, responseSerialize: serializeDelta },
} satisfies grpc.ServiceDefinition;
