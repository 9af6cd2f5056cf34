// The outbound listener: one port for the local app's HTTP/1.1 and h2c calls, routed by the
// planner against the current config snapshot. Composed by proxy/main.ts; owns nothing it is
// given (pools, balancers, stats), closes what it had to create itself.
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { createLogger, type Logger } from '../../core/log.js';
import type { ProxyConfig } from '../state/types.js';
import { plan as realPlan } from '../route/plan.js';
import { createBalancers, type Balancers } from '../balance/registry.js';
import { DEFAULT_REPLAY_LIMIT } from '../http/body.js';
import { createHttpFrontend } from '../http/frontend.js';
import { ProxyStats } from '../http/stats.js';
import type { UpstreamTransport } from '../transport/index.js';
import { plainUpstreamTransport } from '../transport/plain.js';
import { createUpstreamPools, type UpstreamPools } from '../upstream/pools.js';
import { serveOutbound, tunnelOutbound, type OutboundContext } from './handle.js';
import type { PlanFn } from '../upstream/carry-out.js';
import type { Telemetry } from '../telemetry/index.js';

export interface OutboundListenerOptions {
  readonly port: number;
  /** Bind address; default 127.0.0.1 (the app is local). */
  readonly host?: string;
  /** The current snapshot; read once per request. */
  readonly getConfig: () => ProxyConfig;
  /** RDS name of the outbound routes. Default `outbound`. */
  readonly routeConfigName?: string;
  /** Mesh transport for clusters with TLS, used when `pools` is not given. Default plaintext. */
  readonly transport?: UpstreamTransport;
  /** Shared pools (the composition root may share them with other listeners). */
  readonly pools?: UpstreamPools;
  readonly balancers?: Balancers;
  /** The planner; default proxy/route/plan.ts. Injected by tests. */
  readonly plan?: PlanFn;
  /** Counters for the admin endpoint; pass one instance to both listeners. */
  readonly stats?: ProxyStats;
  /** Metrics, traces, access log and decision records; absent: none. */
  readonly telemetry?: Telemetry;
  /** Captured mode (proxy/capture): makes the listening server, which hands the connections that
   *  carry HTTP to `onSocket`. Default: a plain TCP server (every connection is HTTP). */
  readonly createServer?: (onSocket: (socket: net.Socket) => void) => net.Server;
  /** Captured mode: the planner for the requests of one connection (its original destination
   *  completes the Host); undefined = `plan`. Called per request with `req.socket`. */
  readonly planFor?: (socket: unknown) => PlanFn | undefined;
  /** ALLOW_ANY (default) passes unknown absolute-form/CONNECT hosts through; REGISTRY_ONLY refuses them (502). */
  readonly outboundPolicy?: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  readonly log?: Logger;
  /** [0,1) source for weighted choices, retries' jitter and balancers. Default Math.random. */
  readonly random?: () => number;
  /** Largest body buffered for retries/mirrors. Default 64 KiB. */
  readonly maxReplayBodyBytes?: number;
  /** close() without an argument waits this long for in-flight requests. Default 5 s. */
  readonly drainTimeoutMs?: number;
}

export interface OutboundListener {
  /** Binds and starts accepting. Resolves with the bound address (port 0 → the real port). */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets in-flight requests finish (up to `drainTimeoutMs`), closes every
   *  connection, then the pools/balancers it created itself. */
  close(drainTimeoutMs?: number): Promise<void>;
  /** The counters (all listeners sharing the same ProxyStats). */
  stats(): ReturnType<ProxyStats['snapshot']>;
  readonly address: AddressInfo | undefined;
}

export function createOutboundListener(opts: OutboundListenerOptions): OutboundListener {
  const log = opts.log ?? createLogger('outbound');
  const random = opts.random ?? Math.random;
  const stats = opts.stats ?? new ProxyStats();
  const ownPools = opts.pools === undefined;
  const pools = opts.pools ?? createUpstreamPools({ transport: opts.transport ?? plainUpstreamTransport, log: log.child('upstream') });
  const balancers = opts.balancers ?? createBalancers({ random });
  const counters = stats.listener('outbound');
  let address: AddressInfo | undefined;

  const ctx: OutboundContext = {
    getConfig: opts.getConfig,
    routeConfigName: opts.routeConfigName ?? 'outbound',
    plan: opts.plan ?? realPlan,
    random,
    outboundPolicy: opts.outboundPolicy ?? 'ALLOW_ANY',
    deps: { pools: opts.telemetry ? opts.telemetry.observePools(pools) : pools, balancers, stats, log, random, maxReplayBodyBytes: opts.maxReplayBodyBytes ?? DEFAULT_REPLAY_LIMIT },
    counters,
    self: () => address,
    telemetry: opts.telemetry,
  };

  const contextFor = (socket: unknown): OutboundContext => {
    const plan = opts.planFor?.(socket);
    return plan ? { ...ctx, plan } : ctx;
  };

  const frontend = createHttpFrontend({
    createServer: opts.createServer ?? ((onSocket) => net.createServer({ noDelay: true }, onSocket)),
    describe: () => ({ secure: false, peerIdentity: undefined, targetPort: undefined }),
    handlers: {
      request: (req, res, conn) => serveOutbound(contextFor(req.socket), req, res, conn),
      tunnel: (req, socket, head, conn) => tunnelOutbound(contextFor(socket), req, socket, head, conn),
    },
    counters,
    log,
  });

  return {
    async listen() {
      address = await frontend.listen(opts.port, opts.host ?? '127.0.0.1');
      log.info('outbound listener started', { address: `${address.address}:${address.port}` });
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
