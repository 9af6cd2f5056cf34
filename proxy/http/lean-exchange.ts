// The lifecycle both lean exchanges share (HTTP/1.1: proxy/http1/exchange.ts, HTTP/2:
// proxy/http2/exchange.ts), one plain forward from the routing decision to its end, as
// upstream/forward.ts carries one out: the telemetry record, the cluster's counters, the route's
// timeout, the circuit breaker's slot, one balancer pick (onStart, then onEnd once), and what a
// failure becomes for the client (http/errors.ts). Each protocol's exchange keeps only how its
// bytes or frames move, and how an answer or a reset is written.
import type { Endpoint } from '../../api/domain.js';
import { requestHash } from '../balance/hash.js';
import type { RequestOutcome } from '../balance/types.js';
import type { FastForward } from '../http1/exchange.js';
import type { RequestRecord, Telemetry } from '../telemetry/index.js';
import type { CarryOutDeps } from '../upstream/carry-out.js';
import type { Abortable, CircuitBreaker } from '../upstream/circuit-breaker.js';
import { failedOutcome } from '../upstream/forward.js';
import { targetFor } from '../upstream/target.js';
import type { UpstreamTarget } from '../upstream/types.js';
import { flagOf, kindOf, proxyErrors, toClientAnswer, type ClientAnswer } from './errors.js';
import type { DownstreamRequest, DownstreamResponse } from './facts.js';
import type { ConnectionInfo } from './frontend.js';
import type { HeaderMap } from './headers.js';
import { countError, countResponse, type ClusterCounters } from './stats.js';

export const enum Phase {
  Starting,
  /** The upstream request is out (or waits for a connection); no response head yet. */
  Waiting,
  /** The response head went to the client (or is on its way); the body follows. */
  Streaming,
  /** Answered, failed or complete. */
  Done,
}

/** What every exchange of one listener shares. */
export interface LeanEnv {
  readonly direction: 'outbound' | 'inbound';
  readonly deps: CarryOutDeps;
  readonly telemetry: Telemetry | undefined;
}

const NO_TRIES: ReadonlySet<string> = new Set();

/** The route's timeout fired (setTimeout's argument: no closure per request). */
function timedOut(exchange: LeanExchange): void {
  exchange.onTimeout();
}

/**
 * One request/response on a lean path. It is also the request and response objects telemetry
 * sees (node's names: method, url, statusCode, headersSent, setHeader…), and it reports its try,
 * bytes and end to its record itself (Telemetry.beginRaw). Methods, not closures: one exchange is
 * made per request.
 */
export abstract class LeanExchange {
  readonly method: string;
  readonly url: string;
  statusCode = 200;
  /** The endpoint of the try (set by the pick). */
  target!: UpstreamTarget;
  /** Fields set before the head (the decision record). */
  protected extra: HeaderMap | undefined;
  protected phase = Phase.Starting;
  protected rec: RequestRecord | undefined;
  protected counters!: ClusterCounters;
  private breaker: CircuitBreaker | undefined;
  private holdsSlot = false;
  /** The endpoint the balancer picked (its onStart was called; onEnd is due once). */
  private endpoint: Endpoint | undefined;
  protected tryEnded = false;
  /** performance.now() when the try started, and the time its response head took. */
  protected tryStart = 0;
  protected latencyMs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** Body bytes received and sent, for telemetry (it reads them when the exchange ends). */
  protected received = 0;
  protected sentBytes = 0;

  constructor(
    protected readonly env: LeanEnv,
    protected readonly fwd: FastForward,
    method: string,
    url: string,
  ) {
    this.method = method;
    this.url = url;
  }

  /** node's name: the response head is out (telemetry reads it). */
  abstract get headersSent(): boolean;

  /** res.setHeader, as telemetry refreshes the decision record before the head goes out. */
  setHeader(name: string, value: string): void {
    if (!this.headersSent) (this.extra ??= {})[name.toLowerCase()] = value;
  }

  // ---- what each protocol does ----

  /** The client's address (a hash policy may use it). */
  protected abstract clientAddress(): string | undefined;
  /** The try starts on `target`: the request goes out (`now`: the pick's clock reading). */
  protected abstract send(target: UpstreamTarget, now: number): void;
  /** Before the response head: `failure` becomes the client's answer (answerFor), or nothing
   *  when the client left. */
  protected abstract fail(failure: unknown): void;
  /** Ends the exchange before the response head for `reason`, cancelling a try in flight. */
  protected abstract giveUp(reason: unknown): void;
  /** After the response head: the client can only be told by a reset (or gRPC trailers). */
  protected abstract failStreaming(failure: unknown, clientGone: boolean): void;

  // ---- the lifecycle ----

  /** Telemetry's record, when it is on: the request as read, its verdict, its plan. */
  protected beginRecord(conn: ConnectionInfo, now: number): RequestRecord | undefined {
    const { env, fwd } = this;
    const rec = env.telemetry?.beginRaw(env.direction, this as unknown as DownstreamRequest, this as unknown as DownstreamResponse, conn, now);
    if (rec) {
      this.rec = rec;
      rec.read(fwd.info);
      if (fwd.verdict) rec.authorized(fwd.verdict);
      rec.planned(fwd.config, fwd.plan);
    }
    return rec;
  }

  /** The request counts as the cluster's (in flight until `settle`); the route's timer starts. */
  protected admit(): void {
    const plan = this.fwd.plan;
    const counters = (this.counters = this.env.deps.stats.cluster(plan.cluster));
    counters.requests++;
    counters.inFlight++;
    if (plan.timeoutMs !== undefined && plan.timeoutMs > 0) this.timer = setTimeout(timedOut, plan.timeoutMs, this);
  }

  /** A slot of the circuit breaker, then the pick: now, or once the breaker lets the request go
   *  (a wait ends with `signal`). */
  protected acquire(abort: Abortable, now: number): void {
    const breaker = (this.breaker = this.env.deps.pools.breaker(this.fwd.choice.cluster));
    let wait: Promise<void> | undefined;
    try {
      wait = breaker.acquire(abort);
    } catch (err) {
      return this.fail(err);
    }
    if (wait) wait.then(() => this.slotGranted(), (err: unknown) => this.slotRefused(err));
    else this.pick(now);
  }

  /** The breaker let a waiting request go (from a promise: a protocol may guard it). */
  protected slotGranted(): void {
    this.pick(performance.now());
  }

  /** The breaker's wait failed (overflow, or the client left). */
  protected slotRefused(err: unknown): void {
    this.fail(err);
  }

  /**
   * The balancer itself, as upstream/target.ts's chooser drives it (one pick, onStart, one
   * onEnd), without the chooser's objects: a lean request never tries a second endpoint.
   */
  protected pick(now: number): void {
    this.holdsSlot = true;
    if (this.phase === Phase.Done) return this.releaseSlot(); // gave up while waiting for it
    const { choice, plan, info } = this.fwd;
    const { balancer, cluster } = choice;
    const hashKey = cluster.hashKey;
    const endpoint = balancer.pick(NO_TRIES, hashKey ? requestHash(hashKey, info.headers, this.clientAddress()) : undefined);
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
    this.send(target, now);
  }

  /** @internal The route's timeout fired. */
  onTimeout(): void {
    this.timer = undefined;
    const timeout = proxyErrors.upstreamTimeout(this.fwd.plan.timeoutMs ?? 0);
    if (this.phase === Phase.Streaming) return this.failStreaming(timeout, false);
    this.giveUp(timeout);
  }

  /** A try failed before its head: it ends with the failure, which the client is told. */
  protected tryFailed(failure: unknown): void {
    if (this.phase === Phase.Done) return; // gave up first; the try was ended then
    this.endTry(failedOutcome(failure, performance.now() - this.tryStart));
    this.fail(failure);
  }

  /** The response is complete: counted, and the try ends with its status. */
  protected succeeded(): void {
    this.settle();
    countResponse(this.counters, this.statusCode);
    this.endTry({ ok: this.statusCode < 500, latencyMs: this.latencyMs, status: this.statusCode });
  }

  /** The exchange is over for the cluster: no longer in flight, no timer. */
  protected settle(): void {
    this.phase = Phase.Done;
    this.clearTimer();
    this.counters.inFlight--;
  }

  /** What the client is told of a failure before the response head (counted and logged). */
  protected answerFor(failure: unknown): ClientAnswer {
    const { info, plan } = this.fwd;
    const answer = toClientAnswer(failure, { grpc: info.grpc, responseStarted: false, resetOnUpstreamReset: this.fwd.resetOnUpstreamReset });
    const kind = kindOf(failure);
    countError(this.counters.errors, kind);
    const log = this.env.deps.log;
    (kind === 'internal' ? log.error : log.debug).call(log, 'request failed', { cluster: plan.cluster, path: plan.path, flag: answer.flag, error: failure });
    return answer;
  }

  /** The same after the head: a reset, or for gRPC its status in trailers (counted and logged). */
  protected answerAfterHead(failure: unknown): ClientAnswer {
    const { info, plan } = this.fwd;
    const answer = toClientAnswer(failure, { grpc: info.grpc, responseStarted: true });
    this.counters.resetsAfterHeaders++;
    const log = this.env.deps.log;
    (kindOf(failure) === 'internal' ? log.error : log.debug).call(log, 'response failed after its head', { cluster: plan.cluster, path: plan.path, flag: answer.flag, error: failure });
    return answer;
  }

  /** Telemetry's note of a failed try, as its pool observer would write it. */
  protected noteTryFailed(err: unknown): void {
    const rec = this.rec;
    rec?.tryFailed(err, rec.detailed ? `${flagOf(err)} ${kindOf(err)}` : undefined);
  }

  /** Ends the try once: the balancer learns its outcome, the breaker gets its slot back. */
  protected endTry(outcome: RequestOutcome): void {
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

  protected clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** The client's side is over: telemetry finishes the record with the bytes counted (`defer`:
   *  a moment later, once a try being cancelled was reported). */
  protected endRecord(defer = false): void {
    const rec = this.rec;
    if (!rec) return;
    if (!rec.knownRequestLength) rec.bytesReceived = this.received;
    rec.bytesSent = this.sentBytes;
    if (defer) setImmediate(recordEnded, rec);
    else recordEnded(rec);
  }
}

/** The response is over: telemetry finishes the record (as node:http's 'close' would). */
function recordEnded(rec: RequestRecord): void {
  rec.sink.ended(rec);
}
