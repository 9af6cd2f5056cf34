// LDS: Listener → Listener (filter chains and their match, DownstreamTlsContext by SDS name,
// HTTP connection manager with RDS or inline routes and its RBAC filters, or tcp_proxy; and the
// ambient pod a node proxy's per-pod listener serves, from its `weft` metadata).
import type { Plain } from './codec.js';
import type {
  FilterChain, Listener, ListenerWorkload, NetworkFilter, RbacPermissionMatch, RbacPolicy, RbacPrincipalMatch, RbacRules, StringMatch,
} from './domain.js';
import type { ResourceRef, ResourceType } from './resource.js';
import { DOWNSTREAM_TLS_TYPE_URL, HCM_TYPE_URL, NETWORK_RBAC_TYPE_URL, RBAC_TYPE_URL, ROUTER_TYPE_URL, TCP_PROXY_TYPE_URL, TypeUrl } from './types.js';
import { decodeSocketAddress, readStruct } from './endpoint.js';
import { decodeRouteConfiguration } from './route-config.js';
import { decodeDownstreamTls, secretRefs } from './secret.js';
import {
  Problems, anyTypeUrl, bool, decodeHeaderMatcher, decodeStringMatcher, deepEqual, field, has, list, mapKey, obj,
  result, str, strings, unpackChecked, wrappedNum,
} from './matchers.js';

const MAX_ALTERNATIVES = 1024;
// Istio's way of saying "any identity in namespace N": the regex `.*` + `/ns/N/` + `.*` on the
// principal name; `*` in N (Istio's `prefix*`, `*suffix`, `*`) becomes `.*`.
const NAMESPACE_REGEX = /^\.\*\/ns\/(\.\*)?([a-z0-9-]*)(\.\*)?\/\.\*$/;

function namespaceMatch(m: RegExpExecArray): StringMatch {
  const [, lead, value = '', trail] = m;
  if (value === '') return { kind: 'prefix', value: '' }; // any namespace
  if (lead && trail) return { kind: 'contains', value };
  if (lead) return { kind: 'suffix', value };
  return trail ? { kind: 'prefix', value } : { kind: 'exact', value };
}

// ---- RBAC ------------------------------------------------------------------------------------

type Alt<T> = T[] | undefined; // alternatives (any of); undefined = rejected

/** AND of two alternative lists, merging each pair; `merge` returns null when a pair can never match. */
function andAlternatives<T>(a: T[], b: T[], merge: (x: T, y: T) => T | null | string, path: string, p: Problems): Alt<T> {
  const out: T[] = [];
  for (const x of a) {
    for (const y of b) {
      const m = merge(x, y);
      if (typeof m === 'string') {
        p.add(path, m);
        return undefined;
      }
      if (m) out.push(m);
    }
  }
  if (out.length > MAX_ALTERNATIVES) {
    p.add(path, `rule expands to more than ${MAX_ALTERNATIVES} alternatives`);
    return undefined;
  }
  return out;
}

function intersect<T>(a: readonly T[] | undefined, b: readonly T[] | undefined): readonly T[] | undefined | null {
  if (!a) return b;
  if (!b) return a;
  const both = a.filter((x) => b.includes(x));
  return both.length > 0 ? both : null;
}

function andPermission(a: RbacPermissionMatch, b: RbacPermissionMatch): RbacPermissionMatch | null | string {
  if (a.any) return b;
  if (b.any) return a;
  if (a.paths && b.paths) return 'two url_path conditions in one and_rules are not supported';
  const methods = intersect(a.methods, b.methods);
  const ports = intersect(a.ports, b.ports);
  if (methods === null || ports === null) return null;
  const paths = a.paths ?? b.paths;
  return { ...(methods ? { methods } : {}), ...(paths ? { paths } : {}), ...(ports ? { ports } : {}) };
}

function andPrincipal(a: RbacPrincipalMatch, b: RbacPrincipalMatch): RbacPrincipalMatch | string {
  if (a.any) return b;
  if (b.any) return a;
  if (a.principal && b.principal) return 'two principal conditions in one and_ids are not supported';
  if (a.namespace && b.namespace && !deepEqual(a.namespace, b.namespace)) return 'two namespace conditions in one and_ids are not supported';
  const principal = a.principal ?? b.principal;
  const namespace = a.namespace ?? b.namespace;
  return { ...(principal ? { principal } : {}), ...(namespace ? { namespace } : {}) };
}

function decodePermission(perm: Plain, path: string, p: Problems): Alt<RbacPermissionMatch> {
  if (perm.any === true) return [{ any: true }];
  if (has(perm, 'header')) {
    const h = decodeHeaderMatcher(obj(perm, 'header')!, field(path, 'header'), p);
    if (h && h.name === ':method' && h.match?.kind === 'exact' && !h.invert) return [{ methods: [h.match.value.toUpperCase()] }];
    if (h) p.add(field(path, 'header'), 'only exact matches on the :method header are supported');
    return undefined;
  }
  if (has(perm, 'url_path')) {
    const sm = decodeStringMatcher(obj(obj(perm, 'url_path'), 'path'), field(path, 'url_path.path'), p);
    return sm && [{ paths: [sm] }];
  }
  if (typeof perm.destination_port === 'number') return [{ ports: [perm.destination_port] }];
  for (const [key, isAnd] of [['or_rules', false], ['and_rules', true]] as const) {
    if (!has(perm, key)) continue;
    const rules = list(obj(perm, key), 'rules');
    const parts = rules.map((r, i) => decodePermission(r, field(field(path, `${key}.rules`), i), p));
    if (parts.some((x) => x === undefined)) return undefined;
    const alts = parts as RbacPermissionMatch[][];
    if (!isAnd) return alts.flat();
    return alts.reduce<Alt<RbacPermissionMatch>>((acc, x) => acc && andAlternatives(acc, x, andPermission, path, p), [{ any: true }]);
  }
  const kind = Object.keys(perm)[0] ?? 'an empty rule';
  p.add(path, `${kind} permissions are not supported`);
  return undefined;
}

function decodePrincipalName(auth: Plain | undefined, path: string, p: Problems): Alt<RbacPrincipalMatch> {
  const pn = obj(auth, 'principal_name');
  // No principal_name: any authenticated peer. An empty prefix still requires an identity.
  if (!pn) return [{ principal: { kind: 'prefix', value: '' } }];
  const ns = NAMESPACE_REGEX.exec(str(obj(pn, 'safe_regex'), 'regex') ?? '');
  if (ns) return [{ namespace: namespaceMatch(ns) }];
  const sm: StringMatch | undefined = decodeStringMatcher(pn, field(path, 'principal_name'), p);
  return sm && [{ principal: sm }];
}

function decodePrincipal(pr: Plain, path: string, p: Problems): Alt<RbacPrincipalMatch> {
  if (pr.any === true) return [{ any: true }];
  if (has(pr, 'authenticated')) return decodePrincipalName(obj(pr, 'authenticated'), field(path, 'authenticated'), p);
  for (const [key, isAnd] of [['or_ids', false], ['and_ids', true]] as const) {
    if (!has(pr, key)) continue;
    const ids = list(obj(pr, key), 'ids');
    const parts = ids.map((r, i) => decodePrincipal(r, field(field(path, `${key}.ids`), i), p));
    if (parts.some((x) => x === undefined)) return undefined;
    const alts = parts as RbacPrincipalMatch[][];
    if (!isAnd) return alts.flat();
    return alts.reduce<Alt<RbacPrincipalMatch>>((acc, x) => acc && andAlternatives(acc, x, andPrincipal, path, p), [{ any: true }]);
  }
  const kind = Object.keys(pr)[0] ?? 'an empty identifier';
  p.add(path, `${kind} principals are not supported`);
  return undefined;
}

function decodePolicy(name: string, pol: Plain, path: string, p: Problems): RbacPolicy | undefined {
  for (const k of ['condition', 'checked_condition']) if (has(pol, k)) p.add(field(path, k), 'CEL conditions are not supported');
  const perms = list(pol, 'permissions');
  const prins = list(pol, 'principals');
  if (perms.length === 0) p.add(field(path, 'permissions'), 'at least one permission is required');
  if (prins.length === 0) p.add(field(path, 'principals'), 'at least one principal is required');
  const permissions = perms.map((x, i) => decodePermission(x, field(field(path, 'permissions'), i), p));
  const principals = prins.map((x, i) => decodePrincipal(x, field(field(path, 'principals'), i), p));
  if (permissions.some((x) => !x) || principals.some((x) => !x)) return undefined;
  return { name, permissions: permissions.flatMap((x) => x!), principals: principals.flatMap((x) => x!) };
}

/** The RBAC HTTP or network filter → RbacRules (undefined when it enforces nothing: no rules, or LOG). */
export function decodeRbacFilter(cfg: Plain | undefined, path: string, p: Problems): RbacRules | undefined {
  if (has(cfg, 'matcher')) p.add(field(path, 'matcher'), 'matcher-based RBAC is not supported; use rules');
  const rules = obj(cfg, 'rules');
  if (!rules) return undefined;
  const action = str(rules, 'action') ?? 'ALLOW';
  if (action === 'LOG') return undefined;
  if (action !== 'ALLOW' && action !== 'DENY') {
    p.add(field(path, 'rules.action'), `unknown RBAC action ${action}`);
    return undefined;
  }
  const policies = Object.entries(obj(rules, 'policies') ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, pol]) => decodePolicy(name, pol as Plain, mapKey(field(path, 'rules.policies'), name), p))
    .filter((x): x is RbacPolicy => x !== undefined);
  return { action, policies };
}

// ---- Network filters -------------------------------------------------------------------------

function decodeHttpFilters(h: Plain, path: string, p: Problems): RbacRules[] {
  const filters = list(h, 'http_filters');
  const at = field(path, 'http_filters');
  if (filters.length === 0) p.add(at, 'the HTTP filters must end with the router (envoy.filters.http.router)');
  const rbac: RbacRules[] = [];
  filters.forEach((f, i) => {
    const fpath = field(at, i);
    const type = anyTypeUrl(obj(f, 'typed_config'));
    const label = JSON.stringify(type ?? str(f, 'name'));
    if (i === filters.length - 1) {
      if (type !== ROUTER_TYPE_URL) p.add(fpath, `the last HTTP filter must be the router (envoy.filters.http.router), got ${label}`);
      return;
    }
    if (type === ROUTER_TYPE_URL) p.add(fpath, 'the router must be the last HTTP filter');
    else if (has(f, 'config_discovery')) p.add(field(fpath, 'config_discovery'), 'filter config discovery is not supported');
    else if (bool(f, 'disabled')) return;
    else if (type === RBAC_TYPE_URL) {
      const r = decodeRbacFilter(obj(f, 'typed_config'), field(fpath, 'typed_config'), p);
      if (r) rbac.push(r);
    } else if (!bool(f, 'is_optional')) p.add(field(fpath, 'typed_config'), `unsupported HTTP filter ${label}`);
  });
  // Evaluation order: every list must pass; DENY lists first so a denial names its policy.
  return [...rbac.filter((r) => r.action === 'DENY'), ...rbac.filter((r) => r.action === 'ALLOW')];
}

function decodeHcm(h: Plain, path: string, p: Problems): NetworkFilter {
  const statPrefix = str(h, 'stat_prefix') ?? '';
  let rdsName: string | undefined;
  let inline;
  if (has(h, 'rds')) {
    rdsName = str(obj(h, 'rds'), 'route_config_name');
    if (!rdsName) p.add(field(path, 'rds.route_config_name'), 'a route configuration name is required');
  } else if (has(h, 'route_config')) {
    inline = decodeRouteConfiguration(obj(h, 'route_config')!, field(path, 'route_config'), p);
  } else if (has(h, 'scoped_routes')) {
    p.add(field(path, 'scoped_routes'), 'scoped routes are not supported');
  } else {
    p.add(path, 'one of rds or route_config is required');
  }
  const rbac = decodeHttpFilters(h, path, p);
  return { kind: 'http', statPrefix, ...(rdsName ? { rdsName } : {}), ...(inline ? { inlineRoutes: inline } : {}), rbac };
}

function decodeTcpProxy(t: Plain, path: string, p: Problems): NetworkFilter {
  const cluster = str(t, 'cluster');
  if (!cluster) {
    p.add(has(t, 'weighted_clusters') ? field(path, 'weighted_clusters') : field(path, 'cluster'),
      has(t, 'weighted_clusters') ? 'weighted tcp_proxy clusters are not supported' : 'a cluster is required');
  }
  return { kind: 'tcp', statPrefix: str(t, 'stat_prefix') ?? '', cluster: cluster ?? '', rbac: [] };
}

function decodeNetworkFilters(filters: Plain[], path: string, p: Problems): NetworkFilter | undefined {
  if (filters.length === 0) {
    p.add(path, 'at least one network filter is required');
    return undefined;
  }
  let out: NetworkFilter | undefined;
  const rbac: RbacRules[] = [];
  filters.forEach((f, i) => {
    const at = field(path, i);
    if (has(f, 'config_discovery')) return p.add(field(at, 'config_discovery'), 'filter config discovery is not supported');
    const cfg = obj(f, 'typed_config');
    const type = anyTypeUrl(cfg);
    if (type === NETWORK_RBAC_TYPE_URL && i !== filters.length - 1) {
      const r = decodeRbacFilter(cfg, field(at, 'typed_config'), p);
      if (r) rbac.push(r);
      return;
    }
    const terminal = type === HCM_TYPE_URL || type === TCP_PROXY_TYPE_URL;
    if (!terminal) return p.add(field(at, 'typed_config'), `unsupported network filter ${JSON.stringify(type ?? str(f, 'name'))}`);
    if (i !== filters.length - 1) return p.add(at, 'the HTTP connection manager or tcp_proxy must be the last network filter');
    out = type === HCM_TYPE_URL ? decodeHcm(cfg!, field(at, 'typed_config'), p) : decodeTcpProxy(cfg!, field(at, 'typed_config'), p);
  });
  if (rbac.length > 0 && out) {
    // A connection's authorization: what tcp_proxy relays; HTTP is authorized per request.
    if (out.kind === 'tcp') out = { ...out, rbac: [...rbac.filter((r) => r.action === 'DENY'), ...rbac.filter((r) => r.action === 'ALLOW')] };
    else p.add(path, 'network RBAC before the HTTP connection manager is not supported; put an RBAC HTTP filter in it');
  }
  return out;
}

// ---- Filter chains and the listener --------------------------------------------------------

const UNSUPPORTED_MATCH = [
  'prefix_ranges', 'address_suffix', 'suffix_len', 'direct_source_prefix_ranges', 'source_prefix_ranges', 'source_ports',
  'application_protocols',
];

function decodeTransportSocket(ts: Plain | undefined, path: string, p: Problems) {
  if (!ts) return undefined;
  const cfg = obj(ts, 'typed_config');
  const type = anyTypeUrl(cfg);
  if ((!cfg && str(ts, 'name') === 'envoy.transport_sockets.raw_buffer') || type?.endsWith('.RawBuffer')) return undefined;
  if (type !== DOWNSTREAM_TLS_TYPE_URL) {
    p.add(field(path, 'typed_config'), `unsupported transport socket ${JSON.stringify(type ?? str(ts, 'name'))}; want DownstreamTlsContext`);
    return undefined;
  }
  return decodeDownstreamTls(cfg!, field(path, 'typed_config'), p);
}

function decodeFilterChain(fc: Plain, path: string, p: Problems): FilterChain | undefined {
  const m = obj(fc, 'filter_chain_match');
  const mpath = field(path, 'filter_chain_match');
  for (const k of UNSUPPORTED_MATCH) {
    const v = m?.[k];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) p.add(field(mpath, k), `matching on ${k} is not supported`);
  }
  if (m?.source_type !== undefined && m.source_type !== 'ANY') p.add(field(mpath, 'source_type'), 'matching on source_type is not supported');
  const port = wrappedNum(m, 'destination_port');
  if (port !== undefined && (port < 1 || port > 65535)) p.add(field(mpath, 'destination_port'), `invalid port ${port}`);
  const tp = str(m, 'transport_protocol') ?? '';
  if (tp !== '' && tp !== 'tls' && tp !== 'raw_buffer') p.add(field(mpath, 'transport_protocol'), `unknown transport protocol ${JSON.stringify(tp)}`);
  const tls = decodeTransportSocket(obj(fc, 'transport_socket'), field(path, 'transport_socket'), p);
  const filter = decodeNetworkFilters(list(fc, 'filters'), field(path, 'filters'), p);
  if (!filter) return undefined;
  return {
    name: str(fc, 'name') ?? '',
    destinationPorts: port !== undefined ? [port] : [],
    serverNames: strings(m, 'server_names').map((s) => s.toLowerCase()),
    ...(tp === 'tls' || tp === 'raw_buffer' ? { transportProtocol: tp } : {}),
    ...(tls ? { tls } : {}),
    filter,
  };
}

// ---- Listener metadata: the ambient pod of a per-pod listener --------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * `metadata.filter_metadata.weft = {workload, namespace, service_account, identity}` →
 * ListenerWorkload. All four are required once the metadata is there, and the identity must be
 * the SPIFFE ID of that namespace and service account: the node proxy presents it for the pod.
 */
function decodeListenerWorkload(md: Plain | undefined, p: Problems): ListenerWorkload | undefined {
  const weft = obj(obj(md, 'filter_metadata'), 'weft');
  if (!weft) return undefined;
  const at = 'metadata.filter_metadata.weft';
  const m = readStruct(weft);
  const text = (key: string, pattern: RegExp, what: string): string | undefined => {
    const v = m[key];
    if (typeof v === 'string' && v.length <= 253 && pattern.test(v)) return v;
    p.add(field(at, key), v === undefined || v === null ? `${key} is required (${what})` : `${key} must be ${what}, got ${JSON.stringify(v)}`);
    return undefined;
  };
  const name = text('workload', DNS_SUBDOMAIN, 'the workload name (a DNS-1123 subdomain)');
  const namespace = text('namespace', DNS_LABEL, 'a namespace name (a DNS-1123 label)');
  const serviceAccount = text('service_account', DNS_SUBDOMAIN, 'a service account name (a DNS-1123 subdomain)');
  const identity = text('identity', /^spiffe:\/\/[^/]+\/ns\/[^/]+\/sa\/[^/]+$/, 'a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>)');
  if (name === undefined || namespace === undefined || serviceAccount === undefined || identity === undefined) return undefined;
  if (!identity.endsWith(`/ns/${namespace}/sa/${serviceAccount}`)) {
    p.add(field(at, 'identity'), `identity ${JSON.stringify(identity)} is not the one of namespace ${JSON.stringify(namespace)} and service account ${JSON.stringify(serviceAccount)}`);
    return undefined;
  }
  return { name, namespace, serviceAccount, identity };
}

function decodeListener(l: Plain, p: Problems): Listener {
  const name = str(l, 'name') ?? '';
  if (!name) p.add('name', 'a listener name is required');
  const address = has(l, 'address') ? decodeSocketAddress(obj(l, 'address'), 'address', p, { allowPortZero: true }) : undefined;
  const chains: FilterChain[] = [];
  const seen = new Map<string, number>();
  list(l, 'filter_chains').forEach((fc, i) => {
    const chain = decodeFilterChain(fc, field('filter_chains', i), p);
    if (!chain) return;
    const key = JSON.stringify([chain.destinationPorts, [...chain.serverNames].sort(), chain.transportProtocol ?? '']);
    const prev = seen.get(key);
    if (prev !== undefined) p.add(field('filter_chains', i), `filter_chain_match is the same as filter_chains[${prev}]`);
    seen.set(key, i);
    chains.push(chain);
  });
  if (has(l, 'api_listener')) {
    // A proxyless-style listener: its HTTP connection manager as a single catch-all chain.
    const hcm = obj(obj(l, 'api_listener'), 'api_listener');
    if (anyTypeUrl(hcm) !== HCM_TYPE_URL) p.add('api_listener.api_listener', 'an HTTP connection manager is required');
    else chains.push({ name: 'api_listener', destinationPorts: [], serverNames: [], filter: decodeHcm(hcm!, 'api_listener.api_listener', p) });
  }
  const def = has(l, 'default_filter_chain') ? decodeFilterChain(obj(l, 'default_filter_chain')!, 'default_filter_chain', p) : undefined;
  if (chains.length === 0 && !def && p.empty) p.add('filter_chains', 'at least one filter chain is required');
  if (has(l, 'filter_chain_matcher')) p.add('filter_chain_matcher', 'filter_chain_matcher is not supported');
  const workload = decodeListenerWorkload(obj(l, 'metadata'), p);
  return {
    name,
    ...(address ? { address } : {}),
    filterChains: chains,
    ...(def ? { defaultFilterChain: def } : {}),
    ...(workload ? { workload } : {}),
  };
}

function chainRefs(c: FilterChain): ResourceRef[] {
  const refs: ResourceRef[] = [];
  if (c.filter.kind === 'http' && c.filter.rdsName) refs.push({ typeUrl: TypeUrl.RouteConfiguration, name: c.filter.rdsName });
  return [...refs, ...secretRefs(c.tls)];
}

export const listenerType: ResourceType<Listener> = {
  typeUrl: TypeUrl.Listener,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.Listener, p);
    if (!plain) return result<Listener>(undefined, undefined, p);
    return result(str(plain, 'name'), decodeListener(plain, p), p);
  },
  references(l) {
    const all = [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])].flatMap(chainRefs);
    const seen = new Set<string>();
    return all.filter((r) => {
      const key = `${r.typeUrl} ${r.name}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  },
  equals: (a, b) => deepEqual(a, b),
};
