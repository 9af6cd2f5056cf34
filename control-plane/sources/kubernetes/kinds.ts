// The kinds the Kubernetes source watches: where each is listed and watched, with which typed
// client-node API, and whether it may be absent (CRDs not installed yet).
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig } from '@kubernetes/client-node';
import type { ListResult, RawObject } from './reflector.js';

export interface WatchedKind {
  readonly apiVersion: string;
  readonly kind: string;
  /** Collection path across all namespaces (what the watch uses). */
  readonly path: string;
  readonly list: () => Promise<ListResult>;
  readonly labelSelector?: string;
  readonly optional: boolean;
}

/**
 * Typed lists (core, discovery) come back as client-node model objects (dates as Date); JSON
 * round-tripping gives the wire form again, the same form watch events arrive in.
 */
function wire(list: { items: readonly unknown[]; metadata?: { resourceVersion?: string } }): ListResult {
  return { items: list.items.map((i) => JSON.parse(JSON.stringify(i)) as RawObject), resourceVersion: list.metadata?.resourceVersion ?? '' };
}

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';
export const WEFT_GROUP = 'weft.dev';
/**
 * ReferenceGrant is watched in v1beta1: every Gateway API release since v0.6 serves it there,
 * while v1 is only served by newer ones. Weft's parser reads both.
 */
export const REFERENCE_GRANT_VERSION = 'v1beta1';

export function watchedKinds(kc: KubeConfig): WatchedKind[] {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const crd = (group: string, version: string, plural: string, kind: string): WatchedKind => ({
    apiVersion: `${group}/${version}`,
    kind,
    path: `/apis/${group}/${version}/${plural}`,
    list: async () => {
      const list = (await custom.listClusterCustomObject({ group, version, plural })) as { items?: RawObject[]; metadata?: { resourceVersion?: string } };
      return { items: list.items ?? [], resourceVersion: list.metadata?.resourceVersion ?? '' };
    },
    optional: true,
  });
  return [
    { apiVersion: 'v1', kind: 'Namespace', path: '/api/v1/namespaces', list: async () => wire(await core.listNamespace()), optional: false },
    { apiVersion: 'v1', kind: 'Service', path: '/api/v1/services', list: async () => wire(await core.listServiceForAllNamespaces()), optional: false },
    // Every Pod, not only injected ones (a revision label): an ambient pod may be enrolled by its
    // Namespace's label alone, and a waypoint's pods carry a label of their own.
    { apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods', list: async () => wire(await core.listPodForAllNamespaces()), optional: false },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      path: '/api/v1/serviceaccounts',
      list: async () => wire(await core.listServiceAccountForAllNamespaces()),
      optional: false,
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: async () => wire(await discovery.listEndpointSliceForAllNamespaces()),
      optional: false,
    },
    crd(GATEWAY_GROUP, 'v1', 'httproutes', 'HTTPRoute'),
    crd(GATEWAY_GROUP, 'v1', 'grpcroutes', 'GRPCRoute'),
    crd(GATEWAY_GROUP, REFERENCE_GRANT_VERSION, 'referencegrants', 'ReferenceGrant'),
    // Waypoints are found by their workloads' label; their Gateways are read for their status,
    // and GatewayClasses to create and accept weft-waypoint (control-plane/sources/kubernetes/status-writer.ts).
    crd(GATEWAY_GROUP, 'v1', 'gateways', 'Gateway'),
    crd(GATEWAY_GROUP, 'v1', 'gatewayclasses', 'GatewayClass'),
    crd(WEFT_GROUP, 'v1alpha1', 'workloadentries', 'WorkloadEntry'),
    crd(WEFT_GROUP, 'v1alpha1', 'peerauthentications', 'PeerAuthentication'),
    crd(WEFT_GROUP, 'v1alpha1', 'authorizationpolicies', 'AuthorizationPolicy'),
  ];
}
