// The sidecar's mesh transports: mTLS both ways through MeshTls. Pools use this only for
// clusters with TLS; plaintext clusters (the local app, non-mesh hosts) use the plain transport.
import type net from 'node:net';
import type tls from 'node:tls';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { InboundTransport, UpstreamTransport } from './index.js';
import type { MeshTls } from './tls.js';

export function tlsTransports(meshTls: MeshTls): { upstream: UpstreamTransport; inbound: InboundTransport } {
  const upstream: UpstreamTransport = {
    secure: true,
    connect(target) {
      // An mTLS cluster whose endpoint does not say who it is cannot be verified: refuse it
      // rather than fall back to plaintext.
      if (target.identity === undefined) {
        return Promise.reject(
          new WeftError(ErrorCode.CERT_INVALID, `endpoint ${target.host}:${target.port} of an mTLS cluster has no expected identity`, {
            hint: 'its EDS metadata lacks weft.identity',
          }),
        );
      }
      return meshTls.connect({
        host: target.host,
        port: target.port,
        expectedIdentity: target.identity,
        ...(target.targetPort !== undefined ? { targetPort: target.targetPort } : {}),
        alpn: [...target.alpn],
        ...(target.connectTimeoutMs ? { timeoutMs: target.connectTimeoutMs } : {}),
      });
    },
  };
  const inbound: InboundTransport = {
    secure: true,
    createServer: (onSocket: (socket: net.Socket) => void) => meshTls.createServer(onSocket),
    peerIdentity: (socket) => meshTls.peerIdentity(socket as tls.TLSSocket),
    targetPort: (socket) => meshTls.parseTargetPortFromSni((socket as tls.TLSSocket).servername),
  };
  return { upstream, inbound };
}
