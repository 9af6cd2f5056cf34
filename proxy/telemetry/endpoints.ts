// From an upstream target (host, port) back to the Endpoint of the cluster it came from, for
// the destination workload in metrics and decision records. Indexed once per endpoint list
// object (the snapshot's), so a lookup is two Map reads.
import type { Endpoint } from '../../api/domain.js';
import { endpointsOf } from '../balance/registry.js';
import type { ProxyConfig } from '../state/types.js';

type Index = Map<string, Map<number, Endpoint>>;
const indexes = new WeakMap<readonly Endpoint[], Index>();

function indexOf(endpoints: readonly Endpoint[]): Index {
  let idx = indexes.get(endpoints);
  if (!idx) {
    idx = new Map();
    for (const e of endpoints) {
      let byPort = idx.get(e.host);
      if (!byPort) idx.set(e.host, (byPort = new Map()));
      byPort.set(e.port, e);
    }
    indexes.set(endpoints, idx);
  }
  return idx;
}

/** The endpoint of `clusterName` at host:port in `config`, if it is one. */
export function findEndpoint(config: ProxyConfig | undefined, clusterName: string | undefined, host: string, port: number): Endpoint | undefined {
  if (!config || !clusterName) return undefined;
  const cluster = config.clusters.get(clusterName);
  if (!cluster) return undefined;
  return indexOf(endpointsOf(config, cluster)).get(host)?.get(port);
}

/** The workload every endpoint of the cluster belongs to, when they all share one. */
export function soleWorkload(config: ProxyConfig | undefined, clusterName: string | undefined): string | undefined {
  const cluster = config && clusterName ? config.clusters.get(clusterName) : undefined;
  if (!config || !cluster) return undefined;
  let found: string | undefined;
  for (const e of endpointsOf(config, cluster)) {
    if (!e.workload || (found !== undefined && e.workload !== found)) return undefined;
    found = e.workload;
  }
  return found;
}
