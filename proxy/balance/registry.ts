// Balancers per cluster: built from the cluster's healthy endpoints in the current snapshot
// minus those outlier detection ejected, kept while that set is unchanged (so round-robin
// position and weights carry on across config swaps), rebuilt when it changes, dropped when the
// cluster leaves the config. Per-endpoint state (in flight, latency, ejections) outlives rebuilds.
import type { Cluster, Endpoint, LbPolicy } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { ClusterState } from './cluster-state.js';
import { LeastRequestBalancer } from './least-request.js';
import { MaglevBalancer } from './maglev.js';
import { P2cEwmaBalancer } from './p2c-ewma.js';
import { RandomBalancer } from './random.js';
import { DEFAULT_RING, RingHashBalancer } from './ring-hash.js';
import { RoundRobinBalancer } from './round-robin.js';
import { endpointKey, type Balancer } from './types.js';

export type BalancerFactory = (endpoints: readonly Endpoint[], state: ClusterState, cluster: Cluster, random: () => number) => Balancer;

/** Every LbPolicy Weft implements. */
const DEFAULT_FACTORIES: Readonly<Record<LbPolicy, BalancerFactory>> = {
  ROUND_ROBIN: (eps, state) => new RoundRobinBalancer(eps, state),
  LEAST_REQUEST: (eps, state, _c, random) => new LeastRequestBalancer(eps, state, random),
  RANDOM: (eps, state, _c, random) => new RandomBalancer(eps, state, random),
  RING_HASH: (eps, state, c, random) => new RingHashBalancer(eps, state, random, c.ringHash ?? DEFAULT_RING),
  MAGLEV: (eps, state, _c, random) => new MaglevBalancer(eps, state, random),
  P2C_EWMA: (eps, state, _c, random) => new P2cEwmaBalancer(eps, state, random),
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
  /** For /clusters and tests: cluster → per-endpoint state (in flight, ejected, latency). */
  endpointState(clusterName: string): ReturnType<ClusterState['describe']> | undefined;
}

export interface BalancersOptions {
  readonly random?: () => number;
  /** Monotonic ms clock for latency and ejections; injectable for tests. */
  readonly now?: () => number;
  /** Replace or add policies. */
  readonly factories?: Partial<Record<LbPolicy, BalancerFactory>>;
}

interface Entry {
  cluster: Cluster;
  /** The endpoint array object last seen, for a cheap "unchanged" check. */
  source: readonly Endpoint[];
  /** ClusterState.version the balancer was built at (ejections since → rebuild). */
  built: number;
  balancer: Balancer;
  readonly state: ClusterState;
  /** What forCluster returns while nothing changed (one object, not one per request). */
  choice: ClusterChoice;
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

/** What changes a cluster's balancer apart from its endpoints (the Cluster object itself is
 *  kept by ProxyState while equal, so identity is the cheap check). */
function sameBalancing(a: Cluster, b: Cluster): boolean {
  return a === b || (a.lbPolicy === b.lbPolicy && a.ringHash === b.ringHash && a.outlierDetection === b.outlierDetection);
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

  function build(cluster: Cluster, all: readonly Endpoint[], state: ClusterState): Balancer {
    const healthy = all.filter((x) => x.healthy);
    state.reset(healthy.map(endpointKey), cluster.outlierDetection);
    let usable = healthy;
    if (cluster.outlierDetection) {
      usable = healthy.filter((e) => !state.isEjected(state.stateOf(endpointKey(e))));
      // Panic: rather every endpoint than none (the ejection cap normally prevents this).
      if (usable.length === 0) usable = healthy;
    }
    return factories[cluster.lbPolicy](usable, state, cluster, random);
  }

  return {
    forCluster(config, clusterName) {
      const cluster = config.clusters.get(clusterName);
      if (!cluster) return undefined;
      prune(config);
      const all = endpointsOf(config, cluster);
      let e = entries.get(clusterName);
      if (e) {
        e.state.sweepIfDue();
        if (e.built === e.state.version && sameBalancing(e.cluster, cluster) && (e.source === all || sameEndpoints(e.source, all))) {
          e.source = all;
          e.cluster = cluster;
          if (e.choice.cluster !== cluster) e.choice = { cluster, balancer: e.balancer };
          return e.choice;
        }
      }
      const state = e?.state ?? new ClusterState({ random, ...(opts.now ? { now: opts.now } : {}) });
      const balancer = build(cluster, all, state);
      e = { cluster, source: all, built: state.version, balancer, state, choice: { cluster, balancer } };
      entries.set(clusterName, e);
      return e.choice;
    },
    describe() {
      return Object.fromEntries([...entries].map(([name, e]) => [name, e.balancer.endpoints]));
    },
    endpointState(clusterName) {
      return entries.get(clusterName)?.state.describe();
    },
  };
}
