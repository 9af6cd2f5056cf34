// Response flags from what the telemetry saw: one named case per way a request can end.
import { describe, expect, it } from 'vitest';
import { proxyErrors } from '../http/errors.js';
import { failureReason, responseFlags, type FlagFacts } from './flags.js';

const ok: FlagFacts = {
  localError: undefined,
  forwarded: true,
  tries: 1,
  tryFailure: undefined,
  gotResponse: true,
  upstreamStatus: 200,
  upstreamBodyFailed: false,
  finished: true,
  status: 200,
  timedOut: false,
};

const cases: [string, Partial<FlagFacts>, string][] = [
  ['a normal exchange', {}, '-'],
  ['an upstream 503 passed on', { upstreamStatus: 503, status: 503 }, '-'],
  ['a local no-route answer', { localError: proxyErrors.noRoute('x', 'no_virtual_host'), forwarded: false, tries: 0, gotResponse: false }, 'NR'],
  ['a cluster that is not in the config', { localError: proxyErrors.clusterNotFound('c', 503), forwarded: false, tries: 0, gotResponse: false }, 'NC'],
  ['denied by authorization', { localError: proxyErrors.permissionDenied('no'), forwarded: false, tries: 0, gotResponse: false }, 'RBAC'],
  ['no endpoint to try', { tries: 0, gotResponse: false, status: 503 }, 'UH'],
  ['the client left before any try', { tries: 0, gotResponse: false, finished: false, status: 0 }, 'DC'],
  ['connect failure', { gotResponse: false, tryFailure: proxyErrors.upstreamConnect('a:1'), status: 503 }, 'UF'],
  ['reset before headers', { gotResponse: false, tryFailure: proxyErrors.upstreamReset('a:1'), status: 503 }, 'UC'],
  ['refused stream', { gotResponse: false, tryFailure: proxyErrors.upstreamRefusedStream('a:1'), status: 503 }, 'UR'],
  ['route timeout before headers', { gotResponse: false, tryFailure: proxyErrors.upstreamTimeout(100), status: 504 }, 'UT'],
  ['connect failures until the retries ran out', { tries: 3, gotResponse: false, tryFailure: proxyErrors.upstreamConnect('a:1'), status: 503 }, 'UF,URX'],
  ['retried 5xx until the retries ran out', { tries: 3, upstreamStatus: 503, status: 503 }, 'URX'],
  ['a retry that succeeded', { tries: 2 }, '-'],
  ['the client left while waiting', { gotResponse: false, tryFailure: new DOMException('aborted', 'AbortError'), finished: false, status: 0 }, 'DC'],
  ['the upstream body failed mid-response', { finished: false, upstreamBodyFailed: true }, 'UC'],
  ['the route timeout hit mid-response', { finished: false, timedOut: true }, 'UT'],
  ['the client left mid-response', { finished: false }, 'DC'],
  ['a pass-through that completed', { forwarded: false, tries: 0, gotResponse: false }, '-'],
];

describe('responseFlags', () => {
  it.each(cases)('%s', (_name, facts, flag) => {
    expect(responseFlags({ ...ok, ...facts })).toBe(flag);
  });

  it('names failures in the operator\u2019s words', () => {
    expect(failureReason(proxyErrors.upstreamConnect('10.0.0.1:80', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })))).toBe(
      'upstream_connect: could not connect to 10.0.0.1:80: connect ECONNREFUSED',
    );
    expect(failureReason(undefined)).toBeUndefined();
    expect(failureReason(new Error('boom'))).toBe('boom');
  });
});
