// The translator: a pure function from (Model, proxy, connected sidecars, options) to the plain
// Envoy resources that proxy should hold, exactly as ARCHITECTURE.md's xDS contract describes.
import type { Plain } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import { DEFAULT_ROUTE_SEMANTICS, waypointNameOf, type Model, type Service, type WorkloadEntry } from '../model/index.js';
import { sidecarAssignments, sidecarWaypoint, translateAmbientShared, translateNodeProxy, waypointVipListeners, type AmbientShared } from './ambient.js';
import { appPorts, inboundClusters, outboundClusters } from './clusters.js';
import { inboundListener, outboundListener, serviceVipListeners } from './listeners.js';
import { outboundRoutes, type OutboundRoutes } from './route-config.js';
import { inboundSecurity } from './security.js';
import type { ProxyNode, ResourceSet, SidecarDirectory, TranslateOptions } from './types.js';

export type { ProxyNode, ResourceSet, SidecarDirectory, SidecarPorts, TranslateOptions } from './types.js';
export { sidecarPortsOf } from './types.js';
export { spiffeId } from './clusters.js';
export { outboundClusterName, inboundClusterName, serviceFqdn } from './envoy.js';
export { ROOT_NAMESPACE, mtlsModeFor, rbacHttpFilters, rbacPolicyName } from './security.js';
export { ambientListenerName, podsOnNode, translateNodeProxy, waypointClusterName } from './ambient.js';
export { HBONE_PORT } from './clusters.js';

function ownWorkload(model: Model, proxy: ProxyNode): WorkloadEntry | undefined {
  const direct = model.workloadEntry(proxy.namespace, proxy.workload);
  if (direct) return direct;
  // Tolerate the node's `name.namespace` form as well.
  const suffix = `.${proxy.namespace}`;
  return proxy.workload.endsWith(suffix) ? model.workloadEntry(proxy.namespace, proxy.workload.slice(0, -suffix.length)) : undefined;
}

function byName(entries: Iterable<[string, Plain]>): Map<string, Plain> {
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The parts of every sidecar's config that depend only on the model, the connected sidecars and
 * the options — outbound clusters and endpoints, Service VIP listeners — computed once per
 * rebuild and shared by all proxies, with route configurations memoised per client namespace.
 * Sharing the very objects also lets the snapshot layer encode each of them once.
 */
export interface SharedTranslation {
  readonly model: Model;
  readonly options: TranslateOptions;
  readonly directory: SidecarDirectory;
  readonly outbound: ReturnType<typeof outboundClusters>;
  /** The outbound endpoints as sidecars get them: through waypoints where Services have one. */
  readonly sidecarAssignments: ReadonlyMap<string, Plain>;
  readonly outboundListener: Plain;
  readonly vipListeners: ReadonlyArray<[string, Plain]>;
  /** The `outbound` route configuration and its VHDS virtual hosts for clients in a namespace
   *  (memoised): a sidecar's by default, a waypoint's with `sidecar` false (they differ only for
   *  Services with a waypoint, whose routes the waypoint applies). */
  routeConfigFor(namespace: string, sidecar?: boolean): OutboundRoutes;
  /** What every node proxy shares (memoised; computed only once a node proxy asks). */
  ambient(): AmbientShared;
}

export function translateShared(model: Model, directory: SidecarDirectory, options: TranslateOptions): SharedTranslation {
  const semantics = { ...DEFAULT_ROUTE_SEMANTICS, ...options };
  const routeConfigs = new Map<string, OutboundRoutes>();
  let ambient: AmbientShared | undefined;
  const throughWaypoint = (service: Service) => sidecarWaypoint(model, service, options) !== undefined;
  const anyWaypoint = model.services.some(throughWaypoint);
  // Sorted by name once here: most proxies then hold these very maps (sorting 1000 clusters per
  // proxy was most of a rebuild). Read-only from here on.
  const unsorted = outboundClusters(model, directory, options);
  const outbound = { ...unsorted, clusters: byName(unsorted.clusters), assignments: byName(unsorted.assignments) };
  return {
    model,
    options,
    directory,
    outbound,
    // In the same (sorted) order: overridden entries keep their places.
    sidecarAssignments: sidecarAssignments(model, outbound.assignments, options),
    outboundListener: outboundListener(),
    vipListeners: serviceVipListeners(model),
    routeConfigFor(namespace, sidecar = true) {
      const viaWaypoint = sidecar && anyWaypoint;
      const key = viaWaypoint ? `sidecar|${namespace}` : namespace;
      let rc = routeConfigs.get(key);
      if (!rc) routeConfigs.set(key, (rc = outboundRoutes(model, namespace, semantics, viaWaypoint ? throughWaypoint : undefined)));
      return rc;
    },
    ambient: () => (ambient ??= translateAmbientShared(model, options)),
  };
}

/**
 * One proxy's resources: the shared parts plus its own inbound side (a waypoint is a workload
 * and gets the same), or a node proxy's (ambient.ts). Pure, like translate.
 */
export function translateProxy(shared: SharedTranslation, proxy: ProxyNode): ResourceSet {
  if (proxy.mode === 'ambient') return translateNodeProxy(shared, proxy);
  const { model, options } = shared;
  const workload = ownWorkload(model, proxy);
  const ports = workload ? appPorts(model, workload) : new Map<number, { http2: boolean }>();
  // Most proxies add nothing to the shared clusters: they get the sorted map all share.
  const inbound = workload ? [...inboundClusters(workload, ports)] : [];
  const clusters = inbound.length === 0 ? shared.outbound.clusters : byName([...shared.outbound.clusters, ...inbound]);
  const routes = shared.routeConfigFor(proxy.namespace, proxy.mode !== 'waypoint');
  return {
    // A workload that serves no port (a pure client) gets no inbound listener: Envoy rejects a
    // listener without filter chains, and there is nothing for one to forward to.
    [TypeUrl.Listener]: byName([
      ['outbound', shared.outboundListener],
      ...(proxy.mode === 'waypoint' && workload && waypointNameOf(workload)
        ? waypointVipListeners(model, shared.vipListeners, waypointNameOf(workload)!, workload.metadata.namespace)
        : shared.vipListeners),
      ...(workload && ports.size > 0 ? [['inbound', inboundListener(ports.keys(), inboundSecurity(model, workload, options.mtls))] as [string, Plain]] : []),
    ]),
    [TypeUrl.RouteConfiguration]: new Map([[routes.config.name as string, routes.config]]),
    [TypeUrl.VirtualHost]: routes.virtualHosts,
    [TypeUrl.Cluster]: clusters,
    // A waypoint itself sends to the pods (it is what the sidecars' waypoint endpoints lead to).
    [TypeUrl.ClusterLoadAssignment]: proxy.mode === 'waypoint' ? shared.outbound.assignments : shared.sidecarAssignments,
    [TypeUrl.Secret]: new Map(),
  };
}

/**
 * Everything `proxy` should be sent. Pure: the same inputs give equal output, and nothing is
 * read from outside its arguments. The control plane uses translateShared + translateProxy so
 * that a rebuild for many proxies does the shared work once.
 */
export function translate(model: Model, proxy: ProxyNode, directory: SidecarDirectory, options: TranslateOptions): ResourceSet {
  return translateProxy(translateShared(model, directory, options), proxy);
}
