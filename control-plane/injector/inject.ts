// Sidecar injection of one pod: decide whether this control plane's revision should inject it,
// validate its overrides, and return the pod with weft-init, weft-proxy and their volumes added.
// The webhook (as a JSON patch) and `weft inject` (on workload templates) both call injectPod.
import type { Json } from './patch.js';
import {
  DEFAULT_REVISION,
  INIT_CONTAINER,
  INJECT_ANNOTATION,
  INJECT_LABEL,
  PORTS,
  PROXY_CONTAINER,
  REVISION_LABEL,
  STATUS_ANNOTATION,
  VOLUMES,
} from './names.js';
import { describeProblems, readOverrides } from './overrides.js';
import type { InjectorSettings } from './settings.js';
import { rewriteAppProbes } from './probes.js';
import { initContainer, proxyContainer, volumes } from './template.js';

type JsonObject = { [key: string]: Json };

/** Namespaces no sidecar is ever injected into (plus the control plane's own). */
export const NEVER_INJECTED = ['kube-system', 'kube-public', 'kube-node-lease'];

export interface InjectionContext {
  readonly settings: InjectorSettings;
  /** The pod's namespace (an AdmissionReview's request.namespace when the pod has none yet). */
  readonly namespace: string;
  /**
   * The namespace's labels; undefined when not known, in which case the caller vouches for the
   * namespace having opted in (the webhook's namespaceSelector matched, or `weft inject` was
   * asked explicitly).
   */
  readonly namespaceLabels: Readonly<Record<string, string>> | undefined;
}

export type InjectionResult =
  | { readonly kind: 'injected'; readonly pod: JsonObject }
  | { readonly kind: 'skipped'; readonly reason: string }
  | { readonly kind: 'rejected'; readonly message: string };

/** What `weft.dev/status` records on an injected pod. */
export interface InjectionStatus {
  readonly revision: string;
  readonly image: string;
  readonly nativeSidecar: boolean;
  readonly inboundPort: number;
  /** Where the sidecar takes HBONE tunnels; absent in records of versions without it. */
  readonly hbonePort?: number;
  readonly initContainers: readonly string[];
  readonly containers: readonly string[];
  readonly volumes: readonly string[];
}

function obj(v: Json | undefined): JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {};
}

function strings(v: Json | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(obj(v)).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

function names(list: Json | undefined): string[] {
  return (Array.isArray(list) ? list : []).map((c) => String(obj(c).name ?? ''));
}

/** Why this pod is not for this control plane to inject, or undefined when it is. */
export function skipReason(pod: JsonObject, ctx: InjectionContext): string | undefined {
  const meta = obj(pod.metadata);
  const labels = strings(meta.labels);
  const annotations = strings(meta.annotations);
  const spec = obj(pod.spec);
  if (NEVER_INJECTED.includes(ctx.namespace) || ctx.namespace === ctx.settings.controlPlaneNamespace) {
    return `namespace ${ctx.namespace} is never injected`;
  }
  if (annotations[INJECT_ANNOTATION] === 'false' || labels[INJECT_LABEL] === 'false') return `the pod opted out (${INJECT_ANNOTATION}: "false")`;
  if (spec.hostNetwork === true) return 'the pod uses the host network, where its traffic cannot be captured';
  const nsLabels = ctx.namespaceLabels;
  const revision = labels[REVISION_LABEL] ?? nsLabels?.[REVISION_LABEL];
  const optedIn =
    nsLabels === undefined ||
    labels[INJECT_LABEL] === 'true' ||
    annotations[INJECT_ANNOTATION] === 'true' ||
    nsLabels[INJECT_LABEL] === 'enabled' ||
    revision !== undefined;
  if (!optedIn) {
    return `neither namespace ${ctx.namespace} (label ${INJECT_LABEL}=enabled) nor the pod (label ${INJECT_LABEL}: "true") opted in`;
  }
  if ((revision ?? DEFAULT_REVISION) !== ctx.settings.revision) {
    return `the pod belongs to control-plane revision "${revision ?? DEFAULT_REVISION}", this is "${ctx.settings.revision}"`;
  }
  return undefined;
}

export function isInjected(pod: JsonObject): boolean {
  const meta = obj(pod.metadata);
  const spec = obj(pod.spec);
  return Object.hasOwn(strings(meta.annotations), STATUS_ANNOTATION) || [...names(spec.containers), ...names(spec.initContainers)].includes(PROXY_CONTAINER);
}

/**
 * Injects `pod` (a Pod, or a workload's pod template: metadata + spec). Never modifies its input.
 * Injecting an injected pod changes nothing; invalid `weft.dev/*` annotations reject the pod.
 */
export function injectPod(pod: JsonObject, ctx: InjectionContext): InjectionResult {
  if (isInjected(pod)) return { kind: 'skipped', reason: 'the pod already has a Weft sidecar' };
  const { overrides, problems } = readOverrides(strings(obj(pod.metadata).annotations));
  // A bad opt-out value is an error even if it would mean "skip": the user meant something.
  if (problems.some((p) => p.annotation === INJECT_ANNOTATION)) return { kind: 'rejected', message: describeProblems(problems) };
  const skip = skipReason(pod, ctx);
  if (skip) return { kind: 'skipped', reason: skip };
  if (problems.length > 0) return { kind: 'rejected', message: describeProblems(problems) };
  const spec = obj(pod.spec);
  if (!Array.isArray(spec.containers) || spec.containers.length === 0) {
    return { kind: 'rejected', message: 'the pod has no containers (spec.containers is empty)' };
  }
  for (const taken of [INIT_CONTAINER, ...Object.values(VOLUMES)]) {
    if ([...names(spec.initContainers), ...names(spec.volumes)].includes(taken)) {
      return { kind: 'rejected', message: `the pod already uses the name "${taken}", which the Weft sidecar needs` };
    }
  }

  const native = ctx.settings.nativeSidecars;
  const out = structuredClone(pod);
  const outSpec = obj(out.spec);
  const init = initContainer(ctx.settings, overrides);
  const rewritten = overrides.rewriteAppProbes ? rewriteAppProbes(spec.containers as Json[]) : { containers: spec.containers as Json[], probes: {} };
  const proxy = proxyContainer(ctx.settings, overrides, native, rewritten.probes);
  const existingInit = Array.isArray(outSpec.initContainers) ? outSpec.initContainers : [];
  if (native) {
    // Capture first, then the proxy (started and ready before anything after it), then the
    // app's own init containers, which can use the mesh.
    outSpec.initContainers = [init, proxy, ...existingInit];
    outSpec.containers = rewritten.containers;
  } else {
    // The app's init containers run before capture is installed: with no proxy running yet,
    // captured traffic would go nowhere. The proxy is the first regular container.
    outSpec.initContainers = [...existingInit, init];
    outSpec.containers = [proxy, ...rewritten.containers];
  }
  outSpec.volumes = [...(Array.isArray(outSpec.volumes) ? outSpec.volumes : []), ...volumes()];
  out.spec = outSpec;

  const meta = obj(out.metadata);
  const status: InjectionStatus = {
    revision: ctx.settings.revision,
    image: ctx.settings.image,
    nativeSidecar: native,
    inboundPort: PORTS.inbound,
    hbonePort: PORTS.hbone,
    initContainers: native ? [INIT_CONTAINER, PROXY_CONTAINER] : [INIT_CONTAINER],
    containers: native ? [] : [PROXY_CONTAINER],
    volumes: Object.values(VOLUMES),
  };
  const annotations = strings(meta.annotations);
  const firstApp = names(spec.containers)[0] ?? '';
  meta.annotations = {
    ...obj(meta.annotations),
    [STATUS_ANNOTATION]: JSON.stringify(status),
    // `kubectl logs` / `exec` pick the app, not the proxy, when no container is named.
    ...(annotations['kubectl.kubernetes.io/default-container'] === undefined ? { 'kubectl.kubernetes.io/default-container': firstApp } : {}),
  };
  meta.labels = { ...obj(meta.labels), [REVISION_LABEL]: ctx.settings.revision };
  out.metadata = meta;
  return { kind: 'injected', pod: out };
}
