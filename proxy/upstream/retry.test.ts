// Retry decisions, case by case, as Envoy's retry_on conditions define them.
import { describe, expect, it } from 'vitest';
import type { ProxyErrorKind } from '../http/errors.js';
import { retryPolicy } from '../http/testkit.js';
import { retriableError, retriableResponse, retryBackoffMs } from './retry.js';

describe('retriableError', () => {
  it.each<[string[], ProxyErrorKind, boolean]>([
    [['connect-failure'], 'upstream_connect', true],
    [['connect-failure'], 'upstream_reset', false],
    [['reset'], 'upstream_connect', true],
    [['reset'], 'upstream_reset', true],
    [['5xx'], 'upstream_timeout', true],
    [['gateway-error'], 'upstream_reset', true],
    [['refused-stream'], 'upstream_refused_stream', true],
    [['refused-stream'], 'upstream_reset', false],
    [['5xx'], 'no_healthy_upstream', false],
    [['retriable-status-codes'], 'upstream_connect', false],
  ])('%j on %s → %s', (on, kind, expected) => {
    expect(retriableError(retryPolicy(on, 1), kind)).toBe(expected);
  });
});

describe('retriableError by method', () => {
  it.each<[string, ProxyErrorKind, boolean]>([
    ['POST', 'upstream_connect', true], // never reached the app
    ['POST', 'upstream_refused_stream', true],
    ['POST', 'upstream_reset', false], // may have been processed
    ['PATCH', 'upstream_timeout', false],
    ['PUT', 'upstream_reset', true],
    ['DELETE', 'upstream_timeout', true],
    ['GET', 'upstream_reset', true],
  ])('%s after %s → %s', (method, kind, expected) => {
    expect(retriableError(retryPolicy(['5xx', 'reset', 'connect-failure', 'refused-stream'], 1), kind, method)).toBe(expected);
  });
});

describe('retriableResponse', () => {
  it.each<[string[], number[], number, Record<string, string>, boolean]>([
    [['5xx'], [], 500, {}, true],
    [['5xx'], [], 404, {}, false],
    [['gateway-error'], [], 503, {}, true],
    [['gateway-error'], [], 500, {}, false],
    [['retriable-status-codes'], [409, 418], 418, {}, true],
    [['retriable-status-codes'], [409], 418, {}, false],
    [['retriable-4xx'], [], 409, {}, true],
    [['unavailable'], [], 200, { 'grpc-status': '14' }, true],
    [['cancelled'], [], 200, { 'grpc-status': '14' }, false],
    [[], [503], 503, {}, false],
  ])('%j codes %j: %i %j → %s', (on, codes, status, headers, expected) => {
    expect(retriableResponse(retryPolicy(on, 1, { retriableStatusCodes: new Set(codes) }), status, headers)).toBe(expected);
  });
});

describe('retryBackoffMs', () => {
  it('jitters between the base interval and an exponential ceiling, up to the maximum', () => {
    const p = retryPolicy(['5xx'], 5, { backoffBaseMs: 25, backoffMaxMs: 250 });
    expect(retryBackoffMs(p, 0, () => 0.999)).toBe(49);
    expect(retryBackoffMs(p, 2, () => 0.999)).toBe(199);
    expect(retryBackoffMs(p, 10, () => 0.999)).toBe(249);
  });

  it('never waits less than the base interval (Gateway API retry.backoff is a minimum)', () => {
    const p = retryPolicy(['5xx'], 5, { backoffBaseMs: 400, backoffMaxMs: 4000 });
    for (const retry of [0, 1, 5]) expect(retryBackoffMs(p, retry, () => 0)).toBe(400);
    expect(retryBackoffMs(retryPolicy(['5xx'], 1, { backoffBaseMs: 100, backoffMaxMs: 100 }), 3, () => 0.5)).toBe(100);
  });
});
