// Plaintext transport: net.connect upstream, net.createServer downstream. Used for local-mode
// development without identity, for pass-through to non-mesh hosts, and for the app hop.
import net from 'node:net';
import type { InboundTransport, UpstreamConnectTarget, UpstreamTransport } from './index.js';

/** Plaintext upstream connections. `identity` and `targetPort` cannot be carried and are ignored. */
export const plainUpstreamTransport: UpstreamTransport = Object.freeze({
  secure: false,
  connect(target: UpstreamConnectTarget): Promise<net.Socket> {
    return new Promise<net.Socket>((resolve, reject) => {
      const socket = net.connect({ host: target.host, port: target.port, noDelay: true });
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        if (timer) clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.once('error', fail);
      socket.once('connect', () => {
        if (timer) clearTimeout(timer);
        socket.removeListener('error', fail);
        resolve(socket);
      });
      if (target.connectTimeoutMs && target.connectTimeoutMs > 0) {
        timer = setTimeout(() => {
          const err = new Error(`connect to ${target.host}:${target.port} timed out after ${target.connectTimeoutMs} ms`);
          (err as NodeJS.ErrnoException).code = 'ETIMEDOUT';
          fail(err);
        }, target.connectTimeoutMs);
      }
    });
  },
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
