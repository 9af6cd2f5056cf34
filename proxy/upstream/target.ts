// From config to pool targets: which connection an endpoint of a cluster needs, and the
// endpoint choosers forward.ts draws from (a cluster's balancer, or one fixed address).
import type { Cluster, Endpoint } from '../../api/domain.js';
import { endpointsOf } from '../balance/registry.js';
import { endpointKey, type Balancer, type RequestOutcome } from '../balance/types.js';
import type { ProxyConfig } from '../state/types.js';
import type { UpstreamTarget } from './types.js';

/** One endpoint picked for one try. `done` must be called exactly once when the try ends. */
export interface PickedEndpoint {
  readonly key: string;
  readonly target: UpstreamTarget;
  done(outcome: RequestOutcome): void;
}

/** Where the tries of one request go. */
export interface EndpointChooser {
  /** The endpoint for the next try; `tried` holds keys already used (avoided when possible);
   *  `hash` is the request's consistent-hash value, if the cluster hashes. */
  pick(tried: ReadonlySet<string>, hash?: number): PickedEndpoint | undefined;
}

/** Memo: targets are immutable per (cluster object, endpoint object), both kept across
 *  unchanged config swaps, so a request does not rebuild its target. */
const targets = new WeakMap<Cluster, WeakMap<Endpoint, UpstreamTarget>>();

/** The upstream target for `endpoint` of `cluster`: mesh transport iff the cluster has TLS or
 *  the endpoint is reached over HBONE (which is always mTLS). */
export function targetFor(cluster: Cluster, endpoint: Endpoint): UpstreamTarget {
  let byEndpoint = targets.get(cluster);
  if (!byEndpoint) targets.set(cluster, (byEndpoint = new WeakMap()));
  let t = byEndpoint.get(endpoint);
  if (!t) {
    t = Object.freeze({
      host: endpoint.host,
      port: endpoint.port,
      identity: endpoint.identity,
      targetPort: endpoint.targetPort,
      mesh: cluster.tls !== undefined || endpoint.tunnel === 'hbone',
      tunnel: endpoint.tunnel,
      authority: endpoint.authority,
      protocol: cluster.protocol === 'http2' ? 'http2' : 'http1',
      connectTimeoutMs: cluster.connectTimeoutMs > 0 ? cluster.connectTimeoutMs : undefined,
      maxConnections: cluster.circuitBreakers?.maxConnections,
    } satisfies UpstreamTarget);
    byEndpoint.set(endpoint, t);
  }
  return t;
}

/** Every target the clusters of `config` may send to (for UpstreamPools.retainOnly). */
export function* targetsOf(config: ProxyConfig): Iterable<UpstreamTarget> {
  for (const cluster of config.clusters.values()) {
    for (const e of endpointsOf(config, cluster)) yield targetFor(cluster, e);
  }
}

export function clusterChooser(cluster: Cluster, balancer: Balancer): EndpointChooser {
  return {
    pick(tried, hash) {
      const endpoint = balancer.pick(tried, hash);
      if (!endpoint) return undefined;
      balancer.onStart(endpoint);
      let ended = false;
      return {
        key: endpointKey(endpoint),
        target: targetFor(cluster, endpoint),
        done(outcome) {
          if (ended) return;
          ended = true;
          balancer.onEnd(endpoint, outcome);
        },
      };
    },
  };
}

/** Always the same address (pass-through to a non-mesh host). */
export function fixedChooser(target: UpstreamTarget): EndpointChooser {
  const key = `${target.host}:${target.port}`;
  return { pick: () => ({ key, target, done() {} }) };
}
