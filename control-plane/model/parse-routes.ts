// Parsing of gateway.networking.k8s.io HTTPRoute, GRPCRoute and ReferenceGrant (v1, and v1beta1
// where that version exists), applying the CRD defaults: a rule without matches is PathPrefix "/",
// weight 1, redirect status 302, header and path match types Exact / PathPrefix.
import { at, DNS_LABEL, Reader, show, type Obj } from './read.js';
import {
  checkUniqueRuleNames,
  parseBackendRef,
  parseDuration,
  parseFilters,
  parseHostnames,
  parseParentRef,
  parseValueMatches,
  RULE_NAME,
} from './parse-gateway-common.js';
import {
  HTTP_METHODS,
  type GRPCMethodMatch,
  type GRPCRoute,
  type GRPCRouteMatch,
  type GRPCRouteRule,
  type HTTPMethod,
  type HTTPPathMatch,
  type HTTPRoute,
  type HTTPRouteMatch,
  type HTTPRouteRetry,
  type HTTPRouteRule,
  type HTTPRouteTimeouts,
  type Gateway,
  type ObjectMeta,
  type ReferenceGrant,
} from './types.js';

const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;
const DEFAULT_MATCH: HTTPRouteMatch = { path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] };

export function parseHTTPRoute(r: Reader, doc: Obj, metadata: ObjectMeta, apiVersion: string): HTTPRoute | undefined {
  const spec = r.object('spec', doc.spec, { required: true, known: ['parentRefs', 'hostnames', 'rules', 'useDefaultGateways'] });
  if (!spec) return undefined;
  const parentRefs = r.list('spec.parentRefs', spec.parentRefs, (f, v) => parseParentRef(r, f, v), { maxItems: 32 });
  const hostnames = parseHostnames(r, 'spec.hostnames', spec.hostnames);
  let rules = r.list('spec.rules', spec.rules, (f, v) => parseHTTPRule(r, f, v), { maxItems: 16 });
  // The CRD default for absent rules: one rule matching everything (and sending nowhere).
  if (spec.rules === undefined) rules = [{ matches: [DEFAULT_MATCH], filters: [], backendRefs: [] }];
  checkUniqueRuleNames(r, rules);
  return { kind: 'HTTPRoute', apiVersion, metadata, spec: { parentRefs, hostnames, rules } };
}

function parseHTTPRule(r: Reader, field: string, v: unknown): HTTPRouteRule | undefined {
  const rule = r.object(field, v, {
    required: true,
    known: ['name', 'matches', 'filters', 'backendRefs', 'timeouts', 'retry', 'sessionPersistence'],
  });
  if (!rule) return undefined;
  const name = r.string(at(field, 'name'), rule.name, RULE_NAME);
  const matches = r.list(at(field, 'matches'), rule.matches, (f, m) => parseHTTPMatch(r, f, m), { maxItems: 64 });
  const filters = parseFilters(r, at(field, 'filters'), rule.filters, 'http');
  const backendRefs = r.list(at(field, 'backendRefs'), rule.backendRefs, (f, b) => parseBackendRef(r, f, b, 'http'), { maxItems: 16 });
  const timeouts = parseTimeouts(r, at(field, 'timeouts'), rule.timeouts);
  const retry = parseRetry(r, at(field, 'retry'), rule.retry);
  return {
    ...(name === undefined ? {} : { name }),
    matches: matches.length > 0 ? matches : [DEFAULT_MATCH],
    filters,
    backendRefs,
    ...(timeouts ? { timeouts } : {}),
    ...(retry ? { retry } : {}),
    ...(rule.sessionPersistence === undefined ? {} : { sessionPersistence: true }),
  };
}

function parseHTTPMatch(r: Reader, field: string, v: unknown): HTTPRouteMatch | undefined {
  const m = r.object(field, v, { required: true, known: ['path', 'headers', 'queryParams', 'method'] });
  if (!m) return undefined;
  const path = parsePathMatch(r, at(field, 'path'), m.path);
  const headers = parseValueMatches(r, at(field, 'headers'), m.headers, 'header');
  const queryParams = parseValueMatches(r, at(field, 'queryParams'), m.queryParams, 'query');
  const method = r.string(at(field, 'method'), m.method, { enum: HTTP_METHODS }) as HTTPMethod | undefined;
  return { path, headers, queryParams, ...(method === undefined ? {} : { method }) };
}

function parsePathMatch(r: Reader, field: string, v: unknown): HTTPPathMatch {
  const p = r.object(field, v, { known: ['type', 'value'] });
  if (!p) return DEFAULT_MATCH.path;
  const type = (r.string(at(field, 'type'), p.type, { enum: ['Exact', 'PathPrefix', 'RegularExpression'] }) ??
    'PathPrefix') as HTTPPathMatch['type'];
  const value = r.string(at(field, 'value'), p.value, { maxLength: 1024, minLength: 1 }) ?? '/';
  if (type !== 'RegularExpression') {
    // The CRD's path rules, so that a path means the same thing to every proxy.
    const vf = at(field, 'value');
    if (!value.startsWith('/')) r.fail(vf, `must be an absolute path starting with "/", got ${show(value)}`);
    else if (!PATH_CHARS.test(value)) r.fail(vf, `must contain only URL path characters, got ${show(value)}`);
    for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
      if (value.includes(bad)) r.fail(vf, `must not contain ${show(bad)}, got ${show(value)}`);
    }
    if (value.endsWith('/..') || value.endsWith('/.')) r.fail(vf, `must not end with "/." or "/..", got ${show(value)}`);
  }
  return { type, value };
}

function parseTimeouts(r: Reader, field: string, v: unknown): HTTPRouteTimeouts | undefined {
  const t = r.object(field, v, { known: ['request', 'backendRequest'] });
  if (!t) return undefined;
  const requestMs = parseDuration(r, at(field, 'request'), t.request);
  const backendRequestMs = parseDuration(r, at(field, 'backendRequest'), t.backendRequest);
  if (requestMs !== undefined && backendRequestMs !== undefined && requestMs !== 0 && backendRequestMs > requestMs) {
    r.fail(at(field, 'backendRequest'), `must not be longer than the request timeout, got ${show(t.backendRequest)} > ${show(t.request)}`);
  }
  return {
    ...(requestMs === undefined ? {} : { requestMs }),
    ...(backendRequestMs === undefined ? {} : { backendRequestMs }),
  };
}

function parseRetry(r: Reader, field: string, v: unknown): HTTPRouteRetry | undefined {
  const t = r.object(field, v, { known: ['codes', 'attempts', 'backoff'] });
  if (!t) return undefined;
  // The CRD's bounds; which of them Weft retries on is a question of acceptance (routes.ts).
  const codes = r.list(at(field, 'codes'), t.codes, (f, c) => r.int(f, c, { min: 100, max: 999 }));
  const attempts = r.int(at(field, 'attempts'), t.attempts, { min: 0 });
  const backoffMs = parseDuration(r, at(field, 'backoff'), t.backoff);
  return {
    codes: [...new Set(codes)],
    ...(attempts === undefined ? {} : { attempts }),
    ...(backoffMs === undefined ? {} : { backoffMs }),
  };
}

// ---- GRPCRoute --------------------------------------------------------------------------

const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

export function parseGRPCRoute(r: Reader, doc: Obj, metadata: ObjectMeta, apiVersion: string): GRPCRoute | undefined {
  const spec = r.object('spec', doc.spec, { required: true, known: ['parentRefs', 'hostnames', 'rules'] });
  if (!spec) return undefined;
  const parentRefs = r.list('spec.parentRefs', spec.parentRefs, (f, v) => parseParentRef(r, f, v), { maxItems: 32 });
  const hostnames = parseHostnames(r, 'spec.hostnames', spec.hostnames);
  const rules = r.list('spec.rules', spec.rules, (f, v) => parseGRPCRule(r, f, v), { maxItems: 16 });
  checkUniqueRuleNames(r, rules);
  return { kind: 'GRPCRoute', apiVersion, metadata, spec: { parentRefs, hostnames, rules } };
}

function parseGRPCRule(r: Reader, field: string, v: unknown): GRPCRouteRule | undefined {
  const rule = r.object(field, v, { required: true, known: ['name', 'matches', 'filters', 'backendRefs', 'sessionPersistence'] });
  if (!rule) return undefined;
  const name = r.string(at(field, 'name'), rule.name, RULE_NAME);
  const matches = r.list(at(field, 'matches'), rule.matches, (f, m) => parseGRPCMatch(r, f, m), { maxItems: 64 });
  const filters = parseFilters(r, at(field, 'filters'), rule.filters, 'grpc');
  const backendRefs = r.list(at(field, 'backendRefs'), rule.backendRefs, (f, b) => parseBackendRef(r, f, b, 'grpc'), { maxItems: 16 });
  return {
    ...(name === undefined ? {} : { name }),
    matches,
    filters,
    backendRefs,
    ...(rule.sessionPersistence === undefined ? {} : { sessionPersistence: true }),
  };
}

function parseGRPCMatch(r: Reader, field: string, v: unknown): GRPCRouteMatch | undefined {
  const m = r.object(field, v, { required: true, known: ['method', 'headers'] });
  if (!m) return undefined;
  const headers = parseValueMatches(r, at(field, 'headers'), m.headers, 'header');
  const mm = r.object(at(field, 'method'), m.method, { known: ['type', 'service', 'method'] });
  let method: GRPCMethodMatch | undefined;
  if (mm) {
    const f = at(field, 'method');
    const type = (r.string(at(f, 'type'), mm.type, { enum: ['Exact', 'RegularExpression'] }) ?? 'Exact') as GRPCMethodMatch['type'];
    const exact = type === 'Exact';
    const service = r.string(at(f, 'service'), mm.service, {
      maxLength: 1024,
      ...(exact ? { pattern: GRPC_SERVICE, patternHint: 'a fully qualified gRPC service name such as "helloworld.Greeter"' } : {}),
    });
    const methodName = r.string(at(f, 'method'), mm.method, {
      maxLength: 1024,
      ...(exact ? { pattern: GRPC_METHOD, patternHint: 'a gRPC method name such as "SayHello"' } : {}),
    });
    if (service === undefined && methodName === undefined && mm.service === undefined && mm.method === undefined) {
      r.fail(f, 'must set service, method, or both');
    }
    method = {
      type,
      ...(service === undefined ? {} : { service }),
      ...(methodName === undefined ? {} : { method: methodName }),
    };
  }
  return { headers, ...(method ? { method } : {}) };
}

// ---- Gateway (waypoints) -------------------------------------------------------------------

export function parseGateway(r: Reader, doc: Obj, metadata: ObjectMeta, apiVersion: string): Gateway | undefined {
  const spec = r.object('spec', doc.spec, { required: true, known: ['gatewayClassName', 'listeners', 'addresses', 'infrastructure'] });
  if (!spec) return undefined;
  const gatewayClassName = r.string('spec.gatewayClassName', spec.gatewayClassName, { required: true, minLength: 1 });
  const listeners = r.list(
    'spec.listeners',
    spec.listeners,
    (f, v) => {
      const o = r.object(f, v, { required: true });
      if (!o) return undefined;
      const name = r.string(at(f, 'name'), o.name, { required: true, minLength: 1 });
      const port = r.int(at(f, 'port'), o.port, { required: true, min: 1, max: 65535 });
      const protocol = r.string(at(f, 'protocol'), o.protocol, { required: true, minLength: 1 });
      return name === undefined || port === undefined || protocol === undefined ? undefined : { name, port, protocol };
    },
    { required: true, minItems: 1 },
  );
  return gatewayClassName === undefined ? undefined : { kind: 'Gateway', apiVersion, metadata, spec: { gatewayClassName, listeners } };
}

// ---- ReferenceGrant ---------------------------------------------------------------------

export function parseReferenceGrant(r: Reader, doc: Obj, metadata: ObjectMeta, apiVersion: string): ReferenceGrant | undefined {
  const spec = r.object('spec', doc.spec, { required: true, known: ['from', 'to'] });
  if (!spec) return undefined;
  const from = r.list(
    'spec.from',
    spec.from,
    (f, v) => {
      const o = r.object(f, v, { required: true, known: ['group', 'kind', 'namespace'] });
      if (!o) return undefined;
      const group = r.string(at(f, 'group'), o.group, { required: true });
      const kind = r.string(at(f, 'kind'), o.kind, { required: true, minLength: 1 });
      const namespace = r.string(at(f, 'namespace'), o.namespace, { required: true, pattern: DNS_LABEL, patternHint: 'a namespace name' });
      return group === undefined || kind === undefined || namespace === undefined ? undefined : { group, kind, namespace };
    },
    { required: true, minItems: 1 },
  );
  const to = r.list(
    'spec.to',
    spec.to,
    (f, v) => {
      const o = r.object(f, v, { required: true, known: ['group', 'kind', 'name'] });
      if (!o) return undefined;
      const group = r.string(at(f, 'group'), o.group, { required: true });
      const kind = r.string(at(f, 'kind'), o.kind, { required: true, minLength: 1 });
      const name = r.string(at(f, 'name'), o.name, { minLength: 1 });
      return group === undefined || kind === undefined ? undefined : { group, kind, ...(name === undefined ? {} : { name }) };
    },
    { required: true, minItems: 1 },
  );
  return { kind: 'ReferenceGrant', apiVersion, metadata, spec: { from, to } };
}
