// One HTTP/2 request on the lean path, from the routing decision to the close of its stream:
// Weft's own HTTP/2 engine on both sides (connection.ts), the client's stream relayed to a
// stream on the endpoint's engine connection (upstream/http2.ts), frames in, frames out — no
// Node streams, no AbortSignal, no closures per request (the exchange is both streams'
// handler). The lifecycle (telemetry record, cluster counters, timeout, circuit breaker, balancer
// pick and outcome, client answers decided by http/errors.ts) is http/lean-exchange.ts's, shared
// with HTTP/1.1; here are the frames, and the credit between the two streams (StreamPipe). A
// plain forward's heads stay the field lists the engine decoded, edited in place (fields.ts); a
// HeaderMap is made only when the route's header rules, a listener adjustment with no edit on
// the list (XFCC has one: fields.ts's FieldAdjust), or a traced request need one.
import { proxyErrors, type ClientAnswer } from '../http/errors.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { fieldValue, firstValue, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { LeanExchange, Phase, type LeanEnv } from '../http/lean-exchange.js';
import { encodeGrpcMessage } from '../http/respond.js';
import type { FastForward } from '../http1/exchange.js';
import { applyHeaderMutations } from '../route/headers.js';
import type { FieldReader } from '../telemetry/record.js';
import { DownstreamGone, failedOutcome } from '../upstream/forward.js';
import { H2_CONNECT, h2LaneFor, type H2ConnectRequest } from '../upstream/http2.js';
import type { UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import type { H2Stream, StreamHandler } from './connection.js';
import {
  dateValue, fieldEditOf, fieldsToHeaderMap, forwardableTrailerFields, invalidField, invalidValue, responseFieldList, responsePrefix, upstreamRequestFields,
} from './fields.js';
import { H2Error } from './frames.js';
import { StreamPipe } from './stream.js';

/** What every exchange of one listener shares. */
export type H2Env = LeanEnv;

/** The frontend's side of a stream it handed over (proxy/http/frontend.ts). */
export interface H2Host {
  /** The stream closed: the request no longer counts as in flight (drain). */
  requestEnded(): void;
}

/** UpstreamRequest wants a signal; a lean request is cancelled by resetting its stream. */
const NEVER = new AbortController().signal;
/** An HTTP/2 cluster's breaker never makes a request wait: nothing ends a wait. */
const NEVER_ABORTED = { signal: NEVER };
const EMPTY: string[] = [];
/** The upstream head's pseudo-headers, names and values: :method, :scheme, :authority, :path. */
const PSEUDO_FIELDS = 8;

/** The upstream response as telemetry keeps it (its maps made only when asked; grpc-status is
 *  read off the lists). */
class EngineResponse implements UpstreamResponse, FieldReader {
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

  headerField(name: string): string | undefined {
    return this.cached ? firstValue(this.cached, name) : fieldValue(this.fields, 0, name);
  }

  trailerField(name: string): string | undefined {
    const t = this.ex.upstreamTrailers;
    return t ? fieldValue(t, 0, name) : undefined;
  }
}

/**
 * One request/response (the lifecycle: LeanExchange). Telemetry sees it as node:http2's compat
 * request and response (their names, below and in LeanExchange).
 */
export class H2Exchange extends LeanExchange implements StreamHandler {
  // ---- compat's names, read by telemetry ----
  readonly httpVersion = '2.0';
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  private ending = false;

  /** Trailers from the upstream, once they came. */
  upstreamTrailers: string[] | undefined;
  /** Set when the upstream reset the response after its head (telemetry's UC flag). */
  upstreamBodyError: Error | undefined;

  /** The upstream request head: the pseudo-headers and the fields (a plain forward), or the
   *  pseudo-headers then the fields of `upstreamMap` (the route's or the listener's rules). */
  private upstreamFields: string[] = EMPTY;
  private upstreamMap: HeaderMap | undefined;
  private up: H2Stream | undefined;
  /** Request body that came before the upstream stream existed (its connection was being made). */
  private early: Buffer[] | undefined;
  private requestEnded = false;
  /** The client's stream and the upstream's, body bytes and credit between them. */
  private readonly pipe: StreamPipe;

  constructor(
    env: H2Env,
    private readonly host: H2Host,
    private readonly down: H2Stream,
    fwd: FastForward,
    private readonly conn: ConnectionInfo,
    /** The same fields as the engine decoded them (name, value…; pseudo-headers first). */
    private readonly fields: readonly string[],
    /** The request has no body (END_STREAM on its HEADERS). */
    private readonly noBody: boolean,
  ) {
    super(env, fwd, fwd.info.method, fwd.info.path);
    this.pipe = new StreamPipe(down, undefined);
  }

  /** The request's fields, as compat's `req.headers` (tracing and the debug header read them;
   *  the map is made then). */
  get headers(): HeaderMap {
    return this.fwd.info.headers;
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

  /** Starts the exchange: telemetry, upstream head, circuit breaker, then an endpoint. */
  start(): void {
    const { fwd } = this;
    const { info, plan } = fwd;
    this.down.handler = this;
    // One clock reading for the record's start and, unless the breaker makes it wait, the try's.
    const now = performance.now();
    const rec = this.beginRecord(this.conn, now);
    const pseudo = [':method', info.method, ':scheme', info.scheme, ':authority', plan.authority, ':path', plan.path];
    // The listener's adjustment (XFCC) is an edit on the list when it can be one.
    const fieldEdit = fieldEditOf(fwd.adjust);
    const edited = plan.requestHeaders.length > 0 || (fwd.adjust !== undefined && fieldEdit === undefined);
    let added: string | undefined;
    if (!edited) {
      // A plain forward: the decoded list, edited (telemetry's fields too, unless it needs a map).
      const fields = upstreamRequestFields(this.fields, info.scheme, pseudo);
      if (fieldEdit) added = fieldEdit(fields, PSEUDO_FIELDS);
      if (!rec || rec.sendingFields(plan.cluster, plan.authority, fields, PSEUDO_FIELDS)) {
        this.upstreamFields = fields;
      } else {
        // Traced: the trace context is injected into a map.
        const headers = fieldsToHeaderMap(fields, false);
        rec.sending(plan.cluster, plan.authority, headers, false);
        fields.length = PSEUDO_FIELDS;
        this.upstreamFields = fields;
        this.upstreamMap = headers;
      }
    } else {
      let headers = applyHeaderMutations(upstreamRequestHeaders(info.headers, info.scheme), plan.requestHeaders);
      if (fwd.adjust) headers = fwd.adjust(headers);
      rec?.sending(plan.cluster, plan.authority, headers, false);
      this.upstreamFields = pseudo;
      this.upstreamMap = headers;
    }
    this.admit();
    // Route mutations and listener adjustments bring values no decoder checked.
    if (edited && invalidField(this.upstreamMap!)) {
      return this.fail(proxyErrors.badRequest(`invalid header ${JSON.stringify(invalidField(this.upstreamMap!))} after the route's header rules`));
    }
    if (added !== undefined && invalidValue(added)) {
      return this.fail(proxyErrors.badRequest(`invalid header "x-forwarded-client-cert" after the listener's adjustment`));
    }
    // An HTTP/2 cluster's breaker answers at once (it waits only for HTTP/1.1 connections).
    this.acquire(NEVER_ABORTED, now);
  }

  // Steps that come from a promise or a timer, not a stream callback: a bug in one ends this
  // exchange (bug), not the process.
  protected override slotGranted(): void {
    this.guarded(pickStep);
  }

  protected override slotRefused(err: unknown): void {
    this.guarded(failStep, err);
  }

  override onTimeout(): void {
    try {
      super.onTimeout();
    } catch (err) {
      this.bug(err);
    }
  }

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
      if (this.counters) this.settle();
      else this.phase = Phase.Done;
      this.endTry({ ok: false, latencyMs: performance.now() - this.tryStart, cancelled: true });
    }
    this.up?.reset(H2Error.Cancel);
    this.down.reset(H2Error.InternalError);
  }

  /** @internal */
  pickNow(): void {
    this.pick(performance.now());
  }

  /** @internal */
  failNow(err: unknown): void {
    this.tryFailed(err);
  }

  protected clientAddress(): string | undefined {
    return this.conn.remoteAddress;
  }

  /** The try: on the endpoint's lane, or once the pools connected it. */
  protected send(target: UpstreamTarget, now: number): void {
    if (this.sendUpstream(now)) return;
    // No lane (or its connection went away): the pools connect the endpoint, then the lane.
    const { info, plan } = this.fwd;
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
  private sendUpstream(now: number): boolean {
    const lane = h2LaneFor(this.target, now);
    if (!lane) return false;
    const up = lane.open(this.upstreamFields, this.noBody, this, this.upstreamMap);
    if (!up) return false;
    this.up = this.pipe.b = up;
    // What the client sent while the connection was being made, then its end.
    const early = this.early;
    if (early) {
      this.early = undefined;
      for (const chunk of early) this.pipe.relay(this.down, chunk, 0, chunk.length);
    }
    if (this.requestEnded && !this.noBody) up.end();
    return true;
  }

  /** @internal The pools connected the endpoint. */
  connected(): void {
    if (this.phase !== Phase.Waiting) return;
    if (!this.sendUpstream(performance.now())) this.tryFailed(proxyErrors.upstreamConnect(this.address(), new Error('the HTTP/2 connection closed as it opened')));
  }

  // ---- StreamHandler: both streams call here; `s` says which ----

  onHead(s: H2Stream, fields: string[], endStream: boolean): void {
    if (s !== this.up || this.phase !== Phase.Waiting) return;
    const status = Number(fields[1]); // :status is first (validated by the engine)
    // One clock reading for the try's latency and the record.
    const now = performance.now();
    this.latencyMs = now - this.tryStart;
    this.rec?.responded(new EngineResponse(status, fields, endStream, this), now);
    this.respond(status, fields, endStream);
  }

  onData(s: H2Stream, buf: Buffer, start: number, end: number): void {
    const n = end - start;
    if (s === this.down) {
      // Request body → upstream (kept until its stream exists, within the stream's window);
      // sent while the upstream stream is open (even after the response ended: the upstream
      // may still read it), dropped once it is gone.
      this.received += n;
      if (this.up === undefined && this.phase !== Phase.Done) (this.early ??= []).push(buf.subarray(start, end));
      else this.pipe.relay(s, buf, start, end);
      return;
    }
    // Response body → client.
    if (this.phase !== Phase.Streaming) return s.consumed(n);
    this.sentBytes += n;
    this.pipe.relay(s, buf, start, end);
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
    const out = trailers ? forwardableTrailerFields(trailers) : undefined;
    this.ending = true;
    this.succeeded();
    if (out && out.length > 0) this.down.endWithTrailers(out);
    else this.down.end();
  }

  onClose(s: H2Stream, code: number, byPeer: boolean): void {
    if (s === this.down) return this.downstreamClosed();
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
    this.pipe.writable(s);
  }

  // ---- the response ----

  /** The response head to the client: the upstream's fields without hop-by-hop ones, the
   *  route's mutations, the fields set before (the decision record) where not overridden. */
  private respond(status: number, fields: string[], endStream: boolean): void {
    this.phase = Phase.Streaming;
    const mutations = this.fwd.plan.responseHeaders;
    if (mutations.length === 0 && this.extra === undefined) {
      // A plain forward: the upstream's list, filtered.
      this.statusCode = status;
      if (endStream) {
        this.ending = true;
        this.succeeded();
      }
      this.down.sendHead(responseFieldList(status, fields), endStream);
      return;
    }
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

  // ---- endings ----

  /** The client's stream closed: completes the record, or ends the exchange early (flag DC). */
  private downstreamClosed(): void {
    if (this.phase !== Phase.Done) {
      const gone = new DownstreamGone();
      if (this.phase === Phase.Streaming) this.failStreaming(gone, true);
      else this.giveUp(gone);
    } else if (this.up && !this.up.closed) {
      // Over for the client (a reset, or our RST_STREAM NO_ERROR after a response that came
      // before the end of its request): the rest of the request never comes.
      this.up.reset(H2Error.Cancel);
    }
    this.endRecord();
    this.host.requestEnded();
  }

  /** @internal A try failed before its head: what the pool observer would tell telemetry, then
   *  the same. */
  laneFailed(err: unknown): void {
    if (this.phase === Phase.Done) return;
    this.noteTryFailed(err);
    this.tryFailed(err);
  }

  /** Ends the exchange before the response head, for `reason`, cancelling a try in flight. */
  protected giveUp(reason: unknown): void {
    if (this.phase === Phase.Done) return;
    const cancel = this.phase === Phase.Waiting;
    if (cancel && !this.tryEnded) {
      // The try ends with the reason (the reset we are about to make says nothing of the endpoint).
      this.noteTryFailed(reason);
      this.endTry(failedOutcome(reason, performance.now() - this.tryStart));
    }
    this.fail(reason);
    if (cancel) this.up?.reset(H2Error.Cancel);
  }

  /** Before the response head: the failure becomes the client's answer (errors.ts decides),
   *  or nothing when the client left. */
  protected fail(failure: unknown): void {
    if (this.phase === Phase.Done) return;
    this.settle();
    if (failure instanceof DownstreamGone) return;
    this.answer(this.answerFor(failure));
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

  /** After the response head: a started gRPC response that failed ends with its status in
   *  trailers; anything else can only be told with a reset. */
  protected failStreaming(failure: unknown, clientGone: boolean): void {
    this.settle();
    this.endTry({ ok: false, latencyMs: this.latencyMs, cancelled: clientGone });
    this.up?.reset(H2Error.Cancel);
    if (clientGone) return;
    const answer = this.answerAfterHead(failure);
    const down = this.down;
    if (answer.kind === 'reset' && answer.grpc && !down.localEnded && !this.ending && !down.closed) {
      this.ending = true;
      down.endWithTrailers(['grpc-status', String(answer.grpc.status), 'grpc-message', encodeGrpcMessage(answer.grpc.message)]);
      return;
    }
    down.reset(answer.kind === 'reset' && answer.refused === true ? H2Error.RefusedStream : H2Error.InternalError);
  }
}

// Steps run from promises: functions, not closures per request.
function pickStep(ex: H2Exchange): void {
  ex.pickNow();
}
function failStep(ex: H2Exchange, err: unknown): void {
  ex.failNow(err);
}
function connectedStep(ex: H2Exchange): void {
  ex.connected();
}
function failedStep(ex: H2Exchange, err: unknown): void {
  ex.laneFailed(err);
}
