// Domain types: what the rest of Weft sees of xDS after api/ has decoded and validated it.
// Read-only, plain data; no protobuf objects travel past api/. One set for listeners, routes,
// clusters, endpoints and secrets, shared by the proxy's state, route matcher and data path.

// ---- Matching ------------------------------------------------------------------------------

export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'prefix'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'suffix'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'contains'; readonly value: string; readonly ignoreCase?: boolean }
  | { readonly kind: 'regex'; readonly regex: RegExp };

export type PathMatch =
  | { readonly kind: 'exact'; readonly value: string }
  /** Plain string prefix (Envoy `prefix`). */
  | { readonly kind: 'prefix'; readonly value: string }
  /** Segment-wise prefix (Envoy `path_separated_prefix`, Gateway API PathPrefix). */
  | { readonly kind: 'segmentPrefix'; readonly value: string }
  | { readonly kind: 'regex'; readonly regex: RegExp };

export interface HeaderMatch {
  /** Lower-case header name; `:method`, `:authority`, `:path`, `:scheme` are pseudo-headers. */
  readonly name: string;
  /** Absent: matches when the header is present (or absent, with invert). */
  readonly match?: StringMatch;
  readonly present?: boolean;
  readonly invert: boolean;
}

export interface QueryMatch {
  readonly name: string;
  readonly match?: StringMatch;
  readonly present?: boolean;
}

export interface RouteMatch {
  readonly path: PathMatch;
  readonly headers: readonly HeaderMatch[];
  readonly query: readonly QueryMatch[];
  /** gRPC-only routes (Envoy `grpc: {}`): content-type application/grpc*. */
  readonly grpc: boolean;
}

// ---- Actions -------------------------------------------------------------------------------

export interface HeaderValueOption {
  readonly name: string; // lower-case
  readonly value: string;
  /** 'append' adds a value; 'overwrite' replaces all values (Gateway API `set`). */
  readonly action: 'append' | 'overwrite' | 'addIfAbsent';
}

export interface HeaderMutation {
  readonly add: readonly HeaderValueOption[];
  readonly remove: readonly string[]; // lower-case
}

export const NO_HEADER_MUTATION: HeaderMutation = Object.freeze({ add: [], remove: [] });

export interface RetryPolicy {
  /** Envoy retry_on conditions: '5xx', 'gateway-error', 'reset', 'connect-failure',
   *  'retriable-status-codes', 'refused-stream', 'cancelled', 'deadline-exceeded', 'unavailable'... */
  readonly retryOn: ReadonlySet<string>;
  readonly numRetries: number;
  readonly perTryTimeoutMs?: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export interface Mirror {
  readonly cluster: string;
  /** Fraction of requests mirrored, 0..1. */
  readonly fraction: number;
}

export interface WeightedBackend {
  readonly cluster: string;
  readonly weight: number;
  /** Filters that apply only when this backend is chosen (Gateway API backendRef filters). */
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
}

export type PathRewrite =
  | { readonly kind: 'prefix'; readonly value: string } // replaces the matched prefix
  | { readonly kind: 'full'; readonly value: string }
  | { readonly kind: 'regex'; readonly regex: RegExp; readonly substitution: string };

export interface ForwardAction {
  readonly kind: 'forward';
  readonly backends: readonly WeightedBackend[];
  /** Sum of backend weights; 0 means "no backend" (answered 500, as the Gateway API asks). */
  readonly totalWeight: number;
  readonly timeoutMs?: number; // 0/undefined = no timeout
  readonly retry?: RetryPolicy;
  readonly mirrors: readonly Mirror[];
  readonly hostRewrite?: string;
  readonly pathRewrite?: PathRewrite;
  /** Status when a backend's cluster does not exist (Envoy `cluster_not_found_response_code`;
   *  Gateway API wants 500 for unresolved backendRefs). Default 503. */
  readonly clusterNotFoundStatus: number;
}

export interface RedirectAction {
  readonly kind: 'redirect';
  readonly scheme?: string;
  readonly host?: string;
  readonly port?: number;
  /** `regex`: Envoy's regex_rewrite, which Gateway API ReplacePrefixMatch needs for `/` cases. */
  readonly path?: PathRewrite;
  readonly status: 301 | 302 | 303 | 307 | 308;
  readonly stripQuery: boolean;
}

export interface DirectResponseAction {
  readonly kind: 'direct';
  readonly status: number;
  readonly body?: string;
}

export type RouteAction = ForwardAction | RedirectAction | DirectResponseAction;

export interface Route {
  /** Envoy route name; Weft fills it with `<ns>/<route>/<rule index or name>` for decision records. */
  readonly name: string;
  readonly match: RouteMatch;
  readonly action: RouteAction;
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
}

export interface VirtualHost {
  readonly name: string;
  /** Lower-case domains; may include a port (`svc:9080`) or a wildcard (`*`, `*.example.com`). */
  readonly domains: readonly string[];
  readonly routes: readonly Route[];
  readonly requestHeaders: HeaderMutation;
  readonly responseHeaders: HeaderMutation;
}

export interface RouteConfig {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  /** VHDS: the virtual hosts named `<name>/…` (resources of their own) belong to it too. */
  readonly vhds?: true;
}

// ---- Listeners -----------------------------------------------------------------------------

export interface TlsContextRef {
  /** SDS secret names (Istio's conventions: 'default' for the workload cert, 'ROOTCA'). */
  readonly certificateSecret?: string;
  readonly validationSecret?: string;
  readonly requireClientCertificate: boolean;
  readonly alpn: readonly string[];
}

export type RbacAction = 'ALLOW' | 'DENY';

export interface RbacPrincipalMatch {
  /** Match the authenticated peer SPIFFE ID. */
  readonly principal?: StringMatch;
  readonly namespace?: StringMatch;
  readonly any?: boolean;
}

export interface RbacPermissionMatch {
  readonly methods?: readonly string[];
  readonly paths?: readonly StringMatch[];
  readonly ports?: readonly number[];
  readonly any?: boolean;
}

export interface RbacPolicy {
  readonly name: string;
  readonly principals: readonly RbacPrincipalMatch[]; // any of
  readonly permissions: readonly RbacPermissionMatch[]; // any of
}

export interface RbacRules {
  readonly action: RbacAction;
  readonly policies: readonly RbacPolicy[];
}

export type NetworkFilter =
  | {
      readonly kind: 'http';
      readonly statPrefix: string;
      /** Routes by RDS name, or inline. */
      readonly rdsName?: string;
      readonly inlineRoutes?: RouteConfig;
      /** Inbound authorization, in evaluation order (DENY lists first). */
      readonly rbac: readonly RbacRules[];
    }
  | { readonly kind: 'tcp'; readonly statPrefix: string; readonly cluster: string; readonly rbac: readonly RbacRules[] };

export interface FilterChain {
  readonly name: string;
  /** Empty = any. */
  readonly destinationPorts: readonly number[];
  readonly serverNames: readonly string[];
  /** 'tls' matches TLS clients only, 'raw_buffer' plaintext only, undefined both. */
  readonly transportProtocol?: 'tls' | 'raw_buffer';
  readonly tls?: TlsContextRef;
  readonly filter: NetworkFilter;
}

/** The ambient pod a node proxy's per-pod listener serves (listener metadata `weft`). */
export interface ListenerWorkload {
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The pod's SPIFFE ID: the certificate the node proxy holds and presents for it. */
  readonly identity: string;
}

export interface Listener {
  readonly name: string;
  readonly address?: { readonly host: string; readonly port: number };
  readonly filterChains: readonly FilterChain[];
  readonly defaultFilterChain?: FilterChain;
  /** Set on a node proxy's `ambient|<namespace>|<name>` listeners. */
  readonly workload?: ListenerWorkload;
}

// ---- Clusters and endpoints ----------------------------------------------------------------

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV' | 'P2C_EWMA';

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly healthy: boolean;
  /** SPIFFE ID the endpoint must prove (from EDS metadata `weft.identity`). */
  readonly identity?: string;
  /** App port behind the endpoint's sidecar (from EDS metadata `weft.target_port`). */
  readonly targetPort?: number;
  /** Workload `name.namespace`, for metrics and decision records. */
  readonly workload?: string;
  readonly locality?: string;
  /** Reached over HBONE (EDS `weft.tunnel: hbone`): `host:port` is the HBONE listener (15008)
   *  and the CONNECT authority is `host:targetPort`. Absent: sidecar mTLS or plaintext. */
  readonly tunnel?: 'hbone';
  /** The endpoint is a waypoint (EDS `weft.waypoint: true`): its CONNECT authority is the
   *  original Service VIP:port rather than `host:targetPort`. */
  readonly waypoint?: boolean;
  /** The CONNECT authority to use (EDS `weft.authority`, `ip:port`): the Service VIP:port a
   *  sidecar names when it sends a Service's traffic through that Service's waypoint. */
  readonly authority?: string;
}

export interface Cluster {
  readonly name: string;
  readonly discovery: 'EDS' | 'STATIC' | 'STRICT_DNS' | 'ORIGINAL_DST';
  /** EDS resource name (defaults to the cluster name). */
  readonly edsServiceName: string;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeoutMs: number;
  /** Upstream application protocol. */
  readonly protocol: 'http1' | 'http2' | 'auto';
  readonly tls?: TlsContextRef & { readonly sni?: string; readonly matchSans: readonly string[] };
  /** STATIC / STRICT_DNS clusters carry their endpoints inline. */
  readonly staticEndpoints?: readonly Endpoint[];
  readonly circuitBreakers?: {
    readonly maxConnections?: number;
    readonly maxPendingRequests?: number;
    readonly maxRequests?: number;
    readonly maxRetries?: number;
    /** Envoy `retry_budget`: when set, replaces `maxRetries` as the limit on retries in flight. */
    readonly retryBudget?: RetryBudgetConfig;
  };
  /** What consistent-hash policies (RING_HASH, MAGLEV) hash; from `metadata.filter_metadata.weft.hash_key`. */
  readonly hashKey?: HashKey;
  /** RING_HASH ring size bounds (Envoy `ring_hash_lb_config`). */
  readonly ringHash?: { readonly minRingSize: number; readonly maxRingSize: number };
  /** Passive health checking (Envoy `outlier_detection`); absent: no ejection. */
  readonly outlierDetection?: OutlierDetection;
}

/** The request property a consistent-hash balancer keys on. */
export type HashKey =
  | { readonly kind: 'header'; readonly name: string } // lower-case
  | { readonly kind: 'cookie'; readonly name: string }
  | { readonly kind: 'source-ip' };

export interface RetryBudgetConfig {
  /** Retries in flight may be at most this % of the cluster's active requests (Envoy default 20). */
  readonly budgetPercent: number;
  /** ... but this many retries in flight are always allowed (Envoy default 3). */
  readonly minRetryConcurrency: number;
}

/**
 * Envoy `outlier_detection`, the parts Weft applies: consecutive-failure ejection (success-rate
 * and failure-percentage detection are not implemented). Thresholds whose `enforcing_*` is 0
 * are decoded as 0 (off).
 */
export interface OutlierDetection {
  /** Consecutive 5xx responses or locally originated failures (connect, reset, timeout) that
   *  eject an endpoint. 0 = off. */
  readonly consecutive5xx: number;
  /** % of those ejections actually enforced (Envoy `enforcing_consecutive_5xx`). */
  readonly enforcing5xxPercent: number;
  /** Consecutive 502/503/504 or locally originated failures that eject. 0 = off. */
  readonly consecutiveGatewayFailure: number;
  readonly enforcingGatewayFailurePercent: number;
  /** How often ejections are re-evaluated: an ejected endpoint returns on the first tick past
   *  its ejection time, and an endpoint not ejected for a tick has its multiplier lowered. */
  readonly intervalMs: number;
  /** Ejection time = base × times ejected in a row, capped at maxEjectionTimeMs. */
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionTimeMs: number;
  /** At most this % of the cluster's endpoints ejected at once. */
  readonly maxEjectionPercent: number;
  /** Envoy `always_eject_one_host`: one endpoint may be ejected whatever the percentage says. */
  readonly alwaysEjectOne: boolean;
}

export interface EndpointAssignment {
  readonly clusterName: string;
  readonly endpoints: readonly Endpoint[];
}

export interface SecretValue {
  readonly name: string;
  /** PEM trust anchors (validation context). */
  readonly trustedCa?: string;
  /** PEM chain (tls certificate). Private keys are never sent by Weft's control plane. */
  readonly certificateChain?: string;
}
