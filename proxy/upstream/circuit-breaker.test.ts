// The circuit breaker and the retry budget, by counts: slots up to max_requests (and
// max_connections over HTTP/1.1), a bounded wait for a connection, 503 UO past that naming the
// cluster and the limit, recovery as slots come back, and retries capped by the budget.
import { describe, expect, it } from 'vitest';
import { isProxyError, toClientAnswer } from '../http/errors.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { retryLimit } from './retry-budget.js';

const never = new AbortController();

function overflow(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isProxyError(err, 'upstream_overflow')).toBe(true);
    const answer = toClientAnswer(err, { grpc: false, responseStarted: false });
    expect(answer).toMatchObject({ kind: 'respond', status: 503, flag: 'UO' });
    return answer.kind === 'respond' ? answer.body : '';
  }
  throw new Error('expected an overflow');
}

describe('CircuitBreaker', () => {
  it('refuses the request past max_requests with 503 UO, and closes again when one ends', () => {
    const cb = new CircuitBreaker('outbound|80||svc', { maxRequests: 2 }, false);
    expect(cb.acquire(never)).toBeUndefined();
    expect(cb.acquire(never)).toBeUndefined();
    expect(overflow(() => cb.acquire(never))).toBe('upstream overflow: cluster "outbound|80||svc" is at its circuit breaker limit max_requests=2\n');
    cb.release();
    expect(cb.acquire(never)).toBeUndefined();
  });

  it('over HTTP/1.1, queues past max_connections up to max_pending_requests, in order', async () => {
    const cb = new CircuitBreaker('c', { maxConnections: 1, maxPendingRequests: 2 }, true);
    expect(cb.acquire(never)).toBeUndefined();
    const order: number[] = [];
    const w1 = cb.acquire(never)!.then(() => order.push(1));
    const w2 = cb.acquire(never)!.then(() => order.push(2));
    expect(cb.pending).toBe(2);
    expect(overflow(() => cb.acquire(never))).toContain('max_pending_requests=2');
    cb.release();
    await w1;
    expect(order).toEqual([1]);
    cb.release();
    await w2;
    expect(order).toEqual([1, 2]);
    expect(cb.inFlight).toBe(1);
  });

  it('reads what ends a wait only when the request has to wait (a connection makes its AbortController on demand)', async () => {
    const cb = new CircuitBreaker('c', { maxConnections: 1, maxPendingRequests: 5 }, true);
    let made = 0;
    const onDemand = { get signal() { made++; return never.signal; } };
    expect(cb.acquire(onDemand)).toBeUndefined();
    expect(made).toBe(0);
    const waiting = cb.acquire(onDemand)!;
    expect(made).toBe(1);
    cb.release();
    await waiting;
  });

  it('drops a waiter whose request is abandoned', async () => {
    const cb = new CircuitBreaker('c', { maxConnections: 1, maxPendingRequests: 5 }, true);
    cb.acquire(never);
    const gone = new AbortController();
    const waiting = cb.acquire(gone)!;
    gone.abort(new Error('client left'));
    await expect(waiting).rejects.toThrow('client left');
    expect(cb.pending).toBe(0);
    cb.release();
    expect(cb.idle).toBe(true);
  });

  it('HTTP/2 multiplexes: max_connections does not bound requests', () => {
    const cb = new CircuitBreaker('c', { maxConnections: 1, maxRequests: 3 }, false);
    for (let i = 0; i < 3; i++) expect(cb.acquire(never)).toBeUndefined();
    overflow(() => cb.acquire(never));
  });

  it('keeps its counts across a threshold change', () => {
    const cb = new CircuitBreaker('c', { maxRequests: 1 }, false);
    cb.acquire(never);
    cb.update({ maxRequests: 2 }, false);
    expect(cb.acquire(never)).toBeUndefined();
    overflow(() => cb.acquire(never));
  });

  it('lets requests retry within the budget only, one slot per retrying request', () => {
    const cb = new CircuitBreaker('c', { retryBudget: { budgetPercent: 20, minRetryConcurrency: 1 } }, false);
    for (let i = 0; i < 10; i++) cb.acquire(never);
    // 10 active → 20 % = 2 requests may be retrying.
    expect(cb.reserveRetry()).toBe(true);
    expect(cb.reserveRetry()).toBe(true);
    expect(cb.reserveRetry()).toBe(false);
    cb.retryDone();
    expect(cb.reserveRetry()).toBe(true);
    expect(cb.retrying).toBe(2);
  });
});

describe('retryLimit', () => {
  const budget = { budgetPercent: 20, minRetryConcurrency: 3 };
  it.each([
    ['budget floor with little traffic', budget, undefined, 1, 0, 3],
    ['20 % of 100 active', budget, undefined, 100, 0, 20],
    ['pending requests count too', budget, undefined, 50, 50, 20],
    ['rounds down', budget, undefined, 24, 0, 4],
    ['no budget: max_retries', undefined, 7, 100, 0, 7],
    ['no budget, no max_retries: Envoy default 3', undefined, undefined, 100, 0, 3],
    ['0 % budget: the floor only', { budgetPercent: 0, minRetryConcurrency: 0 }, undefined, 100, 0, 0],
  ] as const)('%s', (_n, b, maxRetries, active, pending, expected) => {
    expect(retryLimit(b, maxRetries, active, pending)).toBe(expected);
  });
});
