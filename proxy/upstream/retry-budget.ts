// How many retries a cluster may have in flight (pure): Envoy's retry budget — a share of the
// cluster's active requests, never below a floor — or, without a budget, the circuit breaker's
// fixed max_retries. A failing backend then sees a bounded extra load, not (1 + retries) × load.
import type { RetryBudgetConfig } from '../../api/domain.js';

/** Envoy's circuit-breaker default when neither a budget nor max_retries is configured. */
export const DEFAULT_MAX_RETRIES = 3;

/**
 * The most retries that may be in flight at once for a cluster with `active` requests in flight
 * and `pending` waiting for a connection (both counting the retries themselves).
 */
export function retryLimit(budget: RetryBudgetConfig | undefined, maxRetries: number | undefined, active: number, pending: number): number {
  if (!budget) return maxRetries ?? DEFAULT_MAX_RETRIES;
  return Math.max(budget.minRetryConcurrency, Math.floor((budget.budgetPercent / 100) * (active + pending)));
}

/** Whether one more retry may start now. */
export function retryAllowed(budget: RetryBudgetConfig | undefined, maxRetries: number | undefined, active: number, pending: number, retriesInFlight: number): boolean {
  return retriesInFlight < retryLimit(budget, maxRetries, active, pending);
}
