// The HBONE client: app connections as HTTP/2 CONNECT streams over mTLS sessions to a peer's
// HBONE listener, one session per (source identity, destination identity, destination address),
// shared by every tunnel to that peer. Sessions are dialed once however many tunnels wait, a
// second one is opened when the peer's SETTINGS_MAX_CONCURRENT_STREAMS is reached, sessions that
// go away (GOAWAY, error) are replaced for new tunnels while running ones finish, idle ones close.
// HTTP/2 is Weft's own engine (proxy/http2), as on the server side: a tunnel is one object, the
// stream's handler and the Duplex its owner uses as a socket.
import type net from 'node:net';
import { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { ErrorCode, WeftError, errorMessage, isWeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { H2Connection, type H2Stream, type StreamHandler } from '../http2/connection.js';
import { H2Error } from '../http2/frames.js';
import { responseStatus } from '../http2/validate.js';
import { connectTcp } from '../transport/plain.js';
import type { MeshTls } from '../transport/tls.js';
import { REASON_HEADER, formatAuthority } from './stream.js';

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Flow-control windows. HTTP/2's default 64 KiB caps a tunnel at 64 KiB per round trip (64 MB/s
 *  at 1 ms between nodes); 256 KiB per tunnel lifts that, and the session's window bounds what
 *  a session can hold unread (a stalled reader stops window updates) to 4 MiB. */
const STREAM_WINDOW = 256 << 10;
const SESSION_WINDOW = 4 << 20;

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
 * One tunnel: a Duplex (over an HTTP/2 CONNECT stream) that undici and the relays can use like a
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

/** One mTLS connection and its HTTP/2 connection (Weft's own engine, proxy/http2). */
class Session {
  streams = 0;
  /** GOAWAY received or sent, or closed: takes no new streams. */
  draining = false;
  /** Told when the connection has closed (HboneClient.close waits for it). */
  onClosed: (() => void) | undefined;
  private idleSince = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly peer: Peer,
    readonly conn: H2Connection,
    /** The TLS socket, and the TCP one under it: referenced only while a tunnel is open. */
    private readonly sockets: readonly net.Socket[],
    private readonly idleTimeoutMs: number,
  ) {
    this.idle();
  }

  get maxStreams(): number {
    return this.conn.peerMaxConcurrentStreams;
  }

  get usable(): boolean {
    return !this.draining && this.streams < this.maxStreams && this.conn.usable;
  }

  acquire(): void {
    if (this.streams++ === 0) for (const s of this.sockets) s.ref();
  }

  release(): void {
    if (--this.streams === 0) this.idle();
  }

  /** Stops being used for new tunnels; closes once the running ones end. */
  drain(): void {
    this.draining = true;
    this.conn.drain();
  }

  /** No tunnel: nothing here may keep the process alive, and the session closes after a while.
   *  One timer per idle period (not per tunnel): it re-arms for what is left when it fires early. */
  private idle(): void {
    this.idleSince = Date.now();
    for (const s of this.sockets) s.unref();
    if (this.idleTimer) return;
    const check = () => {
      this.idleTimer = undefined;
      if (this.streams > 0 || this.conn.closed) return;
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

function usableSession(peer: Peer): Session | undefined {
  for (const s of peer.sessions) if (s.usable) return s;
  return undefined;
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
    // Until the server's SETTINGS arrive we neither know its stream limit nor that it accepted
    // our certificate (with TLS 1.3 it checks it after our side finished): wait for them.
    let session: Session | undefined;
    let opened: { resolve: () => void; reject: (err: Error) => void } | undefined;
    const conn = new H2Connection(socket, {
      role: 'client',
      streamWindow: STREAM_WINDOW,
      connectionWindow: SESSION_WINDOW,
      onSettings: () => opened?.resolve(),
      // GOAWAY: running tunnels finish (the connection closes once they have); new ones go to a
      // new session.
      onGoaway: () => {
        if (session) session.draining = true;
      },
      onClose: (err) => {
        opened?.reject(
          new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: ${who} closed the connection before its HTTP/2 SETTINGS${err ? ` (${err.message})` : ''}`, {
            hint: `it may have refused our certificate (${peer.source}); see its log`,
            cause: err,
          }),
        );
        if (!session) return;
        session.draining = true;
        session.stopTimer();
        session.onClosed?.();
        const i = peer.sessions.indexOf(session);
        if (i >= 0) peer.sessions.splice(i, 1);
        this.forgetIfUnused(peer);
        this.log.debug('HBONE session closed', { peer: where, source: peer.source, destination: peer.destination, error: err?.message });
      },
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        opened = undefined;
        conn.destroy(H2Error.Cancel);
        socket.destroy();
        reject(new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE: ${who} sent no HTTP/2 SETTINGS within the connect timeout`));
      }, remaining(deadline));
      opened = {
        resolve: () => {
          opened = undefined;
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          opened = undefined;
          clearTimeout(timer);
          socket.destroy();
          reject(err);
        },
      };
      conn.start();
    });
    session = new Session(peer, conn, [socket, raw], this.idleTimeoutMs);
    peer.sessions.push(session);
    this.log.debug('HBONE session opened', { peer: where, source: peer.source, destination: peer.destination, sessions: peer.sessions.length });
    return session;
  }

  /** Opens one CONNECT stream on `session`; resolves on 200. Rejects with SessionGone when the
   *  server never processed it (retry elsewhere). */
  private open(session: Session, target: HboneConnectTarget, where: string, deadline: number): Promise<HboneStream> {
    const fields = [':method', 'CONNECT', ':authority', target.authority];
    if (target.headers) for (const name of Object.keys(target.headers)) fields.push(name.toLowerCase(), target.headers[name]!);
    const tunnel = new Tunnel(target);
    const stream = session.conn.request(fields, false, tunnel);
    tunnel.attach(stream, session);
    return new Promise<HboneStream>((resolve, reject) => {
      const timer = setTimeout(() => {
        tunnel.answered = undefined;
        stream.reset(H2Error.Cancel);
        reject(new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE CONNECT to ${target.authority} via ${where}: no answer within the connect timeout`));
      }, remaining(deadline));
      tunnel.answered = (head, code) => {
        tunnel.answered = undefined;
        clearTimeout(timer);
        if (head) {
          const status = responseStatus(head);
          if (status === 200) return resolve(tunnel.handOut());
          stream.reset(H2Error.Cancel); // the refusal is reported below; the stream is done
          return reject(new HboneRefusedError(status, fieldValue(head, REASON_HEADER) ?? '', where, target.authority));
        }
        const error = new WeftError(ErrorCode.UPSTREAM_CONNECT, `HBONE CONNECT to ${target.authority} via ${where} failed before an answer: stream closed with code ${errorName(code)}`);
        reject(code === H2Error.RefusedStream ? new SessionGone(error) : error);
      };
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
            if (s.conn.closed) return resolve();
            s.onClosed = resolve;
            s.drain();
            setTimeout(() => s.conn.destroy(H2Error.Cancel), 1000).unref();
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

/** RFC 9113 §7 error codes by name, as node:http2 reports them (NGHTTP2_CONNECT_ERROR …). */
const ERROR_NAMES = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

function errorName(code: number): string {
  const name = ERROR_NAMES[code];
  return name ? `NGHTTP2_${name}` : String(code);
}

function fieldValue(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/**
 * One tunnel: the CONNECT stream's handler, and the Duplex its owner reads and writes like a
 * socket (see HboneStream). Received bytes are credited back to the server as the reader takes
 * them (at once while the readable buffer is below its mark, else on the next _read), so a slow
 * reader holds the server back; a write completes when the stream took it (or once it drained).
 * A reset from the server destroys the Duplex with an ERR_HTTP2_STREAM_ERROR naming the code
 * (CANCEL: a plain close), and destroying it resets the stream (resetAndDestroy: CONNECT_ERROR,
 * which the server turns into a TCP reset of the app connection; otherwise CANCEL).
 */
class Tunnel extends Duplex implements StreamHandler {
  /** Until the answer: how open() hears it (the final head, or the close code without one). */
  answered: ((head: string[] | undefined, code: number) => void) | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  private stream!: H2Stream;
  private session: Session | undefined;
  /** Taken by the owner: from then on a reset is reported to it as an error. */
  private handedOut = false;
  /** Received and pushed while the readable buffer was full: credited on the next _read. */
  private unconsumed = 0;
  private writeDone: ((err?: Error | null) => void) | undefined;
  private resetCode: number = H2Error.Cancel;
  private idle: NodeJS.Timeout | undefined;

  constructor(target: HboneConnectTarget) {
    super({ allowHalfOpen: true });
    this.remoteAddress = target.host;
    this.remotePort = target.port;
  }

  attach(stream: H2Stream, session: Session): void {
    this.stream = stream;
    this.session = session;
    session.acquire();
  }

  handOut(): HboneStream {
    this.handedOut = true;
    return this as unknown as HboneStream;
  }

  // ---- the stream's side (StreamHandler) ------------------------------------------------------

  onHead(s: H2Stream, fields: string[], endStream: boolean): void {
    this.answered?.(fields, 0);
    if (endStream && !s.closed) this.push(null);
  }

  onData(s: H2Stream, buf: Buffer, start: number, end: number): void {
    this.idle?.refresh();
    if (this.push(buf.subarray(start, end))) s.consumed(end - start);
    else this.unconsumed += end - start;
  }

  onEnd(): void {
    this.push(null);
  }

  onClose(s: H2Stream, code: number): void {
    this.session?.release();
    this.session = undefined;
    if (this.idle) clearTimeout(this.idle);
    if (this.answered) return this.answered(undefined, code);
    const done = this.writeDone;
    this.writeDone = undefined;
    // Both sides ended (or the server said it wants no more, RST_STREAM NO_ERROR, which ends
    // its bytes too): the Duplex closes by itself once its reader and writer are done as well.
    if (code === H2Error.NoError) {
      if (!s.remoteEnded) this.push(null);
      return void done?.();
    }
    if (!this.handedOut || code === H2Error.Cancel) return void this.destroy();
    const err = Object.assign(new Error(`Stream closed with error code ${errorName(code)}`), { code: 'ERR_HTTP2_STREAM_ERROR' });
    this.destroy(err);
  }

  onWritable(): void {
    const done = this.writeDone;
    this.writeDone = undefined;
    done?.();
  }

  // ---- the owner's side (Duplex) ---------------------------------------------------------------

  override _read(): void {
    const n = this.unconsumed;
    if (n === 0) return;
    this.unconsumed = 0;
    this.stream.consumed(n);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.idle?.refresh();
    // A stream the server closed cleanly (it wants no more): the bytes are dropped, as a
    // socket's after the peer's FIN and close would be.
    if (this.stream.closed || this.stream.writeFrom(chunk, 0, chunk.length)) callback();
    else this.writeDone = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.stream.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err: Error | null) => void): void {
    if (this.idle) clearTimeout(this.idle);
    if (this.stream && !this.stream.closed) this.stream.reset(this.resetCode);
    callback(err);
  }

  /** Ends the tunnel the way a TCP RST ends a connection (see resetStream in stream.ts). */
  resetAndDestroy(): this {
    this.resetCode = H2Error.ConnectError;
    return this.destroy();
  }

  /** An idle timeout, as a socket's: 'timeout' (and `callback`) after `ms` without bytes either way; 0 clears it. */
  setTimeout(ms: number, callback?: () => void): this {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (callback) this.once('timeout', callback);
    if (ms > 0) this.idle = setTimeout(() => this.emit('timeout'), ms).unref();
    return this;
  }

  // The session's TCP socket has no-delay set and is ref'd while any tunnel is open.
  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}

function remaining(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}
