// Endpoint selection for the data path: the Balancer contract, the per-cluster registry and
// the built-in policies.
export { endpointKey, type Balancer, type RequestOutcome } from './types.js';
export { createBalancers, endpointsOf, sameEndpoints, type Balancers, type BalancersOptions, type BalancerFactory, type ClusterChoice } from './registry.js';
export { InflightCounts } from './inflight.js';
export { RoundRobinBalancer } from './round-robin.js';
export { LeastRequestBalancer } from './least-request.js';
export { RandomBalancer } from './random.js';
