// Gateway API route precedence across all rules of all routes attached to one Service port,
// so that Envoy's "first match wins" gives the spec's "most specific match wins".
import type { Plain } from '../../api/codec.js';
import type { RouteObject } from '../model/index.js';

interface RouteOrder {
  /** creationTimestamp in ms; objects without one sort after those with one. */
  readonly createdMs: number;
  /** `namespace/name`. */
  readonly routeName: string;
  readonly ruleIndex: number;
  readonly matchIndex: number;
}

export type PrecedenceKey =
  | (RouteOrder & {
      readonly kind: 'http';
      readonly exactPath: boolean;
      /** Prefix (trailing "/" ignored) or regex length; longer is more specific. */
      readonly pathLength: number;
      readonly regexPath: boolean;
      readonly method: boolean;
      readonly headers: number;
      readonly queryParams: number;
    })
  | (RouteOrder & {
      readonly kind: 'grpc';
      readonly serviceLength: number;
      readonly methodLength: number;
      readonly headers: number;
    });

export interface RouteCandidate {
  readonly envoy: Plain;
  readonly key: PrecedenceKey;
}

export function routeOrder(route: RouteObject): Pick<RouteOrder, 'createdMs' | 'routeName'> {
  const ts = route.metadata.creationTimestamp;
  return {
    createdMs: ts === undefined ? Number.POSITIVE_INFINITY : Date.parse(ts),
    routeName: `${route.metadata.namespace}/${route.metadata.name}`,
  };
}

/** Negative when `a` must be tried before `b`. */
export function comparePrecedence(a: PrecedenceKey, b: PrecedenceKey): number {
  let d = 0;
  if (a.kind === 'http' && b.kind === 'http') {
    d =
      Number(b.exactPath) - Number(a.exactPath) ||
      // Regex precedence is implementation-specific: Weft ranks a regex with prefixes by its
      // length, after a prefix of equal length, so a catch-all "/" never hides a regex.
      b.pathLength - a.pathLength ||
      Number(a.regexPath) - Number(b.regexPath) ||
      Number(b.method) - Number(a.method) ||
      b.headers - a.headers ||
      b.queryParams - a.queryParams;
  } else if (a.kind === 'grpc' && b.kind === 'grpc') {
    d = b.serviceLength - a.serviceLength || b.methodLength - a.methodLength || b.headers - a.headers;
  } else {
    // GEP-1294 never lets both kinds share a Service port; keep gRPC first if it ever happens.
    d = a.kind === 'grpc' ? -1 : 1;
  }
  if (d !== 0) return d;
  const byAge = a.createdMs === b.createdMs ? 0 : a.createdMs < b.createdMs ? -1 : 1;
  return (
    byAge ||
    (a.routeName < b.routeName ? -1 : a.routeName > b.routeName ? 1 : 0) ||
    a.ruleIndex - b.ruleIndex ||
    a.matchIndex - b.matchIndex
  );
}

export function sortByPrecedence(candidates: readonly RouteCandidate[]): Plain[] {
  return [...candidates].sort((a, b) => comparePrecedence(a.key, b.key)).map((c) => c.envoy);
}
