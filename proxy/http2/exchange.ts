// One HTTP/2 request on the lean path, from the routing decision to the close of its stream:
// Weft's own HTTP/2 engine on both sides (connection.ts), the client's stream relayed to a
// stream on the endpoint's engine connection (upstream/http2.ts), frames in, frames out — no
// Node streams, no AbortSignal, no closures per request (the exchange is both streams'
// handler). The accounting is upstream/forward.ts's (cluster counters, circuit breaker, balancer
// outcome, telemetry record, client answers decided by http/errors.ts).
import { EventEmitter } from 'node:events';
import { requestHash } from '../balance/hash.js';
import type { RequestOutcome } from '../balance/types.js';
import type { Endpoint } from '../../api/domain.js';
import { flagOf, kindOf, proxyErrors, toClientAnswer, type ClientAnswer } from '../http/errors.js';
import type { DownstreamRequest, DownstreamResponse } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { forwardableTrailers, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { encodeGrpcMessage } from '../http/respond.js';
import { countError, countResponse, type ClusterCounters } from '../http/stats.js';
import type { FastForward } from '../http1/exchange.js';
import { applyHeaderMutations } from '../route/headers.js';
import type { RequestRecord, Telemetry } from '../telemetry/index.js';
import type { CarryOutDeps } from '../upstream/carry-out.js';
import type { CircuitBreaker } from '../upstream/circuit-breaker.js';
import { DownstreamGone, failedOutcome } from '../upstream/forward.js';
import { H2_CONNECT, h2LaneFor, type H2ConnectRequest } from '../upstream/http2.js';
import { targetFor } from '../upstream/target.js';
import type { UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import type { H2Stream, StreamHandler } from './connection.js';
import { H2Error } from './frames.js';
import { dateValue, fieldsToHeaderMap, headerMapToFields, invalidField, responsePrefix } from './fields.js';

/** What every exchange of one listener shares. */
export interface H2Env {
  readonly direction: 'outbound' | 'inbound';
  readonly deps: CarryOutDeps;
  readonly telemetry: Telemetry | undefined;
}

/** The frontend's side of a stream it handed over (proxy/http/frontend.ts). */
export interface H2Host {
  /** The stream closed: the request no longer counts as in flight (drain). */
  requestEnded(): void;
}

const enum Phase {
  Starting,
  /** The upstream request is out (or its connection is being made); no response head yet. */
  Waiting,
  /** The response head went to the client; the body and trailers follow. */
  Streaming,
  /** Answered, failed or complete: only the client stream's close is left. */
  Done,
}

const NO_TRIES: ReadonlySet<string> = new Set();
/** UpstreamRequest wants a signal; a lean request is cancelled by resetting its stream. */
const NEVER = new AbortController().signal;
const EMPTY: string[] = [];

/** The upstream response as telemetry keeps it. */
class EngineResponse implements UpstreamResponse {
  private cached: HeaderMap | undefined;

  constructor(
    readonly status: number,
    private readonly fields: string[],
    readonly endStream: boolean,
    private readonly ex: H2Exchange,
  ) {}

  /** Read by telemetry at the end (gRPC status): made when asked. */
  get headers(): HeaderMap {
    return (this.cached ??= fieldsToHeaderMap(this.fields, false));
  }

  /** Telemetry asks whether the body failed (errored); there is no Node stream behind it. */
  get body(): UpstreamResponse['body'] {
    return { errored: this.ex.upstreamBodyError ?? null } as unknown as UpstreamResponse['body'];
  }

  trailers(): HeaderMap {
    const t = this.ex.upstreamTrailers;
    return t ? fieldsToHeaderMap(t, false) : {};
  }
}

/**
 * One request/response. It is also the request and response objects telemetry sees (the names
 * node:http2's compat objects give them), so metrics, traces, access log and decision records
 * work unchanged; it emits 'close' when the client's stream closes, as a compat response does.
 */
export class H2Exchange extends EventEmitter implements StreamHandler {
  // ---- compat's names, read by telemetry ----
  readonly method: string;
  readonly url: string;
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  statusCode = 200;
  private ending = false;
  /** Fields set before the head (the decision record). */
  private extra: HeaderMap | undefined;

  /** Trailers from the upstream, once they came. */
  upstreamTrailers: string[] | undefined;
  /** Set when the upstream reset the response after its head (telemetry's UC flag). */
  upstreamBodyError: Error | undefined;

  private phase = Phase.Starting;
  private rec: RequestRecord | undefined;
  private counters!: ClusterCounters;
  private breaker: CircuitBreaker | undefined;
  private holdsSlot = false;
  /** The endpoint the balancer picked (its onStart was called; onEnd is due once). */
  private endpoint: Endpoint | undefined;
  private target: UpstreamTarget | undefined;
  private tryEnded = false;
  private tryStart = 0;
  private latencyMs = 0;
  /** The upstream request head: the pseudo-headers, then the fields of `upstreamMap`. */
  private upstreamFields: string[] = EMPTY;
  private upstreamMap: HeaderMap | undefined;
  private up: H2Stream | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Request body that came before the upstream stream existed (its connection was being made). */
  private early: Buffer[] | undefined;
  private requestEnded = false;
  /** Bytes relayed but not credited back to their sender, while the other side is full. */
  private heldRequest = 0;
  private heldResponse = 0;
  /** Body bytes received and sent, for telemetry (it reads them when the stream closes). */
  private received = 0;
  private sentBytes = 0;

  constructor(
    private readonly env: H2Env,
    private readonly host: H2Host,
    private readonly down: H2Stream,
    private readonly fwd: FastForward,
    private readonly conn: ConnectionInfo,
    /** The request's fields, as compat's `req.headers` (tracing and the debug header read them). */
    readonly headers: HeaderMap,
    /** The request has no body (END_STREAM on its HEADERS). */
    private readonly noBody: boolean,
  ) {
    super();
    this.method = fwd.info.method;
    this.url = fwd.info.path;
  }

  // ---- compat's response names, read by telemetry ----

  get headersSent(): boolean {
    return this.down.headSent;
  }

  get writableEnded(): boolean {
    return this.down.localEnded || this.ending;
  }

  get writableFinished(): boolean {
    return this.down.localEnded;
  }

  /** res.setHeader, as telemetry refreshes the decision record before the head goes out. */
  setHeader(name: string, value: string): void {
    if (!this.down.headSent) (this.extra ??= {})[name.toLowerCase()] = value;
  }

  /** Starts the exchange: telemetry, upstream head, circuit breaker, then an endpoint. */
  start(): void {
    const { env, fwd } = this;
    const { info, plan } = fwd;
    this.down.handler = this;
    const rec = env.telemetry?.begin(env.direction, this as unknown as DownstreamRequest, this as unknown as DownstreamResponse, this.conn);
    if (rec) {
      this.rec = rec;
      rec.read(info);
      if (fwd.verdict) rec.authorized(fwd.verdict);
      rec.planned(fwd.config, plan);
    }
    let headers = applyHeaderMutations(upstreamRequestHeaders(info.headers, info.scheme), plan.requestHeaders);
    if (fwd.adjust) headers = fwd.adjust(headers);
    rec?.sending(plan.cluster, plan.authority, headers);
    const counters = (this.counters = env.deps.stats.cluster(plan.cluster));
    counters.requests++;
    counters.inFlight++;
    // Route mutations and listener adjustments bring values no decoder checked.
    if ((plan.requestHeaders.length > 0 || fwd.adjust !== undefined) && invalidField(headers)) {
      return this.fail(proxyErrors.badRequest(`invalid header ${JSON.stringify(invalidField(headers))} after the route's header rules`));
    }
    this.upstreamFields = [':method', info.method, ':scheme', info.scheme, ':authority', plan.authority, ':path', plan.path];
    this.upstreamMap = headers;
    if (plan.timeoutMs !== undefined && plan.timeoutMs > 0) this.timer = setTimeout(onTimer, plan.timeoutMs, this);
    const breaker = (this.breaker = env.deps.pools.breaker(fwd.choice.cluster));
    let wait: Promise<void> | undefined;
    try {
      wait = breaker.acquire(NEVER);
    } catch (err) {
      return this.fail(err);
    }
    // An HTTP/2 cluster's breaker answers at once (it waits only for HTTP/1.1 connections).
    if (wait) wait.then(() => this.guarded(pickStep), (err: unknown) => this.guarded(failStep, err));
    else this.pick();
  }

  /** Runs a step that did not come from a stream callback; a bug in it ends this exchange. */
  private guarded(step: (ex: H2Exchange, arg?: unknown) => void, arg?: unknown): void {
    try {
      step(this, arg);
    } catch (err) {
      this.bug(err);
    }
  }

  /** A bug, not the client's doing nor the upstream's: this stream ends, the process goes on. */
  bug(err: unknown): void {
    this.env.deps.log.error('HTTP/2 lean path failed; resetting the stream', { client: this.conn.remoteAddress, path: this.url, error: err });
    if (this.phase !== Phase.Done) {
      this.phase = Phase.Done;
      this.clearTimer();
      if (this.counters) this.counters.inFlight--;
      this.endTry({ ok: false, latencyMs: performance.now() - this.tryStart, cancelled: true });
    }
    this.up?.reset(H2Error.Cancel);
    this.down.reset(H2Error.InternalError);
  }

  // Methods, not arrow fields: an exchange is made per request, closures only where needed.
  /** @internal */
  pick(): void {
    this.holdsSlot = true;
    if (this.phase === Phase.Done) return this.releaseSlot(); // gave up while waiting for it
    const { choice, plan, info } = this.fwd;
    // The balancer itself, as upstream/target.ts's chooser drives it (one pick, onStart, one
    // onEnd), without the chooser's objects: a lean request never tries a second endpoint.
    const { balancer, cluster } = choice;
    const hashKey = cluster.hashKey;
    const endpoint = balancer.pick(NO_TRIES, hashKey ? requestHash(hashKey, info.headers, this.conn.remoteAddress) : undefined);
    if (!endpoint) {
      this.releaseSlot();
      return this.fail(proxyErrors.noHealthyUpstream(plan.cluster));
    }
    balancer.onStart(endpoint);
    this.endpoint = endpoint;
    const target = (this.target = targetFor(cluster, endpoint));
    this.phase = Phase.Waiting;
    this.tryStart = performance.now();
    // Telemetry hears of the try as its pool observer would tell it.
    this.rec?.tryStarted(target);
    if (this.sendUpstream()) return;
    // No lane (or its connection went away): the pools connect the endpoint, then the lane.
    const req: H2ConnectRequest = {
      method: info.method,
      path: plan.path,
      authority: plan.authority,
      scheme: info.scheme,
      headers: {},
      body: null,
      signal: NEVER,
      [H2_CONNECT]: target,
    };
    this.env.deps.pools.request(target, req).then(
      () => this.guarded(connectedStep),
      (err: unknown) => this.guarded(failedStep, err),
    );
  }

  /** `host:port` of the endpoint, for error messages (made only for them). */
  private address(): string {
    const t = this.target;
    return t ? `${t.host}:${t.port}` : '';
  }

  /** Opens the upstream stream on the target's lane; false when there is none. */
  private sendUpstream(): boolean {
    const lane = h2LaneFor(this.target!, performance.now());
    if (!lane) return false;
    const up = lane.open(this.upstreamFields, this.noBody, this, this.upstreamMap);
    if (!up) return false;
    this.up = up;
    // What the client sent while the connection was being made, then its end.
    const early = this.early;
    if (early) {
      this.early = undefined;
      for (const chunk of early) this.relayRequest(chunk, 0, chunk.length);
    }
    if (this.requestEnded && !this.noBody) up.end();
    return true;
  }

  /** @internal The pools connected the endpoint. */
  connected(): void {
    if (this.phase !== Phase.Waiting) return;
    if (!this.sendUpstream()) this.tryFailed(proxyErrors.upstreamConnect(this.address(), new Error('the HTTP/2 connection closed as it opened')));
  }

  // ---- StreamHandler: both streams call here; `s` says which ----

  onHead(s: H2Stream, fields: string[], endStream: boolean): void {
    if (s !== this.up || this.phase !== Phase.Waiting) return;
    const status = Number(fields[1]); // :status is first (validated by the engine)
    const response = new EngineResponse(status, fields, endStream, this);
    this.rec?.responded(response);
    this.respond(status, fields, endStream);
  }

  onData(s: H2Stream, buf: Buffer, start: number, end: number): void {
    const n = end - start;
    if (s === this.down) {
      // Request body → upstream (kept until its stream exists, within the stream's window).
      this.received += n;
      if (this.up === undefined && this.phase !== Phase.Done) (this.early ??= []).push(buf.subarray(start, end));
      else this.relayRequest(buf, start, end);
      return;
    }
    // Response body → client.
    if (this.phase !== Phase.Streaming) return s.consumed(n);
    this.sentBytes += n;
    if (this.down.writeFrom(buf, start, end)) s.consumed(n);
    else this.heldResponse += n;
  }

  onEnd(s: H2Stream, trailers: string[] | undefined): void {
    if (s === this.down) {
      // The request is complete (its trailers are dropped, as the generic path drops them).
      this.requestEnded = true;
      const up = this.up;
      if (up && !up.closed) up.end();
      return;
    }
    if (this.phase !== Phase.Streaming) return;
    this.upstreamTrailers = trailers;
    const out = trailers ? forwardableTrailers(fieldsToHeaderMap(trailers, false)) : undefined;
    this.ending = true;
    this.succeeded();
    if (out && Object.keys(out).length > 0) this.down.endWithTrailers(headerMapToFields(out, []));
    else this.down.end();
  }

  /** Request bytes to the upstream stream while it is open (even after the response ended: the
   *  upstream may still read them); dropped once it is gone. */
  private relayRequest(buf: Buffer, start: number, end: number): void {
    const up = this.up;
    const n = end - start;
    if (!up || up.closed || up.localEnded) return this.down.consumed(n);
    if (up.writeFrom(buf, start, end)) this.down.consumed(n);
    else this.heldRequest += n;
  }

  onClose(s: H2Stream, code: number, byPeer: boolean): void {
    if (s === this.down) return this.downstreamClosed(code);
    if (this.phase === Phase.Waiting) {
      // Closed before its head: refused (never processed: may be retried) or reset.
      const failure = byPeer && code === H2Error.RefusedStream
        ? proxyErrors.upstreamRefusedStream(this.address(), new Error('the upstream refused the stream'))
        : proxyErrors.upstreamReset(this.address(), new Error(byPeer ? `stream reset by the upstream (code ${code})` : 'the upstream connection was lost'));
      return this.laneFailed(failure);
    }
    if (this.phase === Phase.Streaming) {
      // The body ended without END_STREAM: the upstream reset it (or the connection died).
      const err = new Error(byPeer ? `stream reset by the upstream (code ${code})` : 'the upstream connection was lost');
      this.upstreamBodyError = err;
      this.failStreaming(proxyErrors.upstreamReset(this.fwd.plan.cluster, err), false);
    }
  }

  onWritable(s: H2Stream): void {
    if (s === this.up) {
      const n = this.heldRequest;
      this.heldRequest = 0;
      if (n > 0) this.down.consumed(n);
    } else {
      const n = this.heldResponse;
      this.heldResponse = 0;
      if (n > 0 && this.up) this.up.consumed(n);
    }
  }

  // ---- the response ----

  /** The response head to the client: the upstream's fields without hop-by-hop ones, the
   *  route's mutations, the fields set before (the decision record) where not overridden. */
  private respond(status: number, fields: string[], endStream: boolean): void {
    this.latencyMs = performance.now() - this.tryStart;
    this.phase = Phase.Streaming;
    const mutations = this.fwd.plan.responseHeaders;
    const headers = applyHeaderMutations(fieldsToHeaderMap(fields, true), mutations);
    if (this.extra) for (const k in this.extra) if (headers[k] === undefined) headers[k] = this.extra[k]!;
    if (mutations.length > 0 && invalidField(headers)) {
      // A field the route's rules made that HTTP/2 cannot carry: answered as the error it is.
      this.phase = Phase.Waiting;
      this.endTry({ ok: false, latencyMs: this.latencyMs, cancelled: false });
      this.fail(proxyErrors.internal(new Error(`invalid response header ${JSON.stringify(invalidField(headers))} after the route's header rules`)));
      this.up?.reset(H2Error.Cancel);
      return;
    }
    this.statusCode = status;
    if (endStream) {
      // Headers-only (gRPC trailers-only): one HEADERS frame with END_STREAM. Complete before it
      // goes: sending it may close the client's stream at once.
      this.ending = true;
      this.succeeded();
    }
    this.down.sendHead(responsePrefix(status, headers), endStream, headers);
  }

  private succeeded(): void {
    this.done();
    countResponse(this.counters, this.statusCode);
    this.endTry({ ok: this.statusCode < 500, latencyMs: this.latencyMs, status: this.statusCode });
  }

  // ---- endings ----

  /** The client's stream closed: completes the record, or ends the exchange early (flag DC). */
  private downstreamClosed(code: number): void {
    if (this.phase !== Phase.Done) {
      const gone = new DownstreamGone();
      if (this.phase === Phase.Streaming) this.failStreaming(gone, true);
      else this.giveUp(gone);
    } else if (this.up && !this.up.closed) {
      // Over for the client (a reset, or our RST_STREAM NO_ERROR after a response that came
      // before the end of its request): the rest of the request never comes.
      this.up.reset(H2Error.Cancel);
    }
    const rec = this.rec;
    if (rec) {
      if (!rec.knownRequestLength) rec.bytesReceived = this.received;
      rec.bytesSent = this.sentBytes;
    }
    this.emit('close');
    this.host.requestEnded();
  }

  /** @internal A try failed before its head: what the pool observer would tell telemetry, then
   *  the same. */
  laneFailed(err: unknown): void {
    if (this.phase === Phase.Done) return;
    const rec = this.rec;
    rec?.tryFailed(err, rec.detailed ? `${flagOf(err)} ${kindOf(err)}` : undefined);
    this.tryFailed(err);
  }

  /** @internal The route's timeout fired. */
  timeout(): void {
    this.timer = undefined;
    const timeout = proxyErrors.upstreamTimeout(this.fwd.plan.timeoutMs ?? 0);
    if (this.phase === Phase.Streaming) return this.failStreaming(timeout, false);
    this.giveUp(timeout);
  }

  /** Ends the exchange before the response head, for `reason`, cancelling a try in flight. */
  private giveUp(reason: unknown): void {
    if (this.phase === Phase.Done) return;
    const cancel = this.phase === Phase.Waiting;
    if (cancel && !this.tryEnded) {
      // The try ends with the reason (the reset we are about to make says nothing of the endpoint).
      const rec = this.rec;
      rec?.tryFailed(reason, rec.detailed ? `${flagOf(reason)} ${kindOf(reason)}` : undefined);
      this.endTry(failedOutcome(reason, performance.now() - this.tryStart));
    }
    this.fail(reason);
    if (cancel) this.up?.reset(H2Error.Cancel);
  }

  /** @internal */
  tryFailed(failure: unknown): void {
    if (this.phase === Phase.Done) return; // gave up first; the try was ended then
    this.endTry(failedOutcome(failure, performance.now() - this.tryStart));
    this.fail(failure);
  }

  /** Before the response head: the failure becomes the client's answer (errors.ts decides),
   *  or nothing when the client left. */
  private fail(failure: unknown): void {
    if (this.phase === Phase.Done) return;
    this.done();
    if (failure instanceof DownstreamGone) return;
    const { info, plan } = this.fwd;
    const answer = toClientAnswer(failure, { grpc: info.grpc, responseStarted: false, resetOnUpstreamReset: this.fwd.resetOnUpstreamReset });
    const kind = kindOf(failure);
    countError(this.counters.errors, kind);
    const log = this.env.deps.log;
    (kind === 'internal' ? log.error : log.debug).call(log, 'request failed', { cluster: plan.cluster, path: plan.path, flag: answer.flag, error: failure });
    this.answer(answer);
  }

  /** respond.ts's sendAnswer, on the client's stream. */
  private answer(answer: ClientAnswer): void {
    const down = this.down;
    if (answer.kind === 'reset' || down.headSent || down.closed) {
      this.statusCode = 0;
      down.reset(answer.kind === 'reset' && answer.refused === true ? H2Error.RefusedStream : H2Error.InternalError);
      return;
    }
    this.ending = true;
    if (answer.grpc) {
      // Trailers-only gRPC status (sendGrpcStatus: without the fields set before).
      this.statusCode = 200;
      down.sendHead(
        [':status', '200', 'content-type', 'application/grpc', 'grpc-status', String(answer.grpc.status), 'grpc-message', encodeGrpcMessage(answer.grpc.message), 'date', dateValue()],
        true,
      );
      return;
    }
    const body = Buffer.from(answer.body, 'utf8');
    const headers: HeaderMap = { ...this.extra, 'content-type': 'text/plain; charset=utf-8', 'content-length': String(body.length) };
    this.statusCode = answer.status;
    const head = responsePrefix(answer.status, headers);
    if (body.length === 0 || this.method === 'HEAD') {
      down.sendHead(head, true, headers);
      return;
    }
    down.sendHead(head, false, headers);
    down.write(body);
    down.end();
    this.sentBytes += body.length;
  }

  /** After the response head: a started gRPC response that timed out ends with its status in
   *  trailers; anything else can only be told with a reset. */
  private failStreaming(failure: unknown, clientGone: boolean): void {
    this.done();
    this.endTry({ ok: false, latencyMs: this.latencyMs, cancelled: clientGone });
    this.up?.reset(H2Error.Cancel);
    if (clientGone) return;
    const answer = toClientAnswer(failure, { grpc: this.fwd.info.grpc, responseStarted: true });
    this.counters.resetsAfterHeaders++;
    const log = this.env.deps.log;
    (kindOf(failure) === 'internal' ? log.error : log.debug).call(log, 'response failed after its head', { cluster: this.fwd.plan.cluster, path: this.fwd.plan.path, flag: answer.flag, error: failure });
    const down = this.down;
    if (answer.kind === 'reset' && answer.grpc && !down.localEnded && !this.ending && !down.closed) {
      this.ending = true;
      down.endWithTrailers(['grpc-status', String(answer.grpc.status), 'grpc-message', encodeGrpcMessage(answer.grpc.message)]);
      return;
    }
    down.reset(answer.kind === 'reset' && answer.refused === true ? H2Error.RefusedStream : H2Error.InternalError);
  }

  private done(): void {
    this.phase = Phase.Done;
    this.clearTimer();
    this.counters.inFlight--;
  }

  /** Ends the try once: the balancer learns its outcome, the breaker gets its slot back. */
  private endTry(outcome: RequestOutcome): void {
    if (!this.endpoint || this.tryEnded) return;
    this.tryEnded = true;
    this.fwd.choice.balancer.onEnd(this.endpoint, outcome);
    this.releaseSlot();
  }

  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.breaker!.release();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

// Steps run from timers and promises: functions, not closures per request.
function onTimer(ex: H2Exchange): void {
  try {
    ex.timeout();
  } catch (err) {
    ex.bug(err);
  }
}
function pickStep(ex: H2Exchange): void {
  ex.pick();
}
function failStep(ex: H2Exchange, err: unknown): void {
  ex.tryFailed(err);
}
function connectedStep(ex: H2Exchange): void {
  ex.connected();
}
function failedStep(ex: H2Exchange, err: unknown): void {
  ex.laneFailed(err);
}
