// Gateway API semantics that translation and route status must agree on: which Service (ports)
// a parentRef attaches to, whether a route is acceptable at all, and how a backendRef resolves.
import { translateRe2 } from '../../api/matchers.js';
import { GATEWAY_GROUP } from './parse-gateway-common.js';
import type { Model } from './model.js';
import { show } from './read.js';
import type {
  BackendObjectRef,
  GRPCRoute,
  HTTPRoute,
  HTTPRouteRule,
  ParentRef,
  RouteFilter,
  RouteObject,
  Service,
  ServicePort,
} from './types.js';

export interface RouteSemanticsOptions {
  /**
   * Whether a backendRef to a Service in a third namespace needs a ReferenceGrant there.
   * A route may always send to its own namespace and to the namespace of a Service it is
   * attached to (so a consumer route can split traffic among the producer's Services, as
   * GEP-1294 allows); beyond that Weft asks for a grant by default, so that no route can
   * pull traffic into a namespace that did not agree to it. `false` is GEP-1294's "no grants".
   */
  readonly requireReferenceGrant: boolean;
}

export const DEFAULT_ROUTE_SEMANTICS: RouteSemanticsOptions = { requireReferenceGrant: true };

/** `Kind/namespace/name`: the key of a route in status maps. */
export function routeKey(route: RouteObject): string {
  return `${route.kind}/${route.metadata.namespace}/${route.metadata.name}`;
}

export function isCoreGroup(group: string): boolean {
  return group === '' || group === 'core';
}

export function describePorts(service: Service): string {
  return service.spec.ports.map((p) => (p.name ? `${p.port} (${p.name})` : String(p.port))).join(', ') || 'none';
}

// ---- Parents ------------------------------------------------------------------------------

export type ParentResolution =
  | { readonly kind: 'attached'; readonly service: Service; readonly ports: readonly ServicePort[] }
  | { readonly kind: 'rejected'; readonly reason: 'NoMatchingParent'; readonly message: string }
  /** Not a Service: a Gateway or other parent that Weft does not manage (and leaves alone). */
  | { readonly kind: 'foreign' };

export function resolveParent(model: Model, route: RouteObject, ref: ParentRef, index: number): ParentResolution {
  if (ref.kind !== 'Service') return { kind: 'foreign' };
  const where = `spec.parentRefs[${index}]`;
  const ns = ref.namespace ?? route.metadata.namespace;
  if (!isCoreGroup(ref.group)) {
    return {
      kind: 'rejected',
      reason: 'NoMatchingParent',
      message: `${where} names kind Service in group ${show(ref.group)}; a Kubernetes Service is in the core group: set group: "" on the parentRef`,
    };
  }
  const service = model.service(ns, ref.name);
  if (!service) {
    return {
      kind: 'rejected',
      reason: 'NoMatchingParent',
      message: `${where}: Service ${ns}/${ref.name} not found; create it, or fix the parentRef's name/namespace`,
    };
  }
  if (service.spec.type === 'ExternalName') {
    return {
      kind: 'rejected',
      reason: 'NoMatchingParent',
      message: `${where}: Service ${ns}/${ref.name} is an ExternalName Service, which cannot be a route parent; use a ClusterIP Service`,
    };
  }
  let ports = service.spec.ports.filter((p) => p.protocol !== 'UDP');
  if (ref.port !== undefined) ports = ports.filter((p) => p.port === ref.port);
  if (ref.sectionName !== undefined) ports = ports.filter((p) => p.name === ref.sectionName);
  if (ports.length === 0) {
    const asked = [ref.port === undefined ? '' : `port ${ref.port}`, ref.sectionName === undefined ? '' : `port name ${show(ref.sectionName)}`]
      .filter(Boolean)
      .join(' and ');
    return {
      kind: 'rejected',
      reason: 'NoMatchingParent',
      message: `${where}: Service ${ns}/${ref.name} has no ${asked || 'TCP port'} (its ports: ${describePorts(service)}); fix the parentRef or add the port`,
    };
  }
  return { kind: 'attached', service, ports };
}

// ---- Route acceptance ---------------------------------------------------------------------

export interface RouteProblem {
  /** UnsupportedValue: a value Weft cannot honour; IncompatibleFilters: filters that exclude each other. */
  readonly reason: 'UnsupportedValue' | 'IncompatibleFilters';
  readonly field: string;
  readonly message: string;
}

/**
 * Why a regex cannot be used by every proxy, or undefined. Proxies (Envoy's RE2 and Weft's
 * RE2-to-JavaScript translation) reject a route configuration with a regex they cannot
 * compile as a whole, which would take every route of the client down with it; so the
 * control plane judges each regex with the very translation Weft's proxy runs.
 */
export function regexProblem(source: string): string | undefined {
  const t = translateRe2(source);
  return t.ok ? undefined : `invalid regular expression ${show(source)}: ${t.error} (routes use RE2 syntax)`;
}

const HTTP_RULE_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite']);
const GRPC_RULE_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror']);
const BACKEND_FILTERS = new Set(['RequestHeaderModifier', 'ResponseHeaderModifier']);
const SINGLE_USE = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite'];

function filterProblems(filters: readonly RouteFilter[], field: string, supported: ReadonlySet<string>, out: RouteProblem[]): void {
  const problem = (f: string, message: string) => out.push({ reason: 'UnsupportedValue', field: f, message });
  const incompatible = (f: string, message: string) => out.push({ reason: 'IncompatibleFilters', field: f, message });
  filters.forEach((filter, i) => {
    const f = `${field}[${i}]`;
    // An ExtensionRef Weft cannot resolve is not a reason to drop the route: the spec wants the
    // requests it applies to answered with an error (translation does that; status says why).
    if (!supported.has(filter.type) && filter.type !== 'ExtensionRef') {
      problem(`${f}.type`, `filter type ${show(filter.type)} is not supported here by Weft (supported: ${[...supported].join(', ')})`);
    }
    for (const [which, mod] of [
      ['requestHeaderModifier', filter.requestHeaderModifier],
      ['responseHeaderModifier', filter.responseHeaderModifier],
    ] as const) {
      if (!mod) continue;
      // What a proxy would refuse in a header (and the CRD's value pattern leaves out).
      [...mod.set, ...mod.add].forEach((h) => {
        if (/[\0-\x08\x0a-\x1f\x7f]/.test(h.value)) problem(`${f}.${which}`, `the value of header ${show(h.name)} contains a control character (such as a line break), which no header may carry`);
      });
      const names = [...mod.set.map((h) => h.name), ...mod.add.map((h) => h.name), ...mod.remove].map((n) => n.toLowerCase());
      const dup = names.find((n, k) => names.indexOf(n) !== k);
      if (dup) problem(`${f}.${which}`, `header ${show(dup)} appears in more than one action; set, add and remove must name different headers`);
    }
  });
  for (const type of SINGLE_USE) {
    if (filters.filter((x) => x.type === type).length > 1) incompatible(field, `filter ${type} is used more than once; it may appear at most once`);
  }
  if (filters.some((x) => x.type === 'RequestRedirect') && filters.some((x) => x.type === 'URLRewrite')) {
    incompatible(field, 'RequestRedirect and URLRewrite filters conflict: a rule may use one or the other');
  }
}

function httpRuleProblems(rule: HTTPRouteRule, field: string, out: RouteProblem[]): void {
  const problem = (f: string, message: string) => out.push({ reason: 'UnsupportedValue', field: f, message });
  rule.matches.forEach((m, j) => {
    const mf = `${field}.matches[${j}]`;
    if (m.path.type === 'RegularExpression') {
      const p = regexProblem(m.path.value);
      if (p) problem(`${mf}.path.value`, p);
    }
    for (const [list, name] of [[m.headers, 'headers'], [m.queryParams, 'queryParams']] as const) {
      list.forEach((h, k) => {
        const p = h.type === 'RegularExpression' ? regexProblem(h.value) : undefined;
        if (p) problem(`${mf}.${name}[${k}].value`, p);
      });
    }
  });
  filterProblems(rule.filters, `${field}.filters`, HTTP_RULE_FILTERS, out);
  rule.backendRefs.forEach((b, k) => filterProblems(b.filters, `${field}.backendRefs[${k}].filters`, BACKEND_FILTERS, out));
  if (rule.backendRefs.length > 0 && rule.filters.some((x) => x.type === 'RequestRedirect')) {
    out.push({
      reason: 'IncompatibleFilters',
      field: `${field}.filters`,
      message: 'a RequestRedirect filter answers the request itself and cannot be combined with backendRefs; remove one of them',
    });
  }
  const prefixRewrite = rule.filters.some(
    (x) => x.requestRedirect?.path?.type === 'ReplacePrefixMatch' || x.urlRewrite?.path?.type === 'ReplacePrefixMatch',
  );
  const onePrefixMatch = rule.matches.length === 1 && rule.matches[0]?.path.type === 'PathPrefix';
  if (prefixRewrite && !onePrefixMatch) {
    problem(`${field}.filters`, 'ReplacePrefixMatch needs the rule to have exactly one match, of type PathPrefix');
  }
  rule.retry?.codes.forEach((code, k) => {
    // GEP-1731: 100-399 SHOULD NOT be retried; 600-999 are not HTTP statuses a proxy sees.
    if (code < 400 || code > 599) problem(`${field}.retry.codes[${k}]`, `Weft retries on 4xx and 5xx answers only, got ${code}`);
  });
  if (rule.sessionPersistence) problem(`${field}.sessionPersistence`, 'session persistence is not supported by Weft');
}

function grpcRouteProblems(route: GRPCRoute, out: RouteProblem[]): void {
  route.spec.rules.forEach((rule, i) => {
    const field = `spec.rules[${i}]`;
    rule.matches.forEach((m, j) => {
      const mf = `${field}.matches[${j}]`;
      if (m.method?.type === 'RegularExpression') {
        for (const part of ['service', 'method'] as const) {
          const value = m.method[part];
          // The translator embeds each part as `(?:part)` in one `:path` regex.
          const p =
            value === undefined
              ? undefined
              : (regexProblem(value) ??
                (translateRe2(`(?:${value})`).ok
                  ? undefined
                  : `regular expression ${show(value)} cannot be part of the method's path match: inline flags such as (?i) are allowed only at the start of a whole pattern`));
          if (p) out.push({ reason: 'UnsupportedValue', field: `${mf}.method.${part}`, message: p });
        }
      }
      m.headers.forEach((h, k) => {
        const p = h.type === 'RegularExpression' ? regexProblem(h.value) : undefined;
        if (p) out.push({ reason: 'UnsupportedValue', field: `${mf}.headers[${k}].value`, message: p });
      });
    });
    filterProblems(rule.filters, `${field}.filters`, GRPC_RULE_FILTERS, out);
    rule.backendRefs.forEach((b, k) => filterProblems(b.filters, `${field}.backendRefs[${k}].filters`, BACKEND_FILTERS, out));
    if (rule.sessionPersistence) out.push({ reason: 'UnsupportedValue', field: `${field}.sessionPersistence`, message: 'session persistence is not supported by Weft' });
  });
}

/** Everything that makes the whole route unacceptable; empty when it can be translated. */
export function routeProblems(route: RouteObject): readonly RouteProblem[] {
  const out: RouteProblem[] = [];
  if (route.kind === 'HTTPRoute') route.spec.rules.forEach((rule, i) => httpRuleProblems(rule, `spec.rules[${i}]`, out));
  else grpcRouteProblems(route, out);
  return out;
}

// ---- Backends -----------------------------------------------------------------------------

export type BackendResolution =
  | { readonly ok: true; readonly service: Service; readonly port: ServicePort }
  | { readonly ok: false; readonly reason: 'BackendNotFound' | 'InvalidKind' | 'RefNotPermitted'; readonly message: string };

function grantAllows(model: Model, route: HTTPRoute | GRPCRoute, targetNs: string, name: string): boolean {
  return model.referenceGrants(targetNs).some(
    (g) =>
      g.spec.from.some((f) => f.group === GATEWAY_GROUP && f.kind === route.kind && f.namespace === route.metadata.namespace) &&
      g.spec.to.some((t) => isCoreGroup(t.group) && t.kind === 'Service' && (t.name === undefined || t.name === name)),
  );
}

/** The route's own namespace and those of the Services it names as parents. */
function parentNamespaces(route: RouteObject): Set<string> {
  const out = new Set([route.metadata.namespace]);
  for (const p of route.spec.parentRefs) if (p.kind === 'Service' && isCoreGroup(p.group)) out.add(p.namespace ?? route.metadata.namespace);
  return out;
}

/** Resolves a backendRef (or a mirror's backendRef) of `route`; `field` names it in messages. */
export function resolveBackend(
  model: Model,
  route: RouteObject,
  ref: BackendObjectRef,
  field: string,
  options: RouteSemanticsOptions = DEFAULT_ROUTE_SEMANTICS,
): BackendResolution {
  const ns = ref.namespace ?? route.metadata.namespace;
  if (!isCoreGroup(ref.group) || ref.kind !== 'Service') {
    const group = ref.group === '' ? 'core' : ref.group;
    return {
      ok: false,
      reason: 'InvalidKind',
      message: `${field}: kind ${show(ref.kind)} in group ${show(group)} is not a backend Weft can send to; use a Service (group "", kind Service)`,
    };
  }
  const service = model.service(ns, ref.name);
  if (!service) {
    return { ok: false, reason: 'BackendNotFound', message: `${field}: Service ${ns}/${ref.name} not found; create it or fix the backendRef's name/namespace` };
  }
  if (options.requireReferenceGrant && !parentNamespaces(route).has(ns) && !grantAllows(model, route, ns, ref.name)) {
    return {
      ok: false,
      reason: 'RefNotPermitted',
      message:
        `${field}: Service ${ns}/${ref.name} is in a namespace this route neither lives in nor routes for, and no ReferenceGrant allows it; create a ReferenceGrant ` +
        `in namespace ${show(ns)} from ${route.kind} in namespace ${show(route.metadata.namespace)} to Service ${show(ref.name)}`,
    };
  }
  if (service.spec.type === 'ExternalName') {
    return {
      ok: false,
      reason: 'BackendNotFound',
      message: `${field}: Service ${ns}/${ref.name} is an ExternalName Service, which cannot be a mesh backend; use a Service with endpoints`,
    };
  }
  const port = service.spec.ports.find((p) => p.port === ref.port && p.protocol !== 'UDP');
  if (!port) {
    return {
      ok: false,
      reason: 'BackendNotFound',
      message: `${field}: Service ${ns}/${ref.name} has no port ${ref.port ?? '(none given)'} (its ports: ${describePorts(service)}); fix the backendRef's port`,
    };
  }
  return { ok: true, service, port };
}

/** An ExtensionRef filter, with its field path; Weft has no filter extensions to resolve it to. */
export interface ExtensionRefUse {
  readonly field: string;
  readonly message: string;
}

/** Every ExtensionRef filter of a route (on rules and on backendRefs). */
export function routeExtensionRefs(route: RouteObject): ExtensionRefUse[] {
  const out: ExtensionRefUse[] = [];
  const rules: readonly { filters: readonly RouteFilter[]; backendRefs: readonly { filters: readonly RouteFilter[] }[] }[] = route.spec.rules;
  const visit = (filters: readonly RouteFilter[], field: string, effect: string) =>
    filters.forEach((f, k) => {
      if (f.type !== 'ExtensionRef') return;
      const e = f.extensionRef;
      const what = e ? `${e.kind} ${show(e.name)} in group ${show(e.group)}` : 'a filter';
      out.push({
        field: `${field}[${k}].extensionRef`,
        message: `${field}[${k}].extensionRef: ${what} cannot be resolved: Weft has no filter extensions, so ${effect} answer 500 (a filter is never skipped); remove the filter`,
      });
    });
  rules.forEach((rule, i) => {
    visit(rule.filters, `spec.rules[${i}].filters`, 'requests this rule matches');
    rule.backendRefs.forEach((b, k) => visit(b.filters, `spec.rules[${i}].backendRefs[${k}].filters`, 'requests sent to this backend'));
  });
  return out;
}

/** Whether Weft must answer 500 instead of carrying out these filters (an ExtensionRef among them). */
export function hasExtensionRef(filters: readonly RouteFilter[]): boolean {
  return filters.some((f) => f.type === 'ExtensionRef');
}

/** Every backendRef of a route (rule backends and mirror targets) with its field path. */
export function* routeBackendRefs(route: RouteObject): Generator<{ ref: BackendObjectRef; field: string; mirror: boolean }> {
  const rules: readonly { filters: readonly RouteFilter[]; backendRefs: readonly BackendObjectRef[] }[] = route.spec.rules;
  for (const [i, rule] of rules.entries()) {
    for (const [k, ref] of rule.backendRefs.entries()) yield { ref, field: `spec.rules[${i}].backendRefs[${k}]`, mirror: false };
    for (const [k, f] of rule.filters.entries()) {
      if (f.requestMirror) yield { ref: f.requestMirror.backendRef, field: `spec.rules[${i}].filters[${k}].requestMirror.backendRef`, mirror: true };
    }
  }
}
