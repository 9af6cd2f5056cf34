// The mesh's mTLS seam: server options for inbound listeners and `connect` for upstream calls,
// both built from the workload's current certificate and trust bundle. SecureContexts are rebuilt
// when either changes; existing connections keep the context they were made with, new handshakes
// get the new one (the server hands it out per handshake via SNICallback), so rotation drops nothing.
import { createHash, hkdfSync, X509Certificate } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { spiffeIdOf } from '../../certs/bundle.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { portNumber } from '../../core/port.js';

/** What MeshTls needs from the workload identity (IdentityManager implements it). */
export interface IdentitySource {
  /** The current key and chain (leaf first); undefined until the first certificate. */
  current(): { readonly keyPem: string; readonly chainPem: readonly string[]; readonly identity: string } | undefined;
  /** PEM roots to verify peers against. */
  trustBundle(): readonly string[];
  /** Called after every change of either; returns an unsubscribe function. */
  subscribe(listener: () => void): () => void;
}

/** Between sidecars the app port travels as the SNI `<port>.inbound.weft.internal`. */
export const INBOUND_SNI_SUFFIX = '.inbound.weft.internal';

export function sniForTargetPort(port: number): string {
  return `${port}${INBOUND_SNI_SUFFIX}`;
}

/** The target port in an inbound SNI, or undefined if the name is not of that form. */
export function parseTargetPortFromSni(servername: string | false | null | undefined): number | undefined {
  if (!servername) return undefined;
  const m = /^(\d{1,5})\.inbound\.weft\.internal$/i.exec(servername);
  return m ? portNumber(m[1]) : undefined;
}

export interface ConnectOptions {
  readonly host: string;
  readonly port: number;
  /** The SPIFFE ID the server must prove (from the endpoint's EDS metadata). */
  readonly expectedIdentity: string;
  /** The app port behind the peer sidecar; sent as SNI. */
  readonly targetPort?: number;
  readonly alpn?: readonly string[];
  /** Handshake deadline; 10 s by default. */
  readonly timeoutMs?: number;
  /** An already-connected TCP socket to run TLS over (e.g. one made inside a pod's network
   *  namespace); `host`/`port` then only name the peer in errors. Identity is checked the same. */
  readonly socket?: net.Socket;
}

/**
 * How long a server's session tickets stay valid (its `sessionTimeout`), and so how long a client
 * keeps a session to resume. Short, so that a resumed connection never rests on a proof much
 * older than the certificates themselves are rotated.
 */
export const SESSION_LIFETIME_S = 300;
/** Peers (host, port, SNI, identity, ALPN) a client keeps a session for, the least recently
 *  used going first: a session is ~1.7 KB and its peer certificate about as much again. */
const SESSION_CACHE_SIZE = 256;

const ALPN = ['h2', 'http/1.1'];

/**
 * With a ticket secret, how long one set of ticket keys seals tickets; every process sharing the
 * secret moves to the next set at the same wall-clock boundary. A ticket issued in the last
 * SESSION_LIFETIME_S before one no longer resumes after it: one full handshake per peer an hour.
 */
export const TICKET_KEY_PERIOD_MS = 3_600_000;

export interface VerifiedPeer {
  readonly identity: string | undefined;
  readonly certificate: X509Certificate;
}
// Why a cache: on a TLS 1.3 client socket Node stops returning the peer certificate once the
// server's session ticket has been read (right after the handshake). It is captured when the
// handshake completes and kept for the socket's life.
const verifiedPeers = new WeakMap<tls.TLSSocket, VerifiedPeer>();

/** mTLS handshakes completed, by side and by whether a session was resumed (for metrics). */
export interface HandshakeCounts {
  readonly client: { full: number; resumed: number };
  readonly server: { full: number; resumed: number };
}

export function newHandshakeCounts(): HandshakeCounts {
  return { client: { full: 0, resumed: 0 }, server: { full: 0, resumed: 0 } };
}

/** A session a client may resume, and the peer the full handshake it came from proved. */
interface ResumableSession {
  readonly session: Buffer;
  readonly peer: VerifiedPeer;
  readonly expiresAt: number;
}

/**
 * TLS 1.3 sessions a client resumes instead of running a full handshake: the server's ticket
 * (a PSK, with a fresh ECDHE exchange on every resumption) replaces both certificate chains,
 * their verification and both signatures, which are most of a handshake's cost. One session per
 * peer, the newest ticket; bounded, least recently used first out.
 */
export class SessionCache {
  private readonly entries = new Map<string, ResumableSession>();

  constructor(private readonly capacity = SESSION_CACHE_SIZE) {}

  get(key: string, now: number): ResumableSession | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= now) return undefined;
    this.entries.set(key, entry); // most recently used last: eviction takes the first
    return entry;
  }

  set(key: string, session: Buffer, peer: VerifiedPeer, now: number): void {
    // Never past the peer certificate's own expiry: a resumed handshake does not look at it again.
    const expiresAt = Math.min(now + SESSION_LIFETIME_S * 1000, Date.parse(peer.certificate.validTo));
    this.entries.delete(key);
    if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { session, peer, expiresAt });
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

export class MeshTls {
  private context: tls.SecureContext | undefined;
  private contextIdentity: string | undefined;
  private readonly servers = new Set<tls.Server>();
  /** Replaced (so emptied) whenever our certificate or trust bundle changes: see rebuild(). */
  private sessions = new SessionCache();
  private readonly unsubscribe: () => void;
  private readonly log: Logger;
  /** Counted by connect() (client) and by the servers' accept paths (countAccepted). */
  readonly handshakes: HandshakeCounts;

  /** See the constructor's `ticketSecret`. */
  private readonly ticketSecret: Buffer | undefined;
  /** With a ticket secret: moves the servers to the next period's ticket keys. */
  private ticketTimer: NodeJS.Timeout | undefined;

  /**
   * `ticketSecret`: a secret this process shares with others serving the same listeners (the
   * workers of a `--concurrency` sidecar). The servers then seal session tickets with keys drawn
   * from it, the trust bundle and the hour (TICKET_KEY_PERIOD_MS), so a ticket one of them issued
   * resumes at any other, a new trust bundle still ends every ticket, and no key seals tickets
   * for longer than an hour. Without it, each server context has random keys of its own (Node's
   * default), which rebuild() replaces.
   */
  constructor(
    private readonly source: IdentitySource,
    opts: { log?: Logger; handshakes?: HandshakeCounts; ticketSecret?: Buffer } = {},
  ) {
    this.ticketSecret = opts.ticketSecret;
    this.log = opts.log ?? createLogger('tls');
    this.handshakes = opts.handshakes ?? newHandshakeCounts();
    this.rebuild();
    this.unsubscribe = source.subscribe(() => this.rebuild());
    if (this.ticketSecret) this.scheduleTicketKeys();
  }

  /** The SPIFFE ID this proxy presents now, if it has a certificate. */
  localIdentity(): string | undefined {
    return this.contextIdentity;
  }

  /**
   * Options for an inbound `tls.Server`: TLS 1.3 only, client certificates required and verified
   * against the trust bundle, ALPN h2 / http/1.1. The certificate is chosen per handshake, so
   * rotation needs no restart. Read the target port with parseTargetPortFromSni(socket.servername)
   * and the caller with peerIdentity(socket). Call attachServer too, for clients that send no SNI.
   */
  serverOptions(): tls.TlsOptions {
    return {
      ...this.serverContextOptions(),
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: ALPN,
      // Tickets are sealed with keys of the server's own context, which rebuild() replaces: a
      // new certificate or trust bundle invalidates every ticket handed out before it (with a
      // ticket secret, a new trust bundle: see serverContextOptions).
      sessionTimeout: SESSION_LIFETIME_S,
      SNICallback: (_servername, cb) => {
        if (this.context) cb(null, this.context);
        else cb(new WeftError(ErrorCode.CERT_INVALID, 'no workload certificate yet'), undefined);
      },
    };
  }

  /**
   * A listening-ready inbound server: serverOptions(), attached (see attachServer) until it
   * closes. `onSecureConnection` gets each socket whose client certificate verified.
   */
  createServer(onSecureConnection: (socket: tls.TLSSocket) => void): tls.Server {
    const server = tls.createServer(this.serverOptions(), (socket) => {
      this.countAccepted(socket);
      onSecureConnection(socket);
    });
    const detach = this.attachServer(server);
    server.once('close', detach);
    return server;
  }

  /** Counts an inbound handshake whose client was accepted. */
  countAccepted(socket: tls.TLSSocket): void {
    if (socket.isSessionReused()) this.handshakes.server.resumed++;
    else this.handshakes.server.full++;
  }

  /** The app port a peer asked for in its SNI (same as the module function). */
  parseTargetPortFromSni(servername: string | false | null | undefined): number | undefined {
    return parseTargetPortFromSni(servername);
  }

  /** Keeps `server`'s default context (used when a client sends no SNI) current; returns a detach function. */
  attachServer(server: tls.Server): () => void {
    this.servers.add(server);
    return () => this.servers.delete(server);
  }

  /**
   * Opens an mTLS connection to a peer sidecar. Resolves once the handshake is done, the server's
   * chain verifies against the trust bundle and its SPIFFE ID is `expectedIdentity`. Rejects with
   * WeftError: IDENTITY_MISMATCH, CERT_INVALID (chain does not verify, expired, no certificate of
   * our own yet), UPSTREAM_CONNECT or UPSTREAM_TIMEOUT. With TLS 1.3 the server checks our
   * certificate after this resolves; a refusal then shows as a reset on the first read.
   */
  connect(opts: ConnectOptions): Promise<tls.TLSSocket> {
    const context = this.context;
    const where = `${opts.host}:${opts.port}`;
    if (!context) {
      return Promise.reject(new WeftError(ErrorCode.CERT_INVALID, `cannot connect to ${where}: no workload certificate yet`));
    }
    const alpn = opts.alpn ?? ALPN;
    const sessions = this.sessions;
    const sessionKey = `${where}|${opts.targetPort ?? ''}|${opts.expectedIdentity}|${alpn.join(',')}`;
    const resumable = sessions.get(sessionKey, Date.now());
    return new Promise((resolve, reject) => {
      const socket = tls.connect({
        host: opts.host,
        port: opts.port,
        ...(opts.socket ? { socket: opts.socket } : {}),
        secureContext: context,
        ...(resumable ? { session: resumable.session } : {}),
        ...(opts.targetPort !== undefined ? { servername: sniForTargetPort(opts.targetPort) } : {}),
        ALPNProtocols: [...alpn],
        // Verification failures are turned into errors below, once the peer's certificate can
        // still be read, so that the message names the identity it presented. Nothing is
        // written and the promise does not resolve unless the checks pass.
        rejectUnauthorized: false,
        checkServerIdentity: (_host, cert) => {
          const actual = spiffeIdOf(cert);
          return actual === opts.expectedIdentity ? undefined : mismatch(where, opts.expectedIdentity, actual);
        },
      });
      // Requests and responses are small writes a sidecar relays at once: never wait for Nagle.
      socket.setNoDelay(true);
      let settled = false;
      let verified: VerifiedPeer | undefined;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        sessions.delete(sessionKey);
        socket.destroy();
        reject(err);
      };
      // TLS 1.3 tickets arrive after the handshake; each replaces the peer's session. `sessions`
      // is the cache of the context this handshake used: one from before a rotation is dropped.
      socket.on('session', (session: Buffer) => {
        if (verified) sessions.set(sessionKey, session, verified, Date.now());
      });
      socket.setTimeout(opts.timeoutMs ?? 10_000, () =>
        fail(new WeftError(ErrorCode.UPSTREAM_TIMEOUT, `TLS handshake with ${where} (${opts.expectedIdentity}) timed out`)),
      );
      socket.once('secureConnect', () => {
        socket.setTimeout(0);
        const resumedNow = socket.isSessionReused();
        if (resumedNow) {
          // Only the server that issued the ticket can complete a resumed handshake, and it
          // proved `resumable.peer` in the full handshake the session came from, against the
          // trust bundle we still hold (a new one empties the cache). Node has no peer
          // certificate to show for a resumed client socket; the proof is the cached one.
          if (!resumable || resumable.peer.identity !== opts.expectedIdentity) {
            return fail(mismatch(where, opts.expectedIdentity, resumable?.peer.identity));
          }
          verified = resumable.peer;
        } else {
          const peer = socket.getPeerX509Certificate();
          const actual = peer ? spiffeIdOf(peer) : undefined;
          if (!socket.authorized || !peer) {
            const reason = String(socket.authorizationError ?? 'unverified');
            if (reason === ErrorCode.IDENTITY_MISMATCH) return fail(mismatch(where, opts.expectedIdentity, actual));
            return fail(
              new WeftError(
                ErrorCode.CERT_INVALID,
                `${where} presented ${actual ?? 'a certificate without a SPIFFE ID'} (expected ${opts.expectedIdentity}), ` +
                  `which does not verify against the trust bundle: ${describeVerifyError(reason, peer)}`,
                { hint: 'the peer may belong to another mesh, or one side misses a rotated root' },
              ),
            );
          }
          if (actual !== opts.expectedIdentity) return fail(mismatch(where, opts.expectedIdentity, actual));
          verified = { identity: actual, certificate: peer };
        }
        settled = true;
        verifiedPeers.set(socket, verified);
        if (resumedNow) this.handshakes.client.resumed++;
        else this.handshakes.client.full++;
        socket.removeListener('error', onError);
        resolve(socket);
      });
      const onError = (err: Error) =>
        fail(
          err instanceof WeftError
            ? err
            : new WeftError(ErrorCode.UPSTREAM_CONNECT, `mTLS connection to ${where} (${opts.expectedIdentity}) failed: ${err.message}`, {
                cause: err,
              }),
        );
      socket.on('error', onError);
    });
  }

  /**
   * The verified SPIFFE ID of the peer of an mTLS socket: the caller of an inbound socket (read
   * it in the 'secureConnection' handler) or the server of a socket from connect(). Undefined
   * if the peer is unauthenticated or has no SPIFFE ID.
   */
  peerIdentity(socket: tls.TLSSocket): string | undefined {
    return verifiedPeer(socket)?.identity;
  }

  /** The verified peer's leaf certificate (for logs and debugging), as for peerIdentity. */
  peerCertificate(socket: tls.TLSSocket): X509Certificate | undefined {
    return verifiedPeer(socket)?.certificate;
  }

  /** Stops following the identity source. */
  close(): void {
    this.unsubscribe();
    this.servers.clear();
    clearTimeout(this.ticketTimer);
  }

  /** At each period's boundary, the servers take that period's ticket keys. */
  private scheduleTicketKeys(): void {
    const next = (Math.floor(Date.now() / TICKET_KEY_PERIOD_MS) + 1) * TICKET_KEY_PERIOD_MS;
    this.ticketTimer = setTimeout(() => {
      const keys = this.serverContextOptions().ticketKeys;
      if (keys) for (const server of this.servers) server.setTicketKeys(keys);
      this.scheduleTicketKeys();
    }, next - Date.now());
    this.ticketTimer.unref();
  }

  /** The servers' context: ours, and with a ticket secret the keys that seal session tickets,
   *  the same in every process that shares the secret, for this period and trust bundle. */
  private serverContextOptions(base = this.contextOptions()): tls.SecureContextOptions {
    if (!this.ticketSecret || !base.ca) return base;
    const bundle = createHash('sha256').update([base.ca].flat().join('')).digest();
    const period = Math.floor(Date.now() / TICKET_KEY_PERIOD_MS);
    return { ...base, ticketKeys: Buffer.from(hkdfSync('sha256', this.ticketSecret, bundle, `weft session tickets ${period}`, 48)) };
  }

  private contextOptions(): tls.SecureContextOptions {
    const cert = this.source.current();
    if (!cert) return {};
    const roots = this.source.trustBundle();
    return {
      key: cert.keyPem,
      cert: presentedChain(cert.chainPem).join(''),
      // Until a bundle arrives, trust the root our own chain ends at.
      ca: roots.length > 0 ? [...roots] : cert.chainPem.slice(-1),
      minVersion: 'TLSv1.3',
    };
  }

  private rebuild(): void {
    const cert = this.source.current();
    if (!cert) {
      this.context = undefined;
      this.contextIdentity = undefined;
      return;
    }
    try {
      const options = this.contextOptions();
      this.context = tls.createSecureContext(options);
      this.contextIdentity = cert.identity;
      // A resumed session would carry our previous certificate, and a peer proof made against
      // the previous trust bundle: forget them all.
      this.sessions = new SessionCache();
      const serverOptions = this.serverContextOptions(options);
      for (const server of this.servers) server.setSecureContext(serverOptions);
    } catch (err) {
      // Keep serving with the previous context rather than with none.
      this.log.error('could not build a TLS context from the new certificate; keeping the previous one', {
        identity: cert.identity,
        error: errorMessage(err),
      });
    }
  }
}

function verifiedPeer(socket: tls.TLSSocket): VerifiedPeer | undefined {
  const known = verifiedPeers.get(socket);
  if (known || !socket.authorized) return known;
  const certificate = socket.getPeerX509Certificate();
  if (!certificate) return undefined;
  const peer = { identity: spiffeIdOf(certificate), certificate };
  verifiedPeers.set(socket, peer);
  return peer;
}

function mismatch(where: string, expected: string, actual: string | undefined): WeftError {
  return new WeftError(
    ErrorCode.IDENTITY_MISMATCH,
    `${where} presented identity ${actual ?? '(none: no SPIFFE ID in its certificate)'} but ${expected} was expected`,
    { hint: 'the endpoint may have been replaced by another workload, or its ServiceAccount changed' },
  );
}

/** The chain a peer should see: leaf and intermediates, without the (self-signed) root. */
function presentedChain(chain: readonly string[]): string[] {
  if (chain.length < 2) return [...chain];
  const last = new X509Certificate(chain[chain.length - 1] as string);
  return last.subject === last.issuer ? chain.slice(0, -1) : [...chain];
}

function describeVerifyError(code: string, peer: X509Certificate | undefined): string {
  switch (code) {
    case 'CERT_HAS_EXPIRED':
      return `certificate expired at ${peer?.validTo ?? '?'}`;
    case 'CERT_NOT_YET_VALID':
      return `certificate not valid before ${peer?.validFrom ?? '?'}`;
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
      return `issued by a CA not in the trust bundle (${code})`;
    default:
      return code;
  }
}
