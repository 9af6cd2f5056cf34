// RDS: RouteConfiguration → RouteConfig (virtual hosts, route matches, forward / redirect /
// direct actions, header mutations), validated with a field path for every problem.
import type { Plain } from './codec.js';
import {
  NO_HEADER_MUTATION,
  type DirectResponseAction, type ForwardAction, type HeaderMutation, type HeaderValueOption, type Mirror,
  type PathMatch, type PathRewrite, type RedirectAction, type RetryPolicy, type Route, type RouteAction,
  type RouteConfig, type RouteMatch, type VirtualHost, type WeightedBackend,
} from './domain.js';
import type { ResourceType } from './resource.js';
import { TypeUrl } from './types.js';
import {
  Problems, bool, compileSearch, decodeHeaderMatcher, decodeQueryMatcher, decodeRegexMatcher, deepEqual,
  durationMs, escapeLiteral, field, has, inlineData, list, num, obj, result, str, strings, unpackChecked,
  wrappedBool, wrappedNum,
} from './matchers.js';

const DEFAULT_BACKOFF_BASE_MS = 25;

const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);
const NOT_FOUND_CODES: Record<string, number> = { SERVICE_UNAVAILABLE: 503, NOT_FOUND: 404, INTERNAL_SERVER_ERROR: 500 };
const REDIRECT_CODES: Record<string, RedirectAction['status']> = {
  MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308,
};
const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

// ---- Header mutations ------------------------------------------------------------------------

/** Envoy header values are format strings: `%%` is a literal `%`; `%VAR%` operators are not supported. */
function headerValue(raw: string, path: string, p: Problems): string | undefined {
  if (/[\r\n\0]/.test(raw)) {
    p.add(path, 'header values must not contain CR, LF or NUL');
    return undefined;
  }
  if (!raw.includes('%')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c !== '%') { out += c; continue; }
    if (raw[i + 1] === '%') { out += '%'; i++; continue; }
    const end = raw.indexOf('%', i + 1);
    p.add(path, end < 0
      ? `unterminated % in header value ${JSON.stringify(raw)} (write %% for a literal %)`
      : `header value operator ${raw.slice(i, end + 1)} is not supported (write %% for a literal %)`);
    return undefined;
  }
  return out;
}

function headerName(raw: string | undefined, path: string, p: Problems): string | undefined {
  const name = (raw ?? '').toLowerCase();
  if (!name) p.add(path, 'a header name is required');
  else if (name.startsWith(':')) p.add(path, `pseudo-header ${name} may not be modified`);
  else if (!HEADER_NAME.test(name)) p.add(path, `invalid header name ${JSON.stringify(raw)}`);
  else return name;
  return undefined;
}

function decodeHeaderValueOption(o: Plain, path: string, p: Problems): HeaderValueOption | undefined {
  const header = obj(o, 'header');
  const name = headerName(str(header, 'key'), field(path, 'header.key'), p);
  const rawBytes = str(header, 'raw_value');
  const raw = str(header, 'value') ?? (rawBytes !== undefined ? Buffer.from(rawBytes, 'base64').toString('utf8') : '');
  const value = headerValue(raw, field(path, rawBytes !== undefined && !has(header, 'value') ? 'header.raw_value' : 'header.value'), p);
  let action: HeaderValueOption['action'] = 'append';
  const legacy = wrappedBool(o, 'append');
  const appendAction = o.append_action;
  if (legacy !== undefined && appendAction !== undefined) {
    p.add(field(path, 'append'), 'append and append_action are mutually exclusive');
  } else if (legacy !== undefined) {
    action = legacy ? 'append' : 'overwrite';
  } else if (appendAction !== undefined) {
    if (appendAction === 'APPEND_IF_EXISTS_OR_ADD') action = 'append';
    else if (appendAction === 'ADD_IF_ABSENT') action = 'addIfAbsent';
    else if (appendAction === 'OVERWRITE_IF_EXISTS_OR_ADD') action = 'overwrite';
    else p.add(field(path, 'append_action'), `append_action ${String(appendAction)} is not supported`);
  }
  if (name === undefined || value === undefined) return undefined;
  // Envoy drops headers whose value is empty unless keep_empty_value is set.
  if (value === '' && !bool(o, 'keep_empty_value')) return undefined;
  return { name, value, action };
}

/** `<which>_headers_to_add` / `<which>_headers_to_remove` of a route, virtual host, config or backend. */
export function decodeHeaderMutation(o: Plain | undefined, which: 'request' | 'response', path: string, p: Problems): HeaderMutation {
  const addKey = `${which}_headers_to_add`;
  const removeKey = `${which}_headers_to_remove`;
  const add: HeaderValueOption[] = [];
  list(o, addKey).forEach((h, i) => {
    const v = decodeHeaderValueOption(h, field(field(path, addKey), i), p);
    if (v) add.push(v);
  });
  const remove: string[] = [];
  strings(o, removeKey).forEach((h, i) => {
    const n = headerName(h, field(field(path, removeKey), i), p);
    if (n) remove.push(n);
  });
  return add.length === 0 && remove.length === 0 ? NO_HEADER_MUTATION : { add, remove };
}

/** One mutation equivalent to applying `outer` then `inner` (each removes, then adds). */
export function mergeMutations(outer: HeaderMutation, inner: HeaderMutation): HeaderMutation {
  if (outer.add.length === 0 && outer.remove.length === 0) return inner;
  if (inner.add.length === 0 && inner.remove.length === 0) return outer;
  return {
    add: [...outer.add.filter((a) => !inner.remove.includes(a.name)), ...inner.add],
    remove: [...outer.remove, ...inner.remove],
  };
}

// ---- Route match -----------------------------------------------------------------------------

function caseInsensitive(kind: 'exact' | 'prefix' | 'segmentPrefix', value: string): PathMatch {
  const lit = escapeLiteral(value);
  const tail = kind === 'exact' ? '' : kind === 'prefix' ? '[\\s\\S]*' : '(?:/[\\s\\S]*)?';
  return { kind: 'regex', regex: new RegExp(`^${lit}${tail}$`, 'iu') };
}

function decodePathMatch(m: Plain | undefined, path: string, p: Problems): PathMatch | undefined {
  const sensitive = wrappedBool(m, 'case_sensitive') ?? true;
  const literal = (kind: 'exact' | 'prefix' | 'segmentPrefix', value: string): PathMatch =>
    sensitive ? { kind, value } : caseInsensitive(kind, value);
  if (typeof m?.prefix === 'string') return literal('prefix', m.prefix);
  if (typeof m?.path === 'string') return literal('exact', m.path);
  if (typeof m?.path_separated_prefix === 'string') {
    const raw = m.path_separated_prefix;
    if (/[?#]/.test(raw)) {
      p.add(field(path, 'path_separated_prefix'), `path_separated_prefix ${JSON.stringify(raw)} must not contain ? or #`);
      return undefined;
    }
    // Gateway API PathPrefix: a trailing slash is not significant.
    return literal('segmentPrefix', raw.replace(/\/+$/, ''));
  }
  if (has(m, 'safe_regex')) {
    const regex = decodeRegexMatcher(obj(m, 'safe_regex'), field(path, 'safe_regex'), p);
    return regex && { kind: 'regex', regex };
  }
  for (const k of ['connect_matcher', 'path_match_policy']) {
    if (has(m, k)) {
      p.add(field(path, k), `${k} is not supported`);
      return undefined;
    }
  }
  p.add(path, 'one of prefix, path, path_separated_prefix or safe_regex is required');
  return undefined;
}

function decodeRouteMatch(m: Plain | undefined, path: string, p: Problems): RouteMatch | undefined {
  const pathMatch = decodePathMatch(m, path, p);
  const headers = list(m, 'headers').flatMap((h, i) => decodeHeaderMatcher(h, field(field(path, 'headers'), i), p) ?? []);
  const query = list(m, 'query_parameters').flatMap((q, i) => decodeQueryMatcher(q, field(field(path, 'query_parameters'), i), p) ?? []);
  for (const k of ['runtime_fraction', 'tls_context', 'dynamic_metadata', 'filter_state']) {
    if (has(m, k) && !(Array.isArray(m?.[k]) && (m[k] as unknown[]).length === 0)) {
      p.add(field(path, k), `route match on ${k} is not supported`);
    }
  }
  if (!pathMatch) return undefined;
  return { path: pathMatch, headers, query, grpc: has(m, 'grpc') };
}

// ---- Route action ----------------------------------------------------------------------------

export function decodeRetryPolicy(r: Plain, path: string, p: Problems): RetryPolicy {
  const retryOn = new Set<string>();
  for (const cond of (str(r, 'retry_on') ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (RETRY_ON.has(cond)) retryOn.add(cond);
    else p.add(field(path, 'retry_on'), `unknown retry condition ${JSON.stringify(cond)}`);
  }
  const codes = new Set<number>();
  const rawCodes = r.retriable_status_codes;
  (Array.isArray(rawCodes) ? rawCodes : []).forEach((c, i) => {
    if (typeof c === 'number' && c >= 100 && c <= 599) codes.add(c);
    else p.add(field(field(path, 'retriable_status_codes'), i), `invalid HTTP status ${String(c)}`);
  });
  const perTry = durationMs(r, 'per_try_timeout', path, p);
  const backOff = obj(r, 'retry_back_off');
  const bpath = field(path, 'retry_back_off');
  const base = durationMs(backOff, 'base_interval', bpath, p) ?? DEFAULT_BACKOFF_BASE_MS;
  if (base <= 0) p.add(field(bpath, 'base_interval'), 'base_interval must be greater than 0');
  const max = durationMs(backOff, 'max_interval', bpath, p) ?? base * 10;
  if (max < base) p.add(field(bpath, 'max_interval'), `max_interval (${max}ms) must not be less than base_interval (${base}ms)`);
  return {
    retryOn,
    numRetries: wrappedNum(r, 'num_retries') ?? 1,
    ...(perTry ? { perTryTimeoutMs: perTry } : {}),
    retriableStatusCodes: codes,
    backoffBaseMs: base,
    backoffMaxMs: max,
  };
}

export function decodeMirrors(o: Plain | undefined, path: string, p: Problems): Mirror[] {
  return list(o, 'request_mirror_policies').flatMap((m, i) => {
    const at = field(field(path, 'request_mirror_policies'), i);
    const cluster = str(m, 'cluster');
    if (!cluster) {
      p.add(field(at, 'cluster'), has(m, 'cluster_header') ? 'cluster_header is not supported' : 'a mirror cluster is required');
      return [];
    }
    let fraction = 1;
    if (has(m, 'runtime_fraction')) {
      const pct = obj(obj(m, 'runtime_fraction'), 'default_value');
      const den = DENOMINATORS[str(pct, 'denominator') ?? 'HUNDRED'];
      if (den === undefined) {
        p.add(field(at, 'runtime_fraction.default_value.denominator'), `unknown denominator ${String(pct?.denominator)}`);
        return [];
      }
      fraction = Math.min(1, (num(pct, 'numerator') ?? 0) / den);
    }
    return [{ cluster, fraction }];
  });
}

/** RE2 rewrite strings: `\0`-`\9` name groups, `\\` is a backslash; nothing else may be escaped. */
function checkSubstitution(sub: string, groups: number): string | undefined {
  for (let i = 0; i < sub.length; i++) {
    if (sub[i] !== '\\') continue;
    const c = sub[i + 1];
    if (c === '\\') { i++; continue; }
    if (c === undefined || c < '0' || c > '9') return `invalid escape in substitution ${JSON.stringify(sub)} (only \\0-\\9 and \\\\)`;
    if (Number(c) > groups) return `substitution refers to group \\${c} but the pattern has ${groups} group(s)`;
    i++;
  }
  return undefined;
}

function decodeBackends(a: Plain, path: string, p: Problems): WeightedBackend[] {
  if (typeof a.cluster === 'string') {
    if (!a.cluster) p.add(field(path, 'cluster'), 'cluster must not be empty');
    return [{ cluster: a.cluster, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }];
  }
  if (has(a, 'weighted_clusters')) {
    const wc = obj(a, 'weighted_clusters');
    const wpath = field(path, 'weighted_clusters');
    const clusters = list(wc, 'clusters');
    if (clusters.length === 0) p.add(field(wpath, 'clusters'), 'at least one cluster is required');
    const backends = clusters.map((c, i) => {
      const at = field(field(wpath, 'clusters'), i);
      const cluster = str(c, 'name') ?? '';
      if (!cluster) p.add(field(at, 'name'), has(c, 'cluster_header') ? 'cluster_header is not supported' : 'a cluster name is required');
      return {
        cluster,
        weight: wrappedNum(c, 'weight') ?? 0,
        requestHeaders: decodeHeaderMutation(c, 'request', at, p),
        responseHeaders: decodeHeaderMutation(c, 'response', at, p),
      };
    });
    const declared = wrappedNum(wc, 'total_weight');
    const sum = backends.reduce((s, b) => s + b.weight, 0);
    if (declared !== undefined && declared !== sum) {
      p.add(field(wpath, 'total_weight'), `total_weight ${declared} does not equal the sum of the weights (${sum})`);
    }
    return backends;
  }
  const unsupported = ['cluster_header', 'cluster_specifier_plugin', 'inline_cluster_specifier_plugin'].find((k) => has(a, k));
  p.add(unsupported ? field(path, unsupported) : path, unsupported ? `${unsupported} is not supported` : 'one of cluster or weighted_clusters is required');
  return [];
}

function decodePathRewrite(a: Plain, path: string, p: Problems): PathRewrite | undefined {
  const prefix = str(a, 'prefix_rewrite');
  if (has(a, 'path_rewrite_policy')) p.add(field(path, 'path_rewrite_policy'), 'path_rewrite_policy is not supported');
  if (prefix && has(a, 'regex_rewrite')) {
    p.add(field(path, 'regex_rewrite'), 'only one of prefix_rewrite and regex_rewrite may be set');
    return undefined;
  }
  if (prefix) return { kind: 'prefix', value: prefix };
  if (!has(a, 'regex_rewrite')) return undefined;
  const rr = obj(a, 'regex_rewrite');
  const at = field(path, 'regex_rewrite');
  const pattern = str(obj(rr, 'pattern'), 'regex');
  if (!pattern) {
    p.add(field(at, 'pattern.regex'), 'a regular expression is required');
    return undefined;
  }
  const compiled = compileSearch(pattern, field(at, 'pattern.regex'), p);
  const substitution = str(rr, 'substitution') ?? '';
  const bad = compiled && checkSubstitution(substitution, compiled.groups);
  if (bad) p.add(field(at, 'substitution'), bad);
  return compiled && !bad ? { kind: 'regex', regex: compiled.regex, substitution } : undefined;
}

interface Inherited {
  readonly retry: RetryPolicy | undefined;
  readonly mirrors: readonly Mirror[];
}

function decodeForward(a: Plain, path: string, p: Problems, inherited: Inherited): ForwardAction {
  const backends = decodeBackends(a, path, p);
  // Weft departs from Envoy here: an absent timeout means none (Envoy would apply 15 s), as the
  // domain type says and as Gateway API routes without `timeouts` expect; 0 also means none.
  const timeoutMs = durationMs(a, 'timeout', path, p);
  const retry = has(a, 'retry_policy') ? decodeRetryPolicy(obj(a, 'retry_policy')!, field(path, 'retry_policy'), p) : inherited.retry;
  const mirrors = list(a, 'request_mirror_policies').length > 0 ? decodeMirrors(a, path, p) : inherited.mirrors;
  const pathRewrite = decodePathRewrite(a, path, p);
  const hostRewrite = str(a, 'host_rewrite_literal');
  if (wrappedBool(a, 'auto_host_rewrite')) p.add(field(path, 'auto_host_rewrite'), 'auto_host_rewrite is not supported');
  for (const k of ['host_rewrite_header', 'host_rewrite_path_regex']) {
    if (has(a, k)) p.add(field(path, k), `${k} is not supported`);
  }
  const nf = str(a, 'cluster_not_found_response_code') ?? 'SERVICE_UNAVAILABLE';
  const clusterNotFoundStatus = NOT_FOUND_CODES[nf];
  if (clusterNotFoundStatus === undefined) p.add(field(path, 'cluster_not_found_response_code'), `unknown code ${nf}`);
  return {
    kind: 'forward',
    backends,
    totalWeight: backends.reduce((s, b) => s + b.weight, 0),
    ...(timeoutMs ? { timeoutMs } : {}),
    ...(retry ? { retry } : {}),
    mirrors,
    ...(hostRewrite ? { hostRewrite } : {}),
    ...(pathRewrite ? { pathRewrite } : {}),
    clusterNotFoundStatus: clusterNotFoundStatus ?? 503,
  };
}

function decodeRedirect(r: Plain, path: string, p: Problems): RedirectAction {
  let scheme: string | undefined;
  if (bool(r, 'https_redirect')) scheme = 'https';
  else if (typeof r.scheme_redirect === 'string') {
    scheme = r.scheme_redirect.toLowerCase();
    if (!/^[a-z][a-z0-9+.-]*$/.test(scheme)) p.add(field(path, 'scheme_redirect'), `invalid scheme ${JSON.stringify(r.scheme_redirect)}`);
  }
  const host = str(r, 'host_redirect')?.toLowerCase();
  if (host !== undefined && /[/?#@\s]/.test(host)) p.add(field(path, 'host_redirect'), `invalid host ${JSON.stringify(host)}`);
  const port = num(r, 'port_redirect');
  if (port !== undefined && port > 65535) p.add(field(path, 'port_redirect'), `invalid port ${port}`);
  let pathRedirect: RedirectAction['path'];
  if (typeof r.path_redirect === 'string') pathRedirect = { kind: 'full', value: r.path_redirect };
  else if (typeof r.prefix_rewrite === 'string') pathRedirect = { kind: 'prefix', value: r.prefix_rewrite };
  else if (has(r, 'regex_rewrite')) pathRedirect = decodePathRewrite(r, path, p);
  const code = str(r, 'response_code') ?? 'MOVED_PERMANENTLY';
  const status = REDIRECT_CODES[code];
  if (status === undefined) p.add(field(path, 'response_code'), `unknown redirect code ${code}`);
  return {
    kind: 'redirect',
    ...(scheme ? { scheme } : {}),
    ...(host ? { host } : {}),
    ...(port ? { port } : {}),
    ...(pathRedirect ? { path: pathRedirect } : {}),
    status: status ?? 301,
    stripQuery: bool(r, 'strip_query'),
  };
}

function decodeDirect(d: Plain, path: string, p: Problems): DirectResponseAction {
  const status = num(d, 'status') ?? 0;
  if (status < 200 || status > 599) p.add(field(path, 'status'), `status ${status} is not between 200 and 599`);
  const body = inlineData(obj(d, 'body'), field(path, 'body'), p);
  return { kind: 'direct', status, ...(body ? { body } : {}) };
}

function decodeAction(r: Plain, path: string, p: Problems, inherited: Inherited): RouteAction | undefined {
  if (has(r, 'route')) return decodeForward(obj(r, 'route')!, field(path, 'route'), p, inherited);
  if (has(r, 'redirect')) return decodeRedirect(obj(r, 'redirect')!, field(path, 'redirect'), p);
  if (has(r, 'direct_response')) return decodeDirect(obj(r, 'direct_response')!, field(path, 'direct_response'), p);
  const other = ['filter_action', 'non_forwarding_action'].find((k) => has(r, k));
  p.add(other ? field(path, other) : path, other ? `${other} is not supported` : 'one of route, redirect or direct_response is required');
  return undefined;
}

// ---- Virtual hosts and the route configuration ---------------------------------------------

function decodeRoute(r: Plain, path: string, p: Problems, inherited: Inherited): Route | undefined {
  const match = decodeRouteMatch(obj(r, 'match'), field(path, 'match'), p);
  const action = decodeAction(r, path, p, inherited);
  const requestHeaders = decodeHeaderMutation(r, 'request', path, p);
  const responseHeaders = decodeHeaderMutation(r, 'response', path, p);
  if (!match || !action) return undefined;
  return { name: str(r, 'name') ?? '', match, action, requestHeaders, responseHeaders };
}

function checkDomain(d: string, path: string, p: Problems): void {
  if (!d) p.add(path, 'a domain must not be empty');
  else if (d !== '*' && d.slice(1, -1).includes('*')) p.add(path, `domain ${JSON.stringify(d)} may have a wildcard only at its start or end`);
  else if (d !== '*' && d.startsWith('*') && d.endsWith('*')) p.add(path, `domain ${JSON.stringify(d)} may not have a wildcard at both ends`);
}

interface ConfigLevel {
  readonly request: HeaderMutation;
  readonly response: HeaderMutation;
  readonly mirrors: readonly Mirror[];
}

function decodeVirtualHost(vh: Plain, path: string, p: Problems, cfg: ConfigLevel): VirtualHost | undefined {
  const name = str(vh, 'name') ?? '';
  if (!name) p.add(field(path, 'name'), 'a virtual host name is required');
  const domains = strings(vh, 'domains').map((d) => d.toLowerCase());
  if (domains.length === 0) p.add(field(path, 'domains'), 'at least one domain is required');
  domains.forEach((d, i) => checkDomain(d, field(field(path, 'domains'), i), p));
  const tls = vh.require_tls;
  if (tls !== undefined && tls !== 'NONE') p.add(field(path, 'require_tls'), `require_tls ${String(tls)} is not supported`);
  const vhMirrors = decodeMirrors(vh, path, p);
  const inherited: Inherited = {
    retry: has(vh, 'retry_policy') ? decodeRetryPolicy(obj(vh, 'retry_policy')!, field(path, 'retry_policy'), p) : undefined,
    mirrors: vhMirrors.length > 0 ? vhMirrors : cfg.mirrors,
  };
  const routes = list(vh, 'routes').map((r, i) => decodeRoute(r, field(field(path, 'routes'), i), p, inherited));
  return {
    name,
    domains,
    routes: routes.filter((r): r is Route => r !== undefined),
    requestHeaders: mergeMutations(cfg.request, decodeHeaderMutation(vh, 'request', path, p)),
    responseHeaders: mergeMutations(cfg.response, decodeHeaderMutation(vh, 'response', path, p)),
  };
}

/**
 * Decodes a RouteConfiguration message (from RDS, or inline in an HTTP connection manager at
 * `path`). Configuration-level header mutations and mirrors are folded into each virtual host;
 * virtual-host retry and mirror policies into each route that has none of its own.
 */
export function decodeRouteConfiguration(rc: Plain, path: string, p: Problems): RouteConfig {
  const vhds = has(rc, 'vhds');
  if (vhds) {
    const source = obj(obj(rc, 'vhds'), 'config_source');
    if (!source || !has(source, 'ads')) p.add(field(field(path, 'vhds'), 'config_source'), 'VHDS must come over ADS (`ads: {}`)');
    // Virtual hosts from VHDS are shared resources: a level above them to fold in would make
    // each one depend on the configuration that takes it.
    for (const f of ['request_headers_to_add', 'request_headers_to_remove', 'response_headers_to_add', 'response_headers_to_remove', 'request_mirror_policies']) {
      if (has(rc, f)) p.add(field(path, f), 'not supported on a route configuration with vhds (set it on each virtual host)');
    }
  }
  const cfg: ConfigLevel = {
    request: decodeHeaderMutation(rc, 'request', path, p),
    response: decodeHeaderMutation(rc, 'response', path, p),
    mirrors: decodeMirrors(rc, path, p),
  };
  const seen = new Map<string, string>();
  const virtualHosts: VirtualHost[] = [];
  list(rc, 'virtual_hosts').forEach((vh, i) => {
    const at = field(field(path, 'virtual_hosts'), i);
    strings(vh, 'domains').forEach((d, j) => {
      const key = d.toLowerCase();
      const prev = seen.get(key);
      if (prev) p.add(field(field(at, 'domains'), j), `duplicate domain ${JSON.stringify(key)} (also in ${prev})`);
      else seen.set(key, at);
    });
    const v = decodeVirtualHost(vh, at, p, cfg);
    if (v) virtualHosts.push(v);
  });
  return { name: str(rc, 'name') ?? '', virtualHosts, ...(vhds ? { vhds: true as const } : {}) };
}

const NO_CONFIG_LEVEL: ConfigLevel = { request: NO_HEADER_MUTATION, response: NO_HEADER_MUTATION, mirrors: [] };

/** Decodes a VirtualHost delivered on its own (VHDS): nothing above it to inherit. */
export function decodeStandaloneVirtualHost(vh: Plain, p: Problems): VirtualHost | undefined {
  const seen = new Set<string>();
  strings(vh, 'domains').forEach((d, j) => {
    if (seen.has(d.toLowerCase())) p.add(field('domains', j), `duplicate domain ${JSON.stringify(d.toLowerCase())}`);
    seen.add(d.toLowerCase());
  });
  return decodeVirtualHost(vh, '', p, NO_CONFIG_LEVEL);
}

export const routeConfigType: ResourceType<RouteConfig> = {
  typeUrl: TypeUrl.RouteConfiguration,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.RouteConfiguration, p);
    if (!plain) return result<RouteConfig>(undefined, undefined, p);
    const name = str(plain, 'name');
    if (!name) p.add('name', 'a route configuration name is required');
    return result(name, decodeRouteConfiguration(plain, '', p), p);
  },
  references: () => [],
  equals: (a, b) => deepEqual(a, b),
};
