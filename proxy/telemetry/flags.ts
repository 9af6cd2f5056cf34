// Envoy response flags for one finished request, derived from what the telemetry saw: the
// proxy's own error answer, each upstream try's outcome, and how the downstream response ended.
// Pure; the table of cases is in flags.test.ts.
import { flagOf, isProxyError } from '../http/errors.js';

export interface FlagFacts {
  /** An error the proxy answered itself before anything went upstream (NR, NC, RBAC, DPE ...). */
  readonly localError: unknown;
  /** The plan was to forward (so "no try at all" means no healthy endpoint). */
  readonly forwarded: boolean;
  /** Upstream tries sent (pool requests). */
  readonly tries: number;
  /** The last try's failure before response headers, if it failed. */
  readonly tryFailure: unknown;
  /** The last try got response headers. */
  readonly gotResponse: boolean;
  /** Upstream status of the last response, if any. */
  readonly upstreamStatus: number | undefined;
  /** The upstream body failed after the headers went to the client. */
  readonly upstreamBodyFailed: boolean;
  /** The downstream response completed (vs. reset / client gone). */
  readonly finished: boolean;
  /** The downstream response status the client got (0 when none was sent). */
  readonly status: number;
  /** The route's timeout had elapsed when the response ended. */
  readonly timedOut: boolean;
}

/** `-` when nothing is worth saying; otherwise Envoy's comma-separated short flags. */
export function responseFlags(f: FlagFacts): string {
  if (f.localError !== undefined) return flagOf(f.localError);
  if (!f.forwarded) return f.finished ? '-' : 'DC';
  if (f.tries === 0) {
    // forward.ts answers "no healthy upstream" before any try; a client that left while its
    // body was being read never got an answer.
    return f.finished && f.status >= 500 ? 'UH' : f.finished ? '-' : 'DC';
  }
  if (!f.gotResponse) {
    const flag = failureFlag(f.tryFailure, f.timedOut);
    return f.tries > 1 && flag !== 'DC' ? `${flag},URX` : flag;
  }
  if (!f.finished) {
    if (f.upstreamBodyFailed) return 'UC';
    return f.timedOut ? 'UT' : 'DC';
  }
  if (f.tries > 1 && f.upstreamStatus !== undefined && f.upstreamStatus >= 500) return 'URX';
  return '-';
}

/** A try's failure: the data path's own errors carry their flag; an abort that is not ours
 *  (the client went away) is DC, unless the route timeout is what fired. */
function failureFlag(failure: unknown, timedOut: boolean): string {
  if (isProxyError(failure)) return failure.flag;
  return timedOut ? 'UT' : 'DC';
}

/** The access log's `upstream_transport_failure_reason`: the failure in the operator's words. */
export function failureReason(failure: unknown): string | undefined {
  if (failure === undefined) return undefined;
  if (isProxyError(failure)) {
    return failure.hint ? `${failure.kind}: ${failure.hint}` : failure.kind;
  }
  if (failure instanceof Error) return failure.message;
  return String(failure);
}
