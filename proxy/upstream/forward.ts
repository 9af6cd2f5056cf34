// Carrying out a forward decision (the router): tries with retries and timeouts under the
// cluster's circuit breaker and retry budget, mirrors on the side, the response streamed back
// with its trailers. Both listeners use it; what to forward (endpoints, headers, body) is
// decided before, by the caller and the planner. Once response headers went to the client,
// nothing is retried: the retry loop ends when a response is accepted.
import { PassThrough, type Readable } from 'node:stream';
import type { HeaderMutation, RetryPolicy } from '../../api/domain.js';
import { delay } from '../../core/backoff.js';
import type { Logger } from '../../core/log.js';
import { applyHeaderMutations } from '../route/headers.js';
import { bodyForTry, isReplayable, type RequestBody } from '../http/body.js';
import { kindOf, proxyErrors, toClientAnswer } from '../http/errors.js';
import type { DownstreamResponse } from '../http/facts.js';
import { downstreamResponseHeaders, forwardableTrailers, type HeaderMap } from '../http/headers.js';
import { isH2Response, resetDownstream, sendAnswer } from '../http/respond.js';
import { countError, countResponse, type ClusterCounters, type ProxyStats } from '../http/stats.js';
import type { CircuitBreaker } from './circuit-breaker.js';
import type { UpstreamPools } from './pools.js';
import { retriableError, retriableResponse, retryBackoffMs } from './retry.js';
import type { EndpointChooser, PickedEndpoint } from './target.js';
import type { RequestOutcome } from '../balance/types.js';
import type { UpstreamResponse } from './types.js';

export interface ForwardDeps {
  readonly pools: UpstreamPools;
  readonly stats: ProxyStats;
  readonly log: Logger;
  readonly random: () => number;
}

/** One request to send to one cluster, everything already decided. */
export interface ForwardRequest {
  /** Cluster name, for stats, logs and error messages. */
  readonly cluster: string;
  readonly choose: EndpointChooser;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  /** Final upstream headers (hop-by-hop removed, proxy headers added, mutations applied). */
  readonly headers: HeaderMap;
  readonly body: RequestBody;
  /** Applied to the upstream response headers, in order. */
  readonly responseHeaders: readonly HeaderMutation[];
  /** Whole-request deadline: before headers → 504, after → reset. 0/undefined: none. */
  readonly timeoutMs?: number;
  readonly retry?: RetryPolicy;
  /** Shadow copies, fired and forgotten (only for bodies that are absent or buffered). */
  readonly mirrors: readonly { readonly cluster: string; readonly choose: EndpointChooser }[];
  readonly grpc: boolean;
  /** Inbound side: an upstream reset before headers resets the downstream too (so the peer
   *  sidecar's `reset` retry policy sees it) instead of answering 503. */
  readonly resetOnUpstreamReset?: boolean;
  /** The cluster's circuit breaker (and retry budget); absent for pass-through. */
  readonly breaker?: CircuitBreaker;
  /** The request's consistent-hash value, for clusters whose balancer hashes. */
  readonly hash?: number;
}

/** One try that produced the response being forwarded. */
interface Sent {
  readonly response: UpstreamResponse;
  readonly endpoint: PickedEndpoint;
  /** Try start → response headers. */
  readonly latencyMs: number;
}

/** Per request: whether it holds a retry slot in its cluster's breaker (from its first retry
 *  until it ends). */
interface RetryState {
  retrying: boolean;
}

/** Mirrors give up after this long when the route has no timeout. */
const MIRROR_TIMEOUT_MS = 30_000;

/** Why a request ended early when its client went away (no answer, flag DC). */
export class DownstreamGone extends Error {
  constructor() {
    super('downstream closed before the response was complete');
  }
}

/**
 * Sends `fr` upstream and streams the answer to `res`. Never throws: every failure becomes a
 * client answer (errors.ts) or a reset. Resolves when the exchange is over.
 */
export async function forward(fr: ForwardRequest, res: DownstreamResponse, deps: ForwardDeps): Promise<void> {
  const counters = deps.stats.cluster(fr.cluster);
  counters.requests++;
  counters.inFlight++;
  const started = Date.now();

  // Two ways a request ends early: the client goes away, or the route timeout fires. One
  // controller per request (hot path: no AbortSignal.any); its reason says which happened.
  const ended = new AbortController();
  const whole = ended.signal;
  const onClose = () => {
    if (!res.writableFinished) ended.abort(new DownstreamGone());
  };
  res.once('close', onClose);
  const timer =
    fr.timeoutMs && fr.timeoutMs > 0 ? setTimeout(() => ended.abort(proxyErrors.upstreamTimeout(fr.timeoutMs!)), fr.timeoutMs) : undefined;

  fr = fireMirrors(fr, deps);
  let status: number | undefined;
  let flag = '-';
  const retries: RetryState = { retrying: false };
  try {
    const sent = await sendWithRetries(fr, ended, counters, deps, retries);
    const { response } = sent;
    status = response.status;
    try {
      await streamResponse(fr, response, res, whole);
      countResponse(counters, response.status);
      endTry(fr, sent.endpoint, { ok: response.status < 500, latencyMs: sent.latencyMs, status: response.status });
    } catch (err) {
      // The body failed after the headers went out: the upstream's fault unless the client left.
      endTry(fr, sent.endpoint, { ok: false, latencyMs: sent.latencyMs, cancelled: whole.reason instanceof DownstreamGone });
      throw err;
    }
  } catch (err) {
    const failure = whole.aborted ? whole.reason : err;
    if (failure instanceof DownstreamGone) {
      // Nobody to answer: the client left. The upstream side was cancelled through the signal.
      flag = 'DC';
    } else {
      const answer = toClientAnswer(failure, { grpc: fr.grpc, responseStarted: res.headersSent, resetOnUpstreamReset: fr.resetOnUpstreamReset });
      if (answer.kind === 'reset' && res.headersSent) counters.resetsAfterHeaders++;
      else countError(counters.errors, kindOf(failure));
      flag = answer.flag;
      deps.log.debug('request failed', { cluster: fr.cluster, path: fr.path, flag, error: failure });
      sendAnswer(res, answer);
    }
  } finally {
    if (timer) clearTimeout(timer);
    if (retries.retrying) fr.breaker?.retryDone();
    res.removeListener('close', onClose);
    counters.inFlight--;
    // Access log (Envoy-like fields); debug level, so free unless asked for.
    deps.log.debug('access', { method: fr.method, authority: fr.authority, path: fr.path, cluster: fr.cluster, status, flag, ms: Date.now() - started });
  }
}

/** Ends a try: the balancer learns its outcome, the breaker gets its slot back. */
function endTry(fr: ForwardRequest, endpoint: PickedEndpoint, outcome: RequestOutcome): void {
  endpoint.done(outcome);
  fr.breaker?.release();
}

/** The outcome of a try that failed before response headers, for latency and outlier detection. */
export function failedOutcome(failure: unknown, latencyMs: number): RequestOutcome {
  // The client left, or we could not even form the request: nothing learned about the endpoint.
  const cancelled = failure instanceof DownstreamGone || kindOf(failure) === 'bad_request' || kindOf(failure) === 'internal';
  return { ok: false, latencyMs, cancelled };
}

/** Whether a retriable failure may be retried: attempts left, and (asked last, as it takes a
 *  slot) room in the cluster's retry budget for this request's first retry. */
function mayRetry(attempt: number, maxRetries: number, breaker: CircuitBreaker | undefined, rs: RetryState): boolean {
  if (attempt >= maxRetries) return false;
  if (!breaker || rs.retrying) return true;
  rs.retrying = breaker.reserveRetry();
  return rs.retrying;
}

/**
 * Tries endpoints until one answers in a way the retry policy accepts. Each try first takes a
 * slot under the cluster's circuit breaker (503 UO when it is open); the first retry also needs
 * room in the retry budget, else the last failure stands.
 */
async function sendWithRetries(fr: ForwardRequest, ended: AbortController, counters: ClusterCounters, deps: ForwardDeps, rs: RetryState): Promise<Sent> {
  const whole = ended.signal;
  const tried = new Set<string>();
  const policy = fr.retry;
  const maxRetries = policy && isReplayable(fr.body) ? policy.numRetries : 0;
  const breaker = fr.breaker;
  let lastError: unknown;
  for (let attempt = 0; ; attempt++) {
    if (breaker) {
      const wait = breaker.acquire(ended);
      if (wait) await wait;
    }
    const endpoint = fr.choose.pick(tried, fr.hash);
    if (!endpoint) {
      breaker?.release();
      throw lastError ?? proxyErrors.noHealthyUpstream(fr.cluster);
    }
    tried.add(endpoint.key);
    // A per-try timeout gets its own controller, which the whole request's end also aborts.
    const perTry = policy?.perTryTimeoutMs ? new AbortController() : undefined;
    const perTryTimer = perTry
      ? setTimeout(() => perTry.abort(proxyErrors.upstreamTimeout(policy!.perTryTimeoutMs!)), policy!.perTryTimeoutMs)
      : undefined;
    const forwardEnd = perTry ? () => perTry.abort(whole.reason) : undefined;
    if (forwardEnd) whole.addEventListener('abort', forwardEnd, { once: true });
    const started = Date.now();
    let response: UpstreamResponse | undefined;
    try {
      response = await deps.pools.request(endpoint.target, {
        method: fr.method,
        path: fr.path,
        authority: fr.authority,
        scheme: fr.scheme,
        headers: fr.headers,
        body: bodyForTry(fr.body),
        signal: perTry ? perTry.signal : whole,
      });
    } catch (err) {
      const failure = whole.aborted ? whole.reason : perTry?.signal.aborted ? perTry.signal.reason : err;
      endTry(fr, endpoint, failedOutcome(failure, Date.now() - started));
      if (whole.aborted) throw whole.reason;
      if (!policy || !retriableError(policy, kindOf(failure), fr.method) || !mayRetry(attempt, maxRetries, breaker, rs)) throw failure;
      lastError = failure;
    } finally {
      if (perTryTimer) clearTimeout(perTryTimer);
      if (forwardEnd) whole.removeEventListener('abort', forwardEnd);
    }
    if (response) {
      const latencyMs = Date.now() - started;
      if (!policy || !retriableResponse(policy, response.status, response.headers) || !mayRetry(attempt, maxRetries, breaker, rs)) {
        return { response, endpoint, latencyMs };
      }
      // A retriable answer: throw it away (never forwarded, so the client sees one response).
      response.body.destroy();
      endTry(fr, endpoint, { ok: false, latencyMs, status: response.status });
      lastError = undefined;
    }
    // Only a retriable outcome under a policy, with room in the budget, gets here.
    counters.retries++;
    await delay(retryBackoffMs(policy as RetryPolicy, attempt, deps.random), whole);
    if (whole.aborted) throw whole.reason;
  }
}

/** Response headers, body (with backpressure) and trailers to the client. Rejects when the
 *  upstream body fails or `signal` aborts; the caller turns that into a reset. */
async function streamResponse(fr: ForwardRequest, up: UpstreamResponse, res: DownstreamResponse, signal: AbortSignal): Promise<void> {
  const headers = applyHeaderMutations(downstreamResponseHeaders(up.headers), fr.responseHeaders);
  if (up.endStream && isH2Response(res)) {
    // Headers-only (gRPC trailers-only): keep it one HEADERS frame with END_STREAM.
    res.stream.respond({ ...headers, ':status': up.status }, { endStream: true });
    return;
  }
  res.writeHead(up.status, headers as Record<string, string | string[]>);
  if (up.endStream) {
    res.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const body = up.body;
    // HTTP/1.1: the head leaves with the first body bytes, in one write (h2 compat writeHead
    // sends at once). A body slow to start (long poll, server-sent events) must not hold the
    // head back: by the next turn of the event loop it goes alone (a no-op once it went).
    const flush = isH2Response(res) ? undefined : setImmediate(() => res.writableEnded || (res as { flushHeaders(): void }).flushHeaders());
    const cleanup = () => {
      if (flush) clearImmediate(flush);
      body.removeListener('end', onEnd);
      body.removeListener('error', onError);
      res.removeListener('close', onResClose);
      signal.removeEventListener('abort', onAbort);
    };
    const onEnd = () => {
      cleanup();
      const trailers = forwardableTrailers(up.trailers());
      // HTTP/1.1 can only carry trailers in a chunked body.
      if (Object.keys(trailers).length > 0 && (isH2Response(res) || headers['content-length'] === undefined)) {
        res.addTrailers(trailers as Record<string, string>);
      }
      res.end();
      resolve();
    };
    const onError = (err: Error) => {
      cleanup();
      reject(proxyErrors.upstreamReset(fr.cluster, err));
    };
    const onResClose = () => {
      cleanup();
      body.destroy();
      reject(signal.aborted ? signal.reason : new DownstreamGone());
    };
    const onAbort = () => {
      cleanup();
      body.destroy();
      reject(signal.reason);
    };
    body.once('end', onEnd);
    body.once('error', onError);
    res.once('close', onResClose);
    signal.addEventListener('abort', onAbort, { once: true });
    body.pipe(res as NodeJS.WritableStream, { end: false });
  });
}

/**
 * Shadow traffic: never awaited, never fails the primary. Envoy appends `-shadow` to the host.
 * Returns the request the primary goes on with: the same, or, for a streamed body, one that
 * reads the primary's share of the split body.
 */
function fireMirrors(fr: ForwardRequest, deps: ForwardDeps): ForwardRequest {
  if (fr.mirrors.length === 0) return fr;
  // A streamed body is split here, before anything reads it, so the primary loses nothing
  // however late its first try starts (a circuit breaker may hold it).
  const split = fr.body.kind === 'stream' ? splitBody(fr.body.source, fr.mirrors.length) : undefined;
  fr.mirrors.forEach((m, i) => {
    const counters = deps.stats.cluster(m.cluster);
    const endpoint = m.choose.pick(new Set());
    const copy = split?.copies[i];
    if (!endpoint) {
      counters.mirrorErrors++;
      copy?.destroy();
      return;
    }
    counters.mirrors++;
    const started = Date.now();
    deps.pools
      .request(endpoint.target, {
        method: fr.method,
        path: fr.path,
        authority: shadowAuthority(fr.authority),
        scheme: fr.scheme,
        headers: fr.headers,
        body: copy ?? bodyForTry(fr.body),
        signal: AbortSignal.timeout(fr.timeoutMs && fr.timeoutMs > 0 ? fr.timeoutMs : MIRROR_TIMEOUT_MS),
      })
      .then(
        (r) => {
          r.body.on('error', () => {});
          r.body.resume();
          endpoint.done({ ok: r.status < 500, latencyMs: Date.now() - started });
        },
        (err: unknown) => {
          counters.mirrorErrors++;
          endpoint.done({ ok: false, latencyMs: Date.now() - started });
          deps.log.debug('mirror failed', { cluster: m.cluster, error: err });
        },
      );
  });
  return split ? { ...fr, body: { kind: 'stream', source: split.primary } } : fr;
}

/** A streamed body as the primary's copy (which sets the pace) and one copy per mirror. */
function splitBody(source: Readable, mirrors: number): { primary: Readable; copies: Readable[] } {
  const primary = new PassThrough();
  source.pipe(primary);
  // pipe() does not pass on an aborted upload: the primary's try must see it fail.
  source.once('close', () => {
    if (!source.readableEnded) primary.destroy(new Error('downstream request body aborted'));
  });
  return { primary, copies: Array.from({ length: mirrors }, () => mirrorCopy(source)) };
}

/** How far a mirror may fall behind a streamed request body before it is cut off. */
const MIRROR_LAG_BYTES = 1024 * 1024;

/**
 * A copy of a streamed request body (gRPC, chunked, large) for one mirror. Only the primary's
 * pace counts: chunks are handed over without waiting, and a mirror more than
 * MIRROR_LAG_BYTES behind is cut off rather than slowing or buffering the primary.
 */
function mirrorCopy(source: Readable): Readable {
  const copy = new PassThrough();
  const cleanup = () => {
    source.removeListener('data', onData);
    source.removeListener('end', onEnd);
    source.removeListener('close', onClose);
  };
  const onData = (chunk: Buffer) => {
    if (copy.destroyed) return cleanup();
    if (copy.readableLength + copy.writableLength > MIRROR_LAG_BYTES) {
      cleanup();
      copy.destroy(new Error('mirror fell behind the request body'));
      return;
    }
    copy.write(chunk);
  };
  const onEnd = () => {
    cleanup();
    copy.end();
  };
  const onClose = () => {
    cleanup();
    if (!source.readableEnded) copy.destroy(new Error('downstream request body aborted'));
  };
  source.on('data', onData);
  source.once('end', onEnd);
  source.once('close', onClose);
  return copy;
}

/** `reviews:9080` → `reviews-shadow:9080`. */
export function shadowAuthority(authority: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(authority);
  return m ? `${m[1]}-shadow${m[2] ?? ''}` : `${authority}-shadow`;
}
