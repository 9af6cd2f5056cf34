// Immutable, versioned per-proxy snapshots of xDS resources, checked for consistency before any
// proxy sees them: every RDS name a listener uses and every EDS name a cluster uses must exist,
// and every cluster a route names must exist unless the route says what to answer without it.
import { createHash } from 'node:crypto';
import { pack, type PackedAny, type Plain } from '../../api/codec.js';
import { HCM_TYPE_URL, PUSH_ORDER, TypeUrl } from '../../api/types.js';

export interface VersionedResource {
  readonly name: string;
  /** Content hash of the encoded resource: equal bytes, equal version. */
  readonly version: string;
  readonly resource: PackedAny;
  /** The plain object it was encoded from, for /debug/config_dump. */
  readonly plain: Plain;
}

export interface TypeResources {
  /** Hash over all (name, version) pairs of this type. */
  readonly version: string;
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

/**
 * Encodes every resource and computes versions. `previous` keeps unchanged resources identical
 * across snapshots: an equal encoding reuses the previous entry, so versions are stable.
 */
export function buildSnapshot(set: ResourceSet, previous?: Snapshot): Snapshot {
  const types = new Map<TypeUrl, TypeResources>();
  for (const typeUrl of PUSH_ORDER) {
    const plains = set[typeUrl] ?? new Map<string, Plain>();
    const prevItems = previous?.types.get(typeUrl)?.items;
    const items = new Map<string, VersionedResource>();
    for (const name of [...plains.keys()].sort()) {
      const plain = plains.get(name)!;
      const prev = prevItems?.get(name);
      if (prev && prev.plain === plain) {
        items.set(name, prev);
        continue;
      }
      let entry = encoded.get(plain);
      if (!entry || entry.name !== name) {
        const resource = pack(typeUrl, plain);
        entry = { name, version: hash(resource.value), resource, plain };
        encoded.set(plain, entry);
      }
      items.set(name, prev && prev.version === entry.version ? prev : entry);
    }
    const version = hash([...items.values()].map((r) => `${r.name}=${r.version}`).join('\n'));
    types.set(typeUrl, { version, items });
  }
  return { types };
}

/** Problems that would make a proxy wait forever or route to nothing; empty when consistent. */
export function checkConsistency(snapshot: Snapshot): string[] {
  const problems: string[] = [];
  const names = (t: TypeUrl) => snapshot.types.get(t)?.items ?? new Map();
  const routes = names(TypeUrl.RouteConfiguration);
  const clusters = names(TypeUrl.Cluster);
  const endpoints = names(TypeUrl.ClusterLoadAssignment);

  for (const l of names(TypeUrl.Listener).values()) {
    for (const hcm of httpConnectionManagers(l.plain)) {
      const rds = (hcm.rds as Plain | undefined)?.route_config_name;
      if (typeof rds === 'string' && !routes.has(rds)) {
        problems.push(`listener ${l.name} uses route configuration "${rds}", which is not in the snapshot`);
      }
      const inline = hcm.route_config as Plain | undefined;
      if (inline) problems.push(...routeClusterProblems(inline, clusters, `listener ${l.name}`));
    }
  }
  for (const r of routes.values()) problems.push(...routeClusterProblems(r.plain, clusters, `route configuration ${r.name}`));
  for (const c of clusters.values()) {
    if (c.plain.type !== 'EDS') continue;
    const eds = ((c.plain.eds_cluster_config as Plain | undefined)?.service_name as string | undefined) ?? c.name;
    if (!endpoints.has(eds)) problems.push(`cluster ${c.name} uses endpoints "${eds}", which are not in the snapshot`);
  }
  return problems;
}

function httpConnectionManagers(listener: Plain): Plain[] {
  const out: Plain[] = [];
  const chains = [...((listener.filter_chains as Plain[] | undefined) ?? [])];
  if (listener.default_filter_chain) chains.push(listener.default_filter_chain as Plain);
  for (const chain of chains) {
    for (const f of (chain.filters as Plain[] | undefined) ?? []) {
      const tc = f.typed_config as Plain | undefined;
      if (tc?.['@type'] === HCM_TYPE_URL) out.push(tc);
    }
  }
  const api = (listener.api_listener as Plain | undefined)?.api_listener as Plain | undefined;
  if (api?.['@type'] === HCM_TYPE_URL) out.push(api);
  return out;
}

function routeClusterProblems(rc: Plain, clusters: ReadonlyMap<string, unknown>, where: string): string[] {
  const problems: string[] = [];
  for (const vh of (rc.virtual_hosts as Plain[] | undefined) ?? []) {
    for (const route of (vh.routes as Plain[] | undefined) ?? []) {
      const action = route.route as Plain | undefined;
      if (!action || action.cluster_not_found_response_code !== undefined) continue;
      const wanted: string[] = [];
      if (typeof action.cluster === 'string') wanted.push(action.cluster);
      for (const wc of ((action.weighted_clusters as Plain | undefined)?.clusters as Plain[] | undefined) ?? []) {
        if (typeof wc.name === 'string') wanted.push(wc.name);
      }
      for (const name of wanted) {
        if (!clusters.has(name)) problems.push(`${where}: route ${String(route.name ?? '')} names cluster "${name}", which is not in the snapshot`);
      }
    }
  }
  return problems;
}
