// One request on the fast path, from the routing decision to the last response byte. The
// accounting is upstream/forward.ts's (cluster counters, circuit breaker, balancer outcome,
// telemetry record, client answers decided by http/errors.ts); only the byte moving differs:
// the upstream head is written once with the body bytes at hand, the rest of the body is relayed
// as it comes, and the rewritten response head leaves with the first response bytes.
import type net from 'node:net';
import type { Endpoint } from '../../api/domain.js';
import type { ClusterChoice } from '../balance/registry.js';
import { requestHash } from '../balance/hash.js';
import type { RequestOutcome } from '../balance/types.js';
import { flagOf, kindOf, proxyErrors, toClientAnswer } from '../http/errors.js';
import type { DownstreamRequest, DownstreamResponse, RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { forwardableTrailers, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { countError, countResponse, type ClusterCounters } from '../http/stats.js';
import type { AuthzDecision } from '../inbound/authz.js';
import { applyHeaderMutations } from '../route/headers.js';
import type { ForwardPlan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import type { RequestRecord, Telemetry } from '../telemetry/index.js';
import type { CarryOutDeps, HeaderAdjust } from '../upstream/carry-out.js';
import type { CircuitBreaker } from '../upstream/circuit-breaker.js';
import { DownstreamGone, failedOutcome } from '../upstream/forward.js';
import { isIdempotent } from '../upstream/retry.js';
import { targetFor } from '../upstream/target.js';
import type { UpstreamResponse, UpstreamTarget } from '../upstream/types.js';
import { CHUNK_END, chunkHeader, lastChunk, localAnswer, requestHead, responseHead } from './head.js';
import { persistent, type Framing, type RequestHead } from './parser.js';
import { holdUntilTurnEnd, releaseNow } from './turn.js';
import { laneFor, RAW, RawResponse, type BodySink, type RawOutcome, type RawRequest, type RawUpstreamRequest, type UpstreamConnection } from './upstream.js';

/** A request the listener decided the fast path may carry: a forward plan, nothing else. */
export interface FastForward {
  readonly info: RequestInfo;
  /** The snapshot the request was planned on; it finishes on it. */
  readonly config: ProxyConfig;
  readonly plan: ForwardPlan;
  readonly choice: ClusterChoice;
  /** Listener touches applied after the route's mutations (inbound: XFCC). */
  readonly adjust?: HeaderAdjust;
  /** Inbound: the authorization verdict, for telemetry. */
  readonly verdict?: AuthzDecision;
  /** Inbound: an upstream reset before the response head resets the client too. */
  readonly resetOnUpstreamReset: boolean;
}

/** What every exchange of one listener shares. */
export interface ExchangeEnv {
  readonly direction: 'outbound' | 'inbound';
  readonly deps: CarryOutDeps;
  readonly telemetry: Telemetry | undefined;
  /** Keep-Alive: timeout=N, as node:http announces its keep-alive timeout. */
  readonly idleSeconds: number;
}

/** The client connection as an exchange sees it (fast-path.ts implements it). */
export interface Downstream {
  readonly socket: net.Socket;
  readonly info: ConnectionInfo;
  /** Aborted when the client connection closes (a circuit-breaker wait ends with it). */
  readonly signal: AbortSignal;
  /** The listener is draining: the response says Connection: close. */
  closing(): boolean;
  /** Stop / restart reading the client (request body backpressure). */
  pause(): void;
  resume(): void;
  /** The exchange is over; `keepAlive`: the connection may carry the next request. */
  exchangeDone(keepAlive: boolean): void;
}

const enum Phase {
  Starting,
  Waiting,
  Streaming,
  Done,
}

const NO_TRIES: ReadonlySet<string> = new Set();
/** UpstreamRequest wants a signal; the raw pool is cancelled through RawRequest instead. */
const NEVER = new AbortController().signal;
/** Bodies up to this size are copied next to their head (one write); larger ones are corked. */
const SMALL = 16 * 1024;
/** Request body bytes held while no connection is ready yet, before the client is paused. */
const MAX_QUEUED = 64 * 1024;
const TEXT_PLAIN: HeaderMap = Object.freeze({ 'content-type': 'text/plain; charset=utf-8' }) as HeaderMap;

/** `head` followed by `data` (and `tail`), in one buffer. */
function joined(head: string, data: Buffer, tail: string): Buffer {
  const out = Buffer.allocUnsafe(head.length + data.length + tail.length);
  out.write(head, 0, 'latin1');
  data.copy(out, head.length);
  if (tail.length > 0) out.write(tail, head.length + data.length, 'latin1');
  return out;
}

function releaseChunks(exchange: Exchange): void {
  exchange.releaseChunks();
}

/** The route's timeout fired (setTimeout's argument: no closure per request). */
function timedOut(exchange: Exchange): void {
  exchange.onTimeout();
}

/**
 * One request/response. It is also the request and response objects telemetry sees (the names
 * node:http gives them), so metrics, traces, access log and decision records work unchanged;
 * it reports its tries, bytes and end to its record itself (Telemetry.beginRaw).
 */
export class Exchange implements RawRequest, RawOutcome, BodySink {
  // ---- node:http's names, read by telemetry ----
  readonly method: string;
  readonly url: string;
  readonly headers: HeaderMap;
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly socket: net.Socket;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  statusCode = 200;
  /** Fields set before the head (the decision record). */
  private extra: HeaderMap | undefined;

  // ---- RawRequest ----
  readonly noResponseBody: boolean;
  cancelled: unknown = undefined;
  target!: UpstreamTarget;

  private phase = Phase.Starting;
  private rec: RequestRecord | undefined;
  private counters!: ClusterCounters;
  private breaker: CircuitBreaker | undefined;
  private holdsSlot = false;
  /** The endpoint the balancer picked (its onStart was called; onEnd is due once). */
  private endpoint: Endpoint | undefined;
  private tryEnded = false;
  private tryStart = 0;
  private latencyMs = 0;
  private upstreamHeaders: HeaderMap = {};
  private headText = '';
  private conn: UpstreamConnection | undefined;
  private response: RawResponse | undefined;
  private queued: (Buffer | string)[] | undefined;
  private queuedBytes = 0;
  private requestEnded: boolean;
  private keepAlive: boolean;
  private pendingHead: string | undefined;
  private chunkedOut = false;
  /** The client socket is corked until the end of this tick (holdChunks). */
  private holding = false;
  private timer: NodeJS.Timeout | undefined;
  /** Body bytes received and sent, for telemetry (it reads them when the exchange ends). */
  private received = 0;
  private sentBytes = 0;

  constructor(
    private readonly env: ExchangeEnv,
    private readonly down: Downstream,
    private readonly fwd: FastForward,
    head: RequestHead,
    private readonly framing: Framing,
  ) {
    this.method = head.method;
    this.url = head.target;
    this.headers = head.headers;
    this.socket = down.socket;
    this.noResponseBody = head.method === 'HEAD';
    this.requestEnded = framing === 'none';
    this.keepAlive = persistent(head);
  }

  /** res.setHeader, as telemetry refreshes the decision record before the head goes out. */
  setHeader(name: string, value: string): void {
    if (!this.headersSent) (this.extra ??= {})[name.toLowerCase()] = value;
  }

  get replayable(): boolean {
    return this.framing === 'none' && isIdempotent(this.method);
  }

  /** Starts the exchange: telemetry, upstream head, circuit breaker, then an endpoint. */
  start(): void {
    const { env, fwd } = this;
    const { info, plan } = fwd;
    // One clock reading for the record's start and, unless the breaker makes it wait, the try's.
    const now = performance.now();
    const rec = env.telemetry?.beginRaw(env.direction, this as unknown as DownstreamRequest, this as unknown as DownstreamResponse, this.down.info, now);
    if (rec) {
      this.rec = rec;
      rec.read(info);
      if (fwd.verdict) rec.authorized(fwd.verdict);
      rec.planned(fwd.config, plan);
    }
    let headers = applyHeaderMutations(upstreamRequestHeaders(info.headers, info.scheme), plan.requestHeaders);
    // Telemetry before the listener's touch: inbound, it removes the calling sidecar's peer
    // header, the last field that sidecar sent, so the map loses its last property and V8
    // keeps it a fast object; XFCC is then added to the copy `adjust` makes. Tries are
    // reported to the record here (lane or not), so the pool observer is not told.
    rec?.sending(plan.cluster, plan.authority, headers, false);
    if (fwd.adjust) headers = fwd.adjust(headers);
    this.upstreamHeaders = headers;
    // Only the route's mutations and the listener's adjustments (XFCC from certificates) bring
    // values the parser has not checked; the rest are the client's, or the proxy's own.
    const checked = plan.requestHeaders.length > 0 || fwd.adjust !== undefined;
    this.headText = requestHead(info.method, plan.path, plan.authority, headers, this.framing === 'chunked', checked);
    const counters = (this.counters = env.deps.stats.cluster(plan.cluster));
    counters.requests++;
    counters.inFlight++;
    if (plan.timeoutMs !== undefined && plan.timeoutMs > 0) this.timer = setTimeout(timedOut, plan.timeoutMs, this);
    const breaker = (this.breaker = env.deps.pools.breaker(fwd.choice.cluster));
    let wait: Promise<void> | undefined;
    try {
      wait = breaker.acquire(this.down.signal);
    } catch (err) {
      return this.fail(err);
    }
    if (wait) {
      wait.then(
        () => this.pick(performance.now()),
        (err: unknown) => this.fail(this.cancelled ?? err),
      );
    } else {
      this.pick(now);
    }
  }

  // Methods, not arrow fields: an exchange is made per request, closures only where needed.
  /** `now`: performance.now(), the try's start. */
  private pick(now: number): void {
    this.holdsSlot = true;
    if (this.phase === Phase.Done) return this.releaseSlot(); // gave up while waiting for it
    const { choice, plan, info } = this.fwd;
    // The balancer itself, as upstream/target.ts's chooser drives it (one pick, onStart, one
    // onEnd), without the chooser's objects: a fast-path request never tries a second endpoint.
    const { balancer, cluster } = choice;
    const hashKey = cluster.hashKey;
    const endpoint = balancer.pick(NO_TRIES, hashKey ? requestHash(hashKey, info.headers, this.socket.remoteAddress) : undefined);
    if (!endpoint) {
      this.releaseSlot();
      return this.fail(proxyErrors.noHealthyUpstream(plan.cluster));
    }
    balancer.onStart(endpoint);
    this.endpoint = endpoint;
    const target = (this.target = targetFor(cluster, endpoint));
    this.phase = Phase.Waiting;
    this.tryStart = now;
    // Telemetry hears of the try as its pool observer would.
    this.rec?.tryStarted(target);
    const lane = laneFor(target, this.tryStart);
    if (lane) return lane.send(this, this); // straight to the endpoint's pool
    const req: RawUpstreamRequest = {
      method: info.method,
      path: plan.path,
      authority: plan.authority,
      scheme: info.scheme,
      headers: this.upstreamHeaders,
      body: null,
      signal: NEVER,
      [RAW]: this,
    };
    this.env.deps.pools.request(target, req).then(
      (res) => this.onUpstreamHead(res),
      (err: unknown) => this.onUpstreamFailed(err),
    );
  }

  /** RawOutcome: what the pool observer would tell telemetry, then the response. */
  onUpstreamHead(res: UpstreamResponse): void {
    const now = performance.now();
    this.rec?.responded(res, now);
    this.onResponse(res, now);
  }

  onUpstreamFailed(err: unknown): void {
    const rec = this.rec;
    rec?.tryFailed(err, rec.detailed ? `${flagOf(err)} ${kindOf(err)}` : undefined);
    this.tryFailed(this.cancelled ?? err);
  }

  // ---- the request body (fed by the client connection) ----

  /** Body bytes from the client, de-chunked. */
  body(chunk: Buffer): void {
    this.received += chunk.length;
    if (this.phase === Phase.Done) return; // answered already: the rest is read and dropped
    if (this.framing !== 'chunked') return this.forwardBody(chunk);
    const size = chunkHeader(chunk.length);
    if (chunk.length <= SMALL) return this.forwardBody(joined(size, chunk, CHUNK_END));
    this.forwardBody(size);
    this.forwardBody(chunk);
    this.forwardBody(CHUNK_END);
  }

  /** The client's body is complete. */
  bodyEnd(): void {
    this.requestEnded = true;
    if (this.phase === Phase.Done) return;
    if (this.framing === 'chunked') this.forwardBody(lastChunk(undefined));
    this.conn?.requestComplete();
  }

  private forwardBody(data: Buffer | string): void {
    const conn = this.conn;
    if (conn) {
      if (!conn.writeBody(data)) {
        this.down.pause();
        conn.onceDrained(() => this.down.resume());
      }
      return;
    }
    (this.queued ??= []).push(data);
    this.queuedBytes += data.length;
    if (this.queuedBytes > MAX_QUEUED) this.down.pause();
  }

  // ---- RawRequest: the pool asks for the head when a connection takes the request ----

  takeHead(): Buffer | string {
    const q = this.queued;
    if (!q) return this.headText;
    this.queued = undefined;
    const parts: Buffer[] = [Buffer.from(this.headText, 'latin1')];
    for (const p of q) parts.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    if (this.queuedBytes > MAX_QUEUED) this.down.resume();
    this.queuedBytes = 0;
    return Buffer.concat(parts);
  }

  sent(conn: UpstreamConnection): void {
    this.conn = conn;
    if (this.requestEnded) conn.requestComplete();
  }

  // ---- the response ----

  private onResponse(res: UpstreamResponse, now: number): void {
    if (!(res instanceof RawResponse)) {
      res.body.destroy();
      return this.tryFailed(proxyErrors.internal(new Error('an HTTP/1.1 pool answered a fast-path request with a response it cannot relay')));
    }
    if (this.phase !== Phase.Waiting) return res.conn.abort(this.cancelled);
    this.latencyMs = now - this.tryStart;
    this.response = res;
    this.phase = Phase.Streaming;
    this.statusCode = res.status;
    // Keep the client connection only when its request is complete and nobody asks to close.
    this.keepAlive = this.keepAlive && this.requestEnded && !this.down.closing();
    this.chunkedOut = res.framing === 'chunked' || res.framing === 'close';
    this.pendingHead = responseHead(
      res.status,
      res.headers,
      this.fwd.plan.responseHeaders,
      this.extra,
      { keepAlive: this.keepAlive, idleSeconds: this.env.idleSeconds },
      this.chunkedOut,
    );
    this.headersSent = true;
    res.start(this);
    // Nothing came with the head (a slow or streaming body): the client gets the head now.
    const head = this.pendingHead;
    if (head !== undefined && this.phase === Phase.Streaming) {
      this.pendingHead = undefined;
      holdUntilTurnEnd(this.socket);
      this.socket.write(head, 'latin1');
    }
  }

  onBodyData(chunk: Buffer): boolean {
    this.sentBytes += chunk.length;
    const head = this.pendingHead;
    this.pendingHead = undefined;
    const socket = this.socket;
    holdUntilTurnEnd(socket);
    if (!this.chunkedOut) {
      if (head === undefined) return socket.write(chunk);
      if (chunk.length <= SMALL) return socket.write(joined(head, chunk, ''));
      socket.cork();
      socket.write(head, 'latin1');
      const ok = socket.write(chunk);
      socket.uncork();
      return ok;
    }
    this.holdChunks();
    const size = (head ?? '') + chunkHeader(chunk.length);
    if (chunk.length <= SMALL) return socket.write(joined(size, chunk, CHUNK_END));
    socket.cork();
    socket.write(size, 'latin1');
    socket.write(chunk);
    const ok = socket.write(CHUNK_END, 'latin1');
    socket.uncork();
    return ok;
  }

  onBodyEnd(trailers: HeaderMap | undefined): void {
    if (this.phase !== Phase.Streaming) return;
    let tail = this.pendingHead ?? '';
    this.pendingHead = undefined;
    if (this.chunkedOut) {
      this.holdChunks();
      tail += lastChunk(trailers ? forwardableTrailers(trailers) : undefined);
    }
    if (tail !== '') {
      holdUntilTurnEnd(this.socket);
      this.socket.write(tail, 'latin1');
    }
    this.phase = Phase.Done;
    this.clearTimer();
    countResponse(this.counters, this.statusCode);
    this.endTry({ ok: this.statusCode < 500, latencyMs: this.latencyMs, status: this.statusCode });
    this.finish(true);
  }

  onBodyError(err: unknown): void {
    if (this.phase !== Phase.Streaming) return;
    this.failStreaming(err, false);
  }

  /**
   * Chunked framing writes a few small pieces for each upstream read (each chunk's framing and
   * data, the last chunk): held until the end of this tick, they leave the socket as one write,
   * so one syscall, and on an mTLS connection one TLS record, instead of one per piece.
   */
  private holdChunks(): void {
    if (this.holding) return;
    this.holding = true;
    this.socket.cork();
    process.nextTick(releaseChunks, this);
  }

  /** @internal The end of the tick holdChunks waited for. */
  releaseChunks(): void {
    this.holding = false;
    this.socket.uncork();
  }

  /** The client socket can take more: let the upstream body flow again. */
  downstreamDrained(): void {
    if (this.phase === Phase.Streaming) this.response?.conn.resume();
  }

  // ---- endings ----

  /** The client connection closed under this exchange. */
  downstreamGone(): void {
    const gone = new DownstreamGone();
    if (this.phase === Phase.Streaming) return this.failStreaming(gone, true);
    this.giveUp(gone);
  }

  /** @internal The route's timeout fired. */
  onTimeout(): void {
    this.timer = undefined;
    const timeout = proxyErrors.upstreamTimeout(this.fwd.plan.timeoutMs ?? 0);
    if (this.phase === Phase.Streaming) return this.failStreaming(timeout, false);
    this.giveUp(timeout);
  }

  /** Ends the exchange before the response head, for `reason`, cancelling a try in flight. */
  private giveUp(reason: unknown): void {
    if (this.phase === Phase.Done) return;
    this.cancelled = reason;
    if (this.phase === Phase.Waiting) {
      this.conn?.abort(reason);
      this.endTry(failedOutcome(reason, performance.now() - this.tryStart));
    }
    this.fail(reason, true);
  }

  private tryFailed(failure: unknown): void {
    this.endTry(failedOutcome(failure, performance.now() - this.tryStart));
    this.fail(failure);
  }

  /**
   * Before the response head: the failure becomes the client's answer (errors.ts decides), or
   * nothing when the client left. `deferRecord`: the try is still being cancelled, so telemetry
   * hears of the end a moment later (after the pool reported how the try ended).
   */
  private fail(failure: unknown, deferRecord = false): void {
    if (this.phase === Phase.Done) return;
    this.phase = Phase.Done;
    this.cancelled ??= failure;
    this.clearTimer();
    if (failure instanceof DownstreamGone) return this.finish(false, deferRecord);
    const answer = toClientAnswer(failure, { grpc: false, responseStarted: false, resetOnUpstreamReset: this.fwd.resetOnUpstreamReset });
    const kind = kindOf(failure);
    countError(this.counters.errors, kind);
    const log = this.env.deps.log;
    (kind === 'internal' ? log.error : log.debug).call(log, 'request failed', { cluster: this.fwd.plan.cluster, path: this.fwd.plan.path, flag: answer.flag, error: failure });
    if (answer.kind === 'reset') {
      releaseNow(this.socket); // an earlier pipelined response still held goes out first
      this.socket.destroy();
      return this.finish(false, deferRecord);
    }
    this.keepAlive = this.keepAlive && this.requestEnded && !this.down.closing();
    const extra = this.extra ? { ...this.extra, ...TEXT_PLAIN } : TEXT_PLAIN;
    const buf = localAnswer(answer.status, extra, answer.body, this.noResponseBody, { keepAlive: this.keepAlive, idleSeconds: this.env.idleSeconds });
    this.statusCode = answer.status;
    this.headersSent = true;
    if (!this.noResponseBody) this.sentBytes += Buffer.byteLength(answer.body);
    holdUntilTurnEnd(this.socket);
    this.socket.write(buf);
    this.finish(true, deferRecord);
  }

  /** After the response head: only a reset can tell the client (a truncated response). */
  private failStreaming(failure: unknown, clientGone: boolean): void {
    this.phase = Phase.Done;
    this.clearTimer();
    this.endTry({ ok: false, latencyMs: this.latencyMs, cancelled: clientGone });
    this.response?.conn.abort(failure);
    if (!clientGone) {
      this.counters.resetsAfterHeaders++;
      const log = this.env.deps.log;
      (kindOf(failure) === 'internal' ? log.error : log.debug).call(log, 'response failed after its head', { cluster: this.fwd.plan.cluster, path: this.fwd.plan.path, error: failure });
      releaseNow(this.socket); // the truncated response, then the reset
      this.socket.destroy();
    }
    this.finish(false);
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

  private finish(finished: boolean, deferRecord = false): void {
    this.counters.inFlight--;
    this.writableEnded = true;
    this.writableFinished = finished;
    const rec = this.rec;
    if (rec) {
      if (!rec.knownRequestLength) rec.bytesReceived = this.received;
      rec.bytesSent = this.sentBytes;
      if (deferRecord) setImmediate(recordEnded, rec);
      else recordEnded(rec);
    }
    this.down.exchangeDone(finished && this.keepAlive && this.requestEnded);
  }
}

/** The response is over: telemetry finishes the record (as node:http's 'close' would). */
function recordEnded(rec: RequestRecord): void {
  rec.sink.ended(rec);
}
