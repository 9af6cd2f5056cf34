// The proxy's whole config at one moment: immutable, swapped atomically on every xDS change.
// Requests capture the snapshot they start with and finish on it.
import type { Cluster, EndpointAssignment, Listener, RouteConfig, SecretValue, VirtualHost } from '../../api/domain.js';
import type { TypeUrl } from '../../api/types.js';

export interface ProxyConfig {
  /** Increases with every swap; for logs and /config_dump. */
  readonly generation: number;
  readonly listeners: ReadonlyMap<string, Listener>;
  readonly routes: ReadonlyMap<string, RouteConfig>;
  /** VHDS, by resource name (`<route configuration>/<virtual host>`). */
  readonly virtualHosts?: ReadonlyMap<string, VirtualHost>;
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** Keyed by EDS service name (= cluster name for Weft's clusters). */
  readonly endpoints: ReadonlyMap<string, EndpointAssignment>;
  readonly secrets: ReadonlyMap<string, SecretValue>;
  /** xDS version last accepted per type. */
  readonly versions: ReadonlyMap<TypeUrl, string>;
}
