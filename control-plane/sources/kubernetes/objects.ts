// From API objects to the documents the model parses: a meshed Pod (injected with a sidecar,
// enrolled in ambient mode, or a waypoint's) becomes the workload it is (a WorkloadEntry-shaped
// document, the same kind local mode uses, with the Pod's node), an EndpointSlice endpoint that
// points at a meshed Pod points at that workload, and empty lists the API sends as null become
// empty lists. Everything else is passed through for parseObject to read and validate.
import { PORTS, PROXY_CONTAINER, SIDECAR_HBONE_PORT_ANNOTATION, SIDECAR_PORT_ANNOTATION, STATUS_ANNOTATION } from '../../injector/names.js';
import { DATAPLANE_MODE_LABEL, GATEWAY_NAME_LABEL, SIDECAR_INJECTED_ANNOTATION } from '../../model/index.js';
import type { RawObject } from './reflector.js';

interface Container {
  name?: string;
  ports?: { name?: string; containerPort?: number; protocol?: string }[];
  restartPolicy?: string;
}

interface PodShape {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string; creationTimestamp?: string };
  spec?: { containers?: Container[]; initContainers?: Container[]; serviceAccountName?: string; serviceAccount?: string; nodeName?: string };
  status?: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { name?: string; ready?: boolean }[];
    initContainerStatuses?: { name?: string; ready?: boolean }[];
  };
}

/** Whether Weft injected a sidecar into this pod (by webhook or `weft inject`). */
export function isMeshedPod(pod: RawObject): boolean {
  const annotations = (pod as PodShape).metadata?.annotations ?? {};
  return Object.hasOwn(annotations, STATUS_ANNOTATION);
}

/**
 * Whether the node proxy carries this pod (ARCHITECTURE.md "Ambient mode"): its own label
 * `ambient`, or its Namespace's with no `none` of its own (an unknown value counts as unset);
 * never a waypoint's replica. `namespaceLabels` are its Namespace's labels, if known.
 */
export function isAmbientPod(pod: RawObject, namespaceLabels: Readonly<Record<string, string>> | undefined): boolean {
  const labels = (pod as PodShape).metadata?.labels ?? {};
  if (isWaypointPod(pod)) return false;
  const own = labels[DATAPLANE_MODE_LABEL];
  if (own === 'ambient' || own === 'none') return own === 'ambient';
  return namespaceLabels?.[DATAPLANE_MODE_LABEL] === 'ambient';
}

/** A waypoint's replica: a workload (sidecars and node proxies reach it over HBONE), carried by no one. */
export function isWaypointPod(pod: RawObject): boolean {
  return !!(pod as PodShape).metadata?.labels?.[GATEWAY_NAME_LABEL];
}

/** The ports the injected proxy listens on, from the injection record: inbound (default 15006),
 *  and HBONE if the record has one (injected by a version whose sidecars take tunnels). */
function injectedPorts(pod: PodShape): { inbound: number; hbone?: number } {
  try {
    const status = JSON.parse(pod.metadata?.annotations?.[STATUS_ANNOTATION] ?? '{}') as { inboundPort?: unknown; hbonePort?: unknown };
    return {
      inbound: typeof status.inboundPort === 'number' ? status.inboundPort : PORTS.inbound,
      ...(typeof status.hbonePort === 'number' ? { hbone: status.hbonePort } : {}),
    };
  } catch {
    return { inbound: PORTS.inbound };
  }
}

function sidecarPortAnnotations(ports: { inbound: number; hbone?: number }): Record<string, string> {
  return { [SIDECAR_PORT_ANNOTATION]: String(ports.inbound), ...(ports.hbone !== undefined ? { [SIDECAR_HBONE_PORT_ANNOTATION]: String(ports.hbone) } : {}) };
}

/**
 * The workload document for a meshed (injected, ambient or waypoint), running pod with an IP;
 * undefined otherwise (pending, finished, being deleted, or not meshed). Named app-container
 * ports become the workload's ports (what a Service's named targetPort selects); its labels
 * carry its enrollment, and spec.nodeName the node whose proxy carries it.
 */
export function podWorkload(raw: RawObject, namespaceLabels?: Readonly<Record<string, string>>): object | undefined {
  const pod = raw as PodShape;
  const meta = pod.metadata ?? {};
  const injected = isMeshedPod(raw);
  if ((!injected && !isAmbientPod(raw, namespaceLabels) && !isWaypointPod(raw)) || meta.deletionTimestamp) return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed' || !pod.status?.podIP) return undefined;
  const ports: Record<string, number> = {};
  const app = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always')];
  for (const c of app) {
    if (c.name === PROXY_CONTAINER) continue;
    for (const p of c.ports ?? []) {
      if (p.name && p.containerPort && (p.protocol ?? 'TCP') === 'TCP') ports[p.name] = p.containerPort;
    }
  }
  const statuses = [...(pod.status.containerStatuses ?? []), ...(pod.status.initContainerStatuses ?? [])];
  const proxyReady = statuses.some((s) => s.name === PROXY_CONTAINER && s.ready === true);
  return {
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'WorkloadEntry',
    metadata: {
      name: meta.name,
      namespace: meta.namespace,
      labels: meta.labels ?? {},
      // Only a ready proxy makes the pod an endpoint: until then callers would get errors. An
      // injected pod is a sidecar workload even before that (never carried by a node proxy).
      annotations: {
        ...(injected ? { [SIDECAR_INJECTED_ANNOTATION]: meta.annotations?.[STATUS_ANNOTATION] ?? '' } : {}),
        ...(injected && proxyReady ? sidecarPortAnnotations(injectedPorts(pod)) : {}),
      },
      ...(meta.creationTimestamp ? { creationTimestamp: meta.creationTimestamp } : {}),
    },
    spec: {
      address: pod.status.podIP,
      ports,
      serviceAccount: pod.spec?.serviceAccountName || pod.spec?.serviceAccount || 'default',
      ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    },
  };
}

interface SliceShape {
  endpoints?: { targetRef?: { kind?: string; name?: string; namespace?: string } }[] | null;
  ports?: unknown[] | null;
  metadata?: { namespace?: string };
}

/**
 * An EndpointSlice as the model reads it. `meshed(namespace, name)` says whether a Pod is a
 * meshed workload: its endpoint then names that workload, so callers reach the pod through its
 * sidecar or node proxy with mTLS (and never in plain text behind its back).
 */
export function endpointSliceDocument(raw: RawObject, meshed: (namespace: string, name: string) => boolean): object {
  const slice = raw as SliceShape;
  const ns = slice.metadata?.namespace ?? '';
  const endpoints = (slice.endpoints ?? []).map((e) => {
    const ref = e.targetRef;
    if (ref?.kind !== 'Pod' || !ref.name || !meshed(ref.namespace ?? ns, ref.name)) return e;
    return { ...e, targetRef: { ...ref, kind: 'WorkloadEntry' } };
  });
  return { ...raw, endpoints, ports: slice.ports ?? [] };
}
