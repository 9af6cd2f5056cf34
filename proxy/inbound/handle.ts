// The inbound data path for one request, top to bottom: read the facts, choose the filter
// chain for the port the peer asked for, authorize, plan against the chain's routes, forward to
// the app with x-forwarded-client-cert set (or stripped). Upstream resets travel back as resets.
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import type { FilterChain } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { proxyErrors } from '../http/errors.js';
import { readRequest, type DownstreamRequest, type DownstreamResponse, type RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import type { HeaderMap } from '../http/headers.js';
import type { ListenerCounters } from '../http/stats.js';
import type { Plan } from '../route/types.js';
import { answerError, answerLocally, answerLocallyRaw, forwardPlan, tunnelPlan, type CarryOutDeps, type PlanFn } from '../upstream/carry-out.js';
import { writeRawAnswer } from '../http/respond.js';
import type { RequestRecord, Telemetry } from '../telemetry/index.js';
import type { AuthorizeHook } from './authz.js';
import { plaintextRefusal, routesFor, selectFilterChain } from './chain.js';
import { setClientCertHeader } from './xfcc.js';

export interface InboundContext {
  readonly getConfig: () => ProxyConfig;
  readonly listenerName: string;
  readonly plan: PlanFn;
  readonly random: () => number;
  readonly authorize: AuthorizeHook;
  /** This proxy's own SPIFFE ID (the `By=` of XFCC), if it has one yet. */
  readonly ownIdentity: () => string | undefined;
  readonly deps: CarryOutDeps;
  readonly counters: ListenerCounters;
  /** Metrics, traces, access log, decision records (absent: off). */
  readonly telemetry?: Telemetry;
}

/** The outcome of steps 1–4, shared by ordinary requests and tunnels. */
type Decision =
  | { readonly ok: true; readonly info: RequestInfo; readonly config: ProxyConfig; readonly plan: Plan; readonly adjust: (h: HeaderMap) => HeaderMap }
  | { readonly ok: false; readonly error: Error; readonly grpc: boolean; readonly refuse?: string };

function decide(ctx: InboundContext, req: DownstreamRequest, conn: ConnectionInfo, rec?: RequestRecord): Decision {
  // 1. Read. The mTLS hop is transparent: the app sees the scheme the original caller used.
  let info: RequestInfo;
  try {
    info = readRequest(req, false);
  } catch (err) {
    return { ok: false, error: err as Error, grpc: false };
  }
  rec?.read(info);
  // 2. The filter chain for the app port the peer asked for, in this moment's snapshot.
  const config = ctx.getConfig();
  const listener = config.listeners.get(ctx.listenerName);
  // A plaintext connection accepted under PERMISSIVE, while the config turned STRICT since.
  const refuse = !conn.secure && listener ? plaintextRefusal(listener, ctx.listenerName) : undefined;
  if (refuse) return { ok: false, error: proxyErrors.noFilterChain(ctx.listenerName, undefined), grpc: info.grpc, refuse };
  const chain: FilterChain | undefined = listener && selectFilterChain(listener, conn);
  const routes = chain && routesFor(config, chain);
  if (!chain || !routes) return { ok: false, error: proxyErrors.noFilterChain(ctx.listenerName, conn.targetPort), grpc: info.grpc };
  // 3. Authorize the peer for this request (before any routing work).
  const peer = { identity: conn.peerIdentity, address: conn.remoteAddress, secure: conn.secure, targetPort: conn.targetPort };
  const verdict = ctx.authorize(info.facts, peer, chain);
  rec?.authorized(verdict);
  if (!verdict.allow) return { ok: false, error: proxyErrors.permissionDenied(verdict.reason), grpc: info.grpc };
  // 4. Plan against the chain's routes.
  const plan = ctx.plan(routes.config, routes.name, info.facts, ctx.random);
  rec?.planned(config, plan);
  const own = ctx.ownIdentity();
  return { ok: true, info, config, plan, adjust: (h) => setClientCertHeader(h, conn.peerIdentity, own) };
}

/** One ordinary request from a peer sidecar (HTTP/1.1 or HTTP/2). Answers `res` in every case. */
export async function serveInbound(ctx: InboundContext, req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): Promise<void> {
  const d = decide(ctx, req, conn, ctx.telemetry?.begin('inbound', req, res, conn));
  if (!d.ok && d.refuse) return refusePlaintext(ctx, req.socket, conn, d.refuse);
  if (!d.ok) return answerError(res, d.error, d.grpc, ctx.counters);
  // 5. Carry the plan out: to the app (the chain's inbound cluster), or a local answer.
  switch (d.plan.kind) {
    case 'forward':
      return forwardPlan(d.plan, d.config, d.info, req, res, ctx.deps, { counters: ctx.counters, adjust: d.adjust, resetOnUpstreamReset: true });
    case 'direct':
    case 'redirect':
      return answerLocally(res, d.plan);
    case 'noRoute':
      return answerError(res, proxyErrors.noRoute(d.plan.authority, d.plan.reason, d.plan.detail), d.info.grpc, ctx.counters);
  }
}

/** Upgrade / CONNECT from a peer: the app is the last hop, so CONNECT is terminated here. */
export async function tunnelInbound(ctx: InboundContext, req: http.IncomingMessage, socket: Duplex, head: Buffer, conn: ConnectionInfo): Promise<void> {
  const d = decide(ctx, req, conn);
  if (!d.ok && d.refuse) return refusePlaintext(ctx, socket, conn, d.refuse);
  if (!d.ok) return writeRawAnswer(socket, d.error);
  switch (d.plan.kind) {
    case 'forward': {
      const tcp = ctx.telemetry?.beginTunnel('inbound', socket, conn);
      tcp?.planned(d.config, d.plan, d.info.authority);
      await tunnelPlan(d.plan, d.config, d.info, socket, head, ctx.deps, {
        counters: ctx.counters,
        mode: d.info.method === 'CONNECT' ? 'connect-terminate' : 'upgrade',
        adjust: d.adjust,
      });
      return tcp?.settled();
    }
    case 'direct':
    case 'redirect':
      return answerLocallyRaw(socket, d.plan);
    case 'noRoute':
      return writeRawAnswer(socket, proxyErrors.noRoute(d.plan.authority, d.plan.reason, d.plan.detail));
  }
}

/** STRICT refuses plaintext: the connection is closed, and the log says who and why. */
function refusePlaintext(ctx: InboundContext, socket: Duplex | null, conn: ConnectionInfo, reason: string): void {
  ctx.deps.log.warn('refused a plaintext connection', { client: conn.remoteAddress, reason });
  socket?.destroy();
}
