// The routing decision as data: request facts in, a plan out. The matcher (plan.ts) is pure;
// the data path (outbound/, inbound/) only carries plans out.
import type { HeaderMutation, Mirror, RetryPolicy, Route, VirtualHost } from '../../api/domain.js';

/** What the matcher may look at. Header names are lower-case. */
export interface RequestFacts {
  /** Host / :authority as received (may include a port), lower-cased. */
  readonly authority: string;
  readonly method: string;
  /** Path including the query string, as received (origin-form). */
  readonly path: string;
  readonly scheme: 'http' | 'https';
  /** First value of a header, or undefined. */
  header(name: string): string | undefined;
  /** All values of a header (for multi-valued matching); may return []. */
  headerValues?(name: string): readonly string[];
}

export interface ForwardPlan {
  readonly kind: 'forward';
  readonly vhost: VirtualHost;
  readonly route: Route;
  /** The chosen backend's cluster name. */
  readonly cluster: string;
  /** Path (with query) to send upstream, after any URLRewrite. */
  readonly path: string;
  /** Authority to send upstream, after any hostname rewrite (otherwise the original). */
  readonly authority: string;
  /** Mutations in the order they apply: virtual host, route, chosen backend. */
  readonly requestHeaders: readonly HeaderMutation[];
  readonly responseHeaders: readonly HeaderMutation[];
  readonly timeoutMs: number | undefined;
  readonly retry: RetryPolicy | undefined;
  /** Mirrors already sampled for this request (fraction applied). */
  readonly mirrors: readonly Mirror[];
  /** Status to answer when `cluster` does not exist in the config. */
  readonly clusterNotFoundStatus: number;
}

export interface RedirectPlan {
  readonly kind: 'redirect';
  readonly vhost: VirtualHost;
  readonly route: Route;
  readonly status: number;
  readonly location: string;
  readonly responseHeaders: readonly HeaderMutation[];
}

export interface DirectPlan {
  readonly kind: 'direct';
  readonly vhost: VirtualHost;
  readonly route: Route;
  readonly status: number;
  readonly body: string;
  readonly responseHeaders: readonly HeaderMutation[];
}

export interface NoRoutePlan {
  readonly kind: 'noRoute';
  /** no virtual host for the authority, or a virtual host but no matching route. */
  readonly reason: 'no_virtual_host' | 'no_route_match';
  readonly authority: string;
  readonly vhost?: VirtualHost;
  /** A sentence for the operator when the reason alone is not enough (e.g. unknown route config). */
  readonly detail?: string;
}

export type Plan = ForwardPlan | RedirectPlan | DirectPlan | NoRoutePlan;
