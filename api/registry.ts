// The xDS resource types Weft's proxy consumes, by type URL: one decoder module per type.
import { clusterType } from './cluster.js';
import { endpointType } from './endpoint.js';
import { listenerType } from './listener.js';
import type { ResourceType } from './resource.js';
import { routeConfigType } from './route-config.js';
import { secretType } from './secret.js';
import { TypeUrl } from './types.js';
import { virtualHostType } from './virtual-host.js';

export const RESOURCE_TYPES: ReadonlyMap<TypeUrl, ResourceType<unknown>> = new Map<TypeUrl, ResourceType<unknown>>([
  [TypeUrl.Listener, listenerType as ResourceType<unknown>],
  [TypeUrl.RouteConfiguration, routeConfigType as ResourceType<unknown>],
  [TypeUrl.VirtualHost, virtualHostType as ResourceType<unknown>],
  [TypeUrl.Cluster, clusterType as ResourceType<unknown>],
  [TypeUrl.ClusterLoadAssignment, endpointType as ResourceType<unknown>],
  [TypeUrl.Secret, secretType as ResourceType<unknown>],
]);

export { clusterType, endpointType, listenerType, routeConfigType, secretType, virtualHostType };
