// Plaintext transport: net.connect upstream, net.createServer downstream. Used for local-mode
// development without identity, for pass-through to non-mesh hosts, and for the app hop.
import net from 'node:net';
import type { InboundTransport, UpstreamConnectTarget, UpstreamTransport } from './index.js';

/**
 * A TCP connection, resolved once connected or rejected (ETIMEDOUT after `timeoutMs`, 10 s by
 * default). By default it keeps its write side open after the peer's FIN, for relaying.
 */
export function connectTcp(host: string, port: number, opts: { localAddress?: string; timeoutMs?: number; allowHalfOpen?: boolean } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true, allowHalfOpen: opts.allowHalfOpen ?? true, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`connect to ${net.isIPv6(host) ? `[${host}]` : host}:${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
      socket.destroy();
      reject(err);
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** Plaintext upstream connections. `identity` and `targetPort` cannot be carried and are ignored. */
export const plainUpstreamTransport: UpstreamTransport = Object.freeze({
  secure: false,
  connect: (target: UpstreamConnectTarget): Promise<net.Socket> =>
    connectTcp(target.host, target.port, { allowHalfOpen: false, ...(target.connectTimeoutMs && target.connectTimeoutMs > 0 ? { timeoutMs: target.connectTimeoutMs } : {}) }),
});

/** Plaintext downstream: no peer identity, no target port (the only / default chain is used). */
export const plainInboundTransport: InboundTransport = Object.freeze({
  secure: false,
  createServer(onSocket: (socket: net.Socket) => void): net.Server {
    return net.createServer({ noDelay: true }, onSocket);
  },
  peerIdentity(): string | undefined {
    return undefined;
  },
  targetPort(): number | undefined {
    return undefined;
  },
});
