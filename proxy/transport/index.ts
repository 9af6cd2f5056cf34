// The transport seam: how the data path opens upstream connections and accepts downstream ones.
// Plaintext (plain.ts) and mesh mTLS (tls.ts, MeshTls) implement it; nothing above this seam
// knows whether bytes are encrypted. Pools key connections by `secure`, so both can coexist.
import type net from 'node:net';

/** Where one upstream connection goes, as the balancer and the cluster describe it. */
export interface UpstreamConnectTarget {
  /** Endpoint address: for a meshed endpoint, the peer sidecar's inbound address. */
  readonly host: string;
  readonly port: number;
  /** SPIFFE ID the peer must prove (EDS `weft.identity`); a TLS transport refuses others. */
  readonly identity?: string;
  /** App port behind the peer sidecar (EDS `weft.target_port`); travels as TLS SNI
   *  `<targetPort>.inbound.weft.internal`. Plaintext cannot carry it. */
  readonly targetPort?: number;
  /** ALPN protocols to offer, most preferred first (`['h2']`, `['http/1.1']`). */
  readonly alpn: readonly string[];
  /** Give up connecting after this long (the cluster's connect timeout). */
  readonly connectTimeoutMs?: number;
  /** Reach the endpoint through this tunnel (EDS `weft.tunnel`): `host:port` is then the
   *  HBONE listener and the connection an HTTP/2 CONNECT stream to `authority`. */
  readonly tunnel?: 'hbone';
  /** CONNECT `:authority` for a tunnel; default `host:targetPort` (a waypoint passes the
   *  Service VIP:port instead). */
  readonly authority?: string;
}

/**
 * Opens upstream connections. Called by proxy/upstream pools once per new connection (never
 * per request); must be safe to call concurrently.
 */
export interface UpstreamTransport {
  /** True when connections are authenticated and encrypted (mTLS). Part of the pool key. */
  readonly secure: boolean;
  /**
   * Resolves with a connected socket (handshake finished for TLS). Rejects with an error
   * carrying `code` (ECONNREFUSED, ETIMEDOUT, WEFT_IDENTITY_MISMATCH, ...) when the connection
   * cannot be made; the pools classify every rejection as a connect failure (retriable under
   * `connect-failure`). The returned socket belongs to the caller.
   */
  connect(target: UpstreamConnectTarget): Promise<net.Socket>;
}

/**
 * Accepts downstream connections for the inbound listener. Called once at listen time to make
 * the server, then per accepted connection for the peer's facts. A TLS implementation wraps
 * MeshTls in a few lines:
 *
 *   createServer: (onSocket) => tls.createServer({ ...meshTls.serverOptions(), ALPNProtocols: ['h2', 'http/1.1'] }, onSocket)
 *   peerIdentity: (s) => meshTls.peerIdentity(s as tls.TLSSocket)
 *   targetPort:   (s) => meshTls.parseTargetPortFromSni((s as tls.TLSSocket).servername || '')
 */
export interface InboundTransport {
  readonly secure: boolean;
  /** Make the listening server; `onSocket` is called with each connection ready for HTTP
   *  bytes (after the TLS handshake for a secure transport). */
  createServer(onSocket: (socket: net.Socket) => void): net.Server;
  /** The authenticated peer's SPIFFE ID, or undefined (plaintext, or no client certificate). */
  peerIdentity(socket: net.Socket): string | undefined;
  /** The app port the peer asked for (from SNI), or undefined when it did not say. */
  targetPort(socket: net.Socket): number | undefined;
  /** Captured mode: the app port a plaintext client originally addressed (its connection's
   *  original destination), when known. Absent: plaintext names no port. */
  plaintextTargetPort?(socket: net.Socket): number | undefined;
}
