// The proxy's telemetry, assembled once per proxy by the composition root: Istio-named metrics
// for every request and tunnel, OpenTelemetry spans for sampled requests, an optional JSON
// access log, and decision records. The data path calls `begin` per request and a few record
// hooks; the upstream pools are observed (not changed) to learn each try's endpoint and outcome.
import type { Duplex } from 'node:stream';
import type http2 from 'node:http2';
import type { Attributes } from '@opentelemetry/api';
import { flagOf, kindOf, proxyErrors, toClientAnswer } from '../http/errors.js';
import { requestHeader, type DownstreamRequest, type DownstreamResponse } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { fieldValue, firstValue, removeFields, type HeaderMap } from '../http/headers.js';
import type { UpstreamPools } from '../upstream/pools.js';
import type { UpstreamTarget } from '../upstream/types.js';
import { accessLogEntry, type AccessLogSink } from './access-log.js';
import { DEBUG_HEADER, DECISION_HEADER, decisionHeaderValue, decisionOf } from './decision.js';
import { findEndpoint } from './endpoints.js';
import { responseFlags } from './flags.js';
import { MeshMetrics, type PeerLabels, type PeerSeries } from './metrics.js';
import {
  PEER_WORKLOAD_HEADER,
  UNKNOWN,
  localAddresses,
  serviceFromHost,
  serviceOfAuthority,
  serviceOfCluster,
  spiffeNamespace,
  splitWorkloadKey,
  type ServiceLabels,
  type WorkloadName,
} from './peers.js';
import { followNodeExchange, RequestRecord, type Direction, type FieldReader, type RecordSink } from './record.js';
import { TunnelRecord } from './tunnel.js';
// Type only: the OpenTelemetry SDK is loaded (proxy/main.ts) only when tracing is on.
import type { Tracing } from './tracing.js';

export interface TelemetryOptions {
  /** `name.namespace` of the workload this proxy serves. */
  readonly workload: string;
  /** This proxy's SPIFFE ID, once it has a certificate. Called per request (cheap). */
  readonly identity: () => string | undefined;
  readonly metrics: MeshMetrics;
  readonly tracing?: Tracing;
  readonly accessLog?: AccessLogSink;
  /** `local`: honour `x-weft-debug: 1` from the local app on the outbound listener. */
  readonly decisionHeader: 'local' | 'off';
  /** Addresses counted as "the local app" (default: loopback and this host's interfaces). */
  readonly localAddresses?: ReadonlySet<string>;
}

/** Series per protocol for one peer, and the own principal they were built with. */
interface SeriesPair {
  readonly principal: string;
  http?: PeerSeries;
  grpc?: PeerSeries;
}

const PASSTHROUGH = 'PassthroughCluster';

/**
 * The upstream headers object carries its request's record under a symbol, for the pool
 * observer: no lookup table (a WeakMap entry per request costs the GC more than the rest of
 * the telemetry), and symbol keys are invisible to every header writer (Object.keys).
 */
const UPSTREAM_RECORD = Symbol('weft.telemetry.upstream');
type TaggedHeaders = HeaderMap & { [UPSTREAM_RECORD]?: RequestRecord };

export class Telemetry implements RecordSink {
  readonly metrics: MeshMetrics;
  readonly tracing: Tracing | undefined;
  private readonly accessLog: AccessLogSink | undefined;
  private readonly self: WorkloadName;
  private readonly selfKey: string;
  private readonly identity: () => string | undefined;
  private readonly debugAllowed: boolean;
  private readonly locals: ReadonlySet<string>;
  private readonly byTarget = new WeakMap<UpstreamTarget, SeriesPair>();
  private readonly byCluster = new Map<string, Map<string, SeriesPair>>();
  private readonly inbound = new Map<string, Map<string, Map<string, SeriesPair>>>();

  constructor(opts: TelemetryOptions) {
    this.metrics = opts.metrics;
    this.tracing = opts.tracing;
    this.accessLog = opts.accessLog;
    this.self = splitWorkloadKey(opts.workload);
    this.selfKey = opts.workload;
    this.identity = opts.identity;
    this.debugAllowed = opts.decisionHeader === 'local';
    this.locals = opts.localAddresses ?? localAddresses();
  }

  /**
   * Starts the record of one downstream request. Called by the listeners' handlers once per
   * request, before reading it; the record finishes itself when the response closes.
   */
  begin(direction: Direction, req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): RequestRecord {
    const rec = this.beginRaw(direction, req, res, conn);
    followNodeExchange(rec);
    return rec;
  }

  /**
   * The same for a data path that counts body bytes itself (rec.bytesReceived / bytesSent),
   * reports each upstream try (sending(…, observed false), tryStarted, tryFailed, responded)
   * and calls `ended(rec)` once when the response is over: nothing is attached to `req`/`res`,
   * which need only the fields telemetry reads (method, headers, headersSent, statusCode,
   * writableEnded, writableFinished, setHeader). The HTTP/1.1 fast path, once per request;
   * `startMs`: its performance.now() reading of the request's start, if it took one.
   */
  beginRaw(direction: Direction, req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo, startMs = performance.now()): RequestRecord {
    // Safety rule: only the local app may ask (its own calls, on the outbound listener). A
    // peer must not learn our routing, endpoints or authorization reasons. (`req.headers` is read
    // only when needed: the lean HTTP/2 path makes that map on demand.)
    const debug = this.debugAllowed && direction === 'outbound' && req.headers[DEBUG_HEADER] === '1' && this.locals.has(conn.remoteAddress ?? '');
    const rec = new RequestRecord(this, direction, req, res, conn, debug, debug || this.accessLog !== undefined, startMs);
    if (this.tracing) {
      const h = req.headers;
      rec.serverSpan = this.tracing.startServer(h, `${direction} ${req.method ?? 'GET'}`, rec.startEpochMs);
      if (rec.serverSpan) rec.b3 = this.tracing.b3Form(h);
    }
    return rec;
  }

  /** Starts the record of an Upgrade / CONNECT tunnel (TCP metrics). */
  beginTunnel(direction: Direction, socket: Duplex, conn: ConnectionInfo): TunnelRecord {
    return new TunnelRecord(this, direction, socket, conn);
  }

  /**
   * The same pools, observed: each try of a request whose headers `sending` registered is
   * reported to its record (endpoint, failure, response). Everything else passes through.
   * Every other method (present and future) is the inner object's own.
   */
  observePools(inner: UpstreamPools): UpstreamPools {
    const observed = Object.create(inner) as UpstreamPools & { request: UpstreamPools['request'] };
    observed.request = async (target, req) => {
      const rec = (req.headers as TaggedHeaders)[UPSTREAM_RECORD];
      // Mirrors share the headers object but not the authority (`-shadow`): not this request's tries.
      if (rec === undefined || req.authority !== rec.upstreamAuthority) return inner.request(target, req);
      rec.tryStarted(target);
      let response;
      try {
        response = await inner.request(target, req);
      } catch (err) {
        rec.tryFailed(err, rec.detailed ? `${flagOf(err)} ${kindOf(err)}` : undefined);
        throw err;
      }
      rec.responded(response);
      return response;
    };
    return observed;
  }

  // ---- RecordSink ----------------------------------------------------------------------------

  refreshDecision(rec: RequestRecord): void {
    if (rec.res.headersSent || rec.res.writableEnded) return;
    rec.res.setHeader(DECISION_HEADER, decisionHeaderValue(decisionOf(rec)));
  }

  sending(rec: RequestRecord, headers: HeaderMap, observed: boolean): void {
    if (observed) (headers as TaggedHeaders)[UPSTREAM_RECORD] = rec;
    if (rec.direction === 'outbound') {
      headers[PEER_WORKLOAD_HEADER] = this.selfKey;
      if (headers[DEBUG_HEADER] !== undefined) delete headers[DEBUG_HEADER];
    } else if (headers[PEER_WORKLOAD_HEADER] !== undefined) {
      delete headers[PEER_WORKLOAD_HEADER]; // ours, not the app's business
    }
    const id = headers['x-request-id'];
    rec.requestId = Array.isArray(id) ? id[0] : id;
    if (this.tracing && rec.serverSpan) {
      rec.clientSpan = this.tracing.startClient(
        rec.serverSpan,
        `${rec.direction} ${rec.info?.method ?? 'GET'} ${rec.cluster ?? ''}`,
        { 'weft.upstream.cluster': rec.cluster ?? '', 'server.address': rec.upstreamAuthority ?? '' },
        headers,
        rec.b3,
      );
    }
  }

  sendingFields(rec: RequestRecord, fields: string[], from: number): void {
    // `sending`'s edits on a field list (a traced request goes through `sending`: see the record).
    if (rec.direction === 'outbound') {
      removeFields(fields, from, DEBUG_HEADER);
      removeFields(fields, from, PEER_WORKLOAD_HEADER);
      fields.push(PEER_WORKLOAD_HEADER, this.selfKey);
    } else {
      removeFields(fields, from, PEER_WORKLOAD_HEADER); // ours, not the app's business
    }
    rec.requestId = fieldValue(fields, from, 'x-request-id');
  }

  ended(rec: RequestRecord): void {
    const res = rec.res;
    const durationMs = performance.now() - rec.startMs;
    rec.finished = res.writableFinished;
    rec.status = responseStatus(res);
    const plan = rec.plan;
    if (plan?.kind === 'forward' && plan.timeoutMs !== undefined && durationMs >= plan.timeoutMs) rec.timedOut = true;
    if (rec.response && !rec.finished) rec.upstreamBodyFailed = rec.response.body.errored != null;
    const flags = responseFlags(rec);
    const grpc = rec.info?.grpc ? grpcStatusOf(rec) : '';
    this.metrics.observeRequest(this.seriesFor(rec), rec.status, grpc, flags, durationMs, rec.bytesReceived, rec.bytesSent);
    if (this.accessLog) this.accessLog.write(accessLogEntry(rec, flags, grpc, durationMs));
    if (rec.serverSpan) this.finishSpans(rec, flags, durationMs);
  }

  async close(): Promise<void> {
    await Promise.all([this.tracing?.shutdown(), this.accessLog?.close()]);
  }

  // ---- metric labels -------------------------------------------------------------------------

  /** The own principal, for labels. */
  principal(): string {
    return this.identity() ?? UNKNOWN;
  }

  private seriesFor(rec: RequestRecord): PeerSeries {
    const grpc = rec.info?.grpc === true;
    const principal = this.principal();
    const pair = rec.direction === 'outbound' ? this.outboundPair(rec, principal) : this.inboundPair(rec, principal);
    let s = grpc ? pair.grpc : pair.http;
    if (!s) {
      s = this.metrics.series(rec.direction === 'outbound' ? this.outboundLabels(rec, principal, grpc) : this.inboundLabels(rec, principal, grpc));
      if (grpc) pair.grpc = s;
      else pair.http = s;
    }
    return s;
  }

  private outboundPair(rec: RequestRecord, principal: string): SeriesPair {
    const t = rec.target;
    if (t) {
      let pair = this.byTarget.get(t);
      if (!pair || pair.principal !== principal) this.byTarget.set(t, (pair = { principal }));
      return pair;
    }
    // No endpoint: keyed by cluster; pass-through by the host it went to.
    const key = rec.cluster ?? (this.isPassthrough(rec) ? PASSTHROUGH : plannedVhost(rec));
    const second = key === PASSTHROUGH ? rec.info?.authority ?? '' : '';
    let perCluster = this.byCluster.get(key);
    if (!perCluster) this.byCluster.set(key, (perCluster = new Map()));
    let pair = perCluster.get(second);
    if (!pair || pair.principal !== principal) {
      if (perCluster.size > 1000) perCluster.clear(); // pass-through hosts come from the app: bound them
      perCluster.set(second, (pair = { principal }));
    }
    return pair;
  }

  private inboundPair(rec: RequestRecord, principal: string): SeriesPair {
    const k1 = rec.conn.peerIdentity ?? (rec.conn.secure ? '#tls' : '#plain');
    const k2 = (rec.info && requestHeader(rec.info, PEER_WORKLOAD_HEADER)) ?? '';
    const k3 = rec.info?.authority ?? '';
    let m1 = this.inbound.get(k1);
    if (!m1) this.inbound.set(k1, (m1 = new Map()));
    let m2 = m1.get(k2);
    if (!m2) m1.set(k2, (m2 = new Map()));
    let pair = m2.get(k3);
    if (!pair || pair.principal !== principal) {
      if (m2.size > 1000) m2.clear(); // Hosts come from clients: bound them
      m2.set(k3, (pair = { principal }));
    }
    return pair;
  }

  private isPassthrough(rec: RequestRecord): boolean {
    return rec.plan?.kind === 'noRoute' && rec.localError === undefined && rec.direction === 'outbound';
  }

  private outboundLabels(rec: RequestRecord, principal: string, grpc: boolean): PeerLabels {
    const t = rec.target;
    const ep = t ? findEndpoint(rec.config, rec.cluster, t.host, t.port) : undefined;
    const dest = splitWorkloadKey(ep?.workload);
    let svc: ServiceLabels;
    if (rec.cluster) svc = serviceOfCluster(rec.cluster);
    else if (this.isPassthrough(rec)) svc = { service: hostOf(rec.info?.authority ?? UNKNOWN), name: PASSTHROUGH, namespace: UNKNOWN };
    else {
      const vhost = plannedVhost(rec);
      svc = vhost === UNKNOWN ? { service: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN } : serviceFromHost(hostOf(vhost));
    }
    return {
      reporter: 'source',
      sourceWorkload: this.self.workload,
      sourceNamespace: this.self.namespace,
      sourcePrincipal: principal,
      destinationWorkload: dest.workload,
      destinationNamespace: ep?.workload ? dest.namespace : spiffeNamespace(t?.identity) ?? UNKNOWN,
      destinationPrincipal: t?.identity ?? UNKNOWN,
      destinationService: svc.service,
      destinationServiceName: svc.name,
      destinationServiceNamespace: svc.namespace,
      requestProtocol: grpc ? 'grpc' : 'http',
      // Istio's source reporter does not claim what the server side enforced.
      securityPolicy: 'unknown',
    };
  }

  private inboundLabels(rec: RequestRecord, principal: string, grpc: boolean): PeerLabels {
    const peer = rec.conn.peerIdentity;
    const peerNs = spiffeNamespace(peer);
    const declared = rec.info ? requestHeader(rec.info, PEER_WORKLOAD_HEADER) : undefined;
    const source = trustedPeerWorkload(declared, peer, peerNs);
    const sourceNs = source?.namespace ?? peerNs ?? UNKNOWN;
    const svc = rec.info ? serviceOfAuthority(rec.info.authority, sourceNs === UNKNOWN ? this.self.namespace : sourceNs) : serviceFromHost(UNKNOWN);
    return {
      reporter: 'destination',
      sourceWorkload: source?.workload ?? UNKNOWN,
      sourceNamespace: sourceNs,
      sourcePrincipal: peer ?? UNKNOWN,
      destinationWorkload: this.self.workload,
      destinationNamespace: this.self.namespace,
      destinationPrincipal: principal,
      destinationService: svc.service,
      destinationServiceName: svc.name,
      destinationServiceNamespace: svc.namespace,
      requestProtocol: grpc ? 'grpc' : 'http',
      securityPolicy: rec.conn.secure ? 'mutual_tls' : 'none',
    };
  }

  /** Labels of a tunnel (TCP metrics). */
  tunnelLabels(direction: Direction, conn: ConnectionInfo, cluster: string | undefined, destinationWorkload: string | undefined, authority: string | undefined): PeerLabels {
    const principal = this.principal();
    if (direction === 'outbound') {
      const svc = cluster ? serviceOfCluster(cluster) : serviceFromHost(hostOf(authority ?? UNKNOWN));
      const dest = splitWorkloadKey(destinationWorkload);
      return {
        reporter: 'source', sourceWorkload: this.self.workload, sourceNamespace: this.self.namespace, sourcePrincipal: principal,
        destinationWorkload: dest.workload, destinationNamespace: dest.namespace, destinationPrincipal: UNKNOWN,
        destinationService: svc.service, destinationServiceName: svc.name, destinationServiceNamespace: svc.namespace,
        requestProtocol: 'tcp', securityPolicy: 'unknown',
      };
    }
    const peerNs = spiffeNamespace(conn.peerIdentity) ?? UNKNOWN;
    const svc = authority ? serviceOfAuthority(authority, peerNs === UNKNOWN ? this.self.namespace : peerNs) : serviceFromHost(UNKNOWN);
    return {
      reporter: 'destination', sourceWorkload: UNKNOWN, sourceNamespace: peerNs, sourcePrincipal: conn.peerIdentity ?? UNKNOWN,
      destinationWorkload: this.self.workload, destinationNamespace: this.self.namespace, destinationPrincipal: principal,
      destinationService: svc.service, destinationServiceName: svc.name, destinationServiceNamespace: svc.namespace,
      requestProtocol: 'tcp', securityPolicy: conn.secure ? 'mutual_tls' : 'none',
    };
  }

  // ---- spans ---------------------------------------------------------------------------------

  private finishSpans(rec: RequestRecord, flags: string, durationMs: number): void {
    const end = rec.startEpochMs + durationMs;
    const plan = rec.plan;
    const info = rec.info;
    const t = rec.target;
    const attrs: Attributes = {
      'http.request.method': info?.method ?? rec.req.method ?? '',
      'url.path': info?.path ?? '',
      'server.address': info?.authority ?? '',
      'network.protocol.version': rec.req.httpVersionMajor === 2 ? '2' : '1.1',
      'weft.reporter': rec.direction === 'outbound' ? 'source' : 'destination',
      'weft.source.workload': rec.direction === 'outbound' ? this.selfKey : firstValue(info?.headers ?? {}, PEER_WORKLOAD_HEADER) ?? UNKNOWN,
      'weft.source.principal': rec.direction === 'outbound' ? this.principal() : rec.conn.peerIdentity ?? UNKNOWN,
      'weft.destination.workload': rec.direction === 'inbound' ? this.selfKey : (t && findEndpoint(rec.config, rec.cluster, t.host, t.port)?.workload) ?? UNKNOWN,
      'weft.route': plan && plan.kind !== 'noRoute' ? plan.route.name : '',
      'weft.upstream.cluster': rec.cluster ?? '',
      'weft.upstream.host': t ? `${t.host}:${t.port}` : '',
      'weft.retries': Math.max(0, rec.tries - 1),
      'guid:x-request-id': rec.requestId ?? '',
    };
    if (rec.authz) attrs['weft.authz'] = rec.authz.allow ? 'allow' : 'deny';
    const tracing = this.tracing!;
    if (rec.clientSpan) tracing.finish(rec.clientSpan, rec.upstreamStatus ?? rec.status, flags, attrs, end);
    tracing.finish(rec.serverSpan!, rec.status, flags, attrs, end);
  }
}

/** The status the client got: 0 when no response head went out. */
function responseStatus(res: DownstreamResponse): number {
  if ('stream' in res) {
    // A trailers-only answer goes out through stream.respond(), beside the compat object.
    const sent = (res.stream as http2.ServerHttp2Stream).sentHeaders as Record<string, unknown> | undefined;
    const s = sent?.[':status'];
    if (s !== undefined) return Number(s);
    return res.headersSent ? res.statusCode : 0;
  }
  return res.headersSent ? res.statusCode : 0;
}

/** grpc-status the client got (or would have): upstream headers/trailers, else the proxy's answer. */
function grpcStatusOf(rec: RequestRecord): string {
  const r = rec.response;
  if (r) {
    const fr = r as Partial<FieldReader>;
    const inHeaders = fr.headerField ? fr.headerField('grpc-status') : firstValue(r.headers, 'grpc-status');
    if (inHeaders !== undefined) return inHeaders;
    return (fr.trailerField ? fr.trailerField('grpc-status') : firstValue(r.trailers(), 'grpc-status')) ?? '';
  }
  if (!rec.finished) return '';
  const err = rec.localError ?? rec.tryFailure ?? (rec.forwarded || rec.plan?.kind === 'forward' ? proxyErrors.noHealthyUpstream(rec.cluster ?? '') : undefined);
  if (err === undefined) return '';
  const answer = toClientAnswer(err, { grpc: true, responseStarted: false });
  return answer.kind === 'respond' && answer.grpc ? String(answer.grpc.status) : '';
}

/** A peer's declared workload, believed only when its proven identity is in the same
 *  namespace (or when there is no identity at all: plaintext proves nothing either way). */
function trustedPeerWorkload(declared: string | undefined, identity: string | undefined, identityNs: string | undefined): WorkloadName | undefined {
  if (!declared) return undefined;
  const w = splitWorkloadKey(declared);
  if (identity !== undefined && w.namespace !== identityNs) return undefined;
  return w;
}

function plannedVhost(rec: RequestRecord): string {
  const plan = rec.plan;
  return (plan?.kind === 'noRoute' ? plan.vhost?.name : plan?.vhost.name) ?? UNKNOWN;
}

function hostOf(authority: string): string {
  return authority.replace(/:\d+$/, '');
}

