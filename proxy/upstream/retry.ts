// Retry decisions (pure): whether a failed try may be tried again under an Envoy-style
// RetryPolicy and the request's method, and how long to wait first. forward.ts asks (and the
// cluster's retry budget, circuit-breaker.ts, has the last word); this file never does I/O.
import type { RetryPolicy } from '../../api/domain.js';
import type { ProxyErrorKind } from '../http/errors.js';
import { firstValue, type HeaderMap } from '../http/headers.js';

/** Failures a retry may fix: the request never reached, or never got an answer from, the app. */
const RESET_KINDS: ReadonlySet<ProxyErrorKind> = new Set(['upstream_connect', 'upstream_reset', 'upstream_refused_stream', 'upstream_timeout']);

/** RFC 9110 §9.2.2: repeating these has the effect of sending them once. */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** Failures after which the upstream app certainly never saw the request. */
const NOT_PROCESSED: ReadonlySet<ProxyErrorKind> = new Set(['upstream_connect', 'upstream_refused_stream']);

/**
 * Whether a try that failed with `kind` (before any response) may be retried under `policy`.
 * A reset or a timeout leaves open whether the app acted on the request: a non-idempotent
 * method (POST, PATCH, ...) is then not sent again, whatever the policy says. Connection
 * failures and refused streams are safe to retry for any method.
 */
export function retriableError(policy: RetryPolicy, kind: ProxyErrorKind, method = 'GET'): boolean {
  const on = policy.retryOn;
  if (!RESET_KINDS.has(kind)) return false;
  if (!NOT_PROCESSED.has(kind) && !isIdempotent(method)) return false;
  if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
  if (kind === 'upstream_connect' && on.has('connect-failure')) return true;
  if (kind === 'upstream_refused_stream' && on.has('refused-stream')) return true;
  return false;
}

const GRPC_ON: Readonly<Record<string, number>> = {
  cancelled: 1,
  'deadline-exceeded': 4,
  'resource-exhausted': 8,
  internal: 13,
  unavailable: 14,
};

/**
 * Whether a response (headers only) should be thrown away and the request tried again. The app
 * answered, and the route named that answer as retriable (retry_on is explicit), so this holds
 * for any method: the route marked it retryable.
 */
export function retriableResponse(policy: RetryPolicy, status: number, headers: Readonly<HeaderMap>): boolean {
  const on = policy.retryOn;
  if (status >= 500 && on.has('5xx')) return true;
  if ((status === 502 || status === 503 || status === 504) && on.has('gateway-error')) return true;
  if (status === 409 && on.has('retriable-4xx')) return true;
  if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(status)) return true;
  const grpc = firstValue(headers, 'grpc-status');
  if (grpc !== undefined) {
    const code = Number(grpc);
    for (const [cond, c] of Object.entries(GRPC_ON)) if (c === code && on.has(cond)) return true;
  }
  return false;
}

/**
 * Delay before retry number `retry` (0-based): jitter between the base interval and an
 * exponential ceiling. Never below the base: Gateway API's `retry.backoff` (which the
 * translator sends as base_interval) is the minimum wait between attempts (GEP-1731).
 */
export function retryBackoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const base = policy.backoffBaseMs > 0 ? policy.backoffBaseMs : 25;
  const max = Math.max(base, policy.backoffMaxMs > 0 ? policy.backoffMaxMs : base * 10);
  const ceiling = Math.min(max, base * 2 ** (retry + 1));
  return base + Math.floor(random() * (ceiling - base));
}
