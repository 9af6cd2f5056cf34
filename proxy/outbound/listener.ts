// The outbound listener: one port for the local app's HTTP/1.1 and h2c calls, routed by the
// planner against the current config snapshot. Plain forwards over HTTP/1.1 take the byte-level
// fast path (proxy/http1), plain forwards over HTTP/2 to HTTP/2 clusters the lean stream path
// (proxy/http2); everything else node:http / node:http2 and handle.ts. Composed by
// proxy/main.ts; owns nothing it is given (pools, balancers, stats), closes what it had to
// create itself.
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { ProxyConfig } from '../state/types.js';
import { plan as realPlan } from '../route/plan.js';
import { createHttpFrontend } from '../http/frontend.js';
import { readHttp1Request, readHttp2Fields, type RequestInfo } from '../http/facts.js';
import { fastPathOption, h2PathOption, listenerHandle, listenerParts, type ListenerCommonOptions, type ProxyListener } from '../http/listener-parts.js';
import { DrawRecorder, fastChoice, stashHandover, takeHandover } from '../http1/decide.js';
import type { FastForward } from '../http1/exchange.js';
import type { FastDecide } from '../http1/fast-path.js';
import { handoverKey, leanChoice } from '../http2/decide.js';
import type { H2Decide } from '../http2/stream-path.js';
import type { UpstreamTransport } from '../transport/index.js';
import { plainUpstreamTransport } from '../transport/plain.js';
import { serveOutbound, tunnelOutbound, type OutboundContext } from './handle.js';
import type { PlanFn } from '../upstream/carry-out.js';

export interface OutboundListenerOptions extends ListenerCommonOptions {
  /** Bind address; default 127.0.0.1 (the app is local). */
  readonly host?: string;
  /** The current snapshot; read once per request. */
  readonly getConfig: () => ProxyConfig;
  /** RDS name of the outbound routes. Default `outbound`. */
  readonly routeConfigName?: string;
  /** Mesh transport for clusters with TLS, used when `pools` is not given. Default plaintext. */
  readonly transport?: UpstreamTransport;
  /** The planner; default proxy/route/plan.ts. Injected by tests. */
  readonly plan?: PlanFn;
  /** Captured mode (proxy/capture): makes the listening server, which hands the connections that
   *  carry HTTP to `onSocket`. Default: a plain TCP server (every connection is HTTP). */
  readonly createServer?: (onSocket: (socket: net.Socket) => void) => net.Server;
  /** Captured mode: the planner for the requests of one connection (its original destination
   *  completes the Host); undefined = `plan`. Called per request with `req.socket`. */
  readonly planFor?: (socket: unknown) => PlanFn | undefined;
  /** ALLOW_ANY (default) passes unknown absolute-form/CONNECT hosts through; REGISTRY_ONLY refuses them (502). */
  readonly outboundPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

export type OutboundListener = ProxyListener;

export function createOutboundListener(opts: OutboundListenerOptions): OutboundListener {
  const parts = listenerParts('outbound', opts, opts.transport ?? plainUpstreamTransport);
  const { log, random, counters } = parts;
  let address: AddressInfo | undefined;

  const ctx: OutboundContext = {
    getConfig: opts.getConfig,
    routeConfigName: opts.routeConfigName ?? 'outbound',
    plan: opts.plan ?? realPlan,
    random,
    outboundPolicy: opts.outboundPolicy ?? 'ALLOW_ANY',
    deps: parts.deps,
    counters,
    self: () => address,
    telemetry: opts.telemetry,
  };

  /** `key`: where a fast path's decision about this request was kept (handoverKey). */
  const contextFor = (socket: unknown, key: unknown = socket): OutboundContext => {
    const plan = opts.planFor?.(socket);
    const c = plan ? { ...ctx, plan } : ctx;
    const handover = takeHandover(key, c.random);
    return handover ? { ...c, random: handover.random } : c;
  };

  // The fast paths' question, per request: a plain forward to a cluster of their protocol
  // (`choose`)? Everything else (local answers, pass-through, mirrors, retries) is handle.ts's,
  // which plans again with the draws kept on `stash`.
  const recorder = new DrawRecorder();
  const route = (c: OutboundContext, info: RequestInfo, stash: object, choose: typeof fastChoice): FastForward | undefined => {
    const config = c.getConfig();
    const plan = c.plan(config, c.routeConfigName, info.facts, recorder.start(c.random));
    const choice = choose(plan, config, c.deps.balancers);
    if (!choice || plan.kind !== 'forward') {
      stashHandover(stash, { draws: recorder.draws });
      return undefined;
    }
    return { info, config, plan, choice, resetOnUpstreamReset: false };
  };
  // HTTP/1.1 to HTTP/1.1 clusters (gRPC over HTTP/1.1 is node:http's to refuse).
  const decide: FastDecide = (head, conn, socket) => {
    const c = contextFor(socket);
    const info = readHttp1Request(head.method, head.target, head.headers, conn.secure);
    return info.grpc ? undefined : route(c, info, socket, fastChoice);
  };
  // HTTP/2 (gRPC included) to HTTP/2 clusters.
  const decideH2: H2Decide = (fields, conn, socket, stream) =>
    route(contextFor(socket), readHttp2Fields(fields, conn.secure), stream, leanChoice);

  const frontend = createHttpFrontend({
    createServer: opts.createServer ?? ((onSocket) => net.createServer({ noDelay: true }, onSocket)),
    describe: () => ({ secure: false, peerIdentity: undefined, targetPort: undefined }),
    handlers: {
      request: (req, res, conn) => serveOutbound(contextFor(req.socket, handoverKey(req)), req, res, conn),
      tunnel: (req, socket, head, conn) => tunnelOutbound(contextFor(socket), req, socket, head, conn),
    },
    counters,
    log,
    fastPath: fastPathOption(opts, parts, 'outbound', decide),
    h2Path: h2PathOption(opts, parts, 'outbound', decideH2),
  });

  return listenerHandle(frontend, parts, opts, {
    host: opts.host ?? '127.0.0.1',
    message: 'outbound listener started',
    describe: (a) => ({ address: `${a.address}:${a.port}` }),
    onListening: (a) => (address = a),
  });
}
