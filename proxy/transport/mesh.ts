// The sidecar's mesh transports: mTLS both ways through MeshTls. Pools use this only for
// clusters with TLS; plaintext clusters (the local app, non-mesh hosts) use the plain transport.
// The inbound side checks each client itself so that every refusal is logged with its reason.
import type net from 'node:net';
import tls from 'node:tls';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { HboneClient } from '../hbone/client.js';
import { formatAuthority } from '../hbone/stream.js';
import type { InboundTransport, UpstreamConnectTarget, UpstreamTransport } from './index.js';
import type { MeshTls } from './tls.js';

/** The trust domain of a SPIFFE ID (`spiffe://<td>/...`), or undefined. */
function trustDomainOf(id: string | undefined): string | undefined {
  return id ? /^spiffe:\/\/([^/]+)\//.exec(id)?.[1] : undefined;
}

/** OpenSSL's verification codes, as an operator reads them. */
function verifyFailure(code: string, socket: tls.TLSSocket): string {
  const peer = socket.getPeerX509Certificate();
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `client certificate expired at ${peer?.validTo ?? '?'}`;
    case 'CERT_NOT_YET_VALID':
      return `client certificate not valid before ${peer?.validFrom ?? '?'}`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'CERT_SIGNATURE_FAILURE':
      return `client certificate was issued by a CA not in the trust bundle (${code}; another mesh, or a root removed by rotation?)`;
    default:
      return peer ? `client certificate does not verify (${code})` : 'the client presented no certificate';
  }
}

/**
 * Why an inbound mTLS client is refused, or undefined when it may go on: its chain must verify
 * against the trust bundle (checked here rather than by node:tls, which would close silently)
 * and its one SPIFFE ID must be in our trust domain.
 */
export function inboundRefusal(meshTls: MeshTls, socket: tls.TLSSocket): string | undefined {
  if (!socket.authorized) return verifyFailure(String(socket.authorizationError ?? 'unverified'), socket);
  // A resumed session carries the verdict of the full handshake it came from, which may be
  // minutes old (SESSION_LIFETIME_S): the certificate may have expired since.
  if (socket.isSessionReused()) {
    const validTo = meshTls.peerCertificate(socket)?.validTo;
    if (validTo === undefined || !(Date.parse(validTo) > Date.now())) return `client certificate expired at ${validTo ?? '?'} (a resumed session)`;
  }
  const peer = meshTls.peerIdentity(socket);
  if (!peer) return 'client certificate carries no single SPIFFE ID (URI SAN)';
  const ours = trustDomainOf(meshTls.localIdentity());
  const theirs = trustDomainOf(peer);
  if (ours && theirs !== ours) return `client SPIFFE ID ${peer} is outside this mesh's trust domain ${ours}`;
  return undefined;
}

export function tlsTransports(meshTls: MeshTls, opts: { log?: Logger } = {}): { upstream: UpstreamTransport; inbound: InboundTransport } {
  const log = opts.log ?? createLogger('tls');
  // Endpoints with `tunnel: hbone` (ambient pods, waypoints) share this proxy's HBONE sessions;
  // made on first use, so sidecars that never meet one pay nothing.
  let hbone: HboneClient | undefined;
  const viaHbone = (target: UpstreamConnectTarget, identity: string): Promise<net.Socket> => {
    const authority = target.authority ?? (target.targetPort !== undefined ? formatAuthority(target.host, target.targetPort) : undefined);
    if (authority === undefined) {
      return Promise.reject(
        new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE endpoint ${target.host}:${target.port} names no destination port`, {
          hint: 'its EDS metadata lacks weft.target_port',
        }),
      );
    }
    hbone ??= new HboneClient({ log: log.child('hbone') });
    // The tunnel stream stands in for a socket (see HboneStream): pools and relays use it as one.
    return hbone.connect(meshTls, {
      host: target.host,
      port: target.port,
      identity,
      authority,
      ...(target.connectTimeoutMs ? { connectTimeoutMs: target.connectTimeoutMs } : {}),
    }) as unknown as Promise<net.Socket>;
  };
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
      if (target.tunnel === 'hbone') return viaHbone(target, target.identity);
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
    /**
     * The inbound TLS server. Client chains are verified here rather than by node:tls (which
     * closes silently), so that each refusal is logged: only `onSocket` gets verified sockets —
     * never listen to the server's own 'secureConnection'. It may be handed connections with
     * `emit('connection')` (the inbound listener does, after peeking at the first byte).
     */
    createServer: (onSocket: (socket: net.Socket) => void): net.Server => createMeshServer(meshTls, log, onSocket),
    peerIdentity: (socket) => ((socket as tls.TLSSocket).encrypted ? meshTls.peerIdentity(socket as tls.TLSSocket) : undefined),
    targetPort: (socket) => ((socket as tls.TLSSocket).encrypted ? meshTls.parseTargetPortFromSni((socket as tls.TLSSocket).servername) : undefined),
  };
  return { upstream, inbound };
}

/**
 * The inbound mTLS server. Client chains are verified here rather than by node:tls (which
 * closes silently), so that each refusal is logged with its reason; `onSocket` gets only
 * verified sockets. The server's context follows certificate rotation (MeshTls.attachServer).
 */
export function createMeshServer(
  meshTls: MeshTls,
  log: Logger,
  onSocket: (socket: tls.TLSSocket) => void,
  alpn?: readonly string[],
): tls.Server {
  const options = { ...meshTls.serverOptions(), rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: [...alpn] } : {}) };
  const server = tls.createServer(options, (socket) => {
    const client = `${socket.remoteAddress}:${socket.remotePort}`;
    const refusal = inboundRefusal(meshTls, socket);
    if (refusal) {
      log.warn('refused an mTLS client', { client, reason: refusal });
      socket.destroy();
      return;
    }
    meshTls.countAccepted(socket);
    log.debug('accepted an mTLS client', { client, peer: meshTls.peerIdentity(socket), serial: meshTls.peerCertificate(socket)?.serialNumber });
    onSocket(socket);
  });
  server.on('tlsClientError', (err, socket) => {
    log.info('TLS handshake with a client failed', { client: `${socket.remoteAddress}:${socket.remotePort}`, error: err.message });
  });
  const detach = meshTls.attachServer(server);
  server.once('close', detach);
  return server;
}
