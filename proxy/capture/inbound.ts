// The captured inbound side (15006): the inbound listener's mTLS transport, extended so that a
// peer's connection with ALPN `weft-tcp` is relayed to the app port named by its SNI as bytes;
// HTTP (h2 / http/1.1) goes on to the inbound HTTP data path as before, and plaintext beside it
// is the inbound listener's business (PERMISSIVE), as without capture.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { endpointsOf } from '../balance/registry.js';
import { evaluateRbac } from '../inbound/authz.js';
import { selectFilterChain } from '../inbound/chain.js';
import type { HboneAnswer, HboneRequest } from '../hbone/server.js';
import { countError, type ProxyStats } from '../http/stats.js';
import type { ProxyConfig } from '../state/types.js';
import type { InboundTransport, UpstreamTransport } from '../transport/index.js';
import { createMeshServer } from '../transport/mesh.js';
import type { MeshTls } from '../transport/tls.js';
import type { OriginalDestination } from './original-dst.js';
import { NOTHING_READ, relay, reset, WEFT_TCP_ALPN, type ClientStart, type TcpStreams } from './tcp.js';

/** Relays an accepted stream to the app's `port` (undefined: the peer did not say). */
export type ToApp = (socket: net.Socket, port: number | undefined, start: ClientStart, peer: string | undefined) => void;

/**
 * mTLS inbound: the TLS server the inbound listener puts behind its TLS/plaintext sniffing. A
 * plaintext client (PERMISSIVE) names its app port by the address it originally dialled.
 */
export function capturedMeshInbound(
  meshTls: MeshTls,
  base: InboundTransport,
  toApp: ToApp,
  originalDst: (socket: net.Socket) => OriginalDestination | undefined,
  log: Logger,
): InboundTransport {
  return {
    secure: true,
    createServer: (onSocket) =>
      createMeshServer(
        meshTls,
        log,
        (socket) => {
          if (socket.alpnProtocol === WEFT_TCP_ALPN) {
            return toApp(socket, meshTls.parseTargetPortFromSni(socket.servername), NOTHING_READ, meshTls.peerIdentity(socket));
          }
          onSocket(socket);
        },
        ['h2', 'http/1.1', WEFT_TCP_ALPN],
      ),
    peerIdentity: (socket) => base.peerIdentity(socket),
    targetPort: (socket) => base.targetPort(socket),
    plaintextTargetPort(socket) {
      try {
        const dst = originalDst(socket);
        return dst && dst.port !== socket.localPort ? dst.port : undefined;
      } catch (err) {
        log.debug('no original destination for a plaintext inbound connection', { error: err });
        return undefined;
      }
    },
  };
}

/** The app's address for `port`: the endpoint of the STATIC inbound cluster `inbound|port||`. */
export function appAddress(config: ProxyConfig, port: number): { host: string; port: number } | undefined {
  const cluster = config.clusters.get(`inbound|${port}||`);
  const e = cluster ? endpointsOf(config, cluster)[0] : undefined;
  return e ? { host: e.host, port: e.port } : undefined;
}

/**
 * Whether `peer` may open a TCP stream to `port`: the RBAC rules of the inbound filter chain
 * for that port (AuthorizationPolicy), with no method or path — so ALLOW rules that need them
 * never match a stream, and DENY rules that name them deny it on their other conditions
 * (inbound/authz.ts). Undefined = allowed, else the reason.
 */
export function tcpRefusal(config: ProxyConfig, listenerName: string, port: number, peer: string | undefined): string | undefined {
  const listener = config.listeners.get(listenerName);
  const chain = listener && selectFilterChain(listener, { targetPort: port, secure: true });
  if (!chain) return `no inbound filter chain serves port ${port}`;
  const decision = evaluateRbac(chain.filter.rbac, { identity: peer, method: undefined, path: undefined, port });
  return decision.allow ? undefined : `denied by authorization policy: ${decision.reason}`;
}

export interface TcpToAppDeps {
  readonly getConfig: () => ProxyConfig;
  /** The app hop (from 127.0.0.6). */
  readonly app: UpstreamTransport;
  readonly stats: ProxyStats;
  readonly streams: TcpStreams;
  readonly log: Logger;
  /** Name of the inbound Listener. Default `inbound`. */
  readonly listenerName?: string;
}

type AppStream =
  | { readonly kind: 'connected'; readonly upstream: Duplex; readonly counters: ReturnType<ProxyStats['cluster']> }
  | { readonly kind: 'refused'; readonly status: 403 | 404; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

/** Authorizes `peer`'s stream to our app's `port` and connects it (counted in `inbound|port||`). */
async function connectApp(deps: TcpToAppDeps, port: number | undefined, peer: string | undefined): Promise<AppStream> {
  const config = deps.getConfig();
  const counters = deps.stats.cluster(`inbound|${port ?? '?'}||`);
  counters.requests++;
  const target = port === undefined ? undefined : appAddress(config, port);
  const refusal = port === undefined || !target ? `this workload serves no port ${port ?? '(none named)'}` : tcpRefusal(config, deps.listenerName ?? 'inbound', port, peer);
  if (refusal || !target) {
    const denied = refusal?.startsWith('denied') === true;
    countError(counters.errors, denied ? 'permission_denied' : 'cluster_not_found');
    deps.log.info('refused a TCP stream', { port, peer: peer ?? 'unauthenticated', reason: refusal });
    return { kind: 'refused', status: denied ? 403 : 404, reason: refusal ?? 'refused' };
  }
  try {
    return { kind: 'connected', upstream: await deps.app.connect({ host: target.host, port: target.port, alpn: [] }), counters };
  } catch (err) {
    countError(counters.errors, 'upstream_connect');
    deps.log.warn('TCP stream to the app failed', { app: `${target.host}:${target.port}`, peer, error: err });
    return { kind: 'failed', reason: `the app at ${target.host}:${target.port} refused the connection` };
  }
}

/** A peer's authenticated TCP stream, authorized, then relayed to our app's `port`. */
export async function tcpToApp(deps: TcpToAppDeps, client: Duplex, port: number | undefined, start: ClientStart, peer: string | undefined): Promise<void> {
  const app = await connectApp(deps, port, peer);
  if (app.kind !== 'connected') return reset(client);
  if (client.destroyed) return void app.upstream.destroy();
  app.counters.inFlight++;
  relay(client, app.upstream, start, () => app.counters.inFlight--, deps.streams);
}

/**
 * A peer's HBONE tunnel to this sidecar (15008): its `:authority` port is our app's port, which
 * it may reach as over mTLS with ALPN weft-tcp (the same authorization, the same counters). The
 * authority's host is not dialled: a tunnel ends at our own app, whatever address it names.
 * The HBONE server relays the bytes.
 */
export async function hboneToApp(deps: TcpToAppDeps, req: HboneRequest): Promise<HboneAnswer> {
  const app = await connectApp(deps, req.target.port, req.peer);
  if (app.kind === 'refused') return { status: app.status, reason: app.reason };
  if (app.kind === 'failed') return { status: 503, reason: app.reason };
  app.counters.inFlight++;
  app.upstream.once('close', () => app.counters.inFlight--);
  return { status: 200, upstream: app.upstream };
}
