// The error catalogue stays honest: every kind maps to a client answer, gRPC requests get gRPC
// statuses, and a started response can only be reset.
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../../core/errors.js';
import { grpcStatusForHttp, PROXY_ERROR_KINDS, ProxyError, proxyErrors, toClientAnswer } from './errors.js';
import { encodeGrpcMessage } from './respond.js';

describe('toClientAnswer', () => {
  it.each(PROXY_ERROR_KINDS)('%s has an HTTP and a gRPC answer', (kind) => {
    const err = new ProxyError(kind, `failure ${kind}`);
    const http = toClientAnswer(err, { grpc: false, responseStarted: false });
    expect(http).toMatchObject({ kind: 'respond', body: `failure ${kind}\n` });
    expect(http.kind === 'respond' && http.status >= 400).toBe(true);
    const grpc = toClientAnswer(err, { grpc: true, responseStarted: false });
    expect(grpc).toMatchObject({ kind: 'respond', status: 200, grpc: { message: `failure ${kind}` } });
  });

  it.each([
    ['no route', proxyErrors.noRoute('x.example', 'no_virtual_host'), 404, 12],
    ['blackhole', proxyErrors.blackhole('x.example'), 502, 14],
    ['no healthy upstream', proxyErrors.noHealthyUpstream('c'), 503, 14],
    ['connect failure', proxyErrors.upstreamConnect('1.2.3.4:80', new Error('ECONNREFUSED')), 503, 14],
    ['reset', proxyErrors.upstreamReset('1.2.3.4:80'), 503, 14],
    ['timeout', proxyErrors.upstreamTimeout(100), 504, 4],
    ['denied', proxyErrors.permissionDenied('policy x'), 403, 7],
    ['bad request', proxyErrors.badRequest('no host'), 400, 3],
    ['a bug', new Error('boom'), 500, 13],
  ])('%s → HTTP %i / gRPC %i', (_n, err, status, grpc) => {
    expect(toClientAnswer(err, { grpc: false, responseStarted: false })).toMatchObject({ status });
    expect(toClientAnswer(err, { grpc: true, responseStarted: false })).toMatchObject({ grpc: { status: grpc } });
  });

  it('honours a per-route status for a missing cluster', () => {
    expect(toClientAnswer(proxyErrors.clusterNotFound('c', 500), { grpc: false, responseStarted: false })).toMatchObject({ status: 500 });
  });

  it('resets once the response started, and on the inbound side for upstream resets', () => {
    expect(toClientAnswer(proxyErrors.upstreamTimeout(1), { grpc: false, responseStarted: true }).kind).toBe('reset');
    expect(toClientAnswer(proxyErrors.upstreamReset('a'), { grpc: false, responseStarted: false, resetOnUpstreamReset: true }).kind).toBe('reset');
    expect(toClientAnswer(proxyErrors.upstreamRefusedStream('a'), { grpc: false, responseStarted: false, resetOnUpstreamReset: true })).toMatchObject({ kind: 'reset', refused: true });
    expect(toClientAnswer(proxyErrors.upstreamConnect('a'), { grpc: false, responseStarted: false, resetOnUpstreamReset: true }).kind).toBe('respond');
  });

  it('a started gRPC response ends with DEADLINE_EXCEEDED trailers on a timeout; other failures reset it', () => {
    expect(toClientAnswer(proxyErrors.upstreamTimeout(1), { grpc: true, responseStarted: true })).toEqual({
      kind: 'reset',
      flag: 'UT',
      grpc: { status: 4, message: 'upstream request timeout' },
    });
    expect(toClientAnswer(proxyErrors.upstreamReset('a'), { grpc: true, responseStarted: true })).toEqual({ kind: 'reset', flag: 'UC' });
  });

  it('maps the HTTP status of a direct response to a gRPC status as gRPC and Envoy do', () => {
    expect([400, 401, 403, 404, 429, 500, 502, 503, 504, 200].map(grpcStatusForHttp)).toEqual([13, 16, 7, 12, 14, 2, 14, 14, 14, 0]);
  });

  it('keeps the stable codes of core/errors', () => {
    expect(proxyErrors.noRoute('h', 'no_route_match').code).toBe(ErrorCode.ROUTE_NOT_FOUND);
    expect(proxyErrors.upstreamTimeout(1).code).toBe(ErrorCode.UPSTREAM_TIMEOUT);
    expect(proxyErrors.upstreamConnect('a').describe()).toContain('hint: could not connect to a');
  });

  it('percent-encodes grpc-message', () => {
    expect(encodeGrpcMessage('no route: "é" 100%')).toBe('no route: "%C3%A9" 100%25');
  });
});
