// One listening port for HTTP/1.1 and HTTP/2 (h2c prior knowledge, or ALPN h2 over TLS): peek
// at the first bytes, hand the socket to node:http or node:http2 (HTTP/1.1 to the byte-level
// fast path first, when the listener has one: it hands node:http whatever it does not take;
// HTTP/2 to Weft's own HTTP/2 engine, when the listener has a lean path: each stream it does not
// take is bridged to node:http2's compat objects), track connections so close() can stop
// accepting, let in-flight requests finish, then close what is left.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { FastPath, FastPathHost } from '../http1/fast-path.js';
import { Bridge } from '../http2/bridge.js';
import { H2Connection } from '../http2/connection.js';
import { attachHolder } from '../http2/decide.js';
import type { H2Path, H2PathHost } from '../http2/stream-path.js';
import { proxyErrors, toClientAnswer } from './errors.js';
import type { DownstreamRequest, DownstreamResponse } from './facts.js';
import { LiveSet } from './live-set.js';
import { sendAnswer, writeRawAnswer } from './respond.js';
import type { ListenerCounters } from './stats.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** What the listener knows about one downstream connection, computed once when it opens. */
export interface ConnectionInfo {
  readonly id: number;
  /** Encrypted (TLS) connection. */
  readonly secure: boolean;
  /** Authenticated peer SPIFFE ID (mTLS), else undefined. */
  readonly peerIdentity: string | undefined;
  /** Target app port the peer asked for (SNI), else undefined. */
  readonly targetPort: number | undefined;
  readonly remoteAddress: string | undefined;
}

export interface FrontendHandlers {
  /** Every ordinary request (both protocols). Must answer `res`; a rejection is answered 500. */
  request(req: DownstreamRequest, res: DownstreamResponse, conn: ConnectionInfo): Promise<void>;
  /** HTTP/1.1 `Upgrade` and `CONNECT`: the socket is the handler's from now on. */
  tunnel(req: http.IncomingMessage, socket: Duplex, head: Buffer, conn: ConnectionInfo): Promise<void>;
}

export interface FrontendOptions {
  /** Makes the listening server; `onSocket` receives connections ready for HTTP bytes. */
  readonly createServer: (onSocket: (socket: net.Socket) => void) => net.Server;
  readonly describe: (socket: net.Socket) => Omit<ConnectionInfo, 'id' | 'remoteAddress'>;
  readonly handlers: FrontendHandlers;
  readonly counters: ListenerCounters;
  readonly log: Logger;
  /** Idle time before a keep-alive HTTP/1.1 connection (or one that sends nothing) is closed. */
  readonly idleTimeoutMs?: number;
  /** HTTP/1.1 connections go here first (proxy/http1); absent: straight to node:http. */
  readonly fastPath?: (idleTimeoutMs: number) => FastPath;
  /** HTTP/2 connections are Weft's engine's, each stream offered here first (proxy/http2);
   *  absent: node:http2 serves them all through its compat API. */
  readonly h2Path?: H2Path;
}

export interface HttpFrontend {
  listen(port: number, host?: string): Promise<AddressInfo>;
  /** Stops accepting, lets requests in flight finish (up to `drainTimeoutMs`), then closes
   *  every connection. Idle keep-alive connections are closed at once; HTTP/2 gets GOAWAY. */
  close(drainTimeoutMs: number): Promise<void>;
  readonly activeRequests: number;
}

const CONN = Symbol('weft.connection');
type Tagged = { [CONN]?: Conn };

interface Conn {
  /** Its place among the listener's connections (LiveSet). */
  liveSlot: number;
  readonly info: ConnectionInfo;
  readonly socket: net.Socket;
  kind: 'sniffing' | 'fast' | 'h1' | 'h2' | 'tunnel';
  active: number;
  session?: http2.ServerHttp2Session;
  /** The lean HTTP/2 path's view of this connection, made on its first stream. */
  h2Host?: H2PathHost;
  /** HTTP/2 by Weft's engine (the listener has a lean path). */
  engine?: H2Connection;
  /** node:http2 behind the engine, for the streams the lean path leaves; made on the first. */
  bridge?: Bridge;
  /** node:http's responses in flight on this connection, so a drain can mark those not yet
   *  started `Connection: close` (an array on the connection, not a Set shared by all: see
   *  proxy/http2/stream-table.ts for what a Set that every request passes through costs). */
  h1Responses?: http.ServerResponse[];
}

/** The connection a request arrived on (h2 compat sockets forward symbol reads to the socket
 *  node:http2 holds: the real one, or a bridged session's, tagged when it was made). */
function connOf(req: DownstreamRequest): Conn | undefined {
  return (req.socket as unknown as Tagged | null)?.[CONN];
}

export function createHttpFrontend(opts: FrontendOptions): HttpFrontend {
  const { handlers, counters, log } = opts;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const conns = new LiveSet<Conn>();
  let nextId = 1;
  let closing = false;
  let activeRequests = 0;
  const waiters: Array<() => void> = [];
  /** Something ended (a request, a connection): let close() look again. */
  const changed = () => {
    if (waiters.length > 0) for (const w of waiters.splice(0)) w();
  };
  /** Every path (node:http, node:http2, the fast paths) counts its requests here, so a drain
   *  waits for all of them. */
  const requestStarted = (conn: Conn) => {
    counters.requests++;
    conn.active++;
    activeRequests++;
  };
  const requestEnded = (conn: Conn) => {
    conn.active--;
    activeRequests--;
    changed();
  };

  const h1 = http.createServer({ requireHostHeader: false, keepAliveTimeout: idleTimeoutMs, requestTimeout: 0 });
  // Streams, not 'request': compat objects are made here (serveCompat), as node:http2 would.
  const h2 = http2.createServer({});
  const fastPath = opts.fastPath?.(idleTimeoutMs);
  const h2Path = opts.h2Path;

  const onRequest = (req: DownstreamRequest, res: DownstreamResponse) => {
    const conn = connOf(req);
    if (!conn) {
      res.destroy();
      return;
    }
    requestStarted(conn);
    const h1res = 'stream' in res ? undefined : (res as http.ServerResponse);
    if (h1res) {
      if (closing) h1res.shouldKeepAlive = false;
      else (conn.h1Responses ??= []).push(h1res);
    }
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      if (h1res && conn.h1Responses) {
        const i = conn.h1Responses.indexOf(h1res);
        if (i >= 0) conn.h1Responses.splice(i, 1);
      }
      requestEnded(conn);
      if (closing && conn.kind === 'h1' && conn.active === 0) conn.socket.destroySoon();
    };
    res.once('close', end);
    res.once('finish', end);
    handlers.request(req, res, conn.info).catch((err: unknown) => {
      log.error('request handler failed', { error: err });
      sendAnswer(res, toClientAnswer(err, { grpc: false, responseStarted: res.headersSent }));
    });
  };
  h1.on('request', onRequest);
  h2.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
    const conn = (stream.session as unknown as Tagged | undefined)?.[CONN];
    if (!conn) {
      stream.destroy();
      return;
    }
    // A bridged stream: what the lean path decided about it was kept on the client's stream.
    const holder = conn.bridge?.takeHolder(stream.id ?? 0);
    if (holder) attachHolder(stream, holder);
    serveCompat(stream, headers, rawHeaders);
  });

  /** What node:http2 does with a stream when a server has a 'request' listener (and no
   *  'connect' or 'checkContinue' one): compat objects, CONNECT refused, Expect answered. */
  function serveCompat(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, rawHeaders: string[]): void {
    const req = new http2.Http2ServerRequest(stream, headers, {}, rawHeaders);
    const res = new http2.Http2ServerResponse(stream);
    if (headers[':method'] === 'CONNECT') {
      res.statusCode = 405;
      res.end();
      return;
    }
    const expect = headers.expect;
    if (expect !== undefined) {
      if (expect !== '100-continue') {
        res.statusCode = 417;
        res.end();
        return;
      }
      res.writeContinue();
    }
    onRequest(req, res);
  }

  /** The frontend's side of a lean HTTP/2 stream: counts and drain. */
  function h2Host(conn: Conn): H2PathHost {
    return {
      requestStarted: () => requestStarted(conn),
      requestEnded: () => requestEnded(conn),
    };
  }

  const onTunnel = (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const conn = connOf(req);
    if (!conn) {
      socket.destroy();
      return;
    }
    counters.requests++;
    conn.kind = 'tunnel';
    conn.active = 1;
    handlers.tunnel(req, socket, head, conn.info).catch((err: unknown) => {
      log.error('tunnel handler failed', { error: err });
      socket.destroy();
    });
  };
  h1.on('upgrade', onTunnel);
  h1.on('connect', onTunnel);
  h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (socket.writable && err.code !== 'ECONNRESET') writeRawAnswer(socket, proxyErrors.badRequest(`malformed HTTP/1.1 request (${err.code ?? err.message})`));
    else socket.destroy();
  });
  /** The connection whose bridge is being handed to node:http2 (its 'session' comes at once). */
  let bridging: Conn | undefined;
  h2.on('session', (session: http2.ServerHttp2Session) => {
    const conn = (session.socket as unknown as Tagged | undefined)?.[CONN] ?? bridging;
    if (conn && conn === bridging) {
      // node:http2 reads the bridge through a socket of its own: it gets the client
      // connection's Weft tags (this frontend's, captured mode's original destination, ...).
      const real = conn.socket as unknown as Record<symbol, unknown>;
      const seen = session.socket as unknown as Record<symbol, unknown>;
      for (const key of Object.getOwnPropertySymbols(real)) if (key.description?.startsWith('weft.')) seen[key] = real[key];
      // A handler that destroys "the socket" (a plaintext refusal) closes the bridged session:
      // the client's connection goes with it — unless this is the drain closing it.
      session.once('close', () => {
        if (!closing) conn.socket.destroy();
      });
    }
    if (conn) {
      conn.session = session;
      // Streams find their connection here (session.socket is a Proxy: slower to ask).
      (session as unknown as Tagged)[CONN] = conn;
    }
    if (closing) session.close();
    session.on('error', (err) => log.debug('downstream h2 session error', { error: err }));
  });
  h2.on('sessionError', (err) => log.debug('downstream h2 session error', { error: err }));

  function accept(socket: net.Socket): void {
    if (closing) {
      socket.destroy();
      return;
    }
    socket.on('error', () => {}); // reported through the request that was using it, if any
    const info: ConnectionInfo = { id: nextId++, remoteAddress: socket.remoteAddress, ...opts.describe(socket) };
    const conn: Conn = { info, socket, kind: 'sniffing', active: 0, liveSlot: -1 };
    (socket as Tagged)[CONN] = conn;
    conns.add(conn);
    counters.connectionsTotal++;
    counters.connectionsActive++;
    socket.once('close', () => {
      conns.delete(conn);
      counters.connectionsActive--;
      changed();
    });
    const alpn = (socket as { alpnProtocol?: string | false }).alpnProtocol;
    if (alpn === 'h2') return handOff(conn, true);
    if (alpn === 'http/1.1') return handOff(conn, false);
    sniff(conn);
  }

  /** Reads until the bytes either match the HTTP/2 preface or cannot. */
  function sniff(conn: Conn): void {
    const { socket } = conn;
    let seen: Buffer = Buffer.alloc(0);
    socket.setTimeout(idleTimeoutMs, () => socket.destroy());
    const onData = (chunk: Buffer) => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, PREFACE.length);
      const prefix = seen.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (prefix && seen.length < PREFACE.length) return;
      socket.removeListener('data', onData);
      socket.setTimeout(0);
      socket.pause();
      if ((!prefix && fastPath) || (prefix && h2Path)) return handOff(conn, prefix, seen);
      socket.unshift(seen);
      handOff(conn, prefix);
    };
    socket.on('data', onData);
  }

  /** The frontend's side of a fast-path connection: counts, drain, and node:http behind it. */
  function fastHost(conn: Conn): FastPathHost {
    return {
      closing: () => closing,
      requestStarted: () => {
        counters.fastPath++;
        requestStarted(conn);
      },
      requestEnded: () => requestEnded(conn),
      handOff: (socket, unread) => {
        conn.kind = 'h1';
        if (unread) socket.unshift(unread);
        h1.emit('connection', socket);
        socket.resume();
      },
    };
  }

  /** Weft's HTTP/2 engine serves the connection: lean streams to the path, the others bridged
   *  to node:http2 (made on the first), which sees this same connection behind the bridge. */
  function serveEngine(conn: Conn, initial: Buffer | undefined): void {
    conn.kind = 'h2';
    const path = h2Path!;
    const engine = new H2Connection(conn.socket, {
      role: 'server',
      onStream: (stream, fields, endStream) => {
        if (path.serve(stream, fields, endStream, conn.info, conn.socket, (conn.h2Host ??= h2Host(conn)))) return;
        conn.bridge ??= new Bridge({
          socket: conn.socket,
          serve: (inner) => {
            bridging = conn;
            try {
              h2.emit('connection', inner);
            } finally {
              bridging = undefined;
            }
          },
        });
        conn.bridge.forward(stream, fields, endStream);
      },
      onClose: () => conn.bridge?.close(),
    });
    conn.engine = engine;
    engine.start(initial);
    if (closing) engine.drain();
  }

  /** `initial`: bytes the sniffing read (the fast path and the engine take them as they are). */
  function handOff(conn: Conn, isH2: boolean, initial?: Buffer): void {
    if (isH2 && h2Path) return serveEngine(conn, initial);
    if (!isH2 && fastPath && conn.socket instanceof net.Socket) {
      conn.kind = 'fast';
      fastPath.serve(conn.socket, conn.info, fastHost(conn), initial);
      return;
    }
    if (initial) conn.socket.unshift(initial);
    conn.kind = isH2 ? 'h2' : 'h1';
    if (isH2) {
      // A TLS client that sent the preface without negotiating ALPN (prior knowledge over TLS):
      // node:http2 would take it for HTTP/1.1, so record what the bytes already proved.
      const tlsSocket = conn.socket as { encrypted?: boolean; alpnProtocol?: string | false };
      if (tlsSocket.encrypted && !tlsSocket.alpnProtocol) tlsSocket.alpnProtocol = 'h2';
      // node:http2 reads what was unshifted from the socket's buffer; it must stay paused.
      h2.emit('connection', conn.socket);
    } else {
      h1.emit('connection', conn.socket);
      conn.socket.resume();
    }
  }

  let server: net.Server | undefined;

  return {
    get activeRequests() {
      return activeRequests;
    },

    listen(port, host) {
      server = opts.createServer(accept);
      const s = server;
      return new Promise<AddressInfo>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.removeListener('error', reject);
          s.on('error', (err) => log.error('listener error', { error: err }));
          resolve(s.address() as AddressInfo);
        });
      });
    },

    async close(drainTimeoutMs) {
      closing = true;
      // Responses still to be written tell their client this connection ends with them.
      for (const c of conns.values()) for (const res of c.h1Responses ?? []) if (!res.headersSent) res.shouldKeepAlive = false;
      const closed = server ? new Promise<void>((r) => server!.close(() => r())) : Promise.resolve();
      for (const c of conns.values()) {
        if (c.kind === 'sniffing' || ((c.kind === 'h1' || c.kind === 'fast') && c.active === 0)) c.socket.destroy();
        else if (c.kind === 'h2') {
          c.engine?.drain();
          c.session?.close();
        }
      }
      // Wait for requests (and tunnels, which hold their connection) to end, or time out.
      const done = new Promise<void>((resolve) => {
        const check = () => {
          if (activeRequests === 0 && conns.values().every((c) => c.kind !== 'tunnel')) resolve();
          else waiters.push(check);
        };
        check();
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((r) => (timer = setTimeout(r, drainTimeoutMs)))]);
      if (timer) clearTimeout(timer);
      // Whatever is left (idle keep-alive, finished HTTP/2 sessions, tunnels past the deadline).
      for (const c of conns.values()) c.socket.destroy();
      await closed;
    },
  };
}
