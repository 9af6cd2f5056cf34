// ProxyState: the proxy's config store. The xDS client applies each type's full resource set;
// every apply publishes a new immutable ProxyConfig through a Watch (old snapshots untouched).
import type { Cluster, EndpointAssignment, Listener, RouteConfig, SecretValue, VirtualHost } from '../../api/domain.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import type { ResourceRef } from '../../api/resource.js';
import { SHORT_NAME, TypeUrl } from '../../api/types.js';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { Watch } from '../../core/watch.js';
import type { ProxyConfig } from './types.js';

export interface ProxyStateOptions {
  /**
   * SDS names the proxy provides itself and never expects from xDS (its own workload
   * certificate, Istio's `default`); they do not count as missing. Default: `['default']`.
   */
  readonly localSecrets?: readonly string[];
}

const FIELD: Record<TypeUrl, keyof Omit<ProxyConfig, 'generation' | 'versions'>> = {
  [TypeUrl.Listener]: 'listeners',
  [TypeUrl.RouteConfiguration]: 'routes',
  [TypeUrl.VirtualHost]: 'virtualHosts',
  [TypeUrl.Cluster]: 'clusters',
  [TypeUrl.ClusterLoadAssignment]: 'endpoints',
  [TypeUrl.Secret]: 'secrets',
};

const EMPTY_MAP: ReadonlyMap<string, unknown> = new Map();
const EMPTY: ProxyConfig = Object.freeze({
  generation: 0,
  listeners: new Map<string, Listener>(),
  routes: new Map<string, RouteConfig>(),
  virtualHosts: new Map<string, VirtualHost>(),
  clusters: new Map<string, Cluster>(),
  endpoints: new Map<string, EndpointAssignment>(),
  secrets: new Map<string, SecretValue>(),
  versions: new Map<TypeUrl, string>(),
});

export class ProxyState {
  /** The current snapshot; subscribers see every new one. Requests capture `config.get()` once. */
  readonly config = new Watch<ProxyConfig>(EMPTY);
  private readonly localSecrets: ReadonlySet<string>;

  constructor(opts: ProxyStateOptions = {}) {
    this.localSecrets = new Set(opts.localSecrets ?? ['default']);
  }

  /**
   * Replaces the full set of one type (state-of-the-world semantics: names not in `resources`
   * are gone) with values already decoded by that type's ResourceType, and publishes a new
   * snapshot. A resource equal to the one it replaces keeps its old object, so per-object
   * caches (the route planner's compiled tables) survive unrelated pushes.
   * Called by the xDS client after it accepted (ACKed) a response; never concurrently.
   */
  apply(typeUrl: TypeUrl, resources: ReadonlyMap<string, unknown>, version: string): ProxyConfig {
    const type = RESOURCE_TYPES.get(typeUrl);
    const key = FIELD[typeUrl];
    if (!type || !key) throw new WeftError(ErrorCode.INTERNAL, `ProxyState.apply: unknown type URL ${typeUrl}`);
    const prev = this.config.get();
    const old = (prev[key] ?? EMPTY_MAP) as ReadonlyMap<string, unknown>;
    const next = new Map<string, unknown>();
    for (const [name, value] of resources) {
      const before = old.get(name);
      next.set(name, before !== undefined && type.equals(before, value) ? before : value);
    }
    const versions = new Map(prev.versions);
    versions.set(typeUrl, version);
    const config: ProxyConfig = Object.freeze({ ...prev, [key]: next, versions, generation: prev.generation + 1 });
    this.config.set(config);
    return config;
  }

  /** References named by the current listeners and clusters that have not arrived, as `RDS/name`. */
  missing(): string[] {
    const c = this.config.get();
    const out = new Set<string>();
    const check = (refs: readonly ResourceRef[]) => {
      for (const r of refs) {
        if (r.typeUrl === TypeUrl.Secret && this.localSecrets.has(r.name)) continue;
        const have = c[FIELD[r.typeUrl]] as ReadonlyMap<string, unknown>;
        if (!have.has(r.name)) out.add(`${SHORT_NAME[r.typeUrl]}/${r.name}`);
      }
    };
    const listenerType = RESOURCE_TYPES.get(TypeUrl.Listener)!;
    const clusterType = RESOURCE_TYPES.get(TypeUrl.Cluster)!;
    for (const l of c.listeners.values()) check(listenerType.references(l));
    for (const cl of c.clusters.values()) check(clusterType.references(cl));
    return [...out].sort();
  }

  /** Listeners and clusters have been received (even if empty), nothing they name is missing,
   *  and, if a route configuration takes its virtual hosts from VHDS, VHDS has answered. */
  isComplete(): boolean {
    const c = this.config.get();
    const v = c.versions;
    if (!v.has(TypeUrl.Listener) || !v.has(TypeUrl.Cluster) || this.missing().length > 0) return false;
    for (const rc of c.routes.values()) if (rc.vhds && !v.has(TypeUrl.VirtualHost)) return false;
    return true;
  }
}
