// The Model: an immutable, indexed view of every config object at one moment, built once per
// config change and shared by translation (per proxy) and route status.
import { ambientLabelProblems, dataplaneModeOf, useWaypointName, waypointNameOf } from './ambient.js';
import {
  describeObject,
  objectKey,
  workloadKey,
  type AuthorizationPolicy,
  type Gateway,
  type ConfigObject,
  type ConfigProblem,
  type DataplaneMode,
  type EndpointSlice,
  type GRPCRoute,
  type HTTPRoute,
  type Labels,
  type Namespace,
  type PeerAuthentication,
  type ReferenceGrant,
  type RouteObject,
  type Service,
  type Waypoint,
  type WorkloadEntry,
} from './types.js';

export interface Model {
  /** Every object, in a stable order (kind, namespace, name). */
  readonly objects: readonly ConfigObject[];
  /** Problems of the config as a whole (file parse errors, duplicates), for status and logs. */
  readonly problems: readonly ConfigProblem[];

  readonly services: readonly Service[];
  service(namespace: string, name: string): Service | undefined;
  readonly namespaces: ReadonlyMap<string, Namespace>;
  readonly workloadEntries: readonly WorkloadEntry[];
  workloadEntry(namespace: string, name: string): WorkloadEntry | undefined;
  /** By `name.namespace`, the key sidecars and the directory use. */
  workloadByKey(key: string): WorkloadEntry | undefined;
  /** WorkloadEntries of `namespace` whose labels contain every selector label. */
  selectWorkloads(namespace: string, selector: Labels): readonly WorkloadEntry[];
  /** Hand-made EndpointSlices labelled with this Service's name. */
  endpointSlices(namespace: string, serviceName: string): readonly EndpointSlice[];
  readonly httpRoutes: readonly HTTPRoute[];
  readonly grpcRoutes: readonly GRPCRoute[];
  /** HTTPRoutes then GRPCRoutes. */
  readonly routes: readonly RouteObject[];
  referenceGrants(namespace: string): readonly ReferenceGrant[];
  readonly peerAuthentications: readonly PeerAuthentication[];
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  /** Gateways (Weft uses those of class weft-waypoint: see waypointFor). */
  readonly gateways: readonly Gateway[];

  // ---- Ambient mode (ARCHITECTURE.md "Ambient mode") ----
  /**
   * How `workload` is in the mesh. `hasSidecar` is what only the caller knows (a connected
   * sidecar); with it the answer is always 'sidecar'. Cheap: the label part is precomputed.
   */
  dataplaneMode(workload: WorkloadEntry, hasSidecar: boolean): DataplaneMode;
  /** Workloads enrolled in ambient mode whose spec.nodeName is `node` (sidecars not known here). */
  ambientWorkloadsOnNode(node: string): readonly WorkloadEntry[];
  /** The waypoint `service` sends its traffic through, or undefined (no label, or `none`). */
  waypointFor(service: Service): Waypoint | undefined;
  /** The workloads of `namespace` that run the waypoint `name` (labelled gateway-name=<name>). */
  waypointReplicas(namespace: string, name: string): readonly WorkloadEntry[];
  /** Workloads of `namespace` running as `serviceAccount` (the SPIFFE identity they share). */
  workloadsWithIdentity(namespace: string, serviceAccount: string): readonly WorkloadEntry[];
  /** Every node some workload names in spec.nodeName, sorted. */
  readonly nodes: readonly string[];
}

const KIND_ORDER: Record<ConfigObject['kind'], number> = {
  Namespace: 0,
  Service: 1,
  EndpointSlice: 2,
  WorkloadEntry: 3,
  HTTPRoute: 4,
  GRPCRoute: 5,
  ReferenceGrant: 6,
  PeerAuthentication: 7,
  AuthorizationPolicy: 8,
  Gateway: 9,
};

function compareObjects(a: ConfigObject, b: ConfigObject): number {
  return (
    KIND_ORDER[a.kind] - KIND_ORDER[b.kind] ||
    a.metadata.namespace.localeCompare(b.metadata.namespace) ||
    a.metadata.name.localeCompare(b.metadata.name)
  );
}

export function labelsMatch(labels: Labels, selector: Labels): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/**
 * Builds the Model. Objects that repeat an earlier one's kind/namespace/name are left out and
 * reported (callers that know files detect duplicates first, naming both files). `problems`
 * are carried into the Model as they are.
 */
export function buildModel(objects: readonly ConfigObject[], problems: readonly ConfigProblem[] = []): Model {
  const allProblems = [...problems];
  const seen = new Set<string>();
  const unique: ConfigObject[] = [];
  for (const o of objects) {
    const key = objectKey(o);
    if (seen.has(key)) {
      allProblems.push({ field: 'metadata.name', message: `${describeObject(o)} is defined more than once; the later copy is ignored`, object: describeObject(o) });
      continue;
    }
    seen.add(key);
    unique.push(o);
  }
  unique.sort(compareObjects);

  const of = <K extends ConfigObject['kind']>(kind: K) =>
    Object.freeze(unique.filter((o): o is Extract<ConfigObject, { kind: K }> => o.kind === kind));
  const services = of('Service');
  const workloads = of('WorkloadEntry');
  const slices = of('EndpointSlice');
  const httpRoutes = of('HTTPRoute');
  const grpcRoutes = of('GRPCRoute');
  const grants = of('ReferenceGrant');

  const serviceIndex = new Map(services.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  const workloadIndex = new Map(workloads.map((w) => [`${w.metadata.namespace}/${w.metadata.name}`, w]));
  const workloadKeys = new Map(workloads.map((w) => [workloadKey(w), w]));
  const workloadsByNs = groupBy(workloads, (w) => w.metadata.namespace);
  const slicesByService = groupBy(slices, (s) => `${s.metadata.namespace}/${s.serviceName}`);
  const grantsByNs = groupBy(grants, (g) => g.metadata.namespace);
  const namespaces = new Map(of('Namespace').map((n) => [n.metadata.name, n]));
  allProblems.push(...ambientLabelProblems(unique));

  // Ambient: the label part of each workload's mode, once; workloads by node, identity, waypoint.
  const labelMode = new Map(workloads.map((w) => [w, dataplaneModeOf(w, namespaces.get(w.metadata.namespace), false)]));
  const ambientByNode = groupBy(
    workloads.filter((w) => w.spec.nodeName !== undefined && labelMode.get(w) === 'ambient'),
    (w) => w.spec.nodeName ?? '',
  );
  const byIdentity = groupBy(workloads, (w) => `${w.metadata.namespace}/${w.spec.serviceAccount}`);
  const waypointReplicas = groupBy(
    workloads.filter((w) => waypointNameOf(w) !== undefined),
    (w) => `${w.metadata.namespace}/${waypointNameOf(w) ?? ''}`,
  );
  const nodes = Object.freeze([...new Set(workloads.flatMap((w) => (w.spec.nodeName === undefined ? [] : [w.spec.nodeName])))].sort());

  const model: Model = {
    objects: Object.freeze(unique),
    problems: Object.freeze(allProblems),
    services,
    service: (ns, name) => serviceIndex.get(`${ns}/${name}`),
    namespaces,
    workloadEntries: workloads,
    workloadEntry: (ns, name) => workloadIndex.get(`${ns}/${name}`),
    workloadByKey: (key) => workloadKeys.get(key),
    selectWorkloads: (ns, selector) => (workloadsByNs.get(ns) ?? []).filter((w) => labelsMatch(w.metadata.labels, selector)),
    endpointSlices: (ns, name) => slicesByService.get(`${ns}/${name}`) ?? [],
    httpRoutes,
    grpcRoutes,
    routes: Object.freeze([...httpRoutes, ...grpcRoutes]),
    referenceGrants: (ns) => grantsByNs.get(ns) ?? [],
    peerAuthentications: of('PeerAuthentication'),
    authorizationPolicies: of('AuthorizationPolicy'),
    gateways: of('Gateway'),
    dataplaneMode: (w, hasSidecar) =>
      hasSidecar ? 'sidecar' : (labelMode.get(w) ?? dataplaneModeOf(w, namespaces.get(w.metadata.namespace), false)),
    ambientWorkloadsOnNode: (node) => ambientByNode.get(node) ?? [],
    waypointFor(service) {
      const ns = service.metadata.namespace;
      const name = useWaypointName(service, namespaces.get(ns));
      if (name === undefined) return undefined;
      const replicas = waypointReplicas.get(`${ns}/${name}`) ?? [];
      // A waypoint's own Service (one selecting its replicas) is reached directly, not through itself.
      const selector = service.spec.selector;
      if (selector && replicas.some((w) => labelsMatch(w.metadata.labels, selector))) return undefined;
      return { name, namespace: ns, workloads: replicas };
    },
    waypointReplicas: (ns, name) => waypointReplicas.get(`${ns}/${name}`) ?? [],
    workloadsWithIdentity: (ns, sa) => byIdentity.get(`${ns}/${sa}`) ?? [],
    nodes,
  };
  return Object.freeze(model);
}

export const EMPTY_MODEL: Model = buildModel([]);
