// Writing answers the proxy makes itself (errors, redirects, direct responses) and resetting a
// downstream stream. The decision of WHAT to answer is errors.ts; this file only does it.
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { toClientAnswer, type ClientAnswer } from './errors.js';
import type { DownstreamResponse } from './facts.js';
import type { HeaderMap } from './headers.js';

export function isH2Response(res: DownstreamResponse): res is http2.Http2ServerResponse {
  return 'stream' in res;
}

/** Carries out a ClientAnswer. Safe to call at any point: if headers are already out, resets
 *  (or, for a gRPC reset that carries a status, ends the HTTP/2 stream with it in trailers). */
export function sendAnswer(res: DownstreamResponse, answer: ClientAnswer, extraHeaders: HeaderMap = {}): void {
  if (answer.kind === 'reset' && answer.grpc && res.headersSent && isH2Response(res) && !res.writableEnded && !res.stream.destroyed) {
    res.addTrailers({ 'grpc-status': String(answer.grpc.status), 'grpc-message': encodeGrpcMessage(answer.grpc.message) });
    res.end();
    return;
  }
  if (answer.kind === 'reset' || res.headersSent) {
    resetDownstream(res, { refused: answer.kind === 'reset' && answer.refused === true });
    return;
  }
  if (answer.grpc) {
    sendGrpcStatus(res, answer.grpc.status, answer.grpc.message, extraHeaders);
    return;
  }
  sendLocal(res, answer.status, { ...extraHeaders, 'content-type': 'text/plain; charset=utf-8' }, answer.body);
}

/** A complete local response (direct response, redirect, error) in one go. */
export function sendLocal(res: DownstreamResponse, status: number, headers: HeaderMap, body: string): void {
  if (res.headersSent || res.writableEnded) return resetDownstream(res);
  const buf = Buffer.from(body, 'utf8');
  const out: HeaderMap = { ...headers, 'content-length': String(buf.length) };
  if (buf.length === 0 && !('content-type' in headers)) delete out['content-type'];
  (res as import('node:http').ServerResponse).writeHead(status, out);
  if (buf.length > 0) res.end(buf);
  else res.end();
}

/** Trailers-only gRPC answer: one HEADERS frame with END_STREAM on HTTP/2. */
export function sendGrpcStatus(res: DownstreamResponse, code: number, message: string, extraHeaders: HeaderMap = {}): void {
  const headers: HeaderMap = {
    ...extraHeaders,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
    'grpc-message': encodeGrpcMessage(message),
  };
  if (isH2Response(res)) {
    if (res.stream.headersSent || res.stream.destroyed) return resetDownstream(res);
    res.stream.respond({ ':status': 200, ...headers }, { endStream: true });
    return;
  }
  res.writeHead(200, headers);
  res.end();
}

/**
 * Signals a failure the client must not mistake for a complete response: RST_STREAM on
 * HTTP/2 (REFUSED_STREAM when `refused`, so the peer knows it may retry), a closed connection
 * on HTTP/1.1 (a truncated body or no response at all).
 */
export function resetDownstream(res: DownstreamResponse, opts: { refused?: boolean } = {}): void {
  if (isH2Response(res)) {
    if (!res.stream.destroyed && !res.stream.closed) {
      res.stream.close(opts.refused ? http2.constants.NGHTTP2_REFUSED_STREAM : http2.constants.NGHTTP2_INTERNAL_ERROR);
    }
    return;
  }
  res.destroy();
}

/** grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2 spec). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

// ---- Raw HTTP/1.1 sockets (an Upgrade / CONNECT that was not established) ------------------

/** The answer for a raw HTTP/1.1 socket (Upgrade / CONNECT not established), then close. */
export function writeRawAnswer(socket: Duplex, err: unknown): void {
  if (socket.destroyed) return;
  const answer = toClientAnswer(err, { grpc: false, responseStarted: false });
  if (answer.kind === 'reset') {
    socket.destroy();
    return;
  }
  writeRawResponse(socket, answer.status, { 'content-type': 'text/plain; charset=utf-8' }, answer.body);
}

/** A complete HTTP/1.1 response on a raw socket, connection closed after. */
export function writeRawResponse(socket: Duplex, status: number, headers: HeaderMap, body: string): void {
  if (socket.destroyed) return;
  const buf = Buffer.from(body, 'utf8');
  let head = `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Status'}\r\n`;
  for (const [k, v] of Object.entries({ ...headers, 'content-length': String(buf.length), connection: 'close' })) {
    for (const value of Array.isArray(v) ? v : [v]) if (!/[\r\n]/.test(value)) head += `${k}: ${value}\r\n`;
  }
  socket.end(Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), buf]));
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  200: 'OK', 301: 'Moved Permanently', 302: 'Found', 303: 'See Other', 307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 500: 'Internal Server Error', 502: 'Bad Gateway',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};
