// The captured outbound listener (15001): every TCP connection the app makes arrives here. Its
// original destination picks the path — HTTP into the outbound listener's HTTP data path, TCP
// to a mesh cluster over mTLS, or pass-through — and HTTP requests on it are routed by Host,
// falling back to the Service the destination VIP:port names.
import net from 'node:net';
import type { Logger } from '../../core/log.js';
import type { ListenerCounters } from '../http/stats.js';
import { plan as realPlan } from '../route/plan.js';
import type { RequestFacts } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import type { PlanFn } from '../upstream/carry-out.js';
import { decideOutbound, type OutboundDecision } from './decide.js';
import { sniff } from './detect.js';
import type { OriginalDestination } from './original-dst.js';
import { NOTHING_READ, reset, tcpPassthrough, tcpToCluster, type TcpDeps } from './tcp.js';

const ORIGINAL_DST = Symbol.for('weft.capture.originalDst');
const PLAN = Symbol.for('weft.capture.plan');
type Tagged = { [ORIGINAL_DST]?: OriginalDestination; [PLAN]?: PlanFn };

export interface CapturedOutboundOptions extends TcpDeps {
  readonly originalDst: (socket: net.Socket) => OriginalDestination | undefined;
  readonly outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** How long to wait for the first bytes on a port of unknown protocol before treating the
   *  connection as TCP (server-first protocols send nothing until greeted). */
  readonly detectTimeoutMs: number;
  /** Counters of the outbound listener (connections, pass-through). */
  readonly counters?: () => ListenerCounters;
  readonly log: Logger;
  /** Why a connection found not to be HTTP, on a port of unknown protocol, may not be relayed
   *  (a waypoint's stream: the Service's network RBAC), or undefined. */
  readonly streamRefusal?: (socket: net.Socket, dst: OriginalDestination) => string | undefined;
}

/** The decision for one connection, logged at debug; exposed for tests. */
export type DecisionHook = (socket: net.Socket, decision: OutboundDecision, dst: OriginalDestination | undefined) => void;

/**
 * `createServer` for the outbound listener in captured mode: `onHttp` is the listener's own
 * HTTP entry (node:http / node:http2 behind the frontend's sniffing).
 */
export function capturedOutboundServer(opts: CapturedOutboundOptions, onDecision?: DecisionHook) {
  return (onHttp: (socket: net.Socket) => void): net.Server =>
    net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {}); // reported by whichever path owns the socket
      void accept(opts, socket, onHttp, onDecision).catch((err: unknown) => {
        opts.log.error('captured outbound connection failed', { error: err });
        socket.destroy();
      });
    });
}

async function accept(opts: CapturedOutboundOptions, socket: net.Socket, onHttp: (s: net.Socket) => void, onDecision?: DecisionHook): Promise<void> {
  let dst: OriginalDestination | undefined;
  try {
    dst = opts.originalDst(socket);
  } catch (err) {
    opts.log.warn('cannot read the original destination; serving the connection as a direct HTTP client', { error: err });
  }
  const local = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
  const decision = decideOutbound(opts.getConfig(), dst, local, opts.outboundPolicy);
  onDecision?.(socket, decision, dst);
  opts.log.debug('captured connection', { from: `${socket.remoteAddress}:${socket.remotePort}`, to: dst && `${dst.address}:${dst.port}`, decision: decision.kind });
  if (dst && decision.kind !== 'direct') {
    (socket as Tagged)[ORIGINAL_DST] = dst;
    (socket as Tagged)[PLAN] = capturedPlan(dst);
  }

  switch (decision.kind) {
    case 'direct':
    case 'http':
      return onHttp(socket);
    case 'tcp':
      return tcpToCluster(opts, socket, decision.cluster, NOTHING_READ);
    case 'passthrough': {
      const counters = opts.counters?.();
      if (counters) counters.passthrough++;
      return tcpPassthrough(opts, socket, dst!, NOTHING_READ);
    }
    case 'blackhole':
      opts.log.info('refused a connection to a destination outside the mesh (outbound policy REGISTRY_ONLY)', { to: `${dst!.address}:${dst!.port}` });
      return reset(socket);
    case 'detect': {
      const seen = await sniff(socket, opts.detectTimeoutMs);
      if (!seen) return;
      if ((seen.kind === 'http1' || seen.kind === 'http2') && !seen.ended) {
        socket.unshift(seen.head);
        onHttp(socket);
        // sniff() left the socket paused; a new 'data' listener does not undo an explicit pause.
        socket.resume();
        return;
      }
      const refusal = dst && opts.streamRefusal?.(socket, dst);
      if (refusal) {
        opts.log.info('refused a stream', { to: `${dst!.address}:${dst!.port}`, reason: refusal });
        return reset(socket);
      }
      return tcpToCluster(opts, socket, decision.cluster, seen);
    }
  }
}

/** The original destination recorded for a connection (h2 compat sockets forward the read). */
export function originalDstOf(socket: unknown): OriginalDestination | undefined {
  return (socket as Tagged | null | undefined)?.[ORIGINAL_DST];
}

function hasPort(authority: string): boolean {
  return /:\d+$/.test(authority) && !/^\[[^\]]*$/.test(authority);
}

function withAuthority(facts: RequestFacts, authority: string): RequestFacts {
  return {
    authority,
    method: facts.method,
    path: facts.path,
    scheme: facts.scheme,
    header: (n) => facts.header(n),
    ...(facts.headerValues ? { headerValues: (n: string) => facts.headerValues!(n) } : {}),
  };
}

/**
 * The planner for requests on a captured connection to `dst`. First the Service whose VIP:port
 * the client addressed — GAMMA's rule: the Service addressed, not the Host header, selects the
 * routes. Then, for destinations that are no Service VIP, the Host as sent, and the Host with the
 * destination port when it has none (so `Host: reviews` on port 9080 finds reviews:9080).
 */
export function capturedPlan(dst: OriginalDestination, base: PlanFn = realPlan): PlanFn {
  const vip = dst.family === 6 ? `[${dst.address}]:${dst.port}` : `${dst.address}:${dst.port}`;
  return (config: ProxyConfig, name: string, facts: RequestFacts, random: () => number) => {
    const tries = hasPort(facts.authority) ? [vip, facts.authority] : [vip, `${facts.authority}:${dst.port}`, facts.authority];
    let asSent;
    for (const authority of tries) {
      const p = base(config, name, authority === facts.authority ? facts : withAuthority(facts, authority), random);
      if (authority === facts.authority) asSent = p;
      if (p.kind !== 'noRoute' || p.reason !== 'no_virtual_host') {
        // Upstream, the app's own Host goes on (unless a route rewrote it).
        return p.kind === 'forward' && p.authority === authority ? { ...p, authority: facts.authority } : p;
      }
    }
    // Nothing knows it: answer about the Host the app sent.
    return asSent!;
  };
}

/** `planFor` for the outbound listener: the captured planner for connections that have an
 *  original destination, the listener's default for direct (HTTP_PROXY) clients. */
export function planForCaptured(socket: unknown): PlanFn | undefined {
  return (socket as Tagged | null | undefined)?.[PLAN];
}
