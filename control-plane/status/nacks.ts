// Route status from proxy rejections: when a proxy NACKs config, the routes that config was
// built from say so (which proxies, which version, why) — not only a metric. A NACK is mapped
// back to routes through the snapshot that proxy was sent: the field paths in the message
// (`virtual_hosts[0].routes[2]...` in RDS, `routes[2]...` after a VHDS resource's name), route or
// cluster names it quotes, or, failing those, every route the rejected resources carried. The ledger keeps one entry per (proxy, type)
// and reports only those still current (the proxy has not accepted a later version since).
import type { Plain } from '../../api/codec.js';
import { SHORT_NAME, TypeUrl } from '../../api/types.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { RouteCondition, RouteParentStatus, RouteStatus } from './index.js';

/** One proxy's rejection of config derived from a route. */
export interface ProxyRejection {
  readonly proxy: string;
  /** `RDS`, `VHDS`, `LDS`, `CDS`, `EDS`. */
  readonly type: string;
  readonly version: string;
  readonly message: string;
  readonly at: string;
}

/** Weft's condition type for it: implementation-specific, so domain-prefixed (Gateway API). */
export const PROXY_ACCEPTED = 'weft.dev/ProxyAccepted';

export interface ProxyCondition {
  readonly type: typeof PROXY_ACCEPTED;
  readonly status: 'True' | 'False';
  /** `Accepted` or `Rejected`. */
  readonly reason: string;
  readonly message: string;
}

export type RouteStatusWithProxies = Omit<RouteStatus, 'parents'> & {
  readonly parents: readonly (Omit<RouteParentStatus, 'conditions'> & { readonly conditions: readonly (RouteCondition | ProxyCondition)[] })[];
  readonly proxyRejections: readonly ProxyRejection[];
};

/** Envoy route names Weft gives rules: `<namespace>/<route>/<rule name or index>`. */
const ROUTE_NAME = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)\/([^/\s]+)$/;

/** `<namespace>/<route>` of a Weft route name, or undefined for other names (`default`). */
export function routeOfRuleName(name: string): string | undefined {
  const m = ROUTE_NAME.exec(name);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

interface PlainRoute {
  readonly name?: string;
  readonly route?: { readonly cluster?: string; readonly weighted_clusters?: { readonly clusters?: readonly { readonly name?: string }[] } };
  readonly request_mirror_policies?: readonly { readonly cluster?: string }[];
}

function virtualHosts(routeConfig: Plain): readonly { readonly routes?: readonly PlainRoute[] }[] {
  return (routeConfig.virtual_hosts as { routes?: PlainRoute[] }[] | undefined) ?? [];
}

function clustersOf(r: PlainRoute): string[] {
  const out: string[] = [];
  if (r.route?.cluster) out.push(r.route.cluster);
  for (const c of r.route?.weighted_clusters?.clusters ?? []) if (c.name) out.push(c.name);
  for (const m of r.request_mirror_policies ?? []) if (m.cluster) out.push(m.cluster);
  return out;
}

/**
 * The Weft route names (`ns/route/rule`) a NACK of `typeUrl` implicates, given the snapshot
 * the proxy was sent. Pure.
 */
export function rulesInNack(typeUrl: TypeUrl, message: string, snapshot: Snapshot | undefined): string[] {
  if (!snapshot) return [];
  const rejected = snapshot.types.get(typeUrl)?.items ?? new Map();
  // Every virtual host the proxy was sent: inline in route configurations, and from VHDS.
  const allVhosts = [
    ...[...(snapshot.types.get(TypeUrl.RouteConfiguration)?.items.values() ?? [])].flatMap((r) => virtualHosts(r.plain)),
    ...[...(snapshot.types.get(TypeUrl.VirtualHost)?.items.values() ?? [])].map((r) => r.plain as { routes?: readonly PlainRoute[] }),
  ];
  const out = new Set<string>();
  const quoted = (name: string) => message.includes(name);

  if (typeUrl === TypeUrl.RouteConfiguration) {
    // Resources the message names; a message naming none implicates all of them.
    const named = [...rejected.values()].filter((r) => quoted(r.name));
    for (const r of named.length > 0 ? named : [...rejected.values()]) {
      const vhosts = virtualHosts(r.plain);
      const paths = [...message.matchAll(/virtual_hosts\[(\d+)\]\.routes\[(\d+)\]/g)];
      for (const [, v, i] of paths) {
        const name = vhosts[Number(v)]?.routes?.[Number(i)]?.name;
        if (name) out.add(name);
      }
      for (const vh of vhosts) for (const route of vh.routes ?? []) if (route.name && quoted(route.name)) out.add(route.name);
      if (out.size === 0) for (const vh of vhosts) for (const route of vh.routes ?? []) if (route.name) out.add(route.name);
    }
  } else if (typeUrl === TypeUrl.VirtualHost) {
    // One virtual host per resource: field paths count on the message lines naming it.
    const named = [...rejected.values()].filter((r) => quoted(r.name));
    const lines = message.split('\n');
    for (const r of named.length > 0 ? named : [...rejected.values()]) {
      const routes = ((r.plain as { routes?: readonly PlainRoute[] }).routes ?? []);
      for (const line of named.length > 0 ? lines.filter((l) => l.includes(r.name)) : []) {
        for (const [, i] of line.matchAll(/(?:^|[\s.:])routes\[(\d+)\]/g)) {
          const name = routes[Number(i)]?.name;
          if (name) out.add(name);
        }
      }
      for (const route of routes) if (route.name && quoted(route.name)) out.add(route.name);
    }
    if (out.size === 0) for (const r of named.length > 0 ? named : [...rejected.values()]) for (const route of (r.plain as { routes?: readonly PlainRoute[] }).routes ?? []) if (route.name) out.add(route.name);
  } else if (typeUrl === TypeUrl.Cluster || typeUrl === TypeUrl.ClusterLoadAssignment) {
    // The clusters the message names, then every rule sending to one of them.
    const clusters = new Set([...rejected.keys()].filter(quoted));
    for (const vh of allVhosts) {
      for (const route of vh.routes ?? []) if (route.name && clustersOf(route).some((c) => clusters.has(c))) out.add(route.name);
    }
  } else {
    // Listeners carry no HTTPRoute rules of their own: only names the message quotes count.
    for (const vh of allVhosts) for (const route of vh.routes ?? []) if (route.name && quoted(route.name)) out.add(route.name);
  }
  return [...out].filter((n) => routeOfRuleName(n) !== undefined).sort();
}

interface Entry extends ProxyRejection {
  readonly typeUrl: TypeUrl;
  /** `<namespace>/<route>` of every route implicated. */
  readonly routes: readonly string[];
}

/** Rejections per proxy and type, as the xDS server reports them. */
export class NackLedger {
  private readonly entries = new Map<string, Map<TypeUrl, Entry>>();

  /** A proxy NACKed `version` of `typeUrl`; `snapshot` is what it was sent (if still known). */
  record(proxy: string, typeUrl: TypeUrl, nack: { version: string; message: string; at: string }, snapshot: Snapshot | undefined): void {
    const sentVersion = snapshot?.types.get(typeUrl)?.version;
    // A snapshot that moved on since cannot tell which rules were in the rejected version.
    const rules = sentVersion === nack.version ? rulesInNack(typeUrl, nack.message, snapshot) : [];
    const routes = [...new Set(rules.map((r) => routeOfRuleName(r)!))];
    let perProxy = this.entries.get(proxy);
    if (!perProxy) this.entries.set(proxy, (perProxy = new Map()));
    perProxy.set(typeUrl, { proxy, type: SHORT_NAME[typeUrl], typeUrl, version: nack.version, message: nack.message, at: nack.at, routes });
  }

  /** The proxy is gone: its rejections no longer matter. */
  forget(proxy: string): void {
    this.entries.delete(proxy);
  }

  /**
   * Rejections still in force, by route (`<namespace>/<route>`). `stillNacked` says whether the
   * proxy's current state for that type is still the NACK of that version.
   */
  byRoute(stillNacked: (proxy: string, typeUrl: TypeUrl, version: string) => boolean): Map<string, ProxyRejection[]> {
    const out = new Map<string, ProxyRejection[]>();
    for (const perProxy of this.entries.values()) {
      for (const e of perProxy.values()) {
        if (!stillNacked(e.proxy, e.typeUrl, e.version)) continue;
        const rejection: ProxyRejection = { proxy: e.proxy, type: e.type, version: e.version, message: e.message, at: e.at };
        for (const r of e.routes) {
          const list = out.get(r) ?? [];
          list.push(rejection);
          out.set(r, list);
        }
      }
    }
    return out;
  }
}

/**
 * Route statuses with the proxies' verdict added to each parent: `weft.dev/ProxyAccepted`
 * False (with who and why) while some proxy rejects config built from the route, else True.
 */
export function withProxyRejections(
  statuses: ReadonlyMap<string, RouteStatus>,
  rejections: ReadonlyMap<string, readonly ProxyRejection[]>,
): Map<string, RouteStatusWithProxies> {
  const out = new Map<string, RouteStatusWithProxies>();
  for (const [key, s] of statuses) {
    const list = rejections.get(`${s.namespace}/${s.name}`) ?? [];
    const condition: ProxyCondition =
      list.length === 0
        ? { type: PROXY_ACCEPTED, status: 'True', reason: 'Accepted', message: 'No connected proxy rejected the configuration built from this route' }
        : {
            type: PROXY_ACCEPTED,
            status: 'False',
            reason: 'Rejected',
            message: `Rejected by ${list.length === 1 ? '1 proxy' : `${list.length} proxies`}, which keep their last accepted config: ${list
              .map((r) => `${r.proxy} (${r.type} version ${r.version}): ${firstLine(r.message)}`)
              .join('; ')}`,
          };
    out.set(key, {
      ...s,
      parents: s.parents.map((p) => ({ ...p, conditions: [...p.conditions, condition] })),
      proxyRejections: list,
    });
  }
  return out;
}

function firstLine(message: string): string {
  const line = message.split('\n')[0] ?? '';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}
