// The HBONE server: an h2-only mTLS listener (port 15008) whose HTTP/2 CONNECT streams become
// byte tunnels. Each client's certificate is checked by the mesh TLS server (refusals logged
// with their reason); each CONNECT names an `ip:port` the handler decides about: 200 with an
// upstream (then bytes are relayed both ways until both sides end) or a refusal with a reason.
// HTTP/2 is Weft's own engine (proxy/http2): a tunnel is one StreamHandler between the stream
// and the upstream socket, with no Duplex, pipe or node:http2 stream object in between.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { reset } from '../capture/tcp.js';
import { H2Connection, type H2Stream, type StreamHandler } from '../http2/connection.js';
import { H2Error } from '../http2/frames.js';
import { createMeshServer } from '../transport/mesh.js';
import type { MeshTls } from '../transport/tls.js';
import { REASON_HEADER, headerSafe, parseAuthority } from './stream.js';

/** Flow-control windows, as the client's (see client.ts). */
const STREAM_WINDOW = 256 << 10;
const SESSION_WINDOW = 4 << 20;
/** Concurrent tunnels per client connection; a client opens another connection past it. */
const DEFAULT_MAX_STREAMS = 1000;

export interface HboneRequest {
  /** The parsed `:authority`: where the client wants its bytes to go. */
  readonly target: { readonly host: string; readonly port: number };
  /** The client's verified SPIFFE ID. */
  readonly peer: string;
  /** The CONNECT's header fields, pseudo-headers included (a repeated field joined with ", "). */
  readonly headers: Readonly<Record<string, string>>;
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
  /** HTTP/2 SETTINGS to announce beyond the defaults. */
  readonly settings?: { readonly maxConcurrentStreams?: number };
}

/** An h2-only mTLS server (not yet listening: the caller calls listen(port) or listen({fd})). */
export function createHboneServer(meshTls: MeshTls, handler: HboneHandler, opts: HboneServerOptions): HboneServer {
  const log = opts.log;
  const connections = new Set<H2Connection>();
  const state = { tunnels: 0 };
  let closing = false;
  let allClosed: (() => void) | undefined;

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
      const peer = meshTls.peerIdentity(socket);
      if (!peer) {
        log.error('an HBONE connection arrived without a verified peer; closing it', { client });
        return void socket.destroy();
      }
      socket.setNoDelay(true);
      const conn: H2Connection = new H2Connection(socket, {
        role: 'server',
        streamWindow: STREAM_WINDOW,
        connectionWindow: SESSION_WINDOW,
        maxConcurrentStreams: opts.settings?.maxConcurrentStreams ?? DEFAULT_MAX_STREAMS,
        onStream: (stream, fields) => onConnect(stream, fields, peer),
        onClose: (err) => {
          connections.delete(conn);
          if (err) log.debug('HBONE connection closed', { peer, client, error: err.message });
          if (connections.size === 0) allClosed?.();
        },
      });
      socket.on('error', (err) => log.debug('HBONE connection error', { peer, client, error: err.message }));
      connections.add(conn);
      conn.start();
    },
    ['h2'],
  );

  function onConnect(stream: H2Stream, fields: string[], peer: string): void {
    const tunnel = new Tunnel(stream, state);
    stream.handler = tunnel;
    state.tunnels++;
    const headers = fieldRecord(fields);
    const bad = notConnect(headers);
    if (bad) return refuse(stream, bad.status, bad.reason, peer);
    const authority = headers[':authority'];
    const target = parseAuthority(authority);
    if (!target) return refuse(stream, 400, `:authority must be the destination ip:port, got ${JSON.stringify(authority ?? '')}`, peer);
    let answer: Promise<HboneAnswer>;
    try {
      answer = handler({ target, peer, headers });
    } catch (err) {
      answer = Promise.reject(err);
    }
    answer.then(
      (a) => {
        if (a.status !== 200) return refuse(stream, a.status, a.reason, peer, authority);
        // The client may have given up while the handler was connecting.
        if (stream.closed) return void a.upstream.destroy();
        stream.tunnel = true;
        stream.sendHead([':status', '200'], false);
        tunnel.attach(a.upstream);
      },
      (err: unknown) => {
        log.error('the HBONE handler failed; answering 503', { peer, authority, error: errorMessage(err) });
        refuse(stream, 503, 'the tunnel could not be set up (see the server log)', peer);
      },
    );
  }

  function refuse(stream: H2Stream, status: number, reason: string, peer: string, authority?: string): void {
    log.debug('HBONE CONNECT refused', { peer, authority, status, reason });
    stream.sendHead([':status', String(status), REASON_HEADER, headerSafe(reason)], true);
  }

  return {
    server,
    get tunnels() {
      return state.tunnels;
    },
    async close(deadlineMs) {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
      // GOAWAY: clients send new tunnels elsewhere; running ones go on, and each connection
      // closes itself once its last tunnel has ended.
      for (const c of connections) c.drain();
      if (connections.size > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadlineMs);
          allClosed = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const c of connections) {
        c.destroy(H2Error.Cancel);
        c.socket.destroy();
      }
      // A client still in its TLS handshake must not hold the drain up for long.
      await Promise.race([serverClosed, new Promise((r) => setTimeout(r, 1000).unref())]);
    },
  };
}

/**
 * One CONNECT stream from its arrival to its close. Until the handler answers, what the client
 * sends early is held (not credited back, so flow control bounds it); from the 200 on, bytes go
 * both ways with backpressure, half-close is carried (END_STREAM ⇄ FIN: the upstream should
 * allow half-open) and so are resets: an upstream error becomes RST_STREAM(CONNECT_ERROR), an
 * RST_STREAM with an error code a TCP reset of the upstream, a CANCEL a plain close.
 */
class Tunnel implements StreamHandler {
  private upstream: Duplex | undefined;
  /** Bytes the client sent before the answer, and whether its side ended then. */
  private early: Buffer[] | undefined;
  private earlyEnd = false;
  /** Bytes written to the upstream while it was full: credited back when it drains. */
  private held = 0;
  /** The stream's close code, once it closed. */
  private closedWith = -1;

  constructor(
    private readonly stream: H2Stream,
    private readonly counter: { tunnels: number },
  ) {}

  /** The handler's 200: relays from now on. */
  attach(upstream: Duplex): void {
    this.upstream = upstream;
    upstream.on('data', this.fromUpstream);
    upstream.on('drain', this.upstreamDrained);
    upstream.once('end', this.upstreamEnded);
    upstream.on('error', this.upstreamFailed);
    upstream.once('close', this.upstreamClosed);
    const early = this.early;
    this.early = undefined;
    if (early) for (const chunk of early) this.toUpstream(chunk);
    if (this.earlyEnd) upstream.end();
  }

  onHead(): void {}

  onData(_s: H2Stream, buf: Buffer, start: number, end: number): void {
    const chunk = buf.subarray(start, end);
    if (this.upstream) this.toUpstream(chunk);
    else (this.early ??= []).push(chunk);
  }

  onEnd(): void {
    if (!this.upstream) this.earlyEnd = true;
    // node:http2 resets a stream by sending END_STREAM, then RST_STREAM, in one write: the FIN
    // waits until that read is handled, or the app would see a clean close, then the reset.
    else setImmediate(finUpstream, this);
  }

  /** @internal After onEnd: FIN, unless the stream was reset meanwhile. */
  fin(): void {
    if (this.closedWith === -1 || this.closedWith === H2Error.NoError) this.upstream?.end();
  }

  onClose(_s: H2Stream, code: number): void {
    this.closedWith = code;
    this.counter.tunnels--;
    this.early = undefined;
    const up = this.upstream;
    if (!up) return; // not answered yet: the answer sees the stream closed and drops its upstream
    if (code === H2Error.NoError) destroyWhenFlushed(up);
    else if (code === H2Error.Cancel) up.destroy();
    else reset(up);
  }

  onWritable(): void {
    this.upstream?.resume();
  }

  private toUpstream(chunk: Buffer): void {
    const up = this.upstream!;
    if (up.destroyed || up.writableEnded) return this.stream.consumed(chunk.length);
    if (up.write(chunk)) this.stream.consumed(chunk.length);
    else this.held += chunk.length;
  }

  private readonly fromUpstream = (chunk: Buffer): void => {
    if (!this.stream.writeFrom(chunk, 0, chunk.length)) this.upstream!.pause();
  };

  private readonly upstreamDrained = (): void => {
    const n = this.held;
    this.held = 0;
    if (n > 0) this.stream.consumed(n);
  };

  private readonly upstreamEnded = (): void => this.stream.end();

  private readonly upstreamFailed = (): void => this.stream.reset(H2Error.ConnectError);

  /** Destroyed before its peer finished (by us, or after an error already handled): cut the tunnel. */
  private readonly upstreamClosed = (): void => {
    if (!this.upstream!.readableEnded) this.stream.reset(H2Error.Cancel);
  };
}

function finUpstream(t: Tunnel): void {
  t.fin();
}

/** Destroys `s` once what was written to it has been flushed (its write side ended first). */
function destroyWhenFlushed(s: Duplex): void {
  if (s.destroyed) return;
  if (s.writableFinished || !s.writable) return void s.destroy();
  s.once('finish', () => s.destroy());
  s.end();
}

/** Header fields as a record; a repeated name's values joined with ", " (RFC 9110 §5.3). */
function fieldRecord(fields: readonly string[]): Record<string, string> {
  const out = Object.create(null) as Record<string, string>; // names come from the wire: no prototype
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    const prior = out[name];
    out[name] = prior === undefined ? fields[i + 1]! : `${prior}, ${fields[i + 1]!}`;
  }
  return out;
}

/** Why a request is not a (plain) CONNECT, or undefined when it is one. */
function notConnect(headers: Readonly<Record<string, string>>): { status: 400 | 405; reason: string } | undefined {
  const method = headers[':method'];
  if (method !== 'CONNECT') return { status: 405, reason: `HBONE accepts only CONNECT, not ${String(method)}` };
  if (headers[':protocol'] !== undefined) return { status: 400, reason: `extended CONNECT (:protocol ${headers[':protocol']}) is not HBONE` };
  return undefined;
}
