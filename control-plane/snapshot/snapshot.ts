// Immutable, versioned per-proxy snapshots of xDS resources, checked for consistency before any
// proxy sees them (consistency.ts). Their parts are shared: a resource is encoded once per
// distinct content, and the set of one type (TypeResources) is one object for every proxy that
// holds the same (name, version) pairs — a thousand proxies with the same clusters share one map
// of them, and the xDS server encodes one response body for all of them.
import { createHash } from 'node:crypto';
import { pack, type PackedAny, type Plain } from '../../api/codec.js';
import { PUSH_ORDER, TypeUrl } from '../../api/types.js';
import { WeakInterner } from './intern.js';

export { checkConsistency } from './consistency.js';

export interface VersionedResource {
  readonly name: string;
  /** Content hash of the encoded resource: equal bytes, equal version. */
  readonly version: string;
  readonly resource: PackedAny;
  /** The plain object it was encoded from, for /debug/config_dump. */
  readonly plain: Plain;
}

/**
 * The resources of one type in a snapshot. Equal sets are the same object (interned by
 * version), so consumers may cache per TypeResources what they derive from it.
 */
export interface TypeResources {
  /** Hash over all (name, version) pairs of this type. */
  readonly version: string;
  /** By name, in name order. */
  readonly items: ReadonlyMap<string, VersionedResource>;
}

export interface Snapshot {
  readonly types: ReadonlyMap<TypeUrl, TypeResources>;
}

export type ResourceSet = Partial<Record<TypeUrl, ReadonlyMap<string, Plain>>>;

export class SnapshotError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`inconsistent snapshot: ${problems.join('; ')}`);
  }
}

function hash(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('base64url').slice(0, 16);
}

/**
 * Encodings by plain object: a resource object shared by many proxies' sets (the translator
 * shares everything that does not depend on the proxy) is encoded once, not once per proxy.
 */
const encoded = new WeakMap<Plain, VersionedResource>();
/** Equal content (type, name, bytes) is one entry, across rebuilds that make new plain objects. */
const resources = new WeakInterner<VersionedResource>();
/** Equal sets of one type are one TypeResources, whichever proxy or rebuild made them. */
const typeSets = new WeakInterner<TypeResources>();
/** Per type, the set most recently built or matched: most proxies share it, so it is tried first. */
const recent = new Map<TypeUrl, TypeResources>();
const NO_PLAINS: ReadonlyMap<string, Plain> = new Map();

function encode(typeUrl: TypeUrl, name: string, plain: Plain): VersionedResource {
  const known = encoded.get(plain);
  if (known && known.name === name) return known;
  const resource = pack(typeUrl, plain);
  const version = hash(resource.value);
  const entry = resources.intern(`${typeUrl}\n${name}\n${version}`, () => ({ name, version, resource, plain }));
  encoded.set(plain, entry);
  return entry;
}

/** Whether `set` holds exactly these resources: same names, same content. O(n), no hashing. */
function holds(typeUrl: TypeUrl, set: TypeResources, plains: ReadonlyMap<string, Plain>): boolean {
  if (set.items.size !== plains.size) return false;
  const inOrder = set.items.values();
  for (const [name, plain] of plains) {
    // Usually both are in name order and walk in step; otherwise look the name up.
    let held = inOrder.next().value as VersionedResource | undefined;
    if (held?.name !== name) held = set.items.get(name);
    if (!held) return false;
    if (held.plain !== plain && encode(typeUrl, name, plain) !== held) return false;
  }
  return true;
}

function typeResources(typeUrl: TypeUrl, plains: ReadonlyMap<string, Plain>, previous: TypeResources | undefined): TypeResources {
  // Fast paths: this proxy's last set, or the one most proxies got in this rebuild.
  const last = recent.get(typeUrl);
  for (const candidate of [previous, last]) {
    if (candidate && holds(typeUrl, candidate, plains)) {
      recent.set(typeUrl, candidate);
      return candidate;
    }
  }
  let names = [...plains.keys()];
  if (!names.every((n, i) => i === 0 || names[i - 1]! < n)) names = names.sort();
  const items = new Map<string, VersionedResource>();
  const digest = createHash('sha256');
  names.forEach((name, i) => {
    const r = encode(typeUrl, name, plains.get(name)!);
    items.set(name, r);
    digest.update(i === 0 ? `${name}=${r.version}` : `\n${name}=${r.version}`);
  });
  const version = digest.digest('base64url').slice(0, 16);
  const set = typeSets.intern(`${typeUrl}\n${version}`, () => ({ version, items }));
  recent.set(typeUrl, set);
  return set;
}

/**
 * Encodes every resource and computes versions. Unchanged resources and unchanged sets keep
 * their identity (with `previous`, or with any other proxy's equal set), so versions are stable
 * and a snapshot equal to `previous` is `previous` itself.
 */
export function buildSnapshot(set: ResourceSet, previous?: Snapshot): Snapshot {
  const types = new Map<TypeUrl, TypeResources>();
  let same = previous !== undefined;
  for (const typeUrl of PUSH_ORDER) {
    const before = previous?.types.get(typeUrl);
    const now = typeResources(typeUrl, set[typeUrl] ?? NO_PLAINS, before);
    if (now !== before) same = false;
    types.set(typeUrl, now);
  }
  return same && previous!.types.size === types.size ? previous! : { types };
}
