// Data-path errors and the ONE place they become client answers: each failure kind has a stable
// code (core ErrorCode), an Envoy-style response flag for logs, an HTTP status, a gRPC status,
// and an operator-readable body. Pure: respond.ts writes the answer this module decides.
import { ErrorCode, WeftError } from '../../core/errors.js';

/**
 * Every way the data path can fail a request. Adding a kind means adding a row to ANSWERS;
 * the test beside this file checks every kind has one.
 */
export type ProxyErrorKind =
  | 'no_route' // origin-form request, no virtual host / route matched
  | 'blackhole' // absolute-form request to a non-mesh host with outboundPolicy REGISTRY_ONLY
  | 'cluster_not_found' // the route names a cluster the config does not have
  | 'no_healthy_upstream' // the cluster exists but has no healthy endpoint
  | 'upstream_connect' // could not open a connection (refused, timeout, TLS/identity failure)
  | 'upstream_reset' // connection closed/reset before the response headers
  | 'upstream_refused_stream' // HTTP/2 REFUSED_STREAM: the upstream never processed the request
  | 'upstream_timeout' // route timeout (or per-try timeout on the last try) before headers
  | 'upstream_overflow' // a cluster circuit breaker is open (max requests / pending / connections)
  | 'permission_denied' // inbound authorization said no
  | 'bad_request' // the downstream request cannot be routed at all (no authority, bad target)
  | 'internal'; // a bug: anything not raised on purpose

interface AnswerRow {
  readonly code: ErrorCode;
  /** Envoy response flag, for access logs and stats (`UF`, `UH`, `NR`, ...). */
  readonly flag: string;
  readonly status: number;
  /** gRPC status code for requests with content-type application/grpc*. */
  readonly grpc: number;
}

const GRPC = { CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14 } as const;

const ANSWERS: Readonly<Record<ProxyErrorKind, AnswerRow>> = Object.freeze({
  no_route: { code: ErrorCode.ROUTE_NOT_FOUND, flag: 'NR', status: 404, grpc: GRPC.UNIMPLEMENTED },
  blackhole: { code: ErrorCode.ROUTE_NOT_FOUND, flag: 'BH', status: 502, grpc: GRPC.UNAVAILABLE },
  cluster_not_found: { code: ErrorCode.NO_HEALTHY_UPSTREAM, flag: 'NC', status: 503, grpc: GRPC.UNAVAILABLE },
  no_healthy_upstream: { code: ErrorCode.NO_HEALTHY_UPSTREAM, flag: 'UH', status: 503, grpc: GRPC.UNAVAILABLE },
  upstream_connect: { code: ErrorCode.UPSTREAM_CONNECT, flag: 'UF', status: 503, grpc: GRPC.UNAVAILABLE },
  upstream_reset: { code: ErrorCode.UPSTREAM_RESET, flag: 'UC', status: 503, grpc: GRPC.UNAVAILABLE },
  upstream_refused_stream: { code: ErrorCode.UPSTREAM_RESET, flag: 'UR', status: 503, grpc: GRPC.UNAVAILABLE },
  upstream_timeout: { code: ErrorCode.UPSTREAM_TIMEOUT, flag: 'UT', status: 504, grpc: GRPC.DEADLINE_EXCEEDED },
  upstream_overflow: { code: ErrorCode.NO_HEALTHY_UPSTREAM, flag: 'UO', status: 503, grpc: GRPC.UNAVAILABLE },
  permission_denied: { code: ErrorCode.PERMISSION_DENIED, flag: 'RBAC', status: 403, grpc: GRPC.PERMISSION_DENIED },
  bad_request: { code: ErrorCode.USAGE, flag: 'DPE', status: 400, grpc: GRPC.INVALID_ARGUMENT },
  internal: { code: ErrorCode.INTERNAL, flag: 'INT', status: 500, grpc: GRPC.INTERNAL },
});

/** Every kind, for tests and for stats tables. */
export const PROXY_ERROR_KINDS = Object.freeze(Object.keys(ANSWERS) as ProxyErrorKind[]);

/** A failure raised on purpose by the data path. `body` is what the client reads. */
export class ProxyError extends WeftError {
  readonly kind: ProxyErrorKind;
  /** Overrides the table's status (e.g. a route's cluster_not_found_response_code). */
  readonly status: number | undefined;
  /** The client-facing text (one line); the log gets `describe()` with the hint. */
  readonly body: string;

  constructor(kind: ProxyErrorKind, body: string, opts: { cause?: unknown; hint?: string; status?: number } = {}) {
    super(ANSWERS[kind].code, body, opts);
    this.name = 'ProxyError';
    this.kind = kind;
    this.body = body;
    this.status = opts.status;
  }

  get flag(): string {
    return ANSWERS[this.kind].flag;
  }
}

export function isProxyError(err: unknown, kind?: ProxyErrorKind): err is ProxyError {
  return err instanceof ProxyError && (kind === undefined || err.kind === kind);
}

// ---- Constructors: the messages the client and the operator read ---------------------------

const RESET_BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers';

export const proxyErrors = {
  noRoute: (authority: string, reason: 'no_virtual_host' | 'no_route_match', detail?: string) =>
    new ProxyError(
      'no_route',
      reason === 'no_virtual_host'
        ? `no route: host ${JSON.stringify(authority)} is not a mesh service known to this proxy`
        : `no route: host ${JSON.stringify(authority)} is a mesh service but no route matched the request`,
      { hint: detail ?? (reason === 'no_virtual_host' ? 'check the Service name/namespace and port in the Host header' : 'check the HTTPRoute matches for this Service') },
    ),
  noFilterChain: (listener: string, targetPort: number | undefined) =>
    new ProxyError(
      'no_route',
      targetPort !== undefined
        ? `no route: this workload's ${listener} listener has no filter chain for port ${targetPort}`
        : `no route: this workload's ${listener} listener cannot tell which app port was meant`,
      {
        hint:
          targetPort !== undefined
            ? 'the Service targets a port the WorkloadEntry does not declare'
            : 'plaintext connections carry no target port (SNI); with several app ports only mTLS can choose',
      },
    ),
  blackhole: (authority: string) =>
    new ProxyError('blackhole', `BlackHoleCluster: ${JSON.stringify(authority)} is not a mesh service and the outbound traffic policy is REGISTRY_ONLY`, {
      hint: 'declare the external host as a Service (or WorkloadEntry) or allow any outbound traffic',
    }),
  clusterNotFound: (cluster: string, status: number) =>
    new ProxyError('cluster_not_found', `cluster ${JSON.stringify(cluster)} not found`, {
      status,
      hint: 'the route references a backend the control plane did not send (missing Service or ReferenceGrant?)',
    }),
  noHealthyUpstream: (cluster: string) =>
    new ProxyError('no_healthy_upstream', `no healthy upstream for ${JSON.stringify(cluster)}`, {
      hint: 'no endpoint of this service is ready (is its workload and sidecar running?)',
    }),
  upstreamConnect: (address: string, cause?: unknown) =>
    new ProxyError('upstream_connect', `${RESET_BEFORE_HEADERS}. reset reason: connection failure`, {
      cause,
      hint: `could not connect to ${address}: ${causeText(cause)}`,
    }),
  upstreamReset: (address: string, cause?: unknown) =>
    new ProxyError('upstream_reset', `${RESET_BEFORE_HEADERS}. reset reason: connection termination`, {
      cause,
      hint: `${address} closed the connection: ${causeText(cause)}`,
    }),
  upstreamRefusedStream: (address: string, cause?: unknown) =>
    new ProxyError('upstream_refused_stream', `${RESET_BEFORE_HEADERS}. reset reason: remote refused stream reset`, {
      cause,
      hint: `${address} refused the HTTP/2 stream`,
    }),
  upstreamTimeout: (timeoutMs: number) =>
    new ProxyError('upstream_timeout', 'upstream request timeout', { hint: `no complete response headers within ${timeoutMs} ms` }),
  upstreamOverflow: (cluster: string, limit: 'max_requests' | 'max_pending_requests', value: number) =>
    new ProxyError('upstream_overflow', `upstream overflow: cluster ${JSON.stringify(cluster)} is at its circuit breaker limit ${limit}=${value}`, {
      hint:
        limit === 'max_requests'
          ? 'the cluster already has that many requests in flight; raise the limit (weft.dev/circuit-breaker) or add capacity'
          : 'every connection the cluster may open (max_connections) is busy and that many requests already wait for one',
    }),
  permissionDenied: (reason: string) => new ProxyError('permission_denied', 'RBAC: access denied', { hint: reason }),
  badRequest: (what: string) => new ProxyError('bad_request', `bad request: ${what}`),
  internal: (cause: unknown) => new ProxyError('internal', 'internal proxy error', { cause, hint: causeText(cause) }),
};

function causeText(cause: unknown): string {
  if (cause === undefined) return 'unknown cause';
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code && !cause.message.includes(code) ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}

// ---- The decision: error → what the client gets --------------------------------------------

export type ClientAnswer =
  | {
      readonly kind: 'respond';
      readonly status: number;
      readonly body: string;
      /** Set for gRPC requests: answer trailers-only with these. */
      readonly grpc?: { readonly status: number; readonly message: string };
      readonly flag: string;
    }
  /**
   * The response already started (or the error must travel as a reset): reset the stream. With
   * `grpc`, a gRPC response on HTTP/2 ends with these trailers instead, as a gRPC server would.
   */
  | { readonly kind: 'reset'; readonly flag: string; readonly refused?: boolean; readonly grpc?: { readonly status: number; readonly message: string } };

export interface AnswerContext {
  /** The request is gRPC (content-type application/grpc*). */
  readonly grpc: boolean;
  /** Response headers already went to the client: only a reset can signal the failure. */
  readonly responseStarted: boolean;
  /** Propagate upstream resets as resets even before headers (the inbound side, so that the
   *  peer sidecar's `reset` retry policy sees them). */
  readonly resetOnUpstreamReset?: boolean;
}

/** Decides the client answer for any error thrown on the data path. Pure. */
export function toClientAnswer(err: unknown, ctx: AnswerContext): ClientAnswer {
  const e = err instanceof ProxyError ? err : proxyErrors.internal(err);
  const row = ANSWERS[e.kind];
  if (ctx.responseStarted) {
    // A deadline is the one failure a started gRPC response can still report exactly: its
    // status travels in trailers (DEADLINE_EXCEEDED rather than a reset's INTERNAL/CANCELLED).
    if (ctx.grpc && e.kind === 'upstream_timeout') return { kind: 'reset', flag: row.flag, grpc: { status: row.grpc, message: e.body } };
    return { kind: 'reset', flag: row.flag };
  }
  if (ctx.resetOnUpstreamReset && (e.kind === 'upstream_reset' || e.kind === 'upstream_refused_stream')) {
    return { kind: 'reset', flag: row.flag, refused: e.kind === 'upstream_refused_stream' };
  }
  const status = e.status ?? row.status;
  if (ctx.grpc) return { kind: 'respond', status: 200, body: '', grpc: { status: row.grpc, message: e.body }, flag: row.flag };
  return { kind: 'respond', status, body: e.body + '\n', flag: row.flag };
}

/**
 * The gRPC status for an HTTP status the proxy answers a gRPC request with itself (a direct
 * response), as gRPC's HTTP-to-gRPC table (and Envoy's local replies) map it.
 */
export function grpcStatusForHttp(status: number): number {
  switch (status) {
    case 400:
      return GRPC.INTERNAL;
    case 401:
      return 16; // UNAUTHENTICATED
    case 403:
      return GRPC.PERMISSION_DENIED;
    case 404:
      return GRPC.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GRPC.UNAVAILABLE;
    default:
      return status >= 200 && status < 300 ? 0 : GRPC.UNKNOWN;
  }
}

/** The response flag of an error, for logs and stats. */
export function flagOf(err: unknown): string {
  return err instanceof ProxyError ? err.flag : ANSWERS.internal.flag;
}

/** The kind of an error (internal for anything not raised on purpose). */
export function kindOf(err: unknown): ProxyErrorKind {
  return err instanceof ProxyError ? err.kind : 'internal';
}
