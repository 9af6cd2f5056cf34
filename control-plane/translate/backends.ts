// The forwarding half of a route rule: backendRefs → Envoy cluster / weighted_clusters (an
// unresolvable backend keeps its share and answers 500) and RequestMirror filters → mirror policies.
import type { Plain } from '../../api/codec.js';
import {
  hasExtensionRef,
  resolveBackend,
  type BackendRef,
  type Model,
  type RouteFilter,
  type RouteObject,
  type RouteSemanticsOptions,
} from '../model/index.js';
import { applyHeaderMutations, headerMutation, outboundClusterName, u32, unresolvedClusterName } from './envoy.js';

interface RuleLike {
  readonly filters: readonly RouteFilter[];
  readonly backendRefs: readonly BackendRef[];
}

/**
 * The route action's forwarding fields, or undefined when no backend may receive traffic
 * (no backendRefs, or all weights 0): the caller then answers 500, as the spec requires.
 */
export function forwardAction(
  model: Model,
  route: RouteObject,
  rule: RuleLike,
  ruleIndex: number,
  semantics: RouteSemanticsOptions,
): Plain | undefined {
  const live = rule.backendRefs.map((ref, k) => ({ ref, k })).filter(({ ref }) => ref.weight > 0);
  if (live.length === 0) return undefined;
  let unresolved = false;
  const clusters = live.map(({ ref, k }) => {
    const res = resolveBackend(model, route, ref, `spec.rules[${ruleIndex}].backendRefs[${k}]`, semantics);
    // A backend whose filters Weft cannot carry out (ExtensionRef) answers 500 like an unresolved one.
    const usable = res.ok && !hasExtensionRef(ref.filters);
    if (!usable) unresolved = true;
    const name = usable && res.ok
      ? outboundClusterName(res.port.port, res.service.metadata.name, res.service.metadata.namespace)
      : unresolvedClusterName(ref.kind, ref.namespace ?? route.metadata.namespace, ref.name, ref.port);
    const weighted: Plain = { name, weight: u32(ref.weight) };
    const byType = (type: string) => ref.filters.find((f) => f.type === type);
    applyHeaderMutations(
      weighted,
      headerMutation(byType('RequestHeaderModifier')?.requestHeaderModifier),
      headerMutation(byType('ResponseHeaderModifier')?.responseHeaderModifier),
    );
    return weighted;
  });
  const action: Plain = {};
  const only = clusters[0];
  // One backend without its own filters needs no weights: the plain `cluster` form says the same.
  if (clusters.length === 1 && only && live[0]?.ref.filters.length === 0) action.cluster = only.name;
  else action.weighted_clusters = { clusters };
  // Gateway API: requests meant for an invalid backend get 500 (Envoy's default would be 503).
  if (unresolved) action.cluster_not_found_response_code = 'INTERNAL_SERVER_ERROR';
  const mirrors = mirrorPolicies(model, route, rule, ruleIndex, semantics);
  if (mirrors.length > 0) action.request_mirror_policies = mirrors;
  return action;
}

/** Mirror policies for the rule's RequestMirror filters; unresolvable mirror targets are dropped. */
export function mirrorPolicies(
  model: Model,
  route: RouteObject,
  rule: { readonly filters: readonly RouteFilter[] },
  ruleIndex: number,
  semantics: RouteSemanticsOptions,
): Plain[] {
  const out: Plain[] = [];
  rule.filters.forEach((f, k) => {
    const mirror = f.requestMirror;
    if (!mirror) return;
    const res = resolveBackend(model, route, mirror.backendRef, `spec.rules[${ruleIndex}].filters[${k}].requestMirror.backendRef`, semantics);
    if (!res.ok) return;
    out.push({
      cluster: outboundClusterName(res.port.port, res.service.metadata.name, res.service.metadata.namespace),
      runtime_fraction: { default_value: fractionalPercent(mirror.numerator, mirror.denominator) },
    });
  });
  return out;
}

/** Envoy's FractionalPercent only knows denominators 100, 10 000 and 1 000 000. */
export function fractionalPercent(numerator: number, denominator: number): Plain {
  if (denominator === 100) return { numerator, denominator: 'HUNDRED' };
  if (denominator === 10_000) return { numerator, denominator: 'TEN_THOUSAND' };
  if (denominator === 1_000_000) return { numerator, denominator: 'MILLION' };
  return { numerator: Math.round((numerator * 1_000_000) / denominator), denominator: 'MILLION' };
}
