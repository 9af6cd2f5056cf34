// A cluster's circuit breaker (Envoy `circuit_breakers.thresholds`): at most max_requests tries
// in flight; over HTTP/1.1 each try holds one connection, so at most max_connections run at
// once and up to max_pending_requests more wait for one, in order; past that the request is
// refused at once with 503 UO naming the cluster and the limit. It also admits retrying
// requests under the retry budget (retry-budget.ts): a request that wants to retry holds one
// retry slot from its first retry until it ends. Closes again by itself: limits are counts.
import type { Cluster } from '../../api/domain.js';
import { proxyErrors } from '../http/errors.js';
import { retryAllowed } from './retry-budget.js';

/** Envoy's defaults for every threshold left unset. */
export const DEFAULT_LIMIT = 1024;

type Thresholds = NonNullable<Cluster['circuitBreakers']>;

interface Waiter {
  readonly resolve: () => void;
  readonly onAbort: () => void;
}

/** What ends a request's wait for a slot. Read only when the request has to wait: the HTTP/1.1
 *  fast path makes its connection's AbortController on demand, and most requests never wait. */
export interface Abortable {
  readonly signal: AbortSignal;
}

export class CircuitBreaker {
  /** Tries in flight (each holds a connection over HTTP/1.1). */
  private active = 0;
  /** Requests that are retrying (each holds one slot until it ends). */
  private retries = 0;
  private readonly queue: Waiter[] = [];
  private thresholds: Thresholds;
  private perConnection: boolean;

  constructor(
    readonly cluster: string,
    thresholds: Thresholds | undefined,
    /** HTTP/1.1: one request per connection, so max_connections bounds concurrency. */
    perConnection: boolean,
  ) {
    this.thresholds = thresholds ?? {};
    this.perConnection = perConnection;
  }

  /** New thresholds from a config change; counts carry over. */
  update(thresholds: Thresholds | undefined, perConnection: boolean): void {
    this.thresholds = thresholds ?? {};
    this.perConnection = perConnection;
    this.wake();
  }

  get inFlight(): number {
    return this.active;
  }

  get pending(): number {
    return this.queue.length;
  }

  get idle(): boolean {
    return this.active === 0 && this.queue.length === 0;
  }

  private get maxRequests(): number {
    return this.thresholds.maxRequests ?? DEFAULT_LIMIT;
  }

  /** How many tries may run at once. */
  private get capacity(): number {
    return this.perConnection ? Math.min(this.maxRequests, this.thresholds.maxConnections ?? DEFAULT_LIMIT) : this.maxRequests;
  }

  /**
   * Takes a slot for one try: at once (returns undefined), after waiting for a connection
   * (returns a promise), or not at all (throws upstream_overflow). Every slot taken must be
   * given back with release().
   */
  acquire(abort: Abortable): Promise<void> | undefined {
    if (this.active < this.capacity && this.queue.length === 0) {
      this.active++;
      return undefined;
    }
    if (!this.perConnection || this.active >= this.maxRequests) {
      throw proxyErrors.upstreamOverflow(this.cluster, 'max_requests', this.maxRequests);
    }
    const maxPending = this.thresholds.maxPendingRequests ?? DEFAULT_LIMIT;
    if (this.queue.length >= maxPending) throw proxyErrors.upstreamOverflow(this.cluster, 'max_pending_requests', maxPending);
    const signal = abort.signal;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve: () => {
          signal.removeEventListener('abort', waiter.onAbort);
          this.active++;
          resolve();
        },
        onAbort: () => {
          const i = this.queue.indexOf(waiter);
          if (i >= 0) this.queue.splice(i, 1);
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', waiter.onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  /** Gives back a slot taken by acquire(). */
  release(): void {
    this.active--;
    this.wake();
  }

  /** A request wants its first retry: takes a retry slot if the budget (or max_retries) has
   *  room. The request gives it back with retryDone() when it ends. */
  reserveRetry(): boolean {
    if (!retryAllowed(this.thresholds.retryBudget, this.thresholds.maxRetries, this.active, this.queue.length, this.retries)) return false;
    this.retries++;
    return true;
  }

  retryDone(): void {
    this.retries--;
  }

  /** Requests currently retrying. */
  get retrying(): number {
    return this.retries;
  }

  /** Hands freed slots to waiting requests, oldest first. */
  private wake(): void {
    while (this.queue.length > 0 && this.active < this.capacity) this.queue.shift()!.resolve();
  }
}
