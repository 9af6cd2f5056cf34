// The inbound listener: accepts peer sidecars (mTLS through the InboundTransport, or plaintext),
// HTTP/1.1 and HTTP/2 on one port, and forwards to the app. Composed by proxy/main.ts.
import type { AddressInfo } from 'node:net';
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
import { createUpstreamPools, type UpstreamPools } from '../upstream/pools.js';
import { allowAll, type AuthorizeHook } from './authz.js';
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
  /** Our SPIFFE ID for XFCC `By=`; called per request (it changes on rotation only). */
  readonly ownIdentity?: () => string | undefined;
  /** Authorization; default allow all. */
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
    authorize: opts.authorize ?? allowAll,
    ownIdentity: opts.ownIdentity ?? (() => undefined),
    deps: { pools, balancers, stats, log, random, maxReplayBodyBytes: opts.maxReplayBodyBytes ?? DEFAULT_REPLAY_LIMIT },
    counters,
  };

  const frontend = createHttpFrontend({
    createServer: (onSocket) => transport.createServer(onSocket),
    describe: (socket) => ({
      secure: transport.secure,
      peerIdentity: transport.peerIdentity(socket),
      targetPort: transport.targetPort(socket),
    }),
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
