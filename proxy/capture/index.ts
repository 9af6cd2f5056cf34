// Captured mode (pod networking), assembled in one place for proxy/main.ts: what the outbound
// and inbound listeners get instead of their local-mode defaults when iptables sends the pod's
// traffic to the proxy. See README "Pod networking" for the whole design.
import type net from 'node:net';
import type { Logger } from '../../core/log.js';
import { createBalancers, type Balancers } from '../balance/registry.js';
import type { ProxyStats } from '../http/stats.js';
import type { ProxyConfig } from '../state/types.js';
import type { InboundTransport, UpstreamTransport } from '../transport/index.js';
import type { MeshTls } from '../transport/tls.js';
import type { PlanFn } from '../upstream/carry-out.js';
import type { HboneHandler } from '../hbone/server.js';
import { capturedMeshInbound, hboneToApp, tcpToApp } from './inbound.js';
import { INBOUND_PASSTHROUGH_SOURCE } from './iptables.js';
import { assertOriginalDstAvailable, originalDst as kernelOriginalDst, type OriginalDestination } from './original-dst.js';
import { capturedOutboundServer, planForCaptured } from './outbound.js';
import { appHopTransport, TcpStreams } from './tcp.js';

export { WEFT_TCP_ALPN } from './tcp.js';
export { classify, sniff } from './detect.js';
export { originalDst, type OriginalDestination } from './original-dst.js';

/** Default wait for a client's first bytes on a port of unknown protocol. */
export const DEFAULT_DETECT_TIMEOUT_MS = 100;

export interface CaptureOptions {
  readonly meshTls: MeshTls;
  /** The proxy's mesh transports (transport/mesh.ts). */
  readonly transports: { readonly upstream: UpstreamTransport; readonly inbound: InboundTransport };
  readonly getConfig: () => ProxyConfig;
  readonly stats: ProxyStats;
  readonly outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  readonly detectTimeoutMs: number;
  readonly log: Logger;
  /** Where captured connections were going; default getsockopt(SO_ORIGINAL_DST). */
  readonly originalDst?: (socket: net.Socket) => OriginalDestination | undefined;
  /** See CapturedOutboundOptions.streamRefusal. */
  readonly streamRefusal?: (socket: net.Socket, dst: OriginalDestination) => string | undefined;
  readonly random?: () => number;
}

export interface Capture {
  /** Spread into createOutboundListener's options. */
  readonly outbound: {
    readonly createServer: (onSocket: (socket: net.Socket) => void) => net.Server;
    readonly planFor: (socket: unknown) => PlanFn | undefined;
    readonly balancers: Balancers;
  };
  /** The inbound listener's transport. */
  readonly inboundTransport: InboundTransport;
  /** `plainTransport` of the inbound pools: the hop to the app leaves from 127.0.0.6. */
  readonly appTransport: UpstreamTransport;
  /** The sidecar's HBONE listener (15008): a peer's tunnel to one of our app ports, authorized
   *  as its mTLS TCP streams are. */
  readonly hbone: HboneHandler;
  /** Lets the TCP relays run for up to `deadlineMs`, then cuts them (call it with the
   *  listeners' close: their servers finish closing only when these have ended). */
  drain(deadlineMs: number): Promise<void>;
}

/** Builds captured mode; throws at once (not on the first connection) when the
 *  original-destination addon is missing. */
export function createCapture(opts: CaptureOptions): Capture {
  const originalDst = opts.originalDst ?? kernelOriginalDst;
  if (!opts.originalDst) assertOriginalDstAvailable();
  const balancers = createBalancers(opts.random ? { random: opts.random } : {});
  const appTransport = appHopTransport(INBOUND_PASSTHROUGH_SOURCE[4]);
  const streams = new TcpStreams();
  const tcp = { getConfig: opts.getConfig, balancers, mesh: opts.transports.upstream, stats: opts.stats, streams, log: opts.log.child('tcp') };
  const toApp = { getConfig: opts.getConfig, app: appTransport, stats: opts.stats, streams, log: opts.log.child('inbound') };
  return {
    outbound: {
      createServer: capturedOutboundServer({
        ...tcp,
        originalDst,
        outboundPolicy: opts.outboundPolicy,
        detectTimeoutMs: opts.detectTimeoutMs,
        counters: () => opts.stats.listener('outbound'),
        log: opts.log.child('outbound'),
        ...(opts.streamRefusal ? { streamRefusal: opts.streamRefusal } : {}),
      }),
      planFor: planForCaptured,
      balancers,
    },
    inboundTransport: capturedMeshInbound(
      opts.meshTls,
      opts.transports.inbound,
      (socket, port, start, peer) => void tcpToApp(toApp, socket, port, start, peer),
      originalDst,
      opts.log.child('inbound'),
    ),
    appTransport,
    hbone: (req) => hboneToApp(toApp, req),
    drain: (deadlineMs) => streams.drain(deadlineMs),
  };
}
