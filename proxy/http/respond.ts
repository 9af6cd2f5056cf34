// Writing answers the proxy makes itself (errors, redirects, direct responses) and resetting a
// downstream stream. The decision of WHAT to answer is errors.ts; this file only does it.
import http2 from 'node:http2';
import type { ClientAnswer } from './errors.js';
import type { DownstreamResponse } from './facts.js';
import type { HeaderMap } from './headers.js';

export function isH2Response(res: DownstreamResponse): res is http2.Http2ServerResponse {
  return 'stream' in res;
}

/** Carries out a ClientAnswer. Safe to call at any point: if headers are already out, resets. */
export function sendAnswer(res: DownstreamResponse, answer: ClientAnswer, extraHeaders: HeaderMap = {}): void {
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
