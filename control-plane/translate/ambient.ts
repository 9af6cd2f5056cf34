// What a node proxy (ARCHITECTURE.md "Ambient mode") is sent: the shared outbound clusters and
// endpoints; Service VIP listeners with one L4 (tcp_proxy) chain each, to the Service's cluster
// or to its waypoint's `waypoint|<name>|<namespace>`; and one `ambient|<namespace>|<name>`
// listener per ambient pod on its node, at `<pod ip>:15008`, whose chains carry the pod's
// mTLS mode and its authorization reduced to what L4 can enforce. Pure, like translate().
import type { Plain } from '../../api/codec.js';
import { RBAC_TYPE_URL, TypeUrl } from '../../api/types.js';
import {
  workloadKey,
  type AuthorizationOperation,
  type AuthorizationPolicy,
  type Model,
  type Service,
  type Waypoint,
  type WorkloadEntry,
} from '../model/index.js';
import { appPorts, edsCluster, HBONE_PORT, inboundClusters, loadAssignment, meshPorts, spiffeId, type EndpointSpec } from './clusters.js';
import { httpConnectionManager, outboundClusterName, socketAddress, struct } from './envoy.js';
import type { SharedTranslation } from './index.js';
import { inboundListener, tcpProxy, vipListenerName } from './listeners.js';
import { serviceVip } from './route-config.js';
import { authorizationPoliciesForService, mtlsModeFor, networkRbacFiltersOf, rbacFiltersOf, rbacHttpFilters, withHttpFilters, type InboundSecurity } from './security.js';
import type { ProxyNode, ResourceSet, SidecarDirectory, TranslateOptions } from './types.js';

export function waypointClusterName(name: string, namespace: string): string {
  return `waypoint|${name}|${namespace}`;
}

export function ambientListenerName(namespace: string, name: string): string {
  return `ambient|${namespace}|${name}`;
}

/** A pod's app port on a node proxy, which carries many pods: Istio's `inbound|P||<host>` form. */
export function ambientInboundClusterName(port: number, w: WorkloadEntry): string {
  return `inbound|${port}||${workloadKey(w)}`;
}

/** The parts every node proxy shares, computed once per rebuild (on the first node proxy's demand). */
export interface AmbientShared {
  readonly vipListeners: ReadonlyArray<[string, Plain]>;
  readonly waypointClusters: ReadonlyMap<string, Plain>;
  readonly waypointAssignments: ReadonlyMap<string, Plain>;
  /** The model with its AuthorizationPolicies reduced to L4 (see l4Policy). */
  readonly l4Model: Model;
}

export function translateAmbientShared(model: Model, options: TranslateOptions): AmbientShared {
  const vipListeners: Array<[string, Plain]> = [];
  const waypointClusters = new Map<string, Plain>();
  const waypointAssignments = new Map<string, Plain>();
  for (const service of model.services) {
    const ports = meshPorts(service);
    const waypoint = ports.length > 0 ? model.waypointFor(service) : undefined;
    const viaWaypoint = waypoint && waypointClusterName(waypoint.name, waypoint.namespace);
    if (waypoint && viaWaypoint && !waypointClusters.has(viaWaypoint)) {
      // HBONE is HTTP/2 CONNECT over mTLS: say so, though the proxy dials HBONE by the endpoints' `tunnel`.
      waypointClusters.set(viaWaypoint, edsCluster(viaWaypoint, true, options.mtls));
      waypointAssignments.set(viaWaypoint, loadAssignment(viaWaypoint, waypointEndpoints(waypoint, options.trustDomain)));
    }
    const vip = serviceVip(service);
    if (vip === undefined) continue;
    for (const port of ports) {
      const name = vipListenerName(vip, port.port);
      const cluster = viaWaypoint ?? outboundClusterName(port.port, service.metadata.name, service.metadata.namespace);
      vipListeners.push([
        name,
        {
          name,
          address: socketAddress(vip, port.port),
          bind_to_port: { value: false },
          traffic_direction: 'OUTBOUND',
          // L4 only: the node proxy never parses bytes (a waypoint applies L7 where one is asked for).
          filter_chains: [{ name: `${name}|tcp`, filters: [tcpProxy(cluster)] }],
        },
      ]);
    }
  }
  return { vipListeners, waypointClusters, waypointAssignments, l4Model: { ...model, authorizationPolicies: model.authorizationPolicies.map(l4Policy) } };
}

/**
 * The endpoints sidecars are sent: `assignments`, except that a Service with a waypoint is
 * reached through it, as ambient pods reach it (Istio's sidecar–waypoint interoperability): the
 * waypoint's replicas over HBONE, each naming the Service VIP:port as the CONNECT authority. Going
 * straight to the pods would skip what the waypoint enforces (L7 authorization, its routes). A
 * Service without a VIP has nothing for the waypoint to route by and keeps its own endpoints; so
 * does every Service with mesh mTLS off (HBONE is mTLS). The same map when no Service has a
 * waypoint.
 */
export function sidecarAssignments(model: Model, assignments: ReadonlyMap<string, Plain>, options: TranslateOptions): ReadonlyMap<string, Plain> {
  let out: Map<string, Plain> | undefined;
  for (const service of model.services) {
    const waypoint = sidecarWaypoint(model, service, options);
    const vip = serviceVip(service);
    if (!waypoint || vip === undefined) continue;
    const endpoints = waypointEndpoints(waypoint, options.trustDomain);
    for (const port of meshPorts(service)) {
      const name = outboundClusterName(port.port, service.metadata.name, service.metadata.namespace);
      const authority = formatAuthority(vip, port.port);
      out ??= new Map(assignments);
      out.set(name, loadAssignment(name, endpoints.map((e) => ({ ...e, weft: { ...e.weft, authority } }))));
    }
  }
  return out ?? assignments;
}

/** The waypoint sidecars send `service`'s traffic to (see sidecarAssignments), if any. */
export function sidecarWaypoint(model: Model, service: Service, options: TranslateOptions): Waypoint | undefined {
  if (!options.mtls || serviceVip(service) === undefined) return undefined;
  return model.waypointFor(service);
}

/** `ip:port`, an IPv6 address in brackets. */
function formatAuthority(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** A waypoint's replicas as HBONE endpoints; the CONNECT authority is the Service VIP:port. */
export function waypointEndpoints(waypoint: Waypoint, trustDomain: string): EndpointSpec[] {
  return waypoint.workloads.map((w) => ({
    address: w.spec.address,
    port: HBONE_PORT,
    weft: {
      workload: workloadKey(w),
      identity: spiffeId(trustDomain, w.metadata.namespace, w.spec.serviceAccount),
      tunnel: 'hbone',
      waypoint: true,
    },
  }));
}

// ---- Authorization at L4 ----------------------------------------------------------------------

function hasL7(o: AuthorizationOperation): boolean {
  return !!(o.methods?.length || o.notMethods?.length || o.paths?.length || o.notPaths?.length);
}

/**
 * What a node proxy can enforce of a policy, as Istio's ztunnel does: it sees no methods or
 * paths, so an ALLOW rule that needs them is dropped (it allows less, never more) and a DENY
 * rule keeps its other conditions without them (it denies more, never less).
 */
export function l4Policy(p: AuthorizationPolicy): AuthorizationPolicy {
  const l7 = p.spec.rules.some((r) => r.to.some((t) => hasL7(t.operation)));
  if (!l7) return p;
  const rules =
    p.spec.action === 'ALLOW'
      ? p.spec.rules.filter((r) => !r.to.some((t) => hasL7(t.operation)))
      : p.spec.rules.map((r) => ({
          ...r,
          to: r.to.map(({ operation: { methods: _m, notMethods: _nm, paths: _p, notPaths: _np, ...l4 } }) => ({ operation: l4 })),
        }));
  return { ...p, spec: { ...p.spec, rules } };
}

// ---- The per-pod listener ------------------------------------------------------------------------

/**
 * For a pod that serves no port: a listener still has to exist (it is how the node proxy learns
 * of the pod), and a connection to it is refused — by an empty ALLOW list at L4, by 403 at L7.
 */
function refusingChain(name: string): Plain {
  const hcm = httpConnectionManager(name, {
    inline: { name, virtual_hosts: [{ name, domains: ['*'], routes: [{ name, match: { prefix: '/' }, direct_response: { status: 403 } }] }] },
  });
  return {
    name: `${name}|refuse`,
    filters: [withHttpFilters(hcm, [{ name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC_TYPE_URL, rules: { action: 'ALLOW', policies: {} } } }])],
  };
}

/** The listener `ambient|<namespace>|<name>` of one ambient pod, and the clusters its chains name. */
export function ambientPodResources(
  model: Model,
  l4Model: Model,
  w: WorkloadEntry,
  options: TranslateOptions,
): { listener: Plain; clusters: Map<string, Plain> } {
  const name = ambientListenerName(w.metadata.namespace, w.metadata.name);
  const ports = appPorts(model, w);
  const clusterFor = (port: number) => ambientInboundClusterName(port, w);
  const security: InboundSecurity = {
    mtls: options.mtls,
    modeFor: (port) => mtlsModeFor(model, w, port).mode,
    httpFilters: rbacHttpFilters(l4Model, w),
  };
  const listener = inboundListener(ports.keys(), security, { name, address: socketAddress(w.spec.address, HBONE_PORT), clusterFor, tlsContext: false });
  if (ports.size === 0) listener.default_filter_chain = refusingChain(name);
  listener.metadata = {
    filter_metadata: {
      weft: struct({
        workload: w.metadata.name,
        namespace: w.metadata.namespace,
        service_account: w.spec.serviceAccount,
        identity: spiffeId(options.trustDomain, w.metadata.namespace, w.spec.serviceAccount),
      }),
    },
  };
  return { listener, clusters: inboundClusters(w, ports, clusterFor) };
}

/** The pods `node`'s proxy carries: ambient there, and without a connected sidecar of their own. */
export function podsOnNode(model: Model, node: string, directory: SidecarDirectory): WorkloadEntry[] {
  return model.ambientWorkloadsOnNode(node).filter((w) => directory(workloadKey(w)) === undefined);
}

function sorted(entries: Iterable<[string, Plain]>): Map<string, Plain> {
  return new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A node proxy's resources: shared outbound clusters and endpoints, L4 VIPs, its pods. No RDS. */
export function translateNodeProxy(shared: SharedTranslation, proxy: ProxyNode): ResourceSet {
  const { model, options } = shared;
  const ambient = shared.ambient();
  const listeners: Array<[string, Plain]> = [...ambient.vipListeners];
  const clusters = new Map([...shared.outbound.clusters, ...ambient.waypointClusters]);
  for (const w of proxy.nodeName === undefined ? [] : podsOnNode(model, proxy.nodeName, shared.directory)) {
    const pod = ambientPodResources(model, ambient.l4Model, w, options);
    listeners.push([pod.listener.name as string, pod.listener]);
    for (const [name, c] of pod.clusters) clusters.set(name, c);
  }
  return {
    [TypeUrl.Listener]: sorted(listeners),
    [TypeUrl.RouteConfiguration]: new Map(),
    [TypeUrl.VirtualHost]: new Map(),
    [TypeUrl.Cluster]: sorted(clusters),
    [TypeUrl.ClusterLoadAssignment]: sorted([...shared.outbound.assignments, ...ambient.waypointAssignments]),
    [TypeUrl.Secret]: new Map(),
  };
}

// ---- A waypoint's L7 authorization ---------------------------------------------------------------

/**
 * The VIP listeners of the Services that use the waypoint `waypointName` (in `namespace`) and
 * are targeted by AuthorizationPolicies (`targetRefs`), with those policies as RBAC filters in
 * their HTTP chains: the waypoint enforces them per request, with the caller's identity from its
 * HBONE tunnel. Other listeners stay the shared objects (copies are made only where they differ).
 */
export function waypointVipListeners(model: Model, shared: ReadonlyArray<[string, Plain]>, waypointName: string, namespace: string): Array<[string, Plain]> {
  const replaced = new Map<string, { http: Plain[]; tcp: Plain[] }>();
  for (const service of model.services) {
    const waypoint = model.waypointFor(service);
    if (!waypoint || waypoint.name !== waypointName || waypoint.namespace !== namespace) continue;
    const policies = authorizationPoliciesForService(model, service);
    const vip = serviceVip(service);
    if (policies.length === 0 || vip === undefined) continue;
    // HTTP is authorized per request; a port relayed as bytes per connection, with what L4 can
    // enforce (as a node proxy: l4Policy).
    const filters = { http: rbacFiltersOf(policies), tcp: networkRbacFiltersOf(policies.map(l4Policy)) };
    for (const port of meshPorts(service)) replaced.set(vipListenerName(vip, port.port), filters);
  }
  if (replaced.size === 0) return [...shared];
  return shared.map(([name, listener]) => {
    const filters = replaced.get(name);
    if (!filters) return [name, listener];
    const copy = structuredClone(listener);
    for (const chain of [...((copy.filter_chains as Plain[] | undefined) ?? []), ...(copy.default_filter_chain ? [copy.default_filter_chain as Plain] : [])]) {
      const network = chain.filters as Plain[];
      const hcm = network.find((f) => f.name === 'envoy.filters.network.http_connection_manager');
      if (hcm) withHttpFilters(hcm, filters.http);
      else chain.filters = [...filters.tcp, ...network];
    }
    return [name, copy];
  });
}
