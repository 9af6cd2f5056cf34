// The consistency check: a snapshot must not give a proxy a listener without its routes, a
// cluster without its endpoints, or a route to a cluster it does not have (unless the route
// says what to answer then). Type sets are shared by many proxies, so what each set asks of the
// others is read once per set, and each combination of sets is checked once.
import type { Plain } from '../../api/codec.js';
import { HCM_TYPE_URL, TypeUrl } from '../../api/types.js';
import type { Snapshot, TypeResources } from './snapshot.js';

/** One reference from a resource to a resource of another type, with its problem if missing. */
interface Need {
  readonly type: TypeUrl;
  readonly name: string;
  readonly problem: string;
}

const EMPTY: TypeResources = { version: '', items: new Map() };

/** What the resources of one set reference, in the order their problems are reported. */
const needsOf = new WeakMap<TypeResources, readonly Need[]>();

function needs(typeUrl: TypeUrl, set: TypeResources): readonly Need[] {
  let out = needsOf.get(set);
  if (out) return out;
  const list: Need[] = [];
  for (const r of set.items.values()) {
    if (typeUrl === TypeUrl.Listener) {
      for (const hcm of httpConnectionManagers(r.plain)) {
        const rds = (hcm.rds as Plain | undefined)?.route_config_name;
        if (typeof rds === 'string') {
          list.push({ type: TypeUrl.RouteConfiguration, name: rds, problem: `listener ${r.name} uses route configuration "${rds}", which is not in the snapshot` });
        }
        const inline = hcm.route_config as Plain | undefined;
        if (inline) list.push(...routeClusterNeeds(inline, `listener ${r.name}`));
      }
    } else if (typeUrl === TypeUrl.RouteConfiguration) {
      list.push(...routeClusterNeeds(r.plain, `route configuration ${r.name}`));
    } else if (typeUrl === TypeUrl.VirtualHost) {
      list.push(...routeClusterNeeds({ virtual_hosts: [r.plain] }, `virtual host ${r.name}`));
    } else if (typeUrl === TypeUrl.Cluster && r.plain.type === 'EDS') {
      const eds = ((r.plain.eds_cluster_config as Plain | undefined)?.service_name as string | undefined) ?? r.name;
      list.push({ type: TypeUrl.ClusterLoadAssignment, name: eds, problem: `cluster ${r.name} uses endpoints "${eds}", which are not in the snapshot` });
    }
  }
  out = list;
  needsOf.set(set, out);
  return out;
}

/** Problems of one set's references against the sets of the types they point into, memoised. */
const checked = new WeakMap<TypeResources, WeakMap<TypeResources, WeakMap<TypeResources, readonly string[]>>>();

function problemsOf(typeUrl: TypeUrl, set: TypeResources, snapshot: Snapshot): readonly string[] {
  const target = (t: TypeUrl) => snapshot.types.get(t) ?? EMPTY;
  // Listeners point at routes and (inline) clusters; routes and virtual hosts at clusters;
  // clusters at endpoints.
  const [a, b] =
    typeUrl === TypeUrl.Listener
      ? [target(TypeUrl.RouteConfiguration), target(TypeUrl.Cluster)]
      : typeUrl === TypeUrl.RouteConfiguration || typeUrl === TypeUrl.VirtualHost
        ? [target(TypeUrl.Cluster), EMPTY]
        : [target(TypeUrl.ClusterLoadAssignment), EMPTY];
  let byA = checked.get(set);
  if (!byA) checked.set(set, (byA = new WeakMap()));
  let byB = byA.get(a);
  if (!byB) byA.set(a, (byB = new WeakMap()));
  let out = byB.get(b);
  if (!out) {
    const problems: string[] = [];
    for (const n of needs(typeUrl, set)) {
      if (!target(n.type).items.has(n.name)) problems.push(n.problem);
    }
    byB.set(b, (out = problems));
  }
  return out;
}

/** Problems that would make a proxy wait forever or route to nothing; empty when consistent. */
export function checkConsistency(snapshot: Snapshot): string[] {
  return [TypeUrl.Listener, TypeUrl.RouteConfiguration, TypeUrl.VirtualHost, TypeUrl.Cluster].flatMap((t) => problemsOf(t, snapshot.types.get(t) ?? EMPTY, snapshot));
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

function routeClusterNeeds(rc: Plain, where: string): Need[] {
  const out: Need[] = [];
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
        out.push({ type: TypeUrl.Cluster, name, problem: `${where}: route ${String(route.name ?? '')} names cluster "${name}", which is not in the snapshot` });
      }
    }
  }
  return out;
}
