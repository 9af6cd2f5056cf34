// The translator's inputs and output: which proxy asks, which sidecars are connected, and the
// set of plain Envoy resources (per type URL, by name) that `pack()` turns into xDS.
import type { Plain } from '../../api/codec.js';
import type { TypeUrl } from '../../api/types.js';
import { portNumber } from '../../core/port.js';
import type { RouteSemanticsOptions } from '../model/index.js';

export interface ProxyNode {
  /** ADS node id: `name.namespace` for a sidecar or waypoint, `ambient~<node>` for a node proxy. */
  readonly id: string;
  /** The proxy's WorkloadEntry name (without the namespace); '' for a node proxy. */
  readonly workload: string;
  /** The workload's namespace; '' for a node proxy. */
  readonly namespace: string;
  /**
   * `sidecar`: one workload's proxy. `waypoint`: a waypoint replica, a workload too (it gets
   * what a sidecar gets). `ambient`: the node proxy of `nodeName`, carrying that node's pods.
   */
  readonly mode: 'sidecar' | 'ambient' | 'waypoint';
  /** The node an ambient node proxy serves (required for mode `ambient`). */
  readonly nodeName?: string;
}

/**
 * Which meshed workloads have a connected sidecar, with the inbound port it reported and, for a
 * captured sidecar, the HBONE port where it takes tunnels (its L4 ports are reached there).
 * Keyed by `name.namespace`; undefined means "no sidecar": the workload gets no endpoints,
 * unless it is enrolled in ambient mode (then its node proxy is its endpoint, over HBONE).
 */
/** Where a sidecar takes mesh traffic: its inbound listener, and (a captured sidecar) HBONE. */
export interface SidecarPorts {
  readonly inboundPort: number;
  readonly hbonePort?: number;
}

export type SidecarDirectory = (workloadKey: string) => SidecarPorts | undefined;

/** A sidecar's ports from what reports or remembers them (node metadata, an annotation, saved
 *  state): none without a valid inbound port; an invalid HBONE port is left out. */
export function sidecarPortsOf(inbound: unknown, hbone: unknown): SidecarPorts | undefined {
  const inboundPort = portNumber(inbound);
  if (inboundPort === undefined) return undefined;
  const hbonePort = portNumber(hbone);
  return hbonePort === undefined ? { inboundPort } : { inboundPort, hbonePort };
}

export interface TranslateOptions extends Partial<RouteSemanticsOptions> {
  /** SPIFFE trust domain for endpoint identities, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** Add TLS transport sockets (SDS secrets `default` and `ROOTCA`) between sidecars. */
  readonly mtls: boolean;
}

/** Plain Envoy objects by type URL, then by resource name; every type URL is present. */
export type ResourceSet = Record<TypeUrl, ReadonlyMap<string, Plain>>;
