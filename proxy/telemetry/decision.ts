// The decision record: why this proxy did what it did with one request — which route and rule
// matched (or why none did), which backend was chosen and with what weight, which endpoint and
// by which balancing policy, each try and its result, the authorization verdict, and how the
// upstream exchange ended. Returned as the `x-weft-decision` response header to a local app
// that asks with `x-weft-debug: 1`, and written into every access log line when that is on.
import { flagOf, kindOf } from '../http/errors.js';
import { PASSTHROUGH_CLUSTER } from '../outbound/handle.js';
import { findEndpoint } from './endpoints.js';
import { failureReason } from './flags.js';
import type { RequestRecord } from './record.js';

export const DEBUG_HEADER = 'x-weft-debug';
export const DECISION_HEADER = 'x-weft-decision';

export interface DecisionRecord {
  readonly dir: 'outbound' | 'inbound';
  /** forward, redirect, direct, noRoute, passthrough, or error (answered before planning). */
  readonly action: string;
  readonly vhost?: string;
  /** Envoy route name: `<namespace>/<route>/<rule name or index>`. */
  readonly route?: string;
  /** Why no route matched. */
  readonly noRoute?: string;
  readonly backend?: { readonly cluster: string; readonly weight: string; readonly backends: number };
  readonly endpoint?: {
    readonly address: string;
    readonly workload?: string;
    readonly identity?: string;
    readonly lb?: string;
  };
  readonly tries?: readonly { readonly endpoint: string; readonly result: string }[];
  readonly retries?: number;
  readonly retryOn?: string;
  readonly mirrors?: readonly string[];
  readonly timeoutMs?: number;
  readonly authz?: { readonly allow: boolean; readonly reason: string; readonly policy?: string };
  /** The proxy's own answer, when it answered instead of the upstream. */
  readonly error?: { readonly flag: string; readonly kind: string; readonly message: string };
  /** How the last upstream try failed, in the operator's words. */
  readonly upstreamFailure?: string;
}

/** What is known so far (the header is refreshed as the request progresses). */
export function decisionOf(rec: RequestRecord): DecisionRecord {
  const plan = rec.plan;
  const out: Record<string, unknown> = { dir: rec.direction, action: plan ? plan.kind : 'error' };
  if (plan && plan.kind !== 'noRoute') {
    out.vhost = plan.vhost.name;
    out.route = plan.route.name;
  }
  if (plan?.kind === 'noRoute') {
    out.noRoute = plan.detail ? `${plan.reason}: ${plan.detail}` : plan.reason;
    if (plan.vhost) out.vhost = plan.vhost.name;
    if (rec.forwarded && rec.cluster === PASSTHROUGH_CLUSTER) out.action = 'passthrough';
  }
  if (plan?.kind === 'forward') {
    const action = plan.route.action;
    if (action.kind === 'forward') {
      const chosen = action.backends.find((b) => b.cluster === plan.cluster);
      out.backend = { cluster: plan.cluster, weight: `${chosen?.weight ?? 0}/${action.totalWeight}`, backends: action.backends.length };
    }
    if (plan.retry) {
      out.retryOn = [...plan.retry.retryOn].join(',');
    }
    if (plan.mirrors.length > 0) out.mirrors = plan.mirrors.map((m) => m.cluster);
    if (plan.timeoutMs) out.timeoutMs = plan.timeoutMs;
  } else if (rec.forwarded && rec.cluster) {
    out.backend = { cluster: rec.cluster, weight: '1/1', backends: 1 };
  }
  if (rec.target) {
    const t = rec.target;
    const ep = findEndpoint(rec.config, rec.cluster, t.host, t.port);
    const cluster = rec.cluster ? rec.config?.clusters.get(rec.cluster) : undefined;
    out.endpoint = {
      address: `${t.host}:${t.port}`,
      ...(ep?.workload ? { workload: ep.workload } : {}),
      ...(t.identity ? { identity: t.identity } : {}),
      ...(cluster ? { lb: cluster.lbPolicy } : {}),
    };
  }
  if (rec.attempts && rec.attempts.length > 0) out.tries = rec.attempts;
  if (rec.tries > 1) out.retries = rec.tries - 1;
  if (rec.authz) out.authz = rec.authz.policy ? { allow: rec.authz.allow, reason: rec.authz.reason, policy: rec.authz.policy } : { allow: rec.authz.allow, reason: rec.authz.reason };
  if (rec.localError !== undefined) {
    const e = rec.localError;
    out.error = { flag: flagOf(e), kind: kindOf(e), message: failureReason(e) ?? '' };
  }
  if (rec.tryFailure !== undefined) out.upstreamFailure = failureReason(rec.tryFailure);
  return out as unknown as DecisionRecord;
}

/** A header value: JSON, with anything outside printable ASCII escaped (header values are latin1). */
export function decisionHeaderValue(d: DecisionRecord): string {
  return JSON.stringify(d).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
