// The node proxy's outbound side for one pod (15001 inside the pod's netns): where a captured
// connection goes is decided from the config and its original destination alone (pure, tested
// by table), then carried out at L4 — HBONE to an ambient pod or a waypoint, mTLS to a sidecar,
// or the original destination unchanged. The node proxy never parses the bytes (that is what
// waypoints are for).
import type { Duplex } from 'node:stream';
import type { Listener } from '../../api/domain.js';
import type { Logger } from '../../core/log.js';
import type { Balancers } from '../balance/registry.js';
import { vipListeners } from '../capture/decide.js';
import type { OriginalDestination } from '../capture/original-dst.js';
import { connectToCluster, NOTHING_READ, relay, reset, type TcpStreams } from '../capture/tcp.js';
import type { ProxyConfig } from '../state/types.js';
import { AMBIENT_LISTENER_PREFIX, knownAddresses } from './workloads.js';

/** Prefix of the clusters of waypoints (a Service that uses one points its VIP there). */
export const WAYPOINT_CLUSTER_PREFIX = 'waypoint|';

export type AmbientDecision =
  /** A Service VIP:port: one endpoint of the cluster (a waypoint's cluster when it uses one). */
  | { readonly kind: 'service'; readonly cluster: string }
  /** A mesh pod addressed by its own IP. */
  | { readonly kind: 'pod'; readonly host: string; readonly port: number; readonly identity: string; readonly hbonePort?: number }
  /** Not in the mesh: to the original destination, unchanged. */
  | { readonly kind: 'passthrough' }
  /** No original destination: the connection was not redirected (someone dialled 15001). */
  | { readonly kind: 'refuse'; readonly reason: string };

/** Where a pod's captured connection to `dst` goes. Pure. */
export function decideAmbientOutbound(config: ProxyConfig, dst: OriginalDestination | undefined): AmbientDecision {
  if (!dst) return { kind: 'refuse', reason: 'no original destination (not a redirected connection)' };
  const vip = vipListeners(config).get(`${dst.address.toLowerCase()}:${dst.port}`);
  const cluster = vip && !vip.name.startsWith(AMBIENT_LISTENER_PREFIX) ? tcpCluster(vip) : undefined;
  if (cluster) return { kind: 'service', cluster };
  const known = knownAddresses(config).get(dst.address);
  if (known?.identity !== undefined) {
    return { kind: 'pod', host: dst.address, port: dst.port, identity: known.identity, ...(known.hbonePort !== undefined ? { hbonePort: known.hbonePort } : {}) };
  }
  return { kind: 'passthrough' };
}

function tcpCluster(l: Listener): string | undefined {
  for (const c of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]) {
    if (c.filter.kind === 'tcp') return c.filter.cluster;
  }
  return undefined;
}

/** One hop out of the pod: how the node proxy reaches a peer on the pod's behalf. */
export interface PodDialer {
  /** HBONE to `host:port` (the peer's 15008) proving `identity`, CONNECT to `authority`. */
  hbone(host: string, port: number, identity: string, authority: string, timeoutMs?: number): Promise<Duplex>;
  /** mTLS to a sidecar's inbound port, SNI naming the app port, ALPN weft-tcp. */
  sidecar(host: string, port: number, identity: string, targetPort: number, timeoutMs?: number): Promise<Duplex>;
  /** A plain TCP connection from inside the pod (marked: the pod's rules let it pass). */
  plain(host: string, port: number, timeoutMs?: number): Promise<Duplex>;
}

export interface AmbientOutboundDeps {
  readonly getConfig: () => ProxyConfig;
  readonly balancers: Balancers;
  readonly streams: TcpStreams;
  readonly log: Logger;
}

/** Carries out the decision for one captured connection of a pod. */
export async function ambientOutbound(deps: AmbientOutboundDeps, dial: PodDialer, client: Duplex, dst: OriginalDestination | undefined): Promise<void> {
  const config = deps.getConfig();
  const decision = decideAmbientOutbound(config, dst);
  const to = dst ? `${dst.address}:${dst.port}` : '?';
  switch (decision.kind) {
    case 'refuse':
      deps.log.info('refused an outbound connection', { reason: decision.reason });
      return reset(client);
    case 'passthrough':
      return carry(deps, client, () => dial.plain(dst!.address, dst!.port), to);
    case 'pod':
      return carry(
        deps,
        client,
        () =>
          decision.hbonePort !== undefined
            ? dial.hbone(decision.host, decision.hbonePort, decision.identity, `${decision.host}:${decision.port}`)
            : dial.plain(decision.host, decision.port),
        to,
      );
    case 'service':
      return toCluster(deps, dial, client, decision.cluster, dst!);
  }
}

async function carry(deps: AmbientOutboundDeps, client: Duplex, open: () => Promise<Duplex>, to: string): Promise<void> {
  try {
    const upstream = await open();
    if (client.destroyed) return void upstream.destroy();
    relay(client, upstream, NOTHING_READ, undefined, deps.streams);
  } catch (err) {
    deps.log.info('outbound connection failed', { to, error: err });
    reset(client);
  }
}

async function toCluster(deps: AmbientOutboundDeps, dial: PodDialer, client: Duplex, clusterName: string, dst: OriginalDestination): Promise<void> {
  const viaWaypoint = clusterName.startsWith(WAYPOINT_CLUSTER_PREFIX);
  const outcome = await connectToCluster(deps.balancers, deps.getConfig(), clusterName, client, deps.log, (t) => {
    const appPort = t.targetPort ?? t.port;
    // A waypoint is told where the client was going (the Service), a pod which app port.
    if (t.tunnel === 'hbone' && t.identity !== undefined) {
      return dial.hbone(t.host, t.port, t.identity, viaWaypoint ? `${dst.address}:${dst.port}` : `${t.host}:${appPort}`, t.connectTimeoutMs);
    }
    if (t.mesh && t.identity !== undefined) return dial.sidecar(t.host, t.port, t.identity, appPort, t.connectTimeoutMs);
    return dial.plain(t.host, appPort, t.connectTimeoutMs);
  });
  if (outcome.kind === 'connected') return relay(client, outcome.upstream, NOTHING_READ, undefined, deps.streams);
  if (outcome.kind === 'cancelled') return;
  if (outcome.kind === 'no_cluster') deps.log.warn('a Service VIP names a cluster the config does not have', { cluster: clusterName });
  else deps.log.warn('no endpoint reachable', { cluster: clusterName, tried: outcome.tried });
  reset(client);
}
