// One enrolled pod as the node proxy carries it: the pod's own identity (a certificate the CA
// issues to this node proxy for that pod), and three listeners opened inside the pod's network
// namespace — 15001 (the pod's outbound TCP, redirected), 15006 (plaintext inbound, redirected)
// and 15008 (HBONE from other node proxies, sidecars and waypoints).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { evaluateRbac } from '../inbound/authz.js';
import { selectFilterChain } from '../inbound/chain.js';
import type { OriginalDestination } from '../capture/original-dst.js';
import { tcpRefusal } from '../capture/inbound.js';
import { NOTHING_READ, relay, reset, WEFT_TCP_ALPN, type TcpStreams } from '../capture/tcp.js';
import type { HboneClient } from '../hbone/client.js';
import { createHboneServer, type HboneAnswer, type HboneRequest, type HboneServer } from '../hbone/server.js';
import type { IdentityManager } from '../identity/manager.js';
import { MeshTls, type HandshakeCounts } from '../transport/tls.js';
import { ambientOutbound, type AmbientOutboundDeps, type PodDialer } from './outbound.js';
import { connectInNetns, listenInNetns, PROXY_MARK } from './netns.js';
import type { LocalPod } from './workloads.js';

export interface PodPorts {
  readonly outbound: number;
  readonly inbound: number;
  readonly hbone: number;
}

export const IN_POD_PORTS: PodPorts = Object.freeze({ outbound: 15001, inbound: 15006, hbone: 15008 });

export interface PodRuntimeDeps extends AmbientOutboundDeps {
  readonly hbone: HboneClient;
  readonly originalDst: (socket: net.Socket) => OriginalDestination | undefined;
  readonly ports: PodPorts;
  readonly connectTimeoutMs: number;
  /** mTLS handshakes, counted for every pod together (the node proxy's metric). */
  readonly handshakes: HandshakeCounts;
}

/** What happened to a pod's connections, for its metrics. */
export interface PodCounters {
  outbound: number;
  inboundHbone: number;
  inboundPlain: number;
  refused: number;
}

export class PodRuntime {
  readonly tls: MeshTls;
  readonly counters: PodCounters = { outbound: 0, inboundHbone: 0, inboundPlain: 0, refused: 0 };
  private servers: net.Server[] = [];
  private hboneServer: HboneServer | undefined;
  /** Connections accepted on 15001 and 15006 (HBONE tracks its own), cut at a close's deadline. */
  private readonly accepted = new Set<net.Socket>();
  private netns: string | undefined;
  private readonly log: Logger;

  constructor(
    readonly pod: LocalPod,
    readonly identity: IdentityManager,
    private readonly deps: PodRuntimeDeps,
  ) {
    this.log = deps.log.child(pod.key);
    this.tls = new MeshTls(identity, { log: this.log.child('tls'), handshakes: deps.handshakes });
  }

  /** The netns the listeners live in (undefined until opened). */
  get namespacePath(): string | undefined {
    return this.netns;
  }

  /** Whether the listeners are open in `nsPath` (a new netns — the pod was re-created — needs new ones). */
  listening(nsPath: string): boolean {
    return this.netns === nsPath && this.servers.length === 3 && this.servers.every((s) => s.listening);
  }

  /** Opens the three listeners inside `nsPath`; closes old ones elsewhere first. Idempotent. */
  async open(nsPath: string): Promise<void> {
    if (this.listening(nsPath)) return;
    await this.closeListeners(0);
    this.netns = nsPath;
    const outbound = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onOutbound(this.track(socket)));
    const inbound = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onPlainInbound(this.track(socket)));
    this.hboneServer = createHboneServer(this.tls, (req) => this.onHbone(req), { log: this.log.child('hbone') });
    const servers = [outbound, inbound, this.hboneServer.server];
    this.servers = servers;
    try {
      await listenInNetns(outbound, nsPath, '0.0.0.0', this.deps.ports.outbound, PROXY_MARK);
      await listenInNetns(inbound, nsPath, '0.0.0.0', this.deps.ports.inbound, PROXY_MARK);
      await listenInNetns(this.hboneServer.server, nsPath, '0.0.0.0', this.deps.ports.hbone, PROXY_MARK);
    } catch (err) {
      await this.closeListeners(0);
      throw err;
    }
    this.log.info('listening inside the pod', { netns: nsPath, ...this.deps.ports });
  }

  /** Stops accepting; tunnels get `deadlineMs` to finish. */
  async close(deadlineMs: number): Promise<void> {
    await this.closeListeners(deadlineMs);
    this.tls.close();
    this.identity.stop();
  }

  private track(socket: net.Socket): net.Socket {
    this.accepted.add(socket);
    socket.once('close', () => this.accepted.delete(socket));
    return socket;
  }

  /**
   * Stops accepting at once; connections already carried get up to `deadlineMs` to end, then
   * are cut (an app's idle keep-alive connections would otherwise hold a released pod forever).
   */
  private async closeListeners(deadlineMs: number): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    const hbone = this.hboneServer;
    this.hboneServer = undefined;
    for (const s of servers) if (s !== hbone?.server && s.listening) s.close();
    const until = Date.now() + deadlineMs;
    const drained = Promise.all([
      hbone?.close(deadlineMs),
      (async () => {
        while (this.accepted.size > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, Math.min(50, deadlineMs)));
        for (const socket of this.accepted) socket.destroy();
        this.accepted.clear();
      })(),
    ]);
    await drained;
  }

  /** Dials from inside the pod, as the pod. */
  private dialer(): PodDialer {
    const nsPath = this.netns!;
    const timeout = (ms?: number) => ms ?? this.deps.connectTimeoutMs;
    const inPod = (host: string, port: number, timeoutMs: number) => connectInNetns(nsPath, host, port, { timeoutMs, mark: PROXY_MARK });
    return {
      hbone: (host, port, identity, authority, timeoutMs) =>
        this.deps.hbone.connect(this.tls, { host, port, identity, authority, connectTimeoutMs: timeout(timeoutMs) }, inPod),
      sidecar: async (host, port, identity, targetPort, timeoutMs) => {
        const socket = await inPod(host, port, timeout(timeoutMs));
        const tlsSocket = await this.tls.connect({ host, port, expectedIdentity: identity, targetPort, alpn: [WEFT_TCP_ALPN], timeoutMs: timeout(timeoutMs), socket });
        if (tlsSocket.alpnProtocol !== WEFT_TCP_ALPN) {
          tlsSocket.destroy();
          throw new Error(`sidecar ${host}:${port} did not accept ALPN ${WEFT_TCP_ALPN}`);
        }
        return tlsSocket;
      },
      plain: (host, port, timeoutMs) => inPod(host, port, timeout(timeoutMs)),
    };
  }

  private onOutbound(socket: net.Socket): void {
    socket.on('error', () => {});
    this.counters.outbound++;
    let dst: OriginalDestination | undefined;
    try {
      dst = redirectedTo(socket, this.deps.originalDst(socket));
    } catch (err) {
      this.log.warn('cannot read the original destination of an outbound connection', { error: err });
    }
    void ambientOutbound(this.deps, this.dialer(), socket, dst).catch((err: unknown) => {
      this.log.error('outbound connection failed', { error: err });
      socket.destroy();
    });
  }

  /** Plaintext to the pod (redirected to 15006): allowed only where the pod's mTLS mode takes
   *  plaintext (PERMISSIVE), and only past its authorization policy with no identity. */
  private onPlainInbound(socket: net.Socket): void {
    socket.on('error', () => {});
    this.counters.inboundPlain++;
    let port: number | undefined;
    try {
      port = redirectedTo(socket, this.deps.originalDst(socket))?.port;
    } catch {
      port = undefined;
    }
    const config = this.deps.getConfig();
    const listener = config.listeners.get(this.pod.listener);
    const chain = listener && port !== undefined ? selectFilterChain(listener, { targetPort: port, secure: false }) : undefined;
    const refusal =
      port === undefined
        ? 'no original destination'
        : !chain
          ? `plaintext to port ${port} refused: the pod's mTLS mode is STRICT (or it serves no such port)`
          : (() => {
              const d = evaluateRbac(chain.filter.rbac, { identity: undefined, method: undefined, path: undefined, port });
              return d.allow ? undefined : `denied by authorization policy: ${d.reason}`;
            })();
    if (refusal) {
      this.counters.refused++;
      this.log.info('refused a plaintext connection', { from: `${socket.remoteAddress}:${socket.remotePort}`, port, reason: refusal });
      return reset(socket);
    }
    void this.toApp(port!).then(
      (upstream) => relay(socket, upstream, NOTHING_READ, undefined, this.deps.streams),
      (err: unknown) => {
        this.log.warn('cannot reach the app', { port, error: err });
        reset(socket);
      },
    );
  }

  private async onHbone(req: HboneRequest): Promise<HboneAnswer> {
    this.counters.inboundHbone++;
    const { host, port } = req.target;
    if (host !== this.pod.ip && host !== '127.0.0.1') {
      this.counters.refused++;
      return { status: 400, reason: `this tunnel ends at pod ${this.pod.key} (${this.pod.ip}), not ${host}` };
    }
    const refusal = tcpRefusal(this.deps.getConfig(), this.pod.listener, port, req.peer);
    if (refusal) {
      this.counters.refused++;
      this.log.info('refused an HBONE stream', { peer: req.peer, port, reason: refusal });
      return { status: 403, reason: refusal };
    }
    try {
      return { status: 200, upstream: await this.toApp(port) };
    } catch (err) {
      return { status: 503, reason: `the app is not reachable on port ${port}: ${(err as Error).message}` };
    }
  }

  /** The pod's app, reached from inside the pod (marked, so its own rules let it through). */
  private toApp(port: number): Promise<Duplex> {
    return connectInNetns(this.netns!, this.pod.ip, port, { timeoutMs: this.deps.connectTimeoutMs, mark: PROXY_MARK });
  }
}

/**
 * The original destination, or undefined when the connection was not redirected: in a netns with
 * a nat table the kernel answers SO_ORIGINAL_DST for any connection, with the socket's own local
 * address when no rule rewrote it (someone dialled 15001 itself).
 */
function redirectedTo(socket: net.Socket, dst: OriginalDestination | undefined): OriginalDestination | undefined {
  return dst && dst.address === socket.localAddress && dst.port === socket.localPort ? undefined : dst;
}
