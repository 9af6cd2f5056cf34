// The HBONE client: app connections as HTTP/2 CONNECT streams over mTLS sessions to a peer's
// HBONE listener, one session per (source identity, destination identity, destination address),
// shared by every tunnel to that peer. Sessions are dialed once however many tunnels wait, a
// second one is opened when the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached, sessions that
// go away (GOAWAY, error) are replaced for new tunnels while running ones finish, idle ones close.
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { ErrorCode, WeftError, errorMessage, isWeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { connectTcp } from '../transport/plain.js';
import type { MeshTls } from '../transport/tls.js';
import { REASON_HEADER, formatAuthority, resetAndDestroy } from './stream.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Flow-control windows. HTTP/2's default 64 KiB caps a tunnel at 64 KiB per round trip (64 MB/s
 *  at 1 ms between nodes); 256 KiB per tunnel lifts that, and the session's window bounds what
 *  a session can hold unread (a stalled reader stops window updates) to 4 MiB. */
const STREAM_WINDOW = 256 << 10;
const SESSION_WINDOW = 4 << 20;
/** session.request() errors meaning the session takes no new streams (not a bad request). */
const SESSION_GONE: ReadonlySet<string> = new Set(['ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_OUT_OF_STREAMS']);

export interface HboneConnectTarget {
  /** The HBONE listener, e.g. `<pod ip>` and 15008. */
  readonly host: string;
  readonly port: number;
  /** SPIFFE ID the server must prove. */
  readonly identity: string;
  /** CONNECT `:authority`, e.g. "10.1.2.3:8080" (the app's address, or a Service VIP:port for a waypoint). */
  readonly authority: string;
  /** Dial + handshake + the server's answer, together; 10 s by default. */
  readonly connectTimeoutMs?: number;
  /** Extra request headers for the CONNECT, e.g. traceparent, baggage. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Dials the TCP connection under the TLS (default: a plain connect from this namespace); the
 *  node proxy passes one that makes the socket inside a pod's network namespace. */
export type Dial = (host: string, port: number, timeoutMs: number) => Promise<net.Socket>;

/**
 * One tunnel: a Duplex (an HTTP/2 CONNECT stream) that undici and the relays can use like a
 * socket. `setNoDelay/setKeepAlive/ref/unref` do nothing (the session's TCP socket has no-delay
 * set and is ref'd while any tunnel is open); `setTimeout` is the stream's own idle timeout;
 * `remoteAddress/remotePort` are the HBONE listener's; `resetAndDestroy` ends the tunnel with
 * RST_STREAM(CONNECT_ERROR), which the server turns into a TCP reset of the app connection.
 */
export interface HboneStream extends Duplex {
  setNoDelay(noDelay?: boolean): this;
  setKeepAlive(enable?: boolean, initialDelay?: number): this;
  setTimeout(ms: number, callback?: () => void): this;
  ref(): this;
  unref(): this;
  resetAndDestroy(): this;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

/** The server answered the CONNECT with something other than 200. */
export class HboneRefusedError extends WeftError {
  constructor(
    readonly status: number,
    /** The server's `x-weft-reason`, or '' when it gave none. */
    readonly reason: string,
    where: string,
    authority: string,
  ) {
    super(codeForStatus(status), `HBONE CONNECT to ${authority} via ${where} was answered ${status}${reason ? `: ${reason}` : ''}`);
    this.name = 'HboneRefusedError';
  }
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 403:
      return ErrorCode.PERMISSION_DENIED;
    case 404:
      return ErrorCode.ROUTE_NOT_FOUND;
    case 400:
    case 405:
      return ErrorCode.USAGE;
    case 504:
      return ErrorCode.UPSTREAM_TIMEOUT;
    default:
      return ErrorCode.UPSTREAM_CONNECT; // 502/503: the app behind the peer is unreachable
  }
}

/** Every tunnel to one (source, destination, address). */
interface Peer {
  readonly key: string;
  readonly source: string;
  readonly destination: string;
  readonly address: string;
  readonly sessions: Session[];
  dialing: Promise<Session> | undefined;
}

const SESSION = Symbol('hbone.session');
type TunnelStream = http2.ClientHttp2Stream & { [SESSION]?: Session };

/** One mTLS connection and its HTTP/2 session. */
class Session {
  streams = 0;
  maxStreams: number;
  /** GOAWAY received or sent, or closed: takes no new streams. */
  draining = false;
  private idleSince = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly peer: Peer,
    readonly h2: http2.ClientHttp2Session,
    private readonly idleTimeoutMs: number,
  ) {
    this.maxStreams = h2.remoteSettings.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER;
    h2.on('remoteSettings', (s) => (this.maxStreams = s.maxConcurrentStreams ?? Number.MAX_SAFE_INTEGER));
    this.idle();
  }

  get usable(): boolean {
    return !this.draining && this.streams < this.maxStreams && !this.h2.closed && !this.h2.destroyed;
  }

  acquire(): void {
    if (this.streams++ === 0) this.h2.ref();
  }

  release(): void {
    if (--this.streams === 0) this.idle();
  }

  /** Stops being used for new tunnels; closes once the running ones end. */
  drain(): void {
    this.draining = true;
    if (!this.h2.closed && !this.h2.destroyed) this.h2.close();
  }

  /** No tunnel: nothing here may keep the process alive, and the session closes after a while.
   *  One timer per idle period (not per tunnel): it re-arms for what is left when it fires early. */
  private idle(): void {
    this.idleSince = Date.now();
    if (!this.h2.destroyed) this.h2.unref();
    if (this.idleTimer) return;
    const check = () => {
      this.idleTimer = undefined;
      if (this.streams > 0 || this.h2.destroyed) return;
      const left = this.idleSince + this.idleTimeoutMs - Date.now();
      if (left > 0) this.idleTimer = setTimeout(check, left).unref();
      else this.drain();
    };
    this.idleTimer = setTimeout(check, this.idleTimeoutMs).unref();
  }

  stopTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}

/** Shared 'close' listener of every tunnel stream (no closure per tunnel). */
function onTunnelClose(this: TunnelStream): void {
  this[SESSION]?.release();
  this[SESSION] = undefined;
}

function usableSession(peer: Peer): Session | undefined {
  for (const s of peer.sessions) if (s.usable) return s;
  return undefined;
}

function returnThis<T>(this: T): T {
  return this;
}

/** Dials with node:net from this process's network namespace. */
const defaultDial: Dial = (host, port, timeoutMs) => connectTcp(host, port, { timeoutMs, allowHalfOpen: false });

export class HboneClient {
  private readonly log: Logger;
  private readonly dial: Dial;
  private readonly idleTimeoutMs: number;
  private readonly peers = new Map<string, Peer>();
  private closed = false;

  constructor(opts: { log: Logger; dial?: Dial; idleTimeoutMs?: number }) {
    this.log = opts.log;
    this.dial = opts.dial ?? defaultDial;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  /**
   * Opens a tunnel to `target.authority` through the HBONE listener at `target.host:port`,
   * authenticated as `source`'s identity. Resolves on the server's 200 with the stream (the
   * caller owns it and must handle its 'error'); rejects with a WeftError: UPSTREAM_CONNECT
   * (unreachable, timed out, session refused — e.g. our certificate — or the peer went away),
   * IDENTITY_MISMATCH / CERT_INVALID (the server is not who the endpoint says), or an
   * HboneRefusedError carrying the server's status and reason. `dial` overrides the client's.
   */
  async connect(source: MeshTls, target: HboneConnectTarget, dial?: Dial): Promise<HboneStream> {
    const where = formatAuthority(target.host, target.port);
    if (this.closed) throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE to ${where}: the client is closed`);
    const sourceId = source.localIdentity();
    if (!sourceId) throw new WeftError(ErrorCode.CERT_INVALID, `HBONE to ${where}: no workload certificate yet`);
    const deadline = Date.now() + (target.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    const key = `${sourceId} ${target.identity} ${where}`;
    for (let refused = 0; ; ) {
      // Looked up on every turn: a peer whose sessions all closed meanwhile has been forgotten.
      let peer = this.peers.get(key);
      if (!peer) {
        peer = { key, source: sourceId, destination: target.identity, address: where, sessions: [], dialing: undefined };
        this.peers.set(key, peer);
      }
      const session = usableSession(peer) ?? (await this.dialed(peer, source, target, dial ?? this.dial, deadline));
      // Checked again here, where taking the stream cannot be interleaved: other waiters on the
      // same dial may have filled the new session meanwhile. Then another one is needed.
      if (!session?.usable) continue;
      try {
        return await this.open(session, target, where, deadline);
      } catch (err) {
        // Not processed by the server (it was at its stream limit or going away): safe to retry.
        if (!(err instanceof SessionGone) || ++refused > 2) throw err instanceof SessionGone ? err.error : err;
      }
    }
  }

  /** Waits for the peer's dial in progress (or starts one); undefined when the session it made
   *  is already full, so that the caller looks again. */
  private async dialed(peer: Peer, source: MeshTls, target: HboneConnectTarget, dial: Dial, deadline: number): Promise<Session | undefined> {
    if (!peer.dialing) {
      peer.dialing = this.openSession(peer, source, target, dial, deadline);
      peer.dialing.then(
        () => (peer.dialing = undefined),
        () => {
          peer.dialing = undefined;
          this.forgetIfUnused(peer);
        },
      );
    }
    const session = await peer.dialing;
    if (session.usable) return session;
    if (session.draining || session.maxStreams === 0) {
      throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE to ${peer.address} (${peer.destination}): the session went away as soon as it opened`);
    }
    return undefined;
  }

  private async openSession(peer: Peer, source: MeshTls, target: HboneConnectTarget, dial: Dial, deadline: number): Promise<Session> {
    const where = peer.address;
    const who = `${where} (${target.identity})`;
    let raw: net.Socket;
    try {
      raw = await dial(target.host, target.port, remaining(deadline));
    } catch (err) {
      throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: cannot connect to ${who}: ${errorMessage(err)}`, { cause: err });
    }
    raw.setNoDelay(true);
    // A half-open socket (as relays dial them) would keep a session the peer closed looking alive.
    raw.allowHalfOpen = false;
    let socket: tls.TLSSocket;
    try {
      socket = await source.connect({ host: target.host, port: target.port, expectedIdentity: target.identity, alpn: ['h2'], timeoutMs: remaining(deadline), socket: raw });
    } catch (err) {
      raw.destroy();
      if (isWeftError(err, ErrorCode.IDENTITY_MISMATCH) || isWeftError(err, ErrorCode.CERT_INVALID)) throw err;
      throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: mTLS with ${who} failed: ${errorMessage(err)}`, { cause: err });
    }
    if (socket.alpnProtocol !== 'h2') {
      socket.destroy();
      throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: ${who} did not negotiate ALPN h2 (got ${String(socket.alpnProtocol)})`, {
        hint: 'is that port an HBONE listener (15008)?',
      });
    }
    if (this.closed) {
      socket.destroy();
      throw new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE to ${who}: the client is closed`);
    }
    const h2 = http2.connect(`http://${where}`, { createConnection: () => socket, settings: { initialWindowSize: STREAM_WINDOW } });
    // Until the server's SETTINGS arrive we neither know its stream limit nor that it accepted
    // our certificate (with TLS 1.3 it checks it after our side finished): wait for them.
    let lastError: Error | undefined;
    h2.on('error', (err) => {
      lastError = err;
      this.log.debug('HBONE session error', { peer: where, destination: target.identity, error: err.message });
    });
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = () => {
        settled = true;
        clearTimeout(timer);
        h2.removeListener('remoteSettings', ok);
        h2.removeListener('close', onClose);
      };
      const fail = (err: WeftError) => {
        if (settled) return;
        settle();
        h2.destroy();
        reject(err);
      };
      const ok = () => {
        settle();
        resolve();
      };
      const onClose = () =>
        fail(
          new WeftError(
            ErrorCode.UPSTREAM_CONNECT,
            `HBONE: ${who} closed the connection before its HTTP/2 SETTINGS${lastError ? ` (${lastError.message})` : ''}`,
            { hint: `it may have refused our certificate (${peer.source}); see its log`, cause: lastError },
          ),
        );
      const timer = setTimeout(
        () => fail(new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: ${who} sent no HTTP/2 SETTINGS within the connect timeout`)),
        remaining(deadline),
      );
      h2.once('remoteSettings', ok);
      h2.once('close', onClose);
    });
    h2.setLocalWindowSize(SESSION_WINDOW);
    const session = new Session(peer, h2, this.idleTimeoutMs);
    // GOAWAY: running tunnels finish (node closes the session once they have); new ones go to a
    // new session. 'close': gone.
    h2.on('goaway', () => (session.draining = true));
    h2.once('close', () => {
      session.draining = true;
      session.stopTimer();
      const i = peer.sessions.indexOf(session);
      if (i >= 0) peer.sessions.splice(i, 1);
      this.forgetIfUnused(peer);
      this.log.debug('HBONE session closed', { peer: where, source: peer.source, destination: peer.destination });
    });
    peer.sessions.push(session);
    this.log.debug('HBONE session opened', { peer: where, source: peer.source, destination: peer.destination, sessions: peer.sessions.length });
    return session;
  }

  /** Opens one CONNECT stream on `session`; resolves on 200. Rejects with SessionGone when the
   *  server never processed it (retry elsewhere). */
  private open(session: Session, target: HboneConnectTarget, where: string, deadline: number): Promise<HboneStream> {
    const headers: http2.OutgoingHttpHeaders = target.headers
      ? { ...target.headers, ':method': 'CONNECT', ':authority': target.authority }
      : { ':method': 'CONNECT', ':authority': target.authority };
    let stream: TunnelStream;
    try {
      stream = session.h2.request(headers, { endStream: false });
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (SESSION_GONE.has(code)) {
        session.draining = true;
        return Promise.reject(new SessionGone(new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE to ${where}: ${errorMessage(err)}`, { cause: err })));
      }
      return Promise.reject(new WeftError(ErrorCode.USAGE, `HBONE CONNECT to ${target.authority}: ${errorMessage(err)}`, { cause: err }));
    }
    session.acquire();
    stream[SESSION] = session;
    stream.once('close', onTunnelClose);
    return new Promise<HboneStream>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        stream.removeListener('response', onResponse);
        stream.removeListener('error', onError);
        stream.removeListener('close', onClosed);
      };
      const onResponse = (h: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
        settle();
        const status = Number(h[':status']);
        if (status === 200) return resolve(asSocket(stream, target));
        const reason = h[REASON_HEADER];
        stream.on('error', () => {}); // the refusal is reported below; the stream is done
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
        reject(new HboneRefusedError(status, typeof reason === 'string' ? reason : '', where, target.authority));
      };
      const gone = (err: Error | undefined) => {
        settle();
        stream.on('error', () => {});
        if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
        const why = err ? errorMessage(err) : `stream closed with code ${stream.rstCode ?? 'unknown'}`;
        const error = new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE CONNECT to ${target.authority} via ${where} failed before an answer: ${why}`, {
          cause: err,
        });
        reject(stream.rstCode === NGHTTP2_REFUSED_STREAM ? new SessionGone(error) : error);
      };
      const onError = (err: Error) => gone(err);
      const onClosed = () => gone(undefined);
      const timer = setTimeout(() => {
        settle();
        stream.on('error', () => {});
        stream.close(NGHTTP2_CANCEL);
        reject(new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE CONNECT to ${target.authority} via ${where}: no answer within the connect timeout`));
      }, remaining(deadline));
      stream.once('response', onResponse);
      stream.once('error', onError);
      stream.once('close', onClosed);
    });
  }

  private forgetIfUnused(peer: Peer): void {
    if (peer.sessions.length === 0 && !peer.dialing && this.peers.get(peer.key) === peer) this.peers.delete(peer.key);
  }

  /** One row per open session (for the admin endpoint and tests). */
  describe(): Array<{ key: string; streams: number; source: string; destination: string; address: string }> {
    const out: Array<{ key: string; streams: number; source: string; destination: string; address: string }> = [];
    for (const p of this.peers.values()) {
      for (const s of p.sessions) out.push({ key: p.key, streams: s.streams, source: p.source, destination: p.destination, address: p.address });
    }
    return out;
  }

  /** Sends GOAWAY on every session; running tunnels get a second to finish, then are cut. */
  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.peers.values()].flatMap((p) => p.sessions);
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise<void>((resolve) => {
            if (s.h2.destroyed) return resolve();
            s.h2.once('close', () => resolve());
            s.drain();
            setTimeout(() => s.h2.destroy(), 1000).unref();
          }),
      ),
    );
    this.peers.clear();
  }
}

/** A stream the server never processed (REFUSED_STREAM, or the session went away first). */
class SessionGone extends Error {
  constructor(readonly error: WeftError) {
    super(error.message);
  }
}

/** The socket-like surface of a tunnel (see HboneStream), set on the stream itself: shared
 *  functions, no wrapper, no closure. */
function asSocket(stream: TunnelStream, target: HboneConnectTarget): HboneStream {
  const s = stream as unknown as Record<string, unknown>;
  s.setNoDelay = returnThis;
  s.setKeepAlive = returnThis;
  s.ref = returnThis;
  s.unref = returnThis;
  s.resetAndDestroy = resetAndDestroy;
  s.remoteAddress = target.host;
  s.remotePort = target.port;
  return stream as unknown as HboneStream;
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}
