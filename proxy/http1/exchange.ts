// One request on the fast path, from the routing decision to the last response byte. The
// lifecycle (telemetry record, cluster counters, timeout, circuit breaker, balancer pick and
// outcome, client answers decided by http/errors.ts) is http/lean-exchange.ts's, shared with
// HTTP/2; here is the byte moving: the upstream head is written once with the body bytes at hand,
// the rest of the body is relayed as it comes, and the rewritten response head leaves with the
// first response bytes.
import type net from 'node:net';
import type { ClusterChoice } from '../balance/registry.js';
import { proxyErrors } from '../http/errors.js';
import type { RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { forwardableTrailers, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { LeanExchange, Phase, type LeanEnv } from '../http/lean-exchange.js';
import type { AuthzDecision } from '../inbound/authz.js';
import { applyHeaderMutations } from '../route/headers.js';
import type { ForwardPlan } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import type { HeaderAdjust } from '../upstream/carry-out.js';
import { DownstreamGone, failedOutcome } from '../upstream/forward.js';
import { isIdempotent } from '../upstream/retry.js';
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
export interface ExchangeEnv extends LeanEnv {
  /** Keep-Alive: timeout=N, as node:http announces its keep-alive timeout. */
  readonly idleSeconds: number;
}

/** The client connection as an exchange sees it (fast-path.ts implements it). */
export interface Downstream {
  readonly socket: net.Socket;
  readonly info: ConnectionInfo;
  /** Aborted when the client connection closes (a circuit-breaker wait ends with it); made on
   *  first read, which only a wait does. */
  readonly signal: AbortSignal;
  /** The listener is draining: the response says Connection: close. */
  closing(): boolean;
  /** Stop / restart reading the client (request body backpressure). */
  pause(): void;
  resume(): void;
  /** The exchange is over; `keepAlive`: the connection may carry the next request. */
  exchangeDone(keepAlive: boolean): void;
}

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

/**
 * One request/response (the lifecycle: LeanExchange). Telemetry sees it as node:http's request
 * and response objects (their names, below and in LeanExchange).
 */
export class Exchange extends LeanExchange implements RawRequest, RawOutcome, BodySink {
  // ---- node:http's names, read by telemetry ----
  readonly headers: HeaderMap;
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  readonly socket: net.Socket;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;

  // ---- RawRequest ----
  readonly noResponseBody: boolean;
  cancelled: unknown = undefined;

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

  constructor(
    protected override readonly env: ExchangeEnv,
    private readonly down: Downstream,
    fwd: FastForward,
    head: RequestHead,
    private readonly framing: Framing,
  ) {
    super(env, fwd, head.method, head.target);
    this.headers = head.headers;
    this.socket = down.socket;
    this.noResponseBody = head.method === 'HEAD';
    this.requestEnded = framing === 'none';
    this.keepAlive = persistent(head);
  }

  get replayable(): boolean {
    return this.framing === 'none' && isIdempotent(this.method);
  }

  /** Starts the exchange: telemetry, upstream head, circuit breaker, then an endpoint. */
  start(): void {
    const { fwd } = this;
    const { info, plan } = fwd;
    // One clock reading for the record's start and, unless the breaker makes it wait, the try's.
    const now = performance.now();
    const rec = this.beginRecord(this.down.info, now);
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
    this.admit();
    this.acquire(this.down, now);
  }

  protected override slotRefused(err: unknown): void {
    this.fail(this.cancelled ?? err);
  }

  protected clientAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  /** The try: straight to the endpoint's pool (its lane), or through the shared pools. */
  protected send(target: UpstreamTarget, now: number): void {
    const { plan, info } = this.fwd;
    const lane = laneFor(target, now);
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
    this.noteTryFailed(err);
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
    this.succeeded();
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

  /** Ends the exchange before the response head, for `reason`, cancelling a try in flight. */
  protected giveUp(reason: unknown): void {
    if (this.phase === Phase.Done) return;
    this.cancelled = reason;
    if (this.phase === Phase.Waiting) {
      this.conn?.abort(reason);
      this.endTry(failedOutcome(reason, performance.now() - this.tryStart));
    }
    this.fail(reason, true);
  }

  /**
   * Before the response head: the failure becomes the client's answer (errors.ts decides), or
   * nothing when the client left. `deferRecord`: the try is still being cancelled, so telemetry
   * hears of the end a moment later (after the pool reported how the try ended).
   */
  protected fail(failure: unknown, deferRecord = false): void {
    if (this.phase === Phase.Done) return;
    this.settle();
    this.cancelled ??= failure;
    if (failure instanceof DownstreamGone) return this.finish(false, deferRecord);
    const answer = this.answerFor(failure);
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
  protected failStreaming(failure: unknown, clientGone: boolean): void {
    this.settle();
    this.endTry({ ok: false, latencyMs: this.latencyMs, cancelled: clientGone });
    this.response?.conn.abort(failure);
    if (!clientGone) {
      this.answerAfterHead(failure);
      releaseNow(this.socket); // the truncated response, then the reset
      this.socket.destroy();
    }
    this.finish(false);
  }

  private finish(finished: boolean, deferRecord = false): void {
    this.writableEnded = true;
    this.writableFinished = finished;
    this.endRecord(deferRecord);
    this.down.exchangeDone(finished && this.keepAlive && this.requestEnded);
  }
}
