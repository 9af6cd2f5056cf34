// Clusters and ClusterLoadAssignments: one EDS cluster per (Service, port), whose endpoints are
// the connected sidecars of the selected workloads, or their node proxy's HBONE port when they
// are ambient (plus hand-made EndpointSlices), with the Service's traffic policy
// (cluster-policy.ts), and one STATIC inbound cluster per app port of the proxy's own workload.
import type { Plain } from '../../api/codec.js';
import { HTTP_PROTOCOL_OPTIONS_TYPE_URL } from '../../api/types.js';
import { portProtocol, usesHttp2, workloadKey, type Model, type PortProtocol, type Service, type ServicePort, type WorkloadEntry } from '../model/index.js';
import {
  ADS_CONFIG_SOURCE,
  duration,
  inboundClusterName,
  outboundClusterName,
  socketAddress,
  struct,
  u32,
  upstreamTlsSocket,
} from './envoy.js';
import type { SidecarDirectory, TranslateOptions } from './types.js';
import { clusterPolicy } from './cluster-policy.js';

const CONNECT_TIMEOUT_MS = 5_000;
/** Where the node proxy accepts HBONE for an ambient pod (inside the pod, on the pod's IP). */
export const HBONE_PORT = 15008;

export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** The Service ports that carry TCP traffic (UDP and ExternalName Services are not meshed). */
export function meshPorts(service: Service): readonly ServicePort[] {
  return service.spec.type === 'ExternalName' ? [] : service.spec.ports.filter((p) => p.protocol !== 'UDP');
}

function http2Options(): Plain {
  return {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': HTTP_PROTOCOL_OPTIONS_TYPE_URL,
      explicit_http_config: { http2_protocol_options: {} },
    },
  };
}

export function edsCluster(name: string, http2: boolean, mtls: boolean): Plain {
  const cluster: Plain = {
    name,
    type: 'EDS',
    eds_cluster_config: { service_name: name, eds_config: ADS_CONFIG_SOURCE },
    connect_timeout: duration(CONNECT_TIMEOUT_MS),
    lb_policy: 'ROUND_ROBIN',
  };
  if (http2) cluster.typed_extension_protocol_options = http2Options();
  if (mtls) cluster.transport_socket = upstreamTlsSocket(http2);
  return cluster;
}

export interface EndpointSpec {
  readonly address: string;
  readonly port: number;
  /** EDS metadata `weft`: workload, identity, target_port; tunnel and waypoint for HBONE. */
  readonly weft?: Readonly<Record<string, string | number | boolean>>;
}

export function lbEndpoint(e: EndpointSpec): Plain {
  const out: Plain = {
    endpoint: { address: socketAddress(e.address, e.port) },
    health_status: 'HEALTHY',
    load_balancing_weight: u32(1),
  };
  if (e.weft) out.metadata = { filter_metadata: { weft: struct(e.weft) } };
  return out;
}

/**
 * A workload as the endpoint for app port `appPort`: its sidecar if one is connected (for an L4
 * port, its HBONE port when it has one: TCP connections then share one mTLS connection per peer
 * instead of a handshake each), else its node proxy's HBONE port if it is ambient and on a node;
 * otherwise none (it cannot be reached with mTLS, and it is never reached without).
 */
function workloadEndpoint(
  model: Model,
  w: WorkloadEntry,
  appPort: number,
  directory: SidecarDirectory,
  trustDomain: string,
  l4: boolean,
): EndpointSpec | undefined {
  const sidecar = directory(workloadKey(w));
  const weft = {
    workload: workloadKey(w),
    identity: spiffeId(trustDomain, w.metadata.namespace, w.spec.serviceAccount),
    target_port: appPort,
  };
  if (sidecar && l4 && sidecar.hbonePort !== undefined) return { address: w.spec.address, port: sidecar.hbonePort, weft: { ...weft, tunnel: 'hbone' } };
  if (sidecar) return { address: w.spec.address, port: sidecar.inboundPort, weft };
  if (w.spec.nodeName === undefined || model.dataplaneMode(w, false) !== 'ambient') return undefined;
  return { address: w.spec.address, port: HBONE_PORT, weft: { ...weft, tunnel: 'hbone' } };
}

/** Ports whose bytes the sidecars relay without reading them: a tcp_proxy chain and no HTTP one
 *  (listeners.ts; `unknown` has both, and its HTTP must reach the inbound listener). */
const L4_PROTOCOLS: ReadonlySet<PortProtocol> = new Set(['tcp', 'tls', 'https', 'mongo', 'mysql', 'redis']);

/** The app port a Service port reaches on a workload: a number as is, a name via spec.ports. */
export function targetPortOn(w: WorkloadEntry, port: ServicePort): number | undefined {
  if (typeof port.targetPort === 'number') return port.targetPort;
  return Object.hasOwn(w.spec.ports, port.targetPort) ? w.spec.ports[port.targetPort] : undefined;
}

export function serviceEndpoints(
  model: Model,
  service: Service,
  port: ServicePort,
  directory: SidecarDirectory,
  trustDomain: string,
  mtls = true,
): EndpointSpec[] {
  const ns = service.metadata.namespace;
  const out: EndpointSpec[] = [];
  // HBONE is mTLS: with mesh mTLS off (--no-mtls) a sidecar's L4 ports stay on its inbound port.
  const l4 = mtls && L4_PROTOCOLS.has(portProtocol(port));
  if (service.spec.selector) {
    for (const w of model.selectWorkloads(ns, service.spec.selector)) {
      const appPort = targetPortOn(w, port);
      const e = appPort === undefined ? undefined : workloadEndpoint(model, w, appPort, directory, trustDomain, l4);
      if (e) out.push(e);
    }
  }
  // Hand-made slices, as Kubernetes reads them: the slice port is matched to the Service port by name.
  for (const slice of model.endpointSlices(ns, service.metadata.name)) {
    const slicePort = slice.ports.find((p) => p.name === (port.name ?? '') && p.protocol === port.protocol);
    if (slicePort?.port === undefined) continue;
    for (const ep of slice.endpoints) {
      if (!ep.ready) continue;
      const ref = ep.targetRef;
      const w = ref?.kind === 'WorkloadEntry' ? model.workloadEntry(ref.namespace, ref.name) : undefined;
      if (w) {
        // A meshed workload: reach it through its sidecar or node proxy (or not at all while down).
        const e = workloadEndpoint(model, w, slicePort.port, directory, trustDomain, l4);
        if (e) out.push(e);
        continue;
      }
      for (const address of ep.addresses) out.push({ address, port: slicePort.port });
    }
  }
  const seen = new Set<string>();
  return out.filter((e) => {
    const key = `${e.address}:${e.port}:${e.weft?.target_port ?? ''}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function loadAssignment(clusterName: string, endpoints: readonly EndpointSpec[]): Plain {
  if (endpoints.length === 0) return { cluster_name: clusterName, endpoints: [] };
  return {
    cluster_name: clusterName,
    endpoints: [{ locality: {}, load_balancing_weight: u32(1), lb_endpoints: endpoints.map(lbEndpoint) }],
  };
}

export function outboundClusters(
  model: Model,
  directory: SidecarDirectory,
  options: TranslateOptions,
): { clusters: Map<string, Plain>; assignments: Map<string, Plain> } {
  const clusters = new Map<string, Plain>();
  const assignments = new Map<string, Plain>();
  for (const service of model.services) {
    for (const port of meshPorts(service)) {
      const name = outboundClusterName(port.port, service.metadata.name, service.metadata.namespace);
      clusters.set(name, { ...edsCluster(name, usesHttp2(portProtocol(port)), options.mtls), ...clusterPolicy(service, port) });
      assignments.set(name, loadAssignment(name, serviceEndpoints(model, service, port, directory, options.trustDomain, options.mtls)));
    }
  }
  return { clusters, assignments };
}

/**
 * The app ports behind this workload's sidecar: its named ports and the numeric targetPorts of
 * the Services selecting it, each with whether the app speaks HTTP/2 there.
 */
export function appPorts(model: Model, w: WorkloadEntry): Map<number, { http2: boolean }> {
  const out = new Map<number, { http2: boolean }>();
  const mark = (port: number, http2: boolean) => out.set(port, { http2: http2 || (out.get(port)?.http2 ?? false) });
  for (const [name, port] of Object.entries(w.spec.ports)) mark(port, usesHttp2(portProtocol({ name, protocol: 'TCP' })));
  for (const service of model.services) {
    if (service.metadata.namespace !== w.metadata.namespace || !service.spec.selector) continue;
    if (!model.selectWorkloads(w.metadata.namespace, service.spec.selector).includes(w)) continue;
    for (const port of meshPorts(service)) {
      const target = targetPortOn(w, port);
      if (target !== undefined) mark(target, usesHttp2(portProtocol(port)));
    }
  }
  return new Map([...out.entries()].sort(([a], [b]) => a - b));
}

export function inboundClusters(
  w: WorkloadEntry,
  ports: ReadonlyMap<number, { http2: boolean }>,
  clusterName: (port: number) => string = inboundClusterName,
): Map<string, Plain> {
  const clusters = new Map<string, Plain>();
  for (const [port, { http2 }] of ports) {
    const name = clusterName(port);
    const cluster: Plain = {
      name,
      type: 'STATIC',
      connect_timeout: duration(CONNECT_TIMEOUT_MS),
      lb_policy: 'ROUND_ROBIN',
      load_assignment: loadAssignment(name, [{ address: w.spec.address, port }]),
    };
    if (http2) cluster.typed_extension_protocol_options = http2Options();
    clusters.set(name, cluster);
  }
  return clusters;
}
