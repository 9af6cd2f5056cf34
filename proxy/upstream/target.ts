// From config to pool targets: which connection an endpoint of a cluster needs, and the
// endpoint choosers forward.ts draws from (a cluster's balancer, or one fixed address).
import type { Cluster, Endpoint } from '../../api/domain.js';
import { endpointKey, type Balancer } from '../balance/types.js';
import type { UpstreamTarget } from './types.js';

/** One endpoint picked for one try. `done` must be called exactly once when the try ends. */
export interface PickedEndpoint {
  readonly key: string;
  readonly target: UpstreamTarget;
  done(outcome: { ok: boolean; latencyMs: number }): void;
}

/** Where the tries of one request go. */
export interface EndpointChooser {
  /** The endpoint for the next try; `tried` holds keys already used (avoided when possible). */
  pick(tried: ReadonlySet<string>): PickedEndpoint | undefined;
}

/** The upstream target for `endpoint` of `cluster`: mesh transport iff the cluster has TLS. */
export function targetFor(cluster: Cluster, endpoint: Endpoint): UpstreamTarget {
  return {
    host: endpoint.host,
    port: endpoint.port,
    identity: endpoint.identity,
    targetPort: endpoint.targetPort,
    mesh: cluster.tls !== undefined,
    protocol: cluster.protocol === 'http2' ? 'http2' : 'http1',
    connectTimeoutMs: cluster.connectTimeoutMs > 0 ? cluster.connectTimeoutMs : undefined,
    maxConnections: cluster.circuitBreakers?.maxConnections,
  };
}

export function clusterChooser(cluster: Cluster, balancer: Balancer): EndpointChooser {
  return {
    pick(tried) {
      const endpoint = balancer.pick(tried);
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
