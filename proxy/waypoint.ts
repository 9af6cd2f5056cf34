// A waypoint's HBONE entry (`weft proxy --mode waypoint`): each CONNECT stream on 15008 names
// the Service VIP:port the client was going to; the stream is handed to the outbound listener as
// if the waypoint's own app had dialled that VIP, so the same captured-outbound path — protocol
// by Service port, Gateway API routes, retries, mirrors, telemetry — serves it, and upstream
// traffic leaves over HBONE to ambient pods (their endpoints say `tunnel: hbone`). Requests are
// authorized first: AuthorizationPolicies that target the Service, with the tunnel's identity.
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type { FilterChain } from '../api/domain.js';
import type { Logger } from '../core/log.js';
import type { OriginalDestination } from './capture/original-dst.js';
import { createHboneServer, type HboneServer } from './hbone/server.js';
import type { ProxyConfig } from './state/types.js';
import { vipListeners } from './capture/decide.js';
import { capturedPlan } from './capture/outbound.js';
import type { MeshTls } from './transport/tls.js';
import { evaluateRbac } from './inbound/authz.js';
import type { RequestFacts } from './route/types.js';
import type { PlanFn } from './upstream/carry-out.js';

const WAYPOINT_DST = Symbol('weft.waypoint.originalDst');
const WAYPOINT_PEER = Symbol('weft.waypoint.peer');
type Tagged = { [WAYPOINT_DST]?: OriginalDestination; [WAYPOINT_PEER]?: string };

/** The original destination a waypoint stream carries (`originalDst` of its captured outbound). */
export function waypointOriginalDst(socket: net.Socket): OriginalDestination | undefined {
  return (socket as unknown as Tagged)[WAYPOINT_DST];
}

/** The filter chains of the Service VIP listener `dst` names (none: no Service VIP of ours). */
function vipChains(config: ProxyConfig, dst: OriginalDestination): readonly FilterChain[] {
  const listener = vipListeners(config).get(`${dst.address.toLowerCase()}:${dst.port}`);
  return listener ? [...listener.filterChains, ...(listener.defaultFilterChain ? [listener.defaultFilterChain] : [])] : [];
}

/**
 * Why the waypoint refuses this request, or undefined: the RBAC of the Service's VIP listener
 * (AuthorizationPolicies that target the Service), with the caller's identity proven by its
 * HBONE tunnel and the request's method and path.
 */
export function waypointRefusal(config: ProxyConfig, dst: OriginalDestination, peer: string | undefined, facts: RequestFacts): string | undefined {
  const chain = vipChains(config, dst).find((c) => c.filter.kind === 'http');
  if (!chain) return undefined;
  const verdict = evaluateRbac(chain.filter.rbac, { identity: peer, method: facts.method, path: facts.path, port: dst.port });
  return verdict.allow ? undefined : verdict.reason;
}

/**
 * Why the waypoint refuses a stream to an L4 Service port, or undefined: the network RBAC of the
 * VIP listener's tcp_proxy chain (AuthorizationPolicies that target the Service, reduced to
 * what a byte stream has), with the caller's identity proven by its HBONE tunnel. A port
 * served as HTTP is authorized per request instead (waypointRefusal).
 */
export function waypointStreamRefusal(config: ProxyConfig, dst: OriginalDestination, peer: string | undefined, opts: { readonly detected?: boolean } = {}): string | undefined {
  const chains = vipChains(config, dst);
  const chain = chains.find((c) => c.filter.kind === 'tcp');
  if (!chain) return undefined;
  // A port of unknown protocol has an HTTP chain too: its streams are judged once found not to
  // be HTTP (`detected`, from the captured-outbound path), its requests one by one.
  if (!opts.detected && chains.some((c) => c.filter.kind === 'http')) return undefined;
  const verdict = evaluateRbac(chain.filter.rbac, { identity: peer, method: undefined, path: undefined, port: dst.port });
  return verdict.allow ? undefined : verdict.reason;
}

/** The captured-outbound path's streamRefusal in waypoint mode: a stream that arrived through
 *  HBONE, on a port of unknown protocol, found not to be HTTP. */
export function waypointDetectedStreamRefusal(getConfig: () => ProxyConfig): (socket: net.Socket, dst: OriginalDestination) => string | undefined {
  return (socket, dst) => {
    const tagged = socket as unknown as Tagged;
    if (!tagged[WAYPOINT_DST]) return undefined;
    return waypointStreamRefusal(getConfig(), dst, tagged[WAYPOINT_PEER], { detected: true });
  };
}

/**
 * The outbound listener's `planFor` in waypoint mode: requests that arrived through HBONE are
 * authorized before they are routed; a refusal is answered 403 as Envoy's RBAC filter does.
 */
export function waypointPlanFor(base: (socket: unknown) => PlanFn | undefined, log: Logger): (socket: unknown) => PlanFn | undefined {
  return (socket) => {
    const tagged = socket as Tagged | null | undefined;
    const dst = tagged?.[WAYPOINT_DST];
    if (!dst) return base(socket);
    const plan = base(socket) ?? capturedPlan(dst);
    const peer = tagged[WAYPOINT_PEER];
    return (config, name, facts, random) => {
      const p = plan(config, name, facts, random);
      if (p.kind === 'noRoute') return p;
      const refusal = waypointRefusal(config, dst, peer, facts);
      if (!refusal) return p;
      log.info('refused a request', { peer, to: `${dst.address}:${dst.port}`, method: facts.method, path: facts.path, reason: refusal });
      return { kind: 'direct', vhost: p.vhost, route: p.route, status: 403, body: 'RBAC: access denied\n', responseHeaders: [] };
    };
  };
}

/**
 * Two connected in-memory Duplex ends: what is written to one is read from the other, and
 * end() on one ends the other's readable side. The outbound listener gets one end as its
 * "connection"; the HBONE server relays the CONNECT stream to the other.
 */
export function duplexPair(): [Duplex, Duplex] {
  let aEnd!: Duplex;
  let bEnd!: Duplex;
  const make = (peer: () => Duplex) =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
      destroy(err, cb) {
        const other = peer();
        if (!other.destroyed) other.destroy(err ?? undefined);
        cb(err);
      },
    });
  aEnd = make(() => bEnd);
  bEnd = make(() => aEnd);
  // Socket-like no-ops the HTTP server and relays may call.
  for (const d of [aEnd, bEnd]) Object.assign(d, { setNoDelay() {}, setKeepAlive() {}, setTimeout() { return d; }, ref() {}, unref() {}, remoteAddress: '127.0.0.1', remotePort: 0 });
  return [aEnd, bEnd];
}

export interface WaypointEntryOptions {
  readonly meshTls: MeshTls;
  readonly getConfig: () => ProxyConfig;
  /** The outbound listener's (captured-mode) server: streams are emitted into it. */
  readonly outbound: () => net.Server | undefined;
  readonly log: Logger;
}

/** The waypoint's HBONE server (not yet listening). */
export function createWaypointEntry(opts: WaypointEntryOptions): HboneServer {
  return createHboneServer(
    opts.meshTls,
    async ({ target, peer }) => {
      const server = opts.outbound();
      if (!server) return { status: 503, reason: 'the waypoint is starting' };
      // Only Services this waypoint knows: anything else is not ours to route.
      if (!vipListeners(opts.getConfig()).has(`${target.host.toLowerCase()}:${target.port}`)) {
        return { status: 404, reason: `${target.host}:${target.port} is no Service VIP this waypoint serves` };
      }
      const dst: OriginalDestination = { address: target.host, port: target.port, family: target.host.includes(':') ? 6 : 4 };
      const refusal = waypointStreamRefusal(opts.getConfig(), dst, peer);
      if (refusal) {
        opts.log.info('refused a stream', { peer, to: `${target.host}:${target.port}`, reason: refusal });
        return { status: 403, reason: `denied by authorization policy: ${refusal}` };
      }
      const [app, upstream] = duplexPair();
      // Not the target as local address: captured-outbound reads "original = local" as "not
      // redirected" and would serve the stream as a direct (HTTP_PROXY) client.
      Object.assign(app, { [WAYPOINT_DST]: dst, [WAYPOINT_PEER]: peer });
      opts.log.debug('waypoint stream', { peer, to: `${target.host}:${target.port}` });
      server.emit('connection', app);
      return { status: 200, upstream };
    },
    { log: opts.log },
  );
}
