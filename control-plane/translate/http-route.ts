// HTTPRoute → Envoy routes: one Envoy route per (rule, match), each with the precedence key the
// Gateway API orders them by (exact path, longest prefix/regex, method, headers, query params).
import type { Plain } from '../../api/codec.js';
import {
  hasExtensionRef,
  type HTTPPathMatch,
  type HTTPRoute,
  type HTTPRouteMatch,
  type HTTPRouteRule,
  type Model,
  type PathModifier,
  type RequestRedirect,
  type RouteSemanticsOptions,
} from '../model/index.js';
import { forwardAction } from './backends.js';
import { applyHeaderMutations, duration, headerMutation, stringMatch, u32 } from './envoy.js';
import { routeOrder, type RouteCandidate } from './precedence.js';

/** RE2-safe literal. */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A regex_rewrite substitution that stands for `text` itself (a backslash starts a group reference). */
function literalSubstitution(text: string): string {
  return text.replaceAll('\\', '\\\\');
}

/** Gateway PathPrefix ignores a trailing "/"; "/" itself matches everything. */
function normalizedPrefix(value: string): string {
  return value.replace(/\/+$/, '');
}

function pathMatch(path: HTTPPathMatch): Plain {
  switch (path.type) {
    case 'Exact':
      return { path: path.value };
    case 'RegularExpression':
      return { safe_regex: { regex: path.value } };
    case 'PathPrefix': {
      const prefix = normalizedPrefix(path.value);
      return prefix === '' ? { prefix: '/' } : { path_separated_prefix: prefix };
    }
  }
}

function routeMatch(m: HTTPRouteMatch): Plain {
  const match: Plain = pathMatch(m.path);
  const headers: Plain[] = m.headers.map((h) => ({ name: h.name.toLowerCase(), string_match: stringMatch(h.type, h.value) }));
  if (m.method) headers.push({ name: ':method', string_match: { exact: m.method } });
  if (headers.length > 0) match.headers = headers;
  if (m.queryParams.length > 0) {
    match.query_parameters = m.queryParams.map((q) => ({ name: q.name, string_match: stringMatch(q.type, q.value) }));
  }
  return match;
}

/**
 * ReplacePrefixMatch as Envoy fields. Envoy's plain `prefix_rewrite` would turn "/foo/bar" with
 * prefix "/foo" and replacement "/" into "//bar", so the cases the spec's table covers that a
 * plain prefix swap gets wrong use a regex rewrite instead.
 */
export function prefixRewrite(matchPrefix: string, replacement: string): Plain | undefined {
  const p = normalizedPrefix(matchPrefix);
  const r = normalizedPrefix(replacement);
  if (p === '' && r === '') return undefined;
  if (r === '') return { regex_rewrite: { pattern: { regex: `^${escapeRegex(p)}/*` }, substitution: '/' } };
  if (p === '') return { regex_rewrite: { pattern: { regex: '^/' }, substitution: `${literalSubstitution(r)}/` } };
  return { prefix_rewrite: r };
}

function pathRewrite(mod: PathModifier, rule: HTTPRouteRule, full: 'path_redirect' | 'regex_rewrite'): Plain | undefined {
  if (mod.type === 'ReplaceFullPath') {
    return full === 'path_redirect'
      ? { path_redirect: mod.value }
      : { regex_rewrite: { pattern: { regex: '^.*$' }, substitution: literalSubstitution(mod.value) } };
  }
  // Acceptance checks guarantee exactly one PathPrefix match here.
  const match = rule.matches[0];
  return match ? prefixRewrite(match.path.value, mod.value) : undefined;
}

const REDIRECT_CODES: Record<RequestRedirect['statusCode'], string> = {
  301: 'MOVED_PERMANENTLY',
  302: 'FOUND',
  303: 'SEE_OTHER',
  307: 'TEMPORARY_REDIRECT',
  308: 'PERMANENT_REDIRECT',
};

function redirectAction(r: RequestRedirect, rule: HTTPRouteRule, servicePort: number): Plain {
  const out: Plain = { response_code: REDIRECT_CODES[r.statusCode] };
  if (r.scheme) out.scheme_redirect = r.scheme;
  if (r.hostname) out.host_redirect = r.hostname;
  // The spec's port rules: with a scheme and no port, the scheme's well-known port; with
  // neither, the listener's port, which for a mesh route is the Service port the request was
  // sent to (whatever the Host header says). The proxy leaves 80/443 out of the Location.
  const port = r.port ?? (r.scheme === 'https' ? 443 : r.scheme === 'http' ? 80 : servicePort);
  out.port_redirect = port;
  if (r.path) Object.assign(out, pathRewrite(r.path, rule, 'path_redirect'));
  return out;
}

function applyTimeoutsAndRetry(action: Plain, rule: HTTPRouteRule): void {
  const requestMs = rule.timeouts?.requestMs;
  const backendMs = rule.timeouts?.backendRequestMs;
  if (requestMs !== undefined) action.timeout = duration(requestMs);
  const retry = rule.retry;
  if (retry) {
    const policy: Plain = {
      // Connection failures and refused streams are safe to retry; resets are retried too so that
      // a failure behind the peer sidecar (which arrives as a reset) is retried like a local one.
      retry_on: ['connect-failure', 'refused-stream', 'reset', ...(retry.codes.length > 0 ? ['retriable-status-codes'] : [])].join(','),
      num_retries: u32(retry.attempts ?? 1),
    };
    if (retry.codes.length > 0) policy.retriable_status_codes = [...retry.codes];
    if (retry.backoffMs !== undefined && retry.backoffMs > 0) policy.retry_back_off = { base_interval: duration(retry.backoffMs) };
    if (backendMs !== undefined && backendMs > 0) policy.per_try_timeout = duration(backendMs);
    action.retry_policy = policy;
  } else if (backendMs !== undefined && backendMs > 0 && (requestMs === undefined || requestMs === 0 || backendMs < requestMs)) {
    // Without retries there is one backend request, so its timeout bounds the whole request.
    action.timeout = duration(backendMs);
  }
}

function envoyRoute(
  model: Model,
  route: HTTPRoute,
  rule: HTTPRouteRule,
  ruleIndex: number,
  match: HTTPRouteMatch,
  semantics: RouteSemanticsOptions,
  servicePort: number,
): Plain {
  const out: Plain = { name: `${route.metadata.namespace}/${route.metadata.name}/${rule.name ?? ruleIndex}`, match: routeMatch(match) };
  const byType = (type: string) => rule.filters.find((f) => f.type === type);
  const redirect = byType('RequestRedirect')?.requestRedirect;
  if (hasExtensionRef(rule.filters)) {
    // A filter Weft cannot carry out must not be skipped: the rule answers 500 (status says why).
    out.direct_response = { status: 500 };
  } else if (redirect) {
    out.redirect = redirectAction(redirect, rule, servicePort);
  } else {
    const action = forwardAction(model, route, rule, ruleIndex, semantics);
    if (!action) {
      out.direct_response = { status: 500 };
    } else {
      const rewrite = byType('URLRewrite')?.urlRewrite;
      if (rewrite?.hostname) action.host_rewrite_literal = rewrite.hostname;
      if (rewrite?.path) Object.assign(action, pathRewrite(rewrite.path, rule, 'regex_rewrite'));
      applyTimeoutsAndRetry(action, rule);
      out.route = action;
    }
  }
  applyHeaderMutations(
    out,
    headerMutation(byType('RequestHeaderModifier')?.requestHeaderModifier),
    headerMutation(byType('ResponseHeaderModifier')?.responseHeaderModifier),
  );
  return out;
}

function pathPrecedence(path: HTTPPathMatch): { exact: boolean; length: number; regex: boolean } {
  if (path.type === 'Exact') return { exact: true, length: path.value.length, regex: false };
  if (path.type === 'RegularExpression') return { exact: false, length: path.value.length, regex: true };
  return { exact: false, length: normalizedPrefix(path.value).length, regex: false };
}

/**
 * Every (rule, match) of an accepted HTTPRoute as an Envoy route with its precedence key, for
 * the virtual host of Service port `servicePort`.
 */
export function httpRouteCandidates(model: Model, route: HTTPRoute, semantics: RouteSemanticsOptions, servicePort: number): RouteCandidate[] {
  const order = routeOrder(route);
  return route.spec.rules.flatMap((rule, ruleIndex) =>
    rule.matches.map((match, matchIndex) => {
      const path = pathPrecedence(match.path);
      return {
        envoy: envoyRoute(model, route, rule, ruleIndex, match, semantics, servicePort),
        key: {
          kind: 'http' as const,
          exactPath: path.exact,
          pathLength: path.length,
          regexPath: path.regex,
          method: match.method !== undefined,
          headers: match.headers.length,
          queryParams: match.queryParams.length,
          ...order,
          ruleIndex,
          matchIndex,
        },
      };
    }),
  );
}
