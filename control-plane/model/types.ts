// Read-only domain types for every config kind Weft reads, as they look after parsing,
// validation and the defaults the Kubernetes API server would apply from the CRD schemas.
import type { FieldProblem } from '../../core/errors.js';

export type Labels = Readonly<Record<string, string>>;

export interface ObjectMeta {
  readonly name: string;
  /** Namespace of a namespaced object ('default' when unset); '' for a Namespace itself. */
  readonly namespace: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  /** RFC 3339; usually absent for objects read from files. Orders routes of equal precedence. */
  readonly creationTimestamp?: string;
  readonly generation?: number;
}

interface Base<K extends string> {
  readonly kind: K;
  readonly apiVersion: string;
  readonly metadata: ObjectMeta;
}

// ---- Core Kubernetes kinds -------------------------------------------------------------------

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  /** A number is the app's port; a name selects the WorkloadEntry port of that name. */
  readonly targetPort: number | string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly appProtocol?: string;
}

export interface Service extends Base<'Service'> {
  readonly spec: {
    readonly type: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
    /** Absent or empty: the Service selects nothing (endpoints come from EndpointSlices). */
    readonly selector?: Labels;
    readonly ports: readonly ServicePort[];
    readonly clusterIP?: string;
  };
}

export interface EndpointSliceEndpoint {
  readonly addresses: readonly string[];
  /** Kubernetes reads an unset `ready` as true. */
  readonly ready: boolean;
  readonly targetRef?: { readonly kind: string; readonly name: string; readonly namespace: string };
}

export interface EndpointSlicePort {
  /** '' when unnamed; matched against the Service port's name. */
  readonly name: string;
  readonly port?: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly appProtocol?: string;
}

export interface EndpointSlice extends Base<'EndpointSlice'> {
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly endpoints: readonly EndpointSliceEndpoint[];
  readonly ports: readonly EndpointSlicePort[];
  /** From the label `kubernetes.io/service-name`. */
  readonly serviceName: string;
}

export interface Namespace extends Base<'Namespace'> {}

// ---- Gateway API --------------------------------------------------------------------------

export interface ParentRef {
  readonly group: string;
  readonly kind: string;
  /** Absent: the route's own namespace. */
  readonly namespace?: string;
  readonly name: string;
  readonly sectionName?: string;
  readonly port?: number;
}

export interface BackendObjectRef {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
  readonly port?: number;
}

export type PathMatchType = 'Exact' | 'PathPrefix' | 'RegularExpression';
export type ValueMatchType = 'Exact' | 'RegularExpression';

export interface HTTPPathMatch {
  readonly type: PathMatchType;
  readonly value: string;
}

export interface ValueMatch {
  readonly type: ValueMatchType;
  readonly name: string;
  readonly value: string;
}

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
export type HTTPMethod = (typeof HTTP_METHODS)[number];

export interface HTTPRouteMatch {
  readonly path: HTTPPathMatch;
  readonly headers: readonly ValueMatch[];
  readonly queryParams: readonly ValueMatch[];
  readonly method?: HTTPMethod;
}

export interface HeaderValue {
  readonly name: string;
  readonly value: string;
}

export interface HeaderModifier {
  readonly set: readonly HeaderValue[];
  readonly add: readonly HeaderValue[];
  readonly remove: readonly string[];
}

export interface PathModifier {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  /** replaceFullPath or replacePrefixMatch, whichever the type names. */
  readonly value: string;
}

export interface RequestMirror {
  readonly backendRef: BackendObjectRef;
  /** Share of requests mirrored, as numerator/denominator (percent p is p/100; none is 100/100). */
  readonly numerator: number;
  readonly denominator: number;
}

export interface RequestRedirect {
  readonly scheme?: 'http' | 'https';
  readonly hostname?: string;
  readonly path?: PathModifier;
  readonly port?: number;
  readonly statusCode: 301 | 302 | 303 | 307 | 308;
}

export interface URLRewrite {
  readonly hostname?: string;
  readonly path?: PathModifier;
}

/**
 * One filter. `type` is kept as written: a type Weft does not implement (CORS, ExternalAuth,
 * or an unknown name) is not a parse error but makes the route not Accepted; an ExtensionRef
 * (which Weft cannot resolve) makes the requests it applies to answer 500.
 */
export interface RouteFilter {
  readonly type: string;
  readonly requestHeaderModifier?: HeaderModifier;
  readonly responseHeaderModifier?: HeaderModifier;
  readonly requestMirror?: RequestMirror;
  readonly requestRedirect?: RequestRedirect;
  readonly urlRewrite?: URLRewrite;
  /** For type ExtensionRef: the filter object it names (Weft resolves none). */
  readonly extensionRef?: { readonly group: string; readonly kind: string; readonly name: string };
}

export interface BackendRef extends BackendObjectRef {
  readonly weight: number;
  readonly filters: readonly RouteFilter[];
}

export interface HTTPRouteTimeouts {
  /** Milliseconds; 0 disables the timeout. */
  readonly requestMs?: number;
  readonly backendRequestMs?: number;
}

export interface HTTPRouteRetry {
  readonly codes: readonly number[];
  readonly attempts?: number;
  readonly backoffMs?: number;
}

export interface HTTPRouteRule {
  readonly name?: string;
  /** Never empty: a rule without matches gets PathPrefix "/". */
  readonly matches: readonly HTTPRouteMatch[];
  readonly filters: readonly RouteFilter[];
  readonly backendRefs: readonly BackendRef[];
  readonly timeouts?: HTTPRouteTimeouts;
  readonly retry?: HTTPRouteRetry;
  /** Set when the rule asks for session persistence, which Weft does not implement. */
  readonly sessionPersistence?: true;
}

export interface HTTPRoute extends Base<'HTTPRoute'> {
  readonly spec: {
    readonly parentRefs: readonly ParentRef[];
    /** Read but not used for mesh routing (GEP-1294: implementations infer nothing from them). */
    readonly hostnames: readonly string[];
    readonly rules: readonly HTTPRouteRule[];
  };
}

export interface GRPCMethodMatch {
  readonly type: ValueMatchType;
  readonly service?: string;
  readonly method?: string;
}

export interface GRPCRouteMatch {
  readonly method?: GRPCMethodMatch;
  readonly headers: readonly ValueMatch[];
}

export interface GRPCRouteRule {
  readonly name?: string;
  /** Empty: every gRPC request. */
  readonly matches: readonly GRPCRouteMatch[];
  readonly filters: readonly RouteFilter[];
  readonly backendRefs: readonly BackendRef[];
  readonly sessionPersistence?: true;
}

export interface GRPCRoute extends Base<'GRPCRoute'> {
  readonly spec: {
    readonly parentRefs: readonly ParentRef[];
    readonly hostnames: readonly string[];
    readonly rules: readonly GRPCRouteRule[];
  };
}

export interface ReferenceGrant extends Base<'ReferenceGrant'> {
  readonly spec: {
    readonly from: readonly { readonly group: string; readonly kind: string; readonly namespace: string }[];
    readonly to: readonly { readonly group: string; readonly kind: string; readonly name?: string }[];
  };
}

/**
 * A Gateway. Weft is no ingress controller: it reads Gateways of class `weft-waypoint` (which
 * declare waypoints; their workloads carry `gateway.networking.k8s.io/gateway-name`) and reports
 * their status (control-plane/status/gateways.ts); it keeps others only so that a directory
 * holding them still loads (the Kubernetes source does not read them).
 */
export interface Gateway extends Base<'Gateway'> {
  readonly spec: {
    readonly gatewayClassName: string;
    readonly listeners: readonly { readonly name: string; readonly port: number; readonly protocol: string }[];
  };
}

// ---- Weft kinds (weft.dev/v1alpha1) ------------------------------------------------------------

export interface WorkloadEntry extends Base<'WorkloadEntry'> {
  readonly spec: {
    readonly address: string;
    /** Port name → the port the app listens on. */
    readonly ports: Readonly<Record<string, number>>;
    readonly serviceAccount: string;
    /**
     * The node the workload runs on (a Pod's `spec.nodeName`; on a WorkloadEntry a Weft
     * extension): an ambient workload is carried by that node's proxy, and only that node's
     * proxy may ask the CA for its identity.
     */
    readonly nodeName?: string;
    /** For `weft up`: the command that runs the workload, and its extra environment. */
    readonly command?: readonly string[];
    readonly env: Labels;
  };
}

// ---- Ambient mode: the labels that enroll workloads and attach waypoints --------------------

/** On a workload (Pod / WorkloadEntry) or its Namespace: `ambient` enrolls; `none` on the workload opts out. */
export const DATAPLANE_MODE_LABEL = 'weft.dev/dataplane-mode';
/** On a Service or its Namespace: the name of the waypoint its traffic goes through (`none`: no waypoint). */
export const USE_WAYPOINT_LABEL = 'weft.dev/use-waypoint';
/** On a workload: it is (a replica of) the waypoint of this name, in its namespace. */
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
/** The GatewayClass of Weft's waypoints (found by their workloads' label; their Gateways get status). */
export const WAYPOINT_GATEWAY_CLASS = 'weft-waypoint';
/**
 * The injector's record on a Pod it gave a sidecar (control-plane/injector/names.ts
 * STATUS_ANNOTATION); the Kubernetes source carries it onto the workload, so an injected pod
 * counts as a sidecar workload even before its proxy is ready.
 */
export const SIDECAR_INJECTED_ANNOTATION = 'weft.dev/status';

/** How a workload is in the mesh: its own sidecar, the node proxy (ambient), or not at all. */
export type DataplaneMode = 'sidecar' | 'ambient' | 'none';

/** A waypoint a Service uses: its name, its namespace (the Service's) and its replicas. */
export interface Waypoint {
  readonly name: string;
  readonly namespace: string;
  /** Workloads labelled `gateway.networking.k8s.io/gateway-name=<name>` in that namespace. */
  readonly workloads: readonly WorkloadEntry[];
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

export interface PeerAuthentication extends Base<'PeerAuthentication'> {
  readonly spec: {
    /** Absent: every workload of the namespace. */
    readonly selector?: { readonly matchLabels: Labels };
    readonly mtls?: { readonly mode: MtlsMode };
    readonly portLevelMtls: Readonly<Record<number, { readonly mode: MtlsMode }>>;
  };
}

export interface AuthorizationSource {
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
}

export interface AuthorizationOperation {
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
  readonly ports?: readonly number[];
  readonly notPorts?: readonly number[];
}

export interface AuthorizationRule {
  readonly from: readonly { readonly source: AuthorizationSource }[];
  readonly to: readonly { readonly operation: AuthorizationOperation }[];
}

export interface AuthorizationPolicy extends Base<'AuthorizationPolicy'> {
  readonly spec: {
    readonly selector?: { readonly matchLabels: Labels };
    /**
     * As in Istio: a policy that targets Services (in its own namespace) is enforced by their
     * waypoint, with L7 attributes, and by no workload; exclusive with `selector`.
     */
    readonly targetRefs?: ReadonlyArray<{ readonly group: string; readonly kind: 'Service'; readonly name: string }>;
    readonly action: 'ALLOW' | 'DENY';
    /** As in Istio: ALLOW with no rules allows nothing; a rule `{}` matches every request. */
    readonly rules: readonly AuthorizationRule[];
  };
}

// ---- Unions ---------------------------------------------------------------------------------

export type ConfigObject =
  | Service
  | EndpointSlice
  | Namespace
  | HTTPRoute
  | GRPCRoute
  | ReferenceGrant
  | Gateway
  | WorkloadEntry
  | PeerAuthentication
  | AuthorizationPolicy;

export type ConfigKind = ConfigObject['kind'];

export type RouteObject = HTTPRoute | GRPCRoute;

/** A problem in the config, with where it came from when known. */
export interface ConfigProblem extends FieldProblem {
  readonly file?: string;
  /** 1-based document number, set only for files holding several documents. */
  readonly document?: number;
  /** `Kind namespace/name` of the object, when it could be read. */
  readonly object?: string;
}

/** `Kind/namespace/name` (`Namespace/name` for namespaces): identity for duplicates and maps. */
export function objectKey(o: { kind: string; metadata: { namespace: string; name: string } }): string {
  return o.metadata.namespace ? `${o.kind}/${o.metadata.namespace}/${o.metadata.name}` : `${o.kind}/${o.metadata.name}`;
}

/** `Kind namespace/name`, as people read it in messages. */
export function describeObject(o: { kind: string; metadata: { namespace: string; name: string } }): string {
  return o.metadata.namespace ? `${o.kind} ${o.metadata.namespace}/${o.metadata.name}` : `${o.kind} ${o.metadata.name}`;
}

/** The key the directory and node metadata use for a workload: `name.namespace`. */
export function workloadKey(w: WorkloadEntry): string {
  return `${w.metadata.name}.${w.metadata.namespace}`;
}

export function formatProblem(p: ConfigProblem): string {
  const parts: string[] = [];
  if (p.file) {
    // A single-document file names its object well enough; in a multi-document file, say which.
    const inFile = p.document === undefined ? '' : ` (document ${p.document}${p.object ? `, ${p.object}` : ''})`;
    parts.push(p.file + inFile);
  } else if (p.object) {
    parts.push(p.object);
  }
  if (p.field) parts.push(p.field);
  parts.push(p.message);
  return parts.join(': ');
}
