// Ambient mode as the config says it: which workloads the node proxy carries (the
// `weft.dev/dataplane-mode` label on the workload or its Namespace), on which node, and which
// waypoint a Service sends its traffic through (`weft.dev/use-waypoint`). A label with a value
// Weft does not know is a problem naming the object, and counts as unset.
import { at, DNS_SUBDOMAIN, show } from './read.js';
import {
  DATAPLANE_MODE_LABEL,
  describeObject,
  GATEWAY_NAME_LABEL,
  SIDECAR_INJECTED_ANNOTATION,
  USE_WAYPOINT_LABEL,
  type ConfigObject,
  type ConfigProblem,
  type DataplaneMode,
  type Namespace,
  type Service,
  type WorkloadEntry,
} from './types.js';

const MODES = ['ambient', 'none'] as const;
type LabelMode = (typeof MODES)[number];
/** The use-waypoint value that opts a Service out of its Namespace's waypoint. */
const NO_WAYPOINT = 'none';

type Labelled = { readonly metadata: { readonly labels: Readonly<Record<string, string>> } } | undefined;

/** The dataplane-mode label's value when it is one Weft knows, else undefined. */
function modeLabel(o: Labelled): LabelMode | undefined {
  const v = o?.metadata.labels[DATAPLANE_MODE_LABEL];
  return (MODES as readonly string[]).includes(v ?? '') ? (v as LabelMode) : undefined;
}

function waypointLabel(o: Labelled): string | undefined {
  const v = o?.metadata.labels[USE_WAYPOINT_LABEL];
  return v !== undefined && validWaypointName(v) ? v : undefined;
}

function validWaypointName(v: string): boolean {
  return v.length <= 253 && DNS_SUBDOMAIN.test(v);
}

/** A waypoint's own replicas: the proxies that apply L7 for others, never carried themselves. */
export function waypointNameOf(w: WorkloadEntry): string | undefined {
  return w.metadata.labels[GATEWAY_NAME_LABEL] || undefined;
}

/**
 * How `w` is in the mesh. A sidecar always wins (a connected one, or an injected pod); a
 * waypoint replica is never carried; then the workload's own label; then its Namespace's
 * (where only `ambient` means anything).
 */
export function dataplaneModeOf(w: WorkloadEntry, ns: Namespace | undefined, hasSidecar: boolean): DataplaneMode {
  if (hasSidecar || Object.hasOwn(w.metadata.annotations, SIDECAR_INJECTED_ANNOTATION)) return 'sidecar';
  if (waypointNameOf(w) !== undefined) return 'none';
  const own = modeLabel(w);
  if (own !== undefined) return own;
  return modeLabel(ns) === 'ambient' ? 'ambient' : 'none';
}

/** The waypoint name `service` uses: its own label, else its Namespace's; `none` on either opts out. */
export function useWaypointName(service: Service, ns: Namespace | undefined): string | undefined {
  const name = waypointLabel(service) ?? waypointLabel(ns);
  return name === undefined || name === NO_WAYPOINT ? undefined : name;
}

/**
 * Problems with the ambient labels: an unknown dataplane mode or a use-waypoint value that
 * cannot name a waypoint (both then count as unset), and a workload enrolled by its own label
 * that names no node (no node proxy would carry it).
 */
export function ambientLabelProblems(objects: readonly ConfigObject[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const field = (key: string) => at('metadata.labels', key);
  for (const o of objects) {
    const labels = o.metadata.labels;
    if ((o.kind === 'WorkloadEntry' || o.kind === 'Namespace') && labels[DATAPLANE_MODE_LABEL] !== undefined && modeLabel(o) === undefined) {
      out.push({
        object: describeObject(o),
        field: field(DATAPLANE_MODE_LABEL),
        message: `must be "ambient" or "none", got ${show(labels[DATAPLANE_MODE_LABEL])}; the label is ignored`,
      });
    }
    if ((o.kind === 'Service' || o.kind === 'Namespace') && labels[USE_WAYPOINT_LABEL] !== undefined && waypointLabel(o) === undefined) {
      out.push({
        object: describeObject(o),
        field: field(USE_WAYPOINT_LABEL),
        message: `must name a waypoint (a DNS-1123 subdomain) or be "none", got ${show(labels[USE_WAYPOINT_LABEL])}; the label is ignored`,
      });
    }
    if (o.kind === 'WorkloadEntry' && modeLabel(o) === 'ambient' && o.spec.nodeName === undefined && waypointNameOf(o) === undefined) {
      out.push({
        object: describeObject(o),
        field: 'spec.nodeName',
        message: `is required for a workload labelled ${DATAPLANE_MODE_LABEL}=ambient: it names the node whose proxy carries the workload`,
      });
    }
  }
  return out;
}
