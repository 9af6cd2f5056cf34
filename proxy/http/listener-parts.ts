// What the inbound and outbound listeners build the same way from their options — logger,
// randomness, counters, upstream pools and balancers (their own unless shared ones are given),
// the per-request dependencies — and the handle both return to the composition root.
import type { AddressInfo } from 'node:net';
import { createLogger, type Logger } from '../../core/log.js';
import { createFastPath, type FastDecide, type FastPath } from '../http1/fast-path.js';
import { createH2Path, type H2Decide, type H2Path } from '../http2/stream-path.js';
import { createBalancers, type Balancers } from '../balance/registry.js';
import type { Telemetry } from '../telemetry/index.js';
import type { UpstreamTransport } from '../transport/index.js';
import type { CarryOutDeps } from '../upstream/carry-out.js';
import { createUpstreamPools, type UpstreamPools } from '../upstream/pools.js';
import { DEFAULT_REPLAY_LIMIT } from './body.js';
import type { createHttpFrontend } from './frontend.js';
import { ProxyStats } from './stats.js';

/** Options both listeners take, with the same meaning and defaults. */
export interface ListenerCommonOptions {
  readonly port: number;
  /** Shared pools (the composition root may share them with other listeners); default: own. */
  readonly pools?: UpstreamPools;
  readonly balancers?: Balancers;
  /** Counters for the admin endpoint; pass one instance to both listeners. */
  readonly stats?: ProxyStats;
  /** Metrics, traces, access log and decision records; absent: none. */
  readonly telemetry?: Telemetry;
  readonly log?: Logger;
  /** [0,1) source for weighted choices, retries' jitter and balancers. Default Math.random. */
  readonly random?: () => number;
  /** Largest body buffered for retries/mirrors. Default 64 KiB. */
  readonly maxReplayBodyBytes?: number;
  /** close() without an argument waits this long for in-flight requests. Default 5 s. */
  readonly drainTimeoutMs?: number;
  /** HTTP/1.1 plain forwards take the byte-level fast path (proxy/http1). Default true. */
  readonly http1FastPath?: boolean;
  /** HTTP/2 plain forwards to HTTP/2 clusters take the lean stream path (proxy/http2). Default true. */
  readonly http2FastPath?: boolean;
}

/** A listener as the composition root sees it. */
export interface ProxyListener {
  /** Binds and starts accepting. Resolves with the bound address (port 0 → the real port). */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets in-flight requests finish (up to `drainTimeoutMs`), closes every
   *  connection, then the pools it created itself. */
  close(drainTimeoutMs?: number): Promise<void>;
  /** The counters (all listeners sharing the same ProxyStats). */
  stats(): ReturnType<ProxyStats['snapshot']>;
  readonly address: AddressInfo | undefined;
}

export function listenerParts(kind: 'inbound' | 'outbound', opts: ListenerCommonOptions, upstream: UpstreamTransport) {
  const log = opts.log ?? createLogger(kind);
  const random = opts.random ?? Math.random;
  const stats = opts.stats ?? new ProxyStats();
  const ownPools = opts.pools === undefined;
  const pools = opts.pools ?? createUpstreamPools({ transport: upstream, log: log.child('upstream') });
  const balancers = opts.balancers ?? createBalancers({ random });
  const deps: CarryOutDeps = {
    pools: opts.telemetry ? opts.telemetry.observePools(pools) : pools,
    balancers,
    stats,
    log,
    random,
    maxReplayBodyBytes: opts.maxReplayBodyBytes ?? DEFAULT_REPLAY_LIMIT,
  };
  return { log, random, stats, pools, ownPools, deps, counters: stats.listener(kind) };
}

/** The frontend's `fastPath` option: the listener's decision plugged into proxy/http1, unless
 *  turned off (`--http1-fast-path=false`). */
export function fastPathOption(
  opts: ListenerCommonOptions,
  parts: ReturnType<typeof listenerParts>,
  direction: 'inbound' | 'outbound',
  decide: FastDecide,
): ((idleTimeoutMs: number) => FastPath) | undefined {
  if (opts.http1FastPath === false) return undefined;
  return (idleTimeoutMs) =>
    createFastPath({ decide, idleTimeoutMs, env: { direction, deps: parts.deps, telemetry: opts.telemetry, idleSeconds: Math.floor(idleTimeoutMs / 1000) } });
}

/** The frontend's `h2Path` option: the listener's decision plugged into proxy/http2, unless
 *  turned off (`--http2-fast-path=false`). */
export function h2PathOption(
  opts: ListenerCommonOptions,
  parts: ReturnType<typeof listenerParts>,
  direction: 'inbound' | 'outbound',
  decide: H2Decide,
): H2Path | undefined {
  if (opts.http2FastPath === false) return undefined;
  return createH2Path({ decide, env: { direction, deps: parts.deps, telemetry: opts.telemetry } });
}

/** The handle over a listener's HTTP frontend; `onListening` records the bound address. */
export function listenerHandle(
  frontend: ReturnType<typeof createHttpFrontend>,
  parts: ReturnType<typeof listenerParts>,
  opts: ListenerCommonOptions,
  bind: { host: string; describe: (address: AddressInfo) => Record<string, unknown>; onListening: (address: AddressInfo) => void; message: string },
): ProxyListener {
  let address: AddressInfo | undefined;
  return {
    async listen() {
      address = await frontend.listen(opts.port, bind.host);
      bind.onListening(address);
      parts.log.info(bind.message, bind.describe(address));
      return address;
    },
    async close(drainTimeoutMs) {
      await frontend.close(drainTimeoutMs ?? opts.drainTimeoutMs ?? 5_000);
      if (parts.ownPools) await parts.pools.close();
    },
    stats: () => parts.stats.snapshot(),
    get address() {
      return address;
    },
  };
}
