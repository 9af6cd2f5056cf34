// Carrying out a Plan, the parts both listeners share: local answers (direct response,
// redirect, error), a forward plan turned into a ForwardRequest against the snapshot the
// request started with, and a forward plan carried as a byte tunnel (Upgrade / CONNECT).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '../state/types.js';
import type { DirectPlan, ForwardPlan, Plan, RedirectPlan, RequestFacts } from '../route/types.js';
import { applyHeaderMutations } from '../route/headers.js';
import type { Balancers } from '../balance/registry.js';
import { requestHash } from '../balance/hash.js';
import { prepareBody } from '../http/body.js';
import { grpcStatusForHttp, kindOf, proxyErrors, toClientAnswer } from '../http/errors.js';
import type { DownstreamRequest, DownstreamResponse, RequestInfo } from '../http/facts.js';
import { firstValue, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { sendAnswer, sendGrpcStatus, sendLocal, writeRawAnswer, writeRawResponse } from '../http/respond.js';
import { countError, type ListenerCounters } from '../http/stats.js';
import { forward, type ForwardDeps } from './forward.js';
import { clusterChooser, type EndpointChooser } from './target.js';
import { tunnel, type TunnelRequest } from './tunnel.js';
import { recordOf } from '../telemetry/record.js';

/** The planner's signature (proxy/route/plan.ts `plan`); injectable for tests. */
export type PlanFn = (config: ProxyConfig, routeConfigName: string, facts: RequestFacts, random: () => number) => Plan;

export interface CarryOutDeps extends ForwardDeps {
  readonly balancers: Balancers;
  /** Largest request body buffered so that retries and mirrors can resend it. */
  readonly maxReplayBodyBytes: number;
}

/** Listener-specific touches to the upstream headers, applied after the route's mutations
 *  (so a route cannot undo them): e.g. the inbound side's x-forwarded-client-cert. */
export type HeaderAdjust = (headers: HeaderMap) => HeaderMap;

/** Answers a failure that happened before anything was forwarded. */
export function answerError(res: DownstreamResponse, err: unknown, grpc: boolean, counters: ListenerCounters): void {
  countError(counters.localErrors, kindOf(err));
  recordOf(res)?.failedLocally(err);
  sendAnswer(res, toClientAnswer(err, { grpc, responseStarted: res.headersSent }));
}

/** A direct response or a redirect, with the route's response header mutations. A gRPC
 *  request gets a direct response as a gRPC status (trailers-only), as Envoy's local replies do. */
export function answerLocally(res: DownstreamResponse, plan: DirectPlan | RedirectPlan, grpc = false): void {
  if (plan.kind === 'direct' && grpc) {
    const message = plan.body.trim() || `HTTP ${plan.status} from route ${JSON.stringify(plan.route.name)}`;
    sendGrpcStatus(res, grpcStatusForHttp(plan.status), message, applyHeaderMutations({}, plan.responseHeaders));
    return;
  }
  if (plan.kind === 'direct') {
    const headers = applyHeaderMutations(plan.body ? { 'content-type': 'text/plain; charset=utf-8' } : {}, plan.responseHeaders);
    sendLocal(res, plan.status, headers, plan.body);
    return;
  }
  sendLocal(res, plan.status, applyHeaderMutations({ location: plan.location }, plan.responseHeaders), '');
}

/** The same, on a raw HTTP/1.1 socket (an Upgrade / CONNECT request that got a local answer). */
export function answerLocallyRaw(socket: Duplex, plan: DirectPlan | RedirectPlan): void {
  if (plan.kind === 'direct') {
    writeRawResponse(socket, plan.status, applyHeaderMutations({ 'content-type': 'text/plain; charset=utf-8' }, plan.responseHeaders), plan.body);
    return;
  }
  writeRawResponse(socket, plan.status, applyHeaderMutations({ location: plan.location }, plan.responseHeaders), '');
}

/** Sends a forward plan upstream and streams the answer back. Never throws. */
export async function forwardPlan(
  plan: ForwardPlan,
  config: ProxyConfig,
  info: RequestInfo,
  req: DownstreamRequest,
  res: DownstreamResponse,
  deps: CarryOutDeps,
  opts: { counters: ListenerCounters; adjust?: HeaderAdjust; resetOnUpstreamReset?: boolean },
): Promise<void> {
  const choice = deps.balancers.forCluster(config, plan.cluster);
  if (!choice) return answerError(res, proxyErrors.clusterNotFound(plan.cluster, plan.clusterNotFoundStatus), info.grpc, opts.counters);
  const mirrors: { cluster: string; choose: EndpointChooser }[] = [];
  for (const m of plan.mirrors) {
    const mc = deps.balancers.forCluster(config, m.cluster);
    if (mc) mirrors.push({ cluster: m.cluster, choose: clusterChooser(mc.cluster, mc.balancer) });
    else deps.stats.cluster(m.cluster).mirrorErrors++;
  }
  let body;
  try {
    body = await prepareBody(req, info.headers, { replay: plan.retry !== undefined || mirrors.length > 0, limit: deps.maxReplayBodyBytes });
  } catch {
    return; // the client went away while sending its (small) body: nobody to answer
  }
  let headers = applyHeaderMutations(upstreamRequestHeaders(info.headers, info.scheme), plan.requestHeaders);
  if (opts.adjust) headers = opts.adjust(headers);
  // Telemetry: trace context and peer header in, and the tries of this request observed.
  recordOf(res)?.sending(plan.cluster, plan.authority, headers);
  await forward(
    {
      cluster: plan.cluster,
      choose: clusterChooser(choice.cluster, choice.balancer),
      method: info.method,
      path: plan.path,
      authority: plan.authority,
      scheme: info.scheme,
      headers,
      body,
      responseHeaders: plan.responseHeaders,
      timeoutMs: plan.timeoutMs,
      retry: plan.retry,
      mirrors,
      grpc: info.grpc,
      resetOnUpstreamReset: opts.resetOnUpstreamReset,
      breaker: deps.pools.breaker(choice.cluster),
      hash: choice.cluster.hashKey ? requestHash(choice.cluster.hashKey, info.headers, req.socket?.remoteAddress) : undefined,
    },
    res,
    deps,
  );
}

/** Carries a forward plan for an Upgrade / CONNECT request as a byte tunnel. Never throws. */
export async function tunnelPlan(
  plan: ForwardPlan,
  config: ProxyConfig,
  info: RequestInfo,
  socket: Duplex,
  head: Buffer,
  deps: CarryOutDeps,
  opts: { counters: ListenerCounters; mode: TunnelRequest['mode']; adjust?: HeaderAdjust },
): Promise<void> {
  const choice = deps.balancers.forCluster(config, plan.cluster);
  if (!choice) {
    countError(opts.counters.localErrors, 'cluster_not_found');
    return writeRawAnswer(socket, proxyErrors.clusterNotFound(plan.cluster, plan.clusterNotFoundStatus));
  }
  let headers = applyHeaderMutations(upstreamRequestHeaders(info.headers, info.scheme), plan.requestHeaders);
  if (opts.adjust) headers = opts.adjust(headers);
  await tunnel(
    {
      cluster: plan.cluster,
      choose: clusterChooser(choice.cluster, choice.balancer),
      mode: opts.mode,
      method: info.method,
      path: plan.path,
      authority: plan.authority,
      headers,
      upgrade: firstValue(info.headers, 'upgrade'),
      hash: choice.cluster.hashKey ? requestHash(choice.cluster.hashKey, info.headers, socket instanceof net.Socket ? socket.remoteAddress : undefined) : undefined,
    },
    socket,
    head,
    deps,
  );
}
