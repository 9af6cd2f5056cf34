// Retry decisions (pure): whether a failed try may be tried again under an Envoy-style
// RetryPolicy, and how long to wait first. forward.ts asks; this file never does I/O.
import type { RetryPolicy } from '../../api/domain.js';
import type { ProxyErrorKind } from '../http/errors.js';
import { firstValue, type HeaderMap } from '../http/headers.js';

/** Failures a retry may fix: the request never reached, or never got an answer from, the app. */
const RESET_KINDS: ReadonlySet<ProxyErrorKind> = new Set(['upstream_connect', 'upstream_reset', 'upstream_refused_stream', 'upstream_timeout']);

/** Whether a try that failed with `kind` (before any response) may be retried under `policy`. */
export function retriableError(policy: RetryPolicy, kind: ProxyErrorKind): boolean {
  const on = policy.retryOn;
  if (!RESET_KINDS.has(kind)) return false;
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

/** Whether a response (headers only) should be thrown away and the request tried again. */
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

/** Delay before retry number `retry` (0-based): full jitter over an exponential ceiling. */
export function retryBackoffMs(policy: RetryPolicy, retry: number, random: () => number): number {
  const base = policy.backoffBaseMs > 0 ? policy.backoffBaseMs : 25;
  const max = policy.backoffMaxMs > 0 ? policy.backoffMaxMs : base * 10;
  const ceiling = Math.min(max, base * 2 ** retry);
  return Math.floor(random() * ceiling);
}
