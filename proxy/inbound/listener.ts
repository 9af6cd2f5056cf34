// The inbound listener: accepts peer sidecars (mTLS through the InboundTransport, or plaintext),
// HTTP/1.1 and HTTP/2 on one port, authorizes each request (RBAC) and forwards to the app. With a
// secure transport each connection is sniffed: TLS goes to it, plaintext is taken only where a
// filter chain accepts it (PERMISSIVE). Plain forwards over HTTP/1.1 take the byte-level fast
// path (proxy/http1), plain forwards over HTTP/2 to an HTTP/2 app port the lean stream path
// (proxy/http2), after the same chain selection and authorization. Composed by proxy/main.ts.
import type net from 'node:net';
import tls from 'node:tls';
import type { ProxyConfig } from '../state/types.js';
import { plan as realPlan } from '../route/plan.js';
import { createHttpFrontend } from '../http/frontend.js';
import { readHttp1Request, readHttp2Fields, type RequestInfo } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { fastPathOption, h2PathOption, listenerHandle, listenerParts, type ListenerCommonOptions, type ProxyListener } from '../http/listener-parts.js';
import { DrawRecorder, fastChoice, stashHandover, takeHandover } from '../http1/decide.js';
import type { FastForward } from '../http1/exchange.js';
import type { FastDecide } from '../http1/fast-path.js';
import { handoverKey, leanChoice } from '../http2/decide.js';
import type { H2Decide } from '../http2/stream-path.js';
import type { InboundTransport } from '../transport/index.js';
import { plainInboundTransport, plainUpstreamTransport } from '../transport/plain.js';
import type { PlanFn } from '../upstream/carry-out.js';
import { rbacAuthorizer, type AuthorizeHook } from './authz.js';
import { plaintextRefusal, routesFor, selectFilterChain } from './chain.js';
import { createDetectingServer } from './detect.js';
import { serveInbound, tunnelInbound, type InboundContext } from './handle.js';
import { clientCertAdjust } from './xfcc.js';

export interface InboundListenerOptions extends ListenerCommonOptions {
  /** Bind address; default 0.0.0.0 (peers come from the network). */
  readonly host?: string;
  readonly getConfig: () => ProxyConfig;
  /** Name of the inbound Listener in the snapshot. Default `inbound`. */
  readonly listenerName?: string;
  /** mTLS (MeshTls adapter) or plaintext (default). */
  readonly transport?: InboundTransport;
  readonly plan?: PlanFn;
  /** Our SPIFFE ID for XFCC `By=`; called per request (it changes on rotation only). */
  readonly ownIdentity?: () => string | undefined;
  /** Authorization; default: the chain's RBAC rules (AuthorizationPolicy). */
  readonly authorize?: AuthorizeHook;
}

export type InboundListener = ProxyListener;

export function createInboundListener(opts: InboundListenerOptions): InboundListener {
  // Pools to the app are plaintext (the app hop never leaves the pod / host) unless given.
  const parts = listenerParts('inbound', opts, plainUpstreamTransport);
  const { log, random, counters } = parts;
  const transport = opts.transport ?? plainInboundTransport;

  const ctx: InboundContext = {
    getConfig: opts.getConfig,
    listenerName: opts.listenerName ?? 'inbound',
    plan: opts.plan ?? realPlan,
    random,
    authorize: opts.authorize ?? rbacAuthorizer(log.child('rbac')),
    ownIdentity: opts.ownIdentity ?? (() => undefined),
    deps: parts.deps,
    counters,
    telemetry: opts.telemetry,
  };

  /** `key`: where a fast path's decision about this request was kept (handoverKey). */
  const contextFor = (key: unknown): InboundContext => {
    const handover = takeHandover(key, ctx.random);
    if (!handover) return ctx;
    // The fast path asked authorization already (it logs denials): its verdict stands.
    const verdict = handover.verdict;
    let asked = verdict === undefined;
    const authorize: AuthorizeHook = (...args) => (asked ? ctx.authorize(...args) : ((asked = true), verdict!));
    return { ...ctx, random: handover.random, authorize };
  };

  // The fast paths' question, per request: handle.ts's steps 1-4 (read, filter chain,
  // authorization, plan) and a plain forward to a cluster of their protocol (`choose`) at the end
  // of them. Any refusal or local answer is left to handle.ts, which says it the usual way.
  const recorder = new DrawRecorder();
  const route = (info: RequestInfo, conn: ConnectionInfo, stash: object, choose: typeof fastChoice): FastForward | undefined => {
    const config = ctx.getConfig();
    const listener = config.listeners.get(ctx.listenerName);
    if (!listener || (!conn.secure && plaintextRefusal(listener, ctx.listenerName))) return undefined;
    const chain = selectFilterChain(listener, conn);
    const routes = chain && routesFor(config, chain);
    if (!chain || !routes) return undefined;
    const verdict = ctx.authorize(info.facts, { identity: conn.peerIdentity, address: conn.remoteAddress, secure: conn.secure, targetPort: conn.targetPort }, chain);
    if (!verdict.allow) {
      stashHandover(stash, { draws: [], verdict });
      return undefined;
    }
    const plan = ctx.plan(routes.config, routes.name, info.facts, recorder.start(ctx.random));
    const choice = choose(plan, config, ctx.deps.balancers);
    if (!choice || plan.kind !== 'forward') {
      stashHandover(stash, { draws: recorder.draws, verdict });
      return undefined;
    }
    const own = ctx.ownIdentity();
    return { info, config, plan, choice, verdict, adjust: clientCertAdjust(conn.peerIdentity, own), resetOnUpstreamReset: true };
  };
  // HTTP/1.1 to HTTP/1.1 app ports (gRPC over HTTP/1.1 is node:http's to refuse).
  const decide: FastDecide = (head, conn, socket) => {
    const info = readHttp1Request(head.method, head.target, head.headers, false);
    return info.grpc ? undefined : route(info, conn, socket, fastChoice);
  };
  // HTTP/2 (gRPC included) to HTTP/2 app ports.
  const decideH2: H2Decide = (fields, conn, _socket, stream) => route(readHttp2Fields(fields, false), conn, stream, leanChoice);

  // A TLS transport takes TLS; plaintext beside it is decided per connection by the config.
  const plaintext = new WeakSet<net.Socket>();
  const createServer = (onSocket: (socket: net.Socket) => void): net.Server => {
    const server = transport.createServer(onSocket);
    if (!(server instanceof tls.Server)) return server;
    return createDetectingServer({
      tlsServer: server,
      onPlaintext: (socket) => {
        plaintext.add(socket);
        onSocket(socket);
        socket.resume(); // paused while peeking; the HTTP frontend is listening now
      },
      refusePlaintext: () => plaintextRefusal(opts.getConfig().listeners.get(ctx.listenerName), ctx.listenerName),
      log,
    });
  };

  const frontend = createHttpFrontend({
    createServer,
    describe: (socket) => {
      const secure = transport.secure && !plaintext.has(socket);
      return {
        secure,
        peerIdentity: secure ? transport.peerIdentity(socket) : undefined,
        targetPort: secure ? transport.targetPort(socket) : transport.plaintextTargetPort?.(socket),
      };
    },
    handlers: {
      request: (req, res, conn) => serveInbound(contextFor(handoverKey(req)), req, res, conn),
      tunnel: (req, socket, head, conn) => tunnelInbound(contextFor(socket), req, socket, head, conn),
    },
    counters,
    log,
    fastPath: fastPathOption(opts, parts, 'inbound', decide),
    h2Path: h2PathOption(opts, parts, 'inbound', decideH2),
  });

  return listenerHandle(frontend, parts, opts, {
    host: opts.host ?? '0.0.0.0',
    message: 'inbound listener started',
    describe: (a) => ({ address: `${a.address}:${a.port}`, secure: transport.secure }),
    onListening: () => {},
  });
}
