// The outbound data path for one request, top to bottom: read the facts, plan against the
// snapshot taken now, carry the plan out. Requests from the local app, routed by Host /
// :authority; absolute-form requests for non-mesh hosts pass through (the app's HTTP_PROXY).
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { ProxyConfig } from '../state/types.js';
import type { NoRoutePlan } from '../route/types.js';
import { prepareBody } from '../http/body.js';
import { proxyErrors } from '../http/errors.js';
import { readRequest, splitAuthority, type DownstreamRequest, type DownstreamResponse, type RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { firstValue, upstreamRequestHeaders } from '../http/headers.js';
import type { ListenerCounters } from '../http/stats.js';
import { answerError, answerLocally, answerLocallyRaw, forwardPlan, tunnelPlan, type CarryOutDeps, type PlanFn } from '../upstream/carry-out.js';
import { forward } from '../upstream/forward.js';
import { fixedChooser } from '../upstream/target.js';
import type { UpstreamTarget } from '../upstream/types.js';
import { tunnel } from '../upstream/tunnel.js';
import { writeRawAnswer } from '../http/respond.js';
import type { Telemetry } from '../telemetry/index.js';

/** Everything one outbound request needs; built once per listener. */
export interface OutboundContext {
  readonly getConfig: () => ProxyConfig;
  readonly routeConfigName: string;
  readonly plan: PlanFn;
  readonly random: () => number;
  readonly outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  readonly deps: CarryOutDeps;
  readonly counters: ListenerCounters;
  /** The listener's own address, to refuse absolute-form requests that would loop back. */
  readonly self: () => { port: number } | undefined;
  /** Metrics, traces, access log, decision records (absent: off). */
  readonly telemetry?: Telemetry;
}

/** Stats and logs name pass-through traffic like Envoy does. */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';

/** One ordinary request (HTTP/1.1 or HTTP/2). Answers `res` in every case. */
export async function serveOutbound(ctx: OutboundContext, req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): Promise<void> {
  // 0. Telemetry records the request from here until its response closes.
  const rec = ctx.telemetry?.begin('outbound', req, res, conn);
  // 1. Read: authority (an absolute-form target wins over Host), origin-form path, headers.
  let info: RequestInfo;
  try {
    info = readRequest(req, conn.secure);
  } catch (err) {
    return answerError(res, err, false, ctx.counters);
  }
  rec?.read(info);
  // 2. Decide, on the config snapshot of this moment: the request finishes on it even if a
  //    new one is swapped in meanwhile.
  const config = ctx.getConfig();
  const plan = ctx.plan(config, ctx.routeConfigName, info.facts, ctx.random);
  rec?.planned(config, plan);
  // 3. Do what the plan says.
  switch (plan.kind) {
    case 'forward':
      return forwardPlan(plan, config, info, req, res, ctx.deps, { counters: ctx.counters });
    case 'direct':
    case 'redirect':
      return answerLocally(res, plan, info.grpc);
    case 'noRoute': {
      const refusal = refuseUnrouted(ctx, plan, info);
      if (refusal) return answerError(res, refusal, info.grpc, ctx.counters);
      return passThrough(ctx, info, req, res);
    }
  }
}

/** An HTTP/1.1 Upgrade or CONNECT request: the same decision, carried out as a byte tunnel. */
export async function tunnelOutbound(ctx: OutboundContext, req: http.IncomingMessage, socket: Duplex, head: Buffer, conn: ConnectionInfo): Promise<void> {
  let info: RequestInfo;
  try {
    info = readRequest(req, conn.secure);
  } catch (err) {
    return writeRawAnswer(socket, err);
  }
  const connect = info.method === 'CONNECT';
  const config = ctx.getConfig();
  const plan = ctx.plan(config, ctx.routeConfigName, info.facts, ctx.random);
  const tcp = ctx.telemetry?.beginTunnel('outbound', socket, conn);
  tcp?.planned(config, plan, info.authority);
  switch (plan.kind) {
    case 'forward':
      // A mesh Service: the peer sidecar terminates CONNECT (or forwards the Upgrade).
      await tunnelPlan(plan, config, info, socket, head, ctx.deps, { counters: ctx.counters, mode: connect ? 'connect-forward' : 'upgrade' });
      return tcp?.settled();
    case 'direct':
    case 'redirect':
      return answerLocallyRaw(socket, plan);
    case 'noRoute': {
      const refusal = refuseUnrouted(ctx, plan, info);
      if (refusal) return writeRawAnswer(socket, refusal);
      const target = passThroughTarget(ctx, info);
      if (target instanceof Error) return writeRawAnswer(socket, target);
      ctx.counters.passthrough++;
      await tunnel(
        {
          cluster: PASSTHROUGH_CLUSTER,
          choose: fixedChooser(target),
          mode: connect ? 'connect-terminate' : 'upgrade',
          method: info.method,
          path: info.path,
          authority: info.authority,
          headers: upstreamRequestHeaders(info.headers, info.scheme),
          upgrade: firstValue(info.headers, 'upgrade'),
        },
        socket,
        head,
        ctx.deps,
      );
      return tcp?.settled();
    }
  }
}

/**
 * Why an unrouted request is refused, or undefined when it may pass through: only a proxy-form
 * request (absolute-form or CONNECT) for a host that is not a mesh Service passes, and only
 * when the outbound policy allows any destination.
 */
function refuseUnrouted(ctx: OutboundContext, plan: NoRoutePlan, info: RequestInfo): Error | undefined {
  const proxyForm = info.absoluteForm || info.method === 'CONNECT';
  if (!proxyForm || plan.reason === 'no_route_match') return proxyErrors.noRoute(plan.authority, plan.reason, plan.detail);
  if (ctx.outboundPolicy === 'REGISTRY_ONLY') return proxyErrors.blackhole(plan.authority);
  return undefined;
}

/** The external host itself, reached in plaintext; refuses targets we cannot or must not reach. */
function passThroughTarget(ctx: OutboundContext, info: RequestInfo): UpstreamTarget | Error {
  if (info.scheme === 'https' && info.method !== 'CONNECT') {
    return proxyErrors.badRequest('absolute-form https:// targets are not supported; HTTPS clients must use CONNECT');
  }
  const hp = splitAuthority(info.authority, 80);
  if (!hp) return proxyErrors.badRequest(`invalid authority ${JSON.stringify(info.authority)}`);
  const self = ctx.self();
  if (self && hp.port === self.port && /^(127\.|localhost$|::1$|0\.0\.0\.0$)/.test(hp.host)) {
    return proxyErrors.badRequest(`request for ${info.authority} would loop back into this proxy`);
  }
  return { host: hp.host, port: hp.port, mesh: false, protocol: 'http1' };
}

/** An absolute-form request for a non-mesh host, forwarded to that host as it is. */
async function passThrough(ctx: OutboundContext, info: RequestInfo, req: DownstreamRequest, res: DownstreamResponse): Promise<void> {
  const target = passThroughTarget(ctx, info);
  if (target instanceof Error) return answerError(res, target, info.grpc, ctx.counters);
  ctx.counters.passthrough++;
  let body;
  try {
    body = await prepareBody(req, info.headers, { replay: false, limit: 0 });
  } catch {
    return;
  }
  await forward(
    {
      cluster: PASSTHROUGH_CLUSTER,
      choose: fixedChooser(target),
      method: info.method,
      path: info.path,
      authority: info.authority,
      scheme: info.scheme,
      headers: upstreamRequestHeaders(info.headers, info.scheme),
      body,
      responseHeaders: [],
      mirrors: [],
      grpc: info.grpc,
    },
    res,
    ctx.deps,
  );
}
