// GRPCRoute → Envoy routes: a method match becomes a `:path` match on `/<service>/<method>`
// (exact, prefix or regex), every route carries `grpc: {}`, and precedence follows the spec
// (longest service, longest method, most headers).
import type { Plain } from '../../api/codec.js';
import { hasExtensionRef, type GRPCMethodMatch, type GRPCRoute, type GRPCRouteMatch, type GRPCRouteRule, type Model, type RouteSemanticsOptions } from '../model/index.js';
import { forwardAction } from './backends.js';
import { applyHeaderMutations, headerMutation, stringMatch } from './envoy.js';
import { escapeRegex } from './http-route.js';
import { routeOrder, type RouteCandidate } from './precedence.js';

const ANY_SEGMENT = '[^/]+';

function methodPath(m: GRPCMethodMatch | undefined): Plain {
  if (!m) return { prefix: '/' };
  if (m.type === 'Exact') {
    // The API allows a leading "." on a fully qualified service; the request path never has it.
    // (Only for Exact: in a regular expression a leading "." is a pattern.)
    const service = m.service?.replace(/^\./, '');
    if (service !== undefined && m.method !== undefined) return { path: `/${service}/${m.method}` };
    if (service !== undefined) return { prefix: `/${service}/` };
    return { safe_regex: { regex: `/${ANY_SEGMENT}/${escapeRegex(m.method ?? '')}` } };
  }
  const s = m.service === undefined ? ANY_SEGMENT : `(?:${m.service})`;
  const meth = m.method === undefined ? ANY_SEGMENT : `(?:${m.method})`;
  return { safe_regex: { regex: `/${s}/${meth}` } };
}

function routeMatch(m: GRPCRouteMatch | undefined): Plain {
  const match: Plain = { ...methodPath(m?.method), grpc: {} };
  const headers = (m?.headers ?? []).map((h) => ({ name: h.name.toLowerCase(), string_match: stringMatch(h.type, h.value) }));
  if (headers.length > 0) match.headers = headers;
  return match;
}

function envoyRoute(
  model: Model,
  route: GRPCRoute,
  rule: GRPCRouteRule,
  ruleIndex: number,
  match: GRPCRouteMatch | undefined,
  semantics: RouteSemanticsOptions,
): Plain {
  const out: Plain = { name: `${route.metadata.namespace}/${route.metadata.name}/${rule.name ?? ruleIndex}`, match: routeMatch(match) };
  const action = hasExtensionRef(rule.filters) ? undefined : forwardAction(model, route, rule, ruleIndex, semantics);
  // A filter Weft cannot carry out is never skipped: the rule answers with an error instead.
  if (hasExtensionRef(rule.filters)) out.direct_response = { status: 500 };
  else if (action) out.route = action;
  // No backend may receive the call: gRPC clients (of Weft's proxy, or of Envoy's local reply)
  // read 503 as UNAVAILABLE, which is what the spec asks for (500 would read as UNKNOWN).
  else out.direct_response = { status: 503 };
  const byType = (type: string) => rule.filters.find((f) => f.type === type);
  applyHeaderMutations(
    out,
    headerMutation(byType('RequestHeaderModifier')?.requestHeaderModifier),
    headerMutation(byType('ResponseHeaderModifier')?.responseHeaderModifier),
  );
  return out;
}

/** Every (rule, match) of an accepted GRPCRoute; a rule without matches takes every gRPC call. */
export function grpcRouteCandidates(model: Model, route: GRPCRoute, semantics: RouteSemanticsOptions): RouteCandidate[] {
  const order = routeOrder(route);
  return route.spec.rules.flatMap((rule, ruleIndex) => {
    const matches: (GRPCRouteMatch | undefined)[] = rule.matches.length > 0 ? [...rule.matches] : [undefined];
    return matches.map((match, matchIndex) => ({
      envoy: envoyRoute(model, route, rule, ruleIndex, match, semantics),
      key: {
        kind: 'grpc' as const,
        serviceLength: match?.method?.service?.length ?? 0,
        methodLength: match?.method?.method?.length ?? 0,
        headers: match?.headers.length ?? 0,
        ...order,
        ruleIndex,
        matchIndex,
      },
    }));
  });
}
