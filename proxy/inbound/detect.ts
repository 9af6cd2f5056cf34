// TLS or plaintext, per inbound connection: peek at the first byte (0x16 opens a TLS handshake
// record) and hand the socket to the mesh's TLS server or to the plaintext path, which may
// refuse it (STRICT mTLS) before a single HTTP byte is read.
import net from 'node:net';
import type { Logger } from '../../core/log.js';

/** A TLS record of type handshake starts with this byte (RFC 8446 §5.1). */
export const TLS_HANDSHAKE = 0x16;

export interface DetectOptions {
  /** The TLS server (not listening itself): connections that start a TLS handshake go here. */
  readonly tlsServer: net.Server;
  /** Plaintext connections that may go on, ready for HTTP bytes. */
  readonly onPlaintext: (socket: net.Socket) => void;
  /**
   * Whether plaintext is accepted right now; undefined = yes, a string = refused, and why (the
   * connection is closed and the reason logged with the client address).
   */
  readonly refusePlaintext: (socket: net.Socket) => string | undefined;
  readonly log: Logger;
  /** A connection that sends nothing for this long is closed. Default 10 s. */
  readonly firstByteTimeoutMs?: number;
}

/**
 * The listening server for an inbound port that takes both mTLS and plaintext. Closing it
 * closes the inner TLS server too (which detaches it from certificate rotation).
 */
export function createDetectingServer(opts: DetectOptions): net.Server {
  const { tlsServer, log } = opts;
  const timeoutMs = opts.firstByteTimeoutMs ?? 10_000;
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => {}); // a client that goes away while we peek is not our error
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      // Put the byte(s) back: node:tls and node:http read what is buffered on the socket first.
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE) {
        tlsServer.emit('connection', socket);
        return;
      }
      const refused = opts.refusePlaintext(socket);
      if (refused !== undefined) {
        log.warn('refused a plaintext connection', { client: `${socket.remoteAddress}:${socket.remotePort}`, reason: refused });
        socket.destroy();
        return;
      }
      opts.onPlaintext(socket);
    });
  });
  server.once('close', () => tlsServer.close());
  return server;
}
