// What the telemetry learns about one request while it is served: one RequestRecord per
// downstream request, filled by a handful of hook calls on the data path (read, planned,
// authorized, failedLocally, sending) and by the pool observer (each upstream try), finished
// when the downstream response closes. Byte counts are kept without closures: the record hangs
// off node:http's request and response objects, and shared functions find it there (the
// HTTP/1.1 fast path counts its own bytes and reports its tries and its end itself).
import type { Span } from '@opentelemetry/api';
import { singleRequestHeader, type DownstreamRequest, type DownstreamResponse, type RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import type { HeaderMap } from '../http/headers.js';
import type { AuthzDecision } from '../inbound/authz.js';
import type { Plan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import type { UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import type { FlagFacts } from './flags.js';
import type { B3Form } from './tracing.js';

export type Direction = 'outbound' | 'inbound';

/** One upstream try, kept only when a decision record is wanted (debug header, access log). */
export interface TryNote {
  readonly endpoint: string;
  /** Response status, or the failure's flag and kind (`UF upstream_connect`). */
  readonly result: string;
}

/** The telemetry side a record reports to (implemented by Telemetry). */
export interface RecordSink {
  /** A decision header is wanted and something new was learned: refresh it. */
  refreshDecision(rec: RequestRecord): void;
  /** The upstream request is about to be sent with `headers` (mutable): trace context, peer
   *  header, and (`observed`) the record linked so the pool observer can find it. */
  sending(rec: RequestRecord, headers: HeaderMap, observed: boolean): void;
  /** The same for a head carried as a field list (name, value…), edited in place from index
   *  `from` (the pseudo-headers before it stay). Absent: the caller uses `sending`. */
  sendingFields?(rec: RequestRecord, fields: string[], from: number): void;
  /** The downstream response closed. */
  ended(rec: RequestRecord): void;
}

/** An upstream response that reads one field of its head or trailers without making their
 *  HeaderMap (the lean HTTP/2 path's, whose heads are field lists): telemetry asks it for
 *  grpc-status at the end of every gRPC request. */
export interface FieldReader {
  headerField(name: string): string | undefined;
  trailerField(name: string): string | undefined;
}

const RECORD = Symbol('weft.telemetry.record');
type Tagged = { [RECORD]?: RequestRecord };

/** The record of the request `res` answers, if telemetry is on. */
export function recordOf(res: DownstreamResponse): RequestRecord | undefined {
  return (res as unknown as Tagged)[RECORD];
}

export class RequestRecord implements FlagFacts {
  info: RequestInfo | undefined;
  config: ProxyConfig | undefined;
  plan: Plan | undefined;
  authz: AuthzDecision | undefined;
  /** x-request-id as sent upstream (generated when the client had none). */
  requestId: string | undefined;
  /** Source workload the peer sidecar declared (inbound), when its identity allows it. */
  peerWorkload: string | undefined;

  // ---- upstream (FlagFacts) ----
  localError: unknown = undefined;
  forwarded = false;
  cluster: string | undefined;
  upstreamAuthority: string | undefined;
  tries = 0;
  target: UpstreamTarget | undefined;
  tryFailure: unknown = undefined;
  gotResponse = false;
  response: UpstreamResponse | undefined;
  upstreamStatus: number | undefined;
  /** ms after start when the upstream response headers arrived. */
  responseAtMs: number | undefined;
  attempts: TryNote[] | undefined;

  // ---- the end (FlagFacts) ----
  upstreamBodyFailed = false;
  finished = false;
  status = 0;
  timedOut = false;

  // ---- bytes (body bytes; counted by shared functions, see countBodies) ----
  bytesReceived = 0;
  bytesSent = 0;
  /** The request had a Content-Length: bytesReceived is that, nothing is counted. */
  knownRequestLength = false;

  // ---- tracing ----
  serverSpan: Span | undefined;
  clientSpan: Span | undefined;
  b3: B3Form = 'none';

  /** Wall-clock start (start_time, span start), derived only when asked for. */
  get startEpochMs(): number {
    return performance.timeOrigin + this.startMs;
  }

  constructor(
    readonly sink: RecordSink,
    readonly direction: Direction,
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    readonly conn: ConnectionInfo,
    /** A decision record goes back as a response header. */
    readonly debug: boolean,
    /** Keep per-try notes (debug or access log). */
    readonly detailed: boolean,
    /** performance.now() at the start, for durations. */
    readonly startMs: number = performance.now(),
  ) {
    if (detailed) this.attempts = [];
  }

  /** Hook: the request was read (facts known). */
  read(info: RequestInfo): void {
    this.info = info;
    const len = singleRequestHeader(info, 'content-length');
    if (len !== undefined) {
      const n = Number(len);
      if (Number.isFinite(n) && n >= 0) {
        this.bytesReceived = n;
        this.knownRequestLength = true;
      }
    }
  }

  /** Hook: the routing decision, on the snapshot the request uses. */
  planned(config: ProxyConfig, plan: Plan): void {
    this.config = config;
    this.plan = plan;
    if (plan.kind === 'forward') this.cluster = plan.cluster;
    if (this.debug) this.sink.refreshDecision(this);
  }

  /** Hook (inbound): the authorization verdict for this request. */
  authorized(verdict: AuthzDecision): void {
    this.authz = verdict;
  }

  /** Hook: the proxy answers the request itself with this error (before anything went upstream). */
  failedLocally(err: unknown): void {
    this.localError = err;
    if (this.debug) this.sink.refreshDecision(this);
  }

  /** Hook: a forward plan's upstream request is about to go out with these headers. `observed`
   *  false: the caller reports each try itself (tryStarted, tryFailed, responded), so the pool
   *  observer needs no link to this record. */
  sending(cluster: string, authority: string, headers: HeaderMap, observed = true): void {
    this.forwarded = true;
    this.cluster = cluster;
    this.upstreamAuthority = authority;
    this.sink.sending(this, headers, observed);
  }

  /** Hook: as `sending` (tries reported by the caller), for a head carried as a field list;
   *  false when the sink needs a HeaderMap (a traced request: its context is injected there). */
  sendingFields(cluster: string, authority: string, fields: string[], from: number): boolean {
    const sink = this.sink;
    if (sink.sendingFields === undefined || this.serverSpan !== undefined) return false;
    this.forwarded = true;
    this.cluster = cluster;
    this.upstreamAuthority = authority;
    sink.sendingFields(this, fields, from);
    return true;
  }

  // ---- from the pool observer (or the data path itself) ----

  tryStarted(target: UpstreamTarget): void {
    this.tries++;
    this.target = target;
    this.tryFailure = undefined;
    this.gotResponse = false;
  }

  tryFailed(err: unknown, note: string | undefined): void {
    this.tryFailure = err;
    if (this.attempts && this.target) this.attempts.push({ endpoint: `${this.target.host}:${this.target.port}`, result: note ?? 'failed' });
    if (this.debug) this.sink.refreshDecision(this);
  }

  /** `at`: performance.now() when the head arrived, if the caller read the clock already. */
  responded(response: UpstreamResponse, at = performance.now()): void {
    this.gotResponse = true;
    this.response = response;
    this.upstreamStatus = response.status;
    this.responseAtMs = at - this.startMs;
    if (this.attempts && this.target) this.attempts.push({ endpoint: `${this.target.host}:${this.target.port}`, result: String(response.status) });
    if (this.debug) this.sink.refreshDecision(this);
  }
}

/**
 * Hooks a record onto node:http / node:http2 request and response objects: tagged (recordOf),
 * body bytes counted as they are written and read, finished when the response closes. A data
 * path that counts bytes and reports the end itself (the HTTP/1.1 fast path) skips this.
 */
export function followNodeExchange(rec: RequestRecord): void {
  (rec.res as unknown as Tagged)[RECORD] = rec;
  (rec.req as unknown as Tagged)[RECORD] = rec;
  countBodies(rec.req, rec.res);
  rec.res.on('close', onResponseClose);
}

function onResponseClose(this: DownstreamResponse): void {
  const rec = recordOf(this);
  if (!rec) return;
  (this as unknown as Tagged)[RECORD] = undefined;
  rec.sink.ended(rec);
}

// ---- body byte counting ----------------------------------------------------------------------
// Response bodies: the response's own write/end are shadowed by shared functions that add the
// chunk's length to the record and call the prototype's. Request bodies of unknown length: a
// 'data' listener is added only once the body starts flowing to its consumer ('resume'), so
// counting never starts the flow early (which would lose data).

type WriteFn = (chunk: unknown, encoding?: unknown, cb?: unknown) => unknown;

function chunkLength(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  return 0;
}

function countingWrite(this: DownstreamResponse & Tagged, chunk: unknown, encoding?: unknown, cb?: unknown): unknown {
  const rec = this[RECORD];
  if (rec) rec.bytesSent += chunkLength(chunk);
  return (Object.getPrototypeOf(this) as { write: WriteFn }).write.call(this, chunk, encoding, cb);
}

function countingEnd(this: DownstreamResponse & Tagged, chunk?: unknown, encoding?: unknown, cb?: unknown): unknown {
  const rec = this[RECORD];
  // HTTP/2's compat end(chunk) writes the chunk through this.write (counted there); HTTP/1.1's does not.
  if (rec && !('stream' in this)) rec.bytesSent += chunkLength(chunk);
  return (Object.getPrototypeOf(this) as { end: WriteFn }).end.call(this, chunk, encoding, cb);
}

function countData(this: DownstreamRequest & Tagged, chunk: unknown): void {
  const rec = this[RECORD];
  if (rec && !rec.knownRequestLength) rec.bytesReceived += chunkLength(chunk);
}

function onRequestResume(this: DownstreamRequest): void {
  // A body may pause and resume many times under backpressure: count from the first only.
  this.removeListener('resume', onRequestResume);
  this.on('data', countData);
}

function countBodies(req: DownstreamRequest, res: DownstreamResponse): void {
  const r = res as unknown as { write: unknown; end: unknown };
  r.write = countingWrite;
  r.end = countingEnd;
  req.on('resume', onRequestResume);
}
