// What the HBONE client and server share about one tunnel: the wire conventions (reason header,
// `ip:port` authority), how a TCP reset travels (RST_STREAM CONNECT_ERROR), and the relay that
// splices a tunnel stream to a socket with half-close and resets carried both ways.
import http2 from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { reset } from '../capture/tcp.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR } = http2.constants;

/**
 * The response header that says why a CONNECT was not answered 200 (a 400/403/404/405/502/503),
 * one line for the operator. Weft's own convention; Istio's ztunnel sends no reason.
 */
export const REASON_HEADER = 'x-weft-reason';

/** The HBONE port (Istio's), where the node proxy and waypoints accept tunnels. */
export const HBONE_PORT = 15008;

/** A parsed CONNECT authority. */
export interface TunnelTarget {
  readonly host: string;
  readonly port: number;
}

/**
 * `ip:port` or `[ipv6]:port` → host and port; undefined for anything else (names are refused:
 * HBONE addresses a workload, resolution happened before the tunnel).
 */
export function parseAuthority(authority: string | undefined): TunnelTarget | undefined {
  if (!authority) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]) as string;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  if (m[1] !== undefined ? !net.isIPv6(host) : !net.isIPv4(host)) return undefined;
  return { host, port };
}

/** `host:port` as an authority (IPv6 in brackets). */
export function formatAuthority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A header value nghttp2 accepts (it refuses control characters): the reason, on one line. */
export function headerSafe(text: string): string {
  return text.replace(/[^\t\x20-\x7e]/g, ' ').slice(0, 512);
}

/**
 * Ends a tunnel the way a TCP RST ends a connection: RST_STREAM with CONNECT_ERROR (RFC 9113
 * §8.5), which the peer's relay turns back into a TCP RST on its side.
 */
export function resetStream(stream: http2.Http2Stream): void {
  if (!stream.destroyed && !stream.closed) stream.close(NGHTTP2_CONNECT_ERROR);
  else if (!stream.destroyed) stream.destroy();
}

/** `resetAndDestroy` for a tunnel stream, so proxy/capture's reset() resets tunnels too. */
export function resetAndDestroy(this: http2.Http2Stream): http2.Http2Stream {
  resetStream(this);
  return this;
}

/** Destroys `s` once what was written to it has been flushed (its write side ended first). */
function destroyWhenFlushed(s: Duplex): void {
  if (s.destroyed) return;
  if (s.writableFinished || !s.writable) return void s.destroy();
  s.once('finish', () => s.destroy());
  s.end();
}

/**
 * Copies bytes between a tunnel stream and a socket until both directions ended. Half-close is
 * carried (END_STREAM ⇄ FIN; `socket` should allow half-open), and so are resets: a socket error
 * becomes RST_STREAM(CONNECT_ERROR), an RST_STREAM with an error code a TCP reset, a CANCEL a
 * plain close. Unlike a socket's, a stream's 'close' can follow a clean end of both directions
 * while the socket still has bytes to write: those are flushed before it is destroyed.
 */
export function relayTunnel(stream: http2.Http2Stream, socket: Duplex, onClose?: () => void): void {
  let open = 2;
  const closed = () => {
    if (--open === 0) onClose?.();
  };
  stream.on('error', () => reset(socket));
  socket.on('error', () => resetStream(stream));
  stream.once('close', () => {
    closed();
    const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
    if (code !== NGHTTP2_NO_ERROR && code !== NGHTTP2_CANCEL) reset(socket);
    else if (!stream.aborted && stream.readableEnded && stream.writableEnded) destroyWhenFlushed(socket);
    else socket.destroy(); // cancelled, or its session went away mid-tunnel
  });
  socket.once('close', () => {
    closed();
    // Destroyed before its peer finished (by us, or an error already handled): cut the tunnel.
    if (!socket.readableEnded && !stream.closed && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  });
  // Node ends a stream's readable side just before it reports an RST_STREAM: FIN the socket
  // only once it is clear the stream ended cleanly, or the app would see FIN, then a reset.
  stream.pipe(socket, { end: false });
  stream.once('end', () =>
    setImmediate(() => {
      if (!stream.aborted && (stream.rstCode ?? NGHTTP2_NO_ERROR) === NGHTTP2_NO_ERROR && !socket.destroyed) socket.end();
    }),
  );
  socket.pipe(stream);
}
