// The TCP data path of captured connections (Envoy's tcp_proxy): bytes to a mesh cluster over
// mTLS (ALPN `weft-tcp`, SNI = the app port behind the peer) or to the original destination
// (PassthroughCluster); the relay the server side (inbound.ts) uses too. Half-close is relayed;
// a reset on one side becomes a reset on the other.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { Balancers } from '../balance/registry.js';
import { countError, type ProxyStats } from '../http/stats.js';
import { LiveSet, type Slotted } from '../http/live-set.js';
import type { ProxyConfig } from '../state/types.js';
import type { UpstreamConnectTarget, UpstreamTransport } from '../transport/index.js';
import { clusterChooser } from '../upstream/target.js';
import type { UpstreamTarget } from '../upstream/types.js';
import { connectTcp } from '../transport/plain.js';
import { PASSTHROUGH_CLUSTER } from './decide.js';

export { connectTcp };

/** ALPN of a TCP stream between sidecars: the server side relays it to the app as bytes. */
export const WEFT_TCP_ALPN = 'weft-tcp';
/** Endpoints tried for one connection before the client is reset. */
const MAX_CONNECT_ATTEMPTS = 3;

/** Bytes already read from the client (while detecting), and whether it has half-closed. */
export interface ClientStart {
  readonly head: Buffer;
  readonly ended: boolean;
}

export const NOTHING_READ: ClientStart = Object.freeze({ head: Buffer.alloc(0), ended: false });

/** Resets a socket (RST) where the platform allows, else destroys it. */
export function reset(s: Duplex): void {
  const sock = s as net.Socket;
  if (typeof sock.resetAndDestroy === 'function' && !sock.destroyed) {
    try {
      sock.resetAndDestroy();
      return;
    } catch {
      // a TLS socket without a TCP handle: fall through
    }
  }
  s.destroy();
}

/**
 * The TCP relays in progress, so that a draining proxy can give them a deadline: the listeners'
 * servers only finish closing once every connection they accepted has ended.
 */
interface OpenStream extends Slotted {
  readonly client: Duplex;
}

export class TcpStreams {
  // Not a Set: its members churn with every connection (proxy/http/live-set.ts says why).
  private readonly open = new LiveSet<OpenStream>();
  private draining = false;

  /** Called once per relay with its client side. */
  add(client: Duplex): void {
    if (this.draining) return void client.destroy();
    const entry: OpenStream = { client, liveSlot: -1 };
    this.open.add(entry);
    client.once('close', () => this.open.delete(entry));
  }

  get size(): number {
    return this.open.size;
  }

  /** Lets open relays run for up to `deadlineMs`, then cuts what is left. */
  async drain(deadlineMs: number): Promise<void> {
    this.draining = true;
    const until = Date.now() + deadlineMs;
    while (this.open.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(50, deadlineMs)));
    for (const e of this.open.values()) {
      this.open.delete(e);
      e.client.destroy();
    }
  }
}

/** How long a side that was ended may take to flush its last bytes once the other has closed. */
const FLUSH_MS = 5_000;

/** Closes `s` — after its last bytes are out when the relay has already ended it. */
function closeAfterFlush(s: Duplex): void {
  if (s.destroyed) return;
  if (s.writableEnded && !s.writableFinished) {
    // The other side closed right after its FIN: what it sent may still sit in our buffer.
    // The timer goes with the flush: left running, it would hold the relay's whole connection
    // for FLUSH_MS, and under connection churn thousands of dead ones would outlive the young
    // generation (the old one grew by ~100 MiB at 3,500 new connections per second).
    const done = () => {
      clearTimeout(timer);
      s.destroy();
    };
    const timer = setTimeout(done, FLUSH_MS).unref();
    s.once('finish', done);
    s.once('error', done);
    return;
  }
  s.destroy();
}

/** Copies bytes both ways until both directions ended; an error on one side resets the other. */
export function relay(client: Duplex, upstream: Duplex, start: ClientStart, onClose?: () => void, streams?: TcpStreams): void {
  let closed = false;
  streams?.add(client);
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    closeAfterFlush(client);
    closeAfterFlush(upstream);
    onClose?.();
  };
  client.on('error', () => reset(upstream));
  upstream.on('error', () => reset(client));
  client.once('close', closeBoth);
  upstream.once('close', closeBoth);
  if (start.head.length > 0) upstream.write(start.head);
  if (start.ended) upstream.end();
  else client.pipe(upstream);
  upstream.pipe(client);
  client.resume();
}

/**
 * The plaintext UpstreamTransport of the proxy's hop to its own app: IPv4 connections leave
 * from 127.0.0.6 (INBOUND_PASSTHROUGH_SOURCE), which the capture rules never redirect again.
 * (IPv6 would need ::6 on lo; those connections leave from the default address.)
 */
export function appHopTransport(source4: string): UpstreamTransport {
  return Object.freeze({
    secure: false,
    connect: (t: UpstreamConnectTarget) =>
      connectTcp(t.host, t.port, { ...(net.isIPv4(t.host) ? { localAddress: source4 } : {}), timeoutMs: t.connectTimeoutMs ?? 10_000 }),
  });
}

export interface TcpDeps {
  readonly getConfig: () => ProxyConfig;
  readonly balancers: Balancers;
  /** mTLS to peer sidecars. */
  readonly mesh: UpstreamTransport;
  readonly stats: ProxyStats;
  readonly streams: TcpStreams;
  readonly log: Logger;
}

/**
 * A captured connection to a mesh Service port that is not HTTP: one endpoint of `clusterName`
 * (up to three tried), over mTLS with ALPN weft-tcp and the app port as SNI; a cluster without
 * TLS (mesh mTLS off) is reached at the app port itself, where the peer's capture takes it.
 */
export async function tcpToCluster(deps: TcpDeps, client: Duplex, clusterName: string, start: ClientStart): Promise<void> {
  const counters = deps.stats.cluster(clusterName);
  counters.requests++;
  const outcome = await connectToCluster(deps.balancers, deps.getConfig(), clusterName, client, deps.log, async (t) => {
    const upstream = t.mesh
      ? await deps.mesh.connect({ host: t.host, port: t.port, identity: t.identity, targetPort: t.targetPort, alpn: [WEFT_TCP_ALPN], connectTimeoutMs: t.connectTimeoutMs, tunnel: t.tunnel, authority: t.authority })
      : await connectTcp(t.host, t.targetPort ?? t.port, { timeoutMs: t.connectTimeoutMs ?? 10_000 });
    const alpn = (upstream as { alpnProtocol?: string | false }).alpnProtocol;
    // An HBONE stream has no ALPN of its own: the CONNECT itself says "raw bytes follow".
    if (t.mesh && t.tunnel !== 'hbone' && alpn !== WEFT_TCP_ALPN) {
      upstream.destroy();
      throw new Error(`peer ${t.host}:${t.port} did not accept ALPN ${WEFT_TCP_ALPN} (got ${String(alpn)}): an older sidecar?`);
    }
    return upstream;
  });
  if (outcome.kind === 'connected') {
    counters.inFlight++;
    return relay(client, outcome.upstream, start, () => counters.inFlight--, deps.streams);
  }
  if (outcome.kind === 'cancelled') return;
  countError(counters.errors, outcome.kind === 'no_cluster' ? 'cluster_not_found' : outcome.tried === 0 ? 'no_healthy_upstream' : 'upstream_connect');
  deps.log.warn(outcome.kind === 'no_cluster' ? 'captured TCP connection for a cluster the config does not have' : 'captured TCP connection: no endpoint reachable', {
    cluster: clusterName,
    ...(outcome.kind === 'failed' ? { tried: outcome.tried } : {}),
  });
  reset(client);
}

export type ClusterConnect =
  | { readonly kind: 'connected'; readonly upstream: Duplex }
  /** The client went away while we connected; the connection made was closed. */
  | { readonly kind: 'cancelled' }
  | { readonly kind: 'no_cluster' }
  | { readonly kind: 'failed'; readonly tried: number };

/**
 * One connection for `client` to an endpoint of `clusterName`: up to three endpoints tried, each
 * outcome reported to the cluster's balancer (latency, failure, cancellation). `connect` opens
 * the connection to one endpoint (mTLS, HBONE or plain: the caller's business).
 */
export async function connectToCluster(
  balancers: Balancers,
  config: ProxyConfig,
  clusterName: string,
  client: Duplex,
  log: Logger,
  connect: (target: UpstreamTarget) => Promise<Duplex>,
): Promise<ClusterConnect> {
  const choice = balancers.forCluster(config, clusterName);
  if (!choice) return { kind: 'no_cluster' };
  const chooser = clusterChooser(choice.cluster, choice.balancer);
  const tried = new Set<string>();
  for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
    const picked = chooser.pick(tried);
    if (!picked || tried.has(picked.key)) break;
    tried.add(picked.key);
    const t = picked.target;
    const started = Date.now();
    try {
      const upstream = await connect(t);
      if (client.destroyed) {
        upstream.destroy();
        picked.done({ ok: true, latencyMs: Date.now() - started, cancelled: true });
        return { kind: 'cancelled' };
      }
      picked.done({ ok: true, latencyMs: Date.now() - started });
      return { kind: 'connected', upstream };
    } catch (err) {
      picked.done({ ok: false, latencyMs: Date.now() - started });
      log.debug('connect to an endpoint failed', { cluster: clusterName, endpoint: `${t.host}:${t.port}`, error: err });
    }
  }
  return { kind: 'failed', tried: tried.size };
}

/** A captured connection to a non-mesh destination, forwarded there unchanged. */
export async function tcpPassthrough(
  deps: Pick<TcpDeps, 'stats' | 'log' | 'streams'>,
  client: Duplex,
  dst: { readonly address: string; readonly port: number },
  start: ClientStart,
): Promise<void> {
  const counters = deps.stats.cluster(PASSTHROUGH_CLUSTER);
  counters.requests++;
  try {
    const upstream = await connectTcp(dst.address, dst.port);
    if (client.destroyed) return void upstream.destroy();
    counters.inFlight++;
    relay(client, upstream, start, () => counters.inFlight--, deps.streams);
  } catch (err) {
    countError(counters.errors, 'upstream_connect');
    deps.log.debug('pass-through connect failed', { destination: `${dst.address}:${dst.port}`, error: err });
    reset(client);
  }
}
