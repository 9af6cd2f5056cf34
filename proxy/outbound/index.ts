// The outbound listener's public face for the composition root and the admin endpoint.
export { createOutboundListener, type OutboundListener, type OutboundListenerOptions } from './listener.js';
export { PASSTHROUGH_CLUSTER } from './handle.js';
export type { PlanFn } from '../upstream/carry-out.js';
export { ProxyStats, type ClusterCounters, type ListenerCounters } from '../http/stats.js';
