// The HBONE server: an h2-only mTLS listener (port 15008) whose HTTP/2 CONNECT streams become
// byte tunnels. Each client's certificate is checked by the mesh TLS server (refusals logged
// with their reason); each CONNECT names an `ip:port` the handler decides about: 200 with an
// upstream (then bytes are relayed both ways until both sides end) or a refusal with a reason.
import http2 from 'node:http2';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { createMeshServer } from '../transport/mesh.js';
import type { MeshTls } from '../transport/tls.js';
import { REASON_HEADER, headerSafe, parseAuthority, relayTunnel, resetAndDestroy } from './stream.js';

const { NGHTTP2_NO_ERROR } = http2.constants;
/** Flow-control windows, as the client's (see client.ts). */
const STREAM_WINDOW = 256 << 10;
const SESSION_WINDOW = 4 << 20;

export interface HboneRequest {
  /** The parsed `:authority`: where the client wants its bytes to go. */
  readonly target: { readonly host: string; readonly port: number };
  /** The client's verified SPIFFE ID. */
  readonly peer: string;
  readonly headers: http2.IncomingHttpHeaders;
}

/**
 * The handler's decision. 200: relay to `upstream` until both sides end (it should allow half-
 * open, as capture/tcp.ts connectTcp's sockets do; the relay owns it from here). Otherwise the
 * status and a one-line reason, sent to the client in the `x-weft-reason` header.
 */
export type HboneAnswer =
  | { readonly status: 200; readonly upstream: Duplex }
  | { readonly status: 400 | 403 | 404 | 502 | 503; readonly reason: string };

/** Called once per CONNECT stream; should not throw (a rejection is answered 503 and logged). */
export type HboneHandler = (req: HboneRequest) => Promise<HboneAnswer>;

export interface HboneServer {
  /** The TLS server to listen with (`listen(port)` or `listen({ fd })`). */
  readonly server: net.Server;
  /** Tunnels in flight: CONNECT streams from arrival until both sides closed. */
  readonly tunnels: number;
  /** Stops accepting; sends GOAWAY so clients open no new tunnels here, lets running tunnels
   *  go on for up to `deadlineMs`, then cuts what is left. Resolves once all is closed. */
  close(deadlineMs: number): Promise<void>;
}

export interface HboneServerOptions {
  readonly log: Logger;
  /** HTTP/2 SETTINGS to announce (e.g. maxConcurrentStreams); flow-control windows have defaults. */
  readonly settings?: http2.Settings;
}

/** An h2-only mTLS server (not yet listening: the caller calls listen(port) or listen({fd})). */
export function createHboneServer(meshTls: MeshTls, handler: HboneHandler, opts: HboneServerOptions): HboneServer {
  const log = opts.log;
  const h2 = http2.createServer({ settings: { initialWindowSize: STREAM_WINDOW, ...opts.settings } });
  const sessions = new Set<http2.ServerHttp2Session>();
  const peers = new WeakMap<http2.ServerHttp2Session, string>();
  let tunnels = 0;
  let closing = false;
  /** The verified peer of the socket being handed to the HTTP/2 server: node emits 'session'
   *  synchronously inside emit('connection'), and the session's socket is a guarded proxy. */
  let handingOver: string | undefined;

  const server = createMeshServer(
    meshTls,
    log,
    (socket: tls.TLSSocket) => {
      const client = `${socket.remoteAddress}:${socket.remotePort}`;
      if (closing) return void socket.destroy();
      if (socket.alpnProtocol !== 'h2') {
        log.warn('refused an HBONE client that did not negotiate h2', { client, alpn: socket.alpnProtocol });
        return void socket.destroy();
      }
      socket.setNoDelay(true);
      handingOver = meshTls.peerIdentity(socket);
      try {
        h2.emit('connection', socket);
      } finally {
        handingOver = undefined;
      }
    },
    ['h2'],
  );

  h2.on('session', (session) => {
    const peer = handingOver;
    if (!peer) {
      log.error('an HBONE session arrived without a verified peer; closing it');
      return void session.destroy();
    }
    peers.set(session, peer);
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.on('error', (err) => log.debug('HBONE session error', { peer, error: err.message }));
    session.setLocalWindowSize(SESSION_WINDOW);
  });

  const onTunnelClosed = () => void tunnels--;
  h2.on('stream', (stream, headers) => {
    tunnels++;
    stream.once('close', onTunnelClosed);
    // A reset from the client before or after the answer is handled by the relay (or nobody
    // needs to): it must not crash the process.
    stream.on('error', onStreamError);
    const peer = peers.get(stream.session as http2.ServerHttp2Session) ?? '';
    const bad = notConnect(headers);
    if (bad) return refuse(stream, bad.status, bad.reason, peer);
    const target = parseAuthority(headers[':authority']);
    if (!target) {
      return refuse(stream, 400, `:authority must be the destination ip:port, got ${JSON.stringify(headers[':authority'] ?? '')}`, peer);
    }
    let answer: Promise<HboneAnswer>;
    try {
      answer = handler({ target, peer, headers });
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (answer) => answerWith(stream, answer, peer, headers[':authority'] as string),
      (err: unknown) => {
        log.error('the HBONE handler failed; answering 503', { peer, authority: headers[':authority'], error: errorMessage(err) });
        refuse(stream, 503, 'the tunnel could not be set up (see the server log)', peer);
      },
    );
  });

  function answerWith(stream: http2.ServerHttp2Stream, answer: HboneAnswer, peer: string, authority: string): void {
    if (answer.status !== 200) return refuse(stream, answer.status, answer.reason, peer, authority);
    const upstream = answer.upstream;
    if (stream.closed || stream.destroyed) {
      // The client gave up while the handler was connecting.
      upstream.destroy();
      return;
    }
    stream.respond({ ':status': 200 });
    // So that relays written for sockets (capture/tcp.ts reset) reset a tunnel properly too.
    (stream as unknown as { resetAndDestroy: typeof resetAndDestroy }).resetAndDestroy = resetAndDestroy;
    relayTunnel(stream, upstream);
  }

  function refuse(stream: http2.ServerHttp2Stream, status: number, reason: string, peer: string, authority?: string): void {
    log.debug('HBONE CONNECT refused', { peer, authority, status, reason });
    if (stream.closed || stream.destroyed || stream.headersSent) return;
    stream.respond({ ':status': status, [REASON_HEADER]: headerSafe(reason) }, { endStream: true });
  }

  function onStreamError(err: Error): void {
    log.debug('HBONE stream error', { error: err.message });
  }

  return {
    server,
    get tunnels() {
      return tunnels;
    },
    async close(deadlineMs) {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      for (const s of sessions) {
        if (s.closed || s.destroyed) continue;
        // GOAWAY with the last stream we accepted: the client sends new tunnels elsewhere; our
        // running streams go on, and the session closes itself once they have ended.
        s.goaway(NGHTTP2_NO_ERROR);
        s.close();
      }
      const deadline = Date.now() + deadlineMs;
      while (sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, Math.min(25, deadlineMs)));
      for (const s of sessions) s.destroy();
      // A client still in its TLS handshake must not hold the drain up for long.
      await Promise.race([serverClosed, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
  };
}

/** Why a request is not a (plain) CONNECT, or undefined when it is one. */
function notConnect(headers: http2.IncomingHttpHeaders): { status: 400 | 405; reason: string } | undefined {
  const method = headers[':method'];
  if (method !== 'CONNECT') return { status: 405, reason: `HBONE accepts only CONNECT, not ${String(method)}` };
  if (headers[':protocol'] !== undefined) {
    return { status: 400, reason: `extended CONNECT (:protocol ${String(headers[':protocol'])}) is not HBONE` };
  }
  return undefined;
}
