// The inbound listener: accepts peer sidecars (mTLS through the InboundTransport, or plaintext),
// HTTP/1.1 and HTTP/2 on one port, authorizes each request (RBAC) and forwards to the app. With a
// secure transport each connection is sniffed: TLS goes to it, plaintext is taken only where a
// filter chain accepts it (PERMISSIVE). Composed by proxy/main.ts.
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createLogger, type Logger } from '../../core/log.js';
import type { ProxyConfig } from '../state/types.js';
import { plan as realPlan } from '../route/plan.js';
import { createBalancers, type Balancers } from '../balance/registry.js';
import { DEFAULT_REPLAY_LIMIT } from '../http/body.js';
import { createHttpFrontend } from '../http/frontend.js';
import { ProxyStats } from '../http/stats.js';
import type { InboundTransport } from '../transport/index.js';
import { plainInboundTransport, plainUpstreamTransport } from '../transport/plain.js';
import type { PlanFn } from '../upstream/carry-out.js';
import type { Telemetry } from '../telemetry/index.js';
import { createUpstreamPools, type UpstreamPools } from '../upstream/pools.js';
import { rbacAuthorizer, type AuthorizeHook } from './authz.js';
import { plaintextRefusal } from './chain.js';
import { createDetectingServer } from './detect.js';
import { serveInbound, tunnelInbound, type InboundContext } from './handle.js';

export interface InboundListenerOptions {
  readonly port: number;
  /** Bind address; default 0.0.0.0 (peers come from the network). */
  readonly host?: string;
  readonly getConfig: () => ProxyConfig;
  /** Name of the inbound Listener in the snapshot. Default `inbound`. */
  readonly listenerName?: string;
  /** mTLS (MeshTls adapter) or plaintext (default). */
  readonly transport?: InboundTransport;
  /** Pools to the app; default: own plaintext pools. */
  readonly pools?: UpstreamPools;
  readonly balancers?: Balancers;
  readonly plan?: PlanFn;
  readonly stats?: ProxyStats;
  /** Metrics, traces, access log and decision records; absent: none. */
  readonly telemetry?: Telemetry;
  /** Our SPIFFE ID for XFCC `By=`; called per request (it changes on rotation only). */
  readonly ownIdentity?: () => string | undefined;
  /** Authorization; default: the chain's RBAC rules (AuthorizationPolicy). */
  readonly authorize?: AuthorizeHook;
  readonly log?: Logger;
  readonly random?: () => number;
  readonly maxReplayBodyBytes?: number;
  readonly drainTimeoutMs?: number;
}

export interface InboundListener {
  listen(): Promise<AddressInfo>;
  close(drainTimeoutMs?: number): Promise<void>;
  stats(): ReturnType<ProxyStats['snapshot']>;
  readonly address: AddressInfo | undefined;
}

export function createInboundListener(opts: InboundListenerOptions): InboundListener {
  const log = opts.log ?? createLogger('inbound');
  const random = opts.random ?? Math.random;
  const stats = opts.stats ?? new ProxyStats();
  const transport = opts.transport ?? plainInboundTransport;
  const ownPools = opts.pools === undefined;
  const pools = opts.pools ?? createUpstreamPools({ transport: plainUpstreamTransport, log: log.child('upstream') });
  const balancers = opts.balancers ?? createBalancers({ random });
  const counters = stats.listener('inbound');
  let address: AddressInfo | undefined;

  const ctx: InboundContext = {
    getConfig: opts.getConfig,
    listenerName: opts.listenerName ?? 'inbound',
    plan: opts.plan ?? realPlan,
    random,
    authorize: opts.authorize ?? rbacAuthorizer(log.child('rbac')),
    ownIdentity: opts.ownIdentity ?? (() => undefined),
    deps: { pools: opts.telemetry ? opts.telemetry.observePools(pools) : pools, balancers, stats, log, random, maxReplayBodyBytes: opts.maxReplayBodyBytes ?? DEFAULT_REPLAY_LIMIT },
    counters,
    telemetry: opts.telemetry,
  };

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
      request: (req, res, conn) => serveInbound(ctx, req, res, conn),
      tunnel: (req, socket, head, conn) => tunnelInbound(ctx, req, socket, head, conn),
    },
    counters,
    log,
  });

  return {
    async listen() {
      address = await frontend.listen(opts.port, opts.host ?? '0.0.0.0');
      log.info('inbound listener started', { address: `${address.address}:${address.port}`, secure: transport.secure });
      return address;
    },
    async close(drainTimeoutMs) {
      await frontend.close(drainTimeoutMs ?? opts.drainTimeoutMs ?? 5_000);
      if (ownPools) await pools.close();
    },
    stats: () => stats.snapshot(),
    get address() {
      return address;
    },
  };
}
