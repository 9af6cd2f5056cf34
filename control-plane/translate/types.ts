// The translator's inputs and output: which proxy asks, which sidecars are connected, and the
// set of plain Envoy resources (per type URL, by name) that `pack()` turns into xDS.
import type { Plain } from '../../api/codec.js';
import type { TypeUrl } from '../../api/types.js';
import type { RouteSemanticsOptions } from '../model/index.js';

export interface ProxyNode {
  /** ADS node id, `name.namespace`. */
  readonly id: string;
  /** The proxy's WorkloadEntry name (without the namespace). */
  readonly workload: string;
  readonly namespace: string;
  readonly mode: 'sidecar';
}

/**
 * Which meshed workloads have a connected sidecar, and the inbound port it reported.
 * Keyed by `name.namespace`; undefined means "no sidecar": the workload gets no endpoints.
 */
export type SidecarDirectory = (workloadKey: string) => { readonly inboundPort: number } | undefined;

export interface TranslateOptions extends Partial<RouteSemanticsOptions> {
  /** SPIFFE trust domain for endpoint identities, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** Add TLS transport sockets (SDS secrets `default` and `ROOTCA`) between sidecars. */
  readonly mtls: boolean;
}

/** Plain Envoy objects by type URL, then by resource name; every type URL is present. */
export type ResourceSet = Record<TypeUrl, Map<string, Plain>>;
