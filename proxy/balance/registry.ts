// Balancers per cluster: built from the cluster's healthy endpoints in the current snapshot,
// kept while that set is unchanged (so round-robin position and weights carry on across
// config swaps), rebuilt when it changes, dropped when the cluster leaves the config.
import type { Cluster, Endpoint, LbPolicy } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { InflightCounts } from './inflight.js';
import { LeastRequestBalancer } from './least-request.js';
import { RandomBalancer } from './random.js';
import { RoundRobinBalancer } from './round-robin.js';
import type { Balancer } from './types.js';

export type BalancerFactory = (endpoints: readonly Endpoint[], inflight: InflightCounts, random: () => number) => Balancer;

/** Policies Weft implements; the others fall back (RING_HASH/MAGLEV → round robin until
 *  hashing lands; P2C_EWMA → least request until issue 8 registers its factory). */
const DEFAULT_FACTORIES: Readonly<Record<LbPolicy, BalancerFactory>> = {
  ROUND_ROBIN: (eps, inflight) => new RoundRobinBalancer(eps, inflight),
  LEAST_REQUEST: (eps, inflight, random) => new LeastRequestBalancer(eps, inflight, random),
  RANDOM: (eps, inflight, random) => new RandomBalancer(eps, inflight, random),
  RING_HASH: (eps, inflight) => new RoundRobinBalancer(eps, inflight),
  MAGLEV: (eps, inflight) => new RoundRobinBalancer(eps, inflight),
  P2C_EWMA: (eps, inflight, random) => new LeastRequestBalancer(eps, inflight, random),
};

export interface ClusterChoice {
  readonly cluster: Cluster;
  readonly balancer: Balancer;
}

/**
 * Called per request by the listeners with the snapshot that request uses. Shared by the
 * outbound and inbound listeners; created once by the composition root.
 */
export interface Balancers {
  /** The cluster and its balancer, or undefined when `config` has no such cluster. The
   *  balancer may have no endpoints (pick() → undefined). */
  forCluster(config: ProxyConfig, clusterName: string): ClusterChoice | undefined;
  /** For /clusters: cluster → endpoints the balancer currently chooses from. */
  describe(): Record<string, readonly Endpoint[]>;
}

export interface BalancersOptions {
  readonly random?: () => number;
  /** Replace or add policies (issue 8 registers P2C_EWMA here). */
  readonly factories?: Partial<Record<LbPolicy, BalancerFactory>>;
}

interface Entry {
  policy: LbPolicy;
  /** The endpoint array object last seen, for a cheap "unchanged" check. */
  source: readonly Endpoint[];
  balancer: Balancer;
  readonly inflight: InflightCounts;
}

/** The endpoints of a cluster in a snapshot: inline for STATIC/STRICT_DNS, else from EDS. */
export function endpointsOf(config: ProxyConfig, cluster: Cluster): readonly Endpoint[] {
  if (cluster.discovery === 'STATIC' || cluster.discovery === 'STRICT_DNS') return cluster.staticEndpoints ?? [];
  return config.endpoints.get(cluster.edsServiceName)?.endpoints ?? config.endpoints.get(cluster.name)?.endpoints ?? [];
}

export function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.host !== y.host || x.port !== y.port || x.weight !== y.weight || x.healthy !== y.healthy ||
      x.identity !== y.identity || x.targetPort !== y.targetPort || x.locality !== y.locality || x.workload !== y.workload
    ) {
      return false;
    }
  }
  return true;
}

export function createBalancers(opts: BalancersOptions = {}): Balancers {
  const random = opts.random ?? Math.random;
  const factories = { ...DEFAULT_FACTORIES, ...opts.factories };
  const entries = new Map<string, Entry>();
  let lastConfig: ProxyConfig | undefined;

  function prune(config: ProxyConfig): void {
    if (config === lastConfig) return;
    lastConfig = config;
    for (const name of entries.keys()) if (!config.clusters.has(name)) entries.delete(name);
  }

  return {
    forCluster(config, clusterName) {
      const cluster = config.clusters.get(clusterName);
      if (!cluster) return undefined;
      prune(config);
      const all = endpointsOf(config, cluster);
      let e = entries.get(clusterName);
      if (e && e.policy === cluster.lbPolicy && (e.source === all || sameEndpoints(e.source, all))) {
        e.source = all;
        return { cluster, balancer: e.balancer };
      }
      const inflight = e?.inflight ?? new InflightCounts();
      const healthy = all.filter((x) => x.healthy);
      const balancer = factories[cluster.lbPolicy](healthy, inflight, random);
      e = { policy: cluster.lbPolicy, source: all, balancer, inflight };
      entries.set(clusterName, e);
      return { cluster, balancer };
    },
    describe() {
      return Object.fromEntries([...entries].map(([name, e]) => [name, e.balancer.endpoints]));
    },
  };
}
