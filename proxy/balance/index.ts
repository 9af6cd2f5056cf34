// Endpoint selection for the data path: the Balancer contract, the per-cluster registry, the
// built-in policies, and the per-cluster endpoint state (latency, outlier detection).
export { endpointKey, type Balancer, type RequestOutcome } from './types.js';
export { createBalancers, endpointsOf, sameEndpoints, type Balancers, type BalancersOptions, type BalancerFactory, type ClusterChoice } from './registry.js';
export { ClusterState, type EndpointState } from './cluster-state.js';
export { RoundRobinBalancer } from './round-robin.js';
export { LeastRequestBalancer } from './least-request.js';
export { RandomBalancer } from './random.js';
export { P2cEwmaBalancer } from './p2c-ewma.js';
export { RingHashBalancer } from './ring-hash.js';
export { MaglevBalancer } from './maglev.js';
export { requestHash } from './hash.js';
