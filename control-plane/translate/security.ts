// Mesh security policy for one workload, as Istio reads it: the effective mTLS mode per app port
// (PeerAuthentication) and the Envoy RBAC HTTP filters (AuthorizationPolicy). Pure.
import type { Plain } from '../../api/codec.js';
import { NETWORK_RBAC_TYPE_URL, RBAC_TYPE_URL } from '../../api/types.js';
import {
  labelsMatch,
  type AuthorizationOperation,
  type AuthorizationPolicy,
  type AuthorizationRule,
  type AuthorizationSource,
  type Model,
  type MtlsMode,
  type PeerAuthentication,
  type Service,
  type WorkloadEntry,
} from '../model/index.js';

/**
 * Weft's root namespace (Istio's `istio-system`): a policy here without a selector is
 * mesh-wide; one with a selector applies to the matching workloads of every namespace.
 */
export const ROOT_NAMESPACE = 'weft-system';

/** Without any PeerAuthentication, sidecars accept mTLS and plaintext (Istio's default). */
export const DEFAULT_MTLS_MODE: MtlsMode = 'PERMISSIVE';

type Selected = { readonly metadata: { readonly namespace: string; readonly name: string; readonly creationTimestamp?: string } } & {
  readonly spec: { readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> } };
};

/** Oldest first (as Istio picks among equals), then by namespace/name so the choice is stable. */
function byAge(a: Selected, b: Selected): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta === '' ? 1 : tb === '' ? -1 : ta < tb ? -1 : 1;
  const ka = `${a.metadata.namespace}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** How a policy relates to a workload: it selects it, covers its namespace, covers the mesh, or none. */
type Scope = 'workload' | 'namespace' | 'mesh' | undefined;

function scopeOf(policy: Selected, w: WorkloadEntry): Scope {
  const ns = policy.metadata.namespace;
  const own = ns === w.metadata.namespace;
  const selector = policy.spec.selector;
  // An empty selector selects everything, as in Kubernetes.
  if (selector && Object.keys(selector.matchLabels).length > 0) {
    return (own || ns === ROOT_NAMESPACE) && labelsMatch(w.metadata.labels, selector.matchLabels) ? 'workload' : undefined;
  }
  if (own) return ns === ROOT_NAMESPACE ? 'mesh' : 'namespace';
  return ns === ROOT_NAMESPACE ? 'mesh' : undefined;
}

// ---- PeerAuthentication --------------------------------------------------------------------

export interface MtlsDecision {
  readonly mode: MtlsMode;
  /** `namespace/name` of the policy that decided, or undefined for the default. */
  readonly policy: string | undefined;
}

/**
 * The effective mTLS mode of `port` (an app port) of workload `w`: the most specific policy that
 * says something wins — a port-level setting of a workload policy, then the workload policy's
 * mode, then the namespace's policy, then the mesh-wide one, else PERMISSIVE. A policy without a
 * mode (UNSET) defers to the next level. Among policies of one level the oldest wins.
 */
export function mtlsModeFor(model: Model, w: WorkloadEntry, port: number): MtlsDecision {
  const levels: Record<'workload' | 'namespace' | 'mesh', PeerAuthentication[]> = { workload: [], namespace: [], mesh: [] };
  for (const pa of model.peerAuthentications) {
    const scope = scopeOf(pa, w);
    if (scope) levels[scope].push(pa);
  }
  const name = (pa: PeerAuthentication) => `${pa.metadata.namespace}/${pa.metadata.name}`;
  const workload = levels.workload.sort(byAge)[0];
  if (workload) {
    const atPort = workload.spec.portLevelMtls[port];
    if (atPort) return { mode: atPort.mode, policy: name(workload) };
    if (workload.spec.mtls) return { mode: workload.spec.mtls.mode, policy: name(workload) };
  }
  for (const level of [levels.namespace, levels.mesh]) {
    const pa = level.sort(byAge)[0];
    if (pa?.spec.mtls) return { mode: pa.spec.mtls.mode, policy: name(pa) };
  }
  return { mode: DEFAULT_MTLS_MODE, policy: undefined };
}

// ---- AuthorizationPolicy → Envoy RBAC ------------------------------------------------------

/** The AuthorizationPolicies that apply to `w`, in a stable order. Policies that target Services
 *  apply at those Services' waypoints, never at a workload. */
export function authorizationPoliciesFor(model: Model, w: WorkloadEntry): AuthorizationPolicy[] {
  return model.authorizationPolicies.filter((p) => !p.spec.targetRefs && scopeOf(p, w) !== undefined).sort(byAge);
}

/** The AuthorizationPolicies that target `service` (its waypoint enforces them), in a stable order. */
export function authorizationPoliciesForService(model: Model, service: Service): AuthorizationPolicy[] {
  return model.authorizationPolicies
    .filter((p) => p.metadata.namespace === service.metadata.namespace && p.spec.targetRefs?.some((t) => t.name === service.metadata.name))
    .sort(byAge);
}

/** Envoy policy names as Istio writes them, so operators recognise them in logs. */
export function rbacPolicyName(p: AuthorizationPolicy, ruleIndex: number): string {
  return `ns[${p.metadata.namespace}]-policy[${p.metadata.name}]-rule[${ruleIndex}]`;
}

/** Istio's string forms: exact, `prefix*`, `*suffix`, `*` (present). */
function wildcard(value: string): { kind: 'any' } | { kind: 'exact' | 'prefix' | 'suffix'; value: string } {
  if (value === '*') return { kind: 'any' };
  if (value.endsWith('*')) return { kind: 'prefix', value: value.slice(0, -1) };
  if (value.startsWith('*')) return { kind: 'suffix', value: value.slice(1) };
  return { kind: 'exact', value };
}

const AUTHENTICATED: Plain = Object.freeze({ authenticated: {} });

/** Principals are SPIFFE IDs; Istio writes them without the scheme (`cluster.local/ns/a/sa/b`). */
function principalId(value: string): Plain {
  const w = wildcard(value);
  const withScheme = (v: string) => (v.startsWith('spiffe://') ? v : `spiffe://${v}`);
  switch (w.kind) {
    case 'any':
      return AUTHENTICATED;
    case 'exact':
      return { authenticated: { principal_name: { exact: withScheme(w.value) } } };
    case 'prefix':
      return w.value === '' ? AUTHENTICATED : { authenticated: { principal_name: { prefix: withScheme(w.value) } } };
    case 'suffix':
      return w.value === '' ? AUTHENTICATED : { authenticated: { principal_name: { suffix: w.value } } };
  }
}

/** A source namespace, as Istio encodes it: a regex on the peer's SPIFFE ID. */
function namespaceId(value: string): Plain {
  const regex = `.*/ns/${value.replace(/\*/g, '.*')}/.*`;
  return { authenticated: { principal_name: { safe_regex: { regex } } } };
}

function anyOf<T extends Plain>(key: 'or_ids' | 'or_rules', items: T[]): Plain {
  if (items.length === 1) return items[0] as Plain;
  return key === 'or_ids' ? { or_ids: { ids: items } } : { or_rules: { rules: items } };
}

function allOf(key: 'and_ids' | 'and_rules', items: Plain[]): Plain {
  if (items.length === 0) return { any: true };
  if (items.length === 1) return items[0] as Plain;
  return key === 'and_ids' ? { and_ids: { ids: items } } : { and_rules: { rules: items } };
}

function sourcePrincipal(s: AuthorizationSource): Plain {
  const parts: Plain[] = [];
  if (s.principals?.length) parts.push(anyOf('or_ids', s.principals.map(principalId)));
  if (s.namespaces?.length) parts.push(anyOf('or_ids', s.namespaces.map(namespaceId)));
  return allOf('and_ids', parts);
}

function pathRule(value: string): Plain | undefined {
  const w = wildcard(value);
  if (w.kind === 'any') return undefined;
  return { url_path: { path: { [w.kind]: w.value } } };
}

function operationPermission(o: AuthorizationOperation): Plain {
  const parts: Plain[] = [];
  // `*` in a list means "any", which is the same as not constraining that field.
  if (o.methods?.length && !o.methods.includes('*')) {
    parts.push(anyOf('or_rules', o.methods.map((m) => ({ header: { name: ':method', string_match: { exact: m } } }))));
  }
  if (o.paths?.length && !o.paths.includes('*')) {
    parts.push(anyOf('or_rules', o.paths.map((p) => pathRule(p) as Plain)));
  }
  if (o.ports?.length) parts.push(anyOf('or_rules', o.ports.map((port) => ({ destination_port: port }))));
  return allOf('and_rules', parts);
}

function usesNegation(rule: AuthorizationRule): boolean {
  return (
    rule.from.some(({ source: s }) => !!(s.notPrincipals?.length || s.notNamespaces?.length)) ||
    rule.to.some(({ operation: o }) => !!(o.notMethods?.length || o.notPaths?.length || o.notPorts?.length))
  );
}

/**
 * One Envoy policy per rule. The `not*` fields are not carried (the proxy's RBAC has no
 * negation); as Istio does with fields it cannot enforce, an ALLOW rule using them is dropped
 * (it allows nothing) and a DENY rule is kept without them (it denies more, never less).
 */
function rulePolicy(rule: AuthorizationRule, action: 'ALLOW' | 'DENY'): Plain | undefined {
  if (action === 'ALLOW' && usesNegation(rule)) return undefined;
  return {
    principals: rule.from.length === 0 ? [{ any: true }] : rule.from.map(({ source }) => sourcePrincipal(source)),
    permissions: rule.to.length === 0 ? [{ any: true }] : rule.to.map(({ operation }) => operationPermission(operation)),
  };
}

function rbacFilter(action: 'ALLOW' | 'DENY', policies: Plain): Plain {
  return { name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC_TYPE_URL, rules: { action, policies } } };
}

/**
 * The RBAC HTTP filters for `w`'s inbound chains, to go before the router: a DENY filter when
 * any DENY policy applies, then an ALLOW filter when any ALLOW policy applies. Together they give
 * Istio's semantics: a matching DENY denies; with ALLOW policies, a request must match one of
 * their rules (an ALLOW policy without rules allows nothing); without policies, all is allowed.
 */
export function rbacHttpFilters(model: Model, w: WorkloadEntry): Plain[] {
  return rbacFiltersOf(authorizationPoliciesFor(model, w));
}

/** The same rules as network RBAC filters, for a connection relayed as bytes (tcp_proxy). */
export function networkRbacFiltersOf(policies: readonly AuthorizationPolicy[]): Plain[] {
  return rbacFiltersOf(policies).map((f) => ({
    name: 'envoy.filters.network.rbac',
    typed_config: { '@type': NETWORK_RBAC_TYPE_URL, stat_prefix: 'rbac_', rules: (f.typed_config as Plain).rules },
  }));
}

/** The same RBAC HTTP filters for a list of policies (a workload's, or a Service's at its waypoint). */
export function rbacFiltersOf(policies: readonly AuthorizationPolicy[]): Plain[] {
  const filters: Plain[] = [];
  for (const action of ['DENY', 'ALLOW'] as const) {
    const mine = policies.filter((p) => p.spec.action === action);
    if (mine.length === 0) continue;
    const rules: Plain = {};
    for (const p of mine) {
      p.spec.rules.forEach((rule, i) => {
        const policy = rulePolicy(rule, action);
        if (policy) rules[rbacPolicyName(p, i)] = policy;
      });
    }
    filters.push(rbacFilter(action, rules));
  }
  return filters;
}

// ---- The inbound listener's security, per workload ------------------------------------------

export interface InboundSecurity {
  /** mTLS between sidecars is on at all (the control plane's --no-mtls turns it off). */
  readonly mtls: boolean;
  /** Effective mode of an app port. */
  modeFor(port: number): MtlsMode;
  /** RBAC filters for every inbound HCM, before the router. */
  readonly httpFilters: readonly Plain[];
}

export function inboundSecurity(model: Model, w: WorkloadEntry, mtls: boolean): InboundSecurity {
  return { mtls, modeFor: (port) => mtlsModeFor(model, w, port).mode, httpFilters: rbacHttpFilters(model, w) };
}

/** Puts `filters` before the router of an HCM network filter built by httpConnectionManager(). */
export function withHttpFilters(hcmFilter: Plain, filters: readonly Plain[]): Plain {
  if (filters.length === 0) return hcmFilter;
  const hcm = hcmFilter.typed_config as Plain;
  hcm.http_filters = [...filters, ...(hcm.http_filters as Plain[])];
  return hcmFilter;
}
