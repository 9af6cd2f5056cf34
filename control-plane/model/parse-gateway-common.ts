// Parsing of the Gateway API pieces HTTPRoute and GRPCRoute share: parentRefs, backendRefs,
// filters, header matches and durations, with the CRD defaults and validation rules.
import { at, DNS_SUBDOMAIN, Reader, show, type Obj } from './read.js';
import type {
  BackendObjectRef,
  BackendRef,
  HeaderModifier,
  HeaderValue,
  ParentRef,
  PathModifier,
  RequestMirror,
  RequestRedirect,
  RouteFilter,
  URLRewrite,
  ValueMatch,
} from './types.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** RFC 7230 token: what an HTTP header name may contain. */
export const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$/;
const PRECISE_HOSTNAME = DNS_SUBDOMAIN;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GROUP = /^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const SECTION_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };

const PARENT_REF_FIELDS = ['group', 'kind', 'namespace', 'name', 'sectionName', 'port'];
const BACKEND_REF_FIELDS = ['group', 'kind', 'name', 'namespace', 'port'];

export function parseHostnames(r: Reader, field: string, v: unknown): string[] {
  return r.stringList(field, v, { pattern: HOSTNAME, patternHint: 'a hostname such as "example.com" or "*.example.com"', maxLength: 253 });
}

/** Gateway API Duration (GEP-2257), e.g. "10s", "1m30s", "500ms"; returned in milliseconds. */
export function parseDuration(r: Reader, field: string, v: unknown): number | undefined {
  const s = r.string(field, v, { pattern: DURATION, patternHint: 'a duration such as "10s", "1m30s" or "500ms"' });
  if (s === undefined) return undefined;
  let total = 0;
  const seen = new Set<string>();
  for (const m of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) {
    const unit = m[2] ?? '';
    if (seen.has(unit)) return r.fail(field, `must use each unit at most once, got ${show(s)}`);
    seen.add(unit);
    total += Number(m[1]) * (UNIT_MS[unit] ?? 0);
  }
  return total;
}

export function parseParentRef(r: Reader, field: string, v: unknown): ParentRef | undefined {
  const p = r.object(field, v, { required: true, known: PARENT_REF_FIELDS });
  if (!p) return undefined;
  const group = r.string(at(field, 'group'), p.group, { pattern: GROUP, patternHint: 'an API group ("" for core)' }) ?? GATEWAY_GROUP;
  const kind = r.string(at(field, 'kind'), p.kind, { pattern: KIND, patternHint: 'a kind such as "Service"' }) ?? 'Gateway';
  const namespace = r.string(at(field, 'namespace'), p.namespace, { minLength: 1 });
  const name = r.string(at(field, 'name'), p.name, { required: true, minLength: 1, maxLength: 253 });
  const sectionName = r.string(at(field, 'sectionName'), p.sectionName, { pattern: SECTION_NAME, patternHint: 'a section (port) name' });
  const port = r.int(at(field, 'port'), p.port, { min: 1, max: 65535 });
  if (name === undefined) return undefined;
  return {
    group,
    kind,
    name,
    ...(namespace === undefined ? {} : { namespace }),
    ...(sectionName === undefined ? {} : { sectionName }),
    ...(port === undefined ? {} : { port }),
  };
}

function parseBackendObject(r: Reader, field: string, p: Obj): BackendObjectRef | undefined {
  const group = r.string(at(field, 'group'), p.group, { pattern: GROUP, patternHint: 'an API group ("" for core)' }) ?? '';
  const kind = r.string(at(field, 'kind'), p.kind, { pattern: KIND, patternHint: 'a kind such as "Service"' }) ?? 'Service';
  const name = r.string(at(field, 'name'), p.name, { required: true, minLength: 1, maxLength: 253 });
  const namespace = r.string(at(field, 'namespace'), p.namespace, { minLength: 1 });
  const port = r.int(at(field, 'port'), p.port, { min: 1, max: 65535 });
  if (group === '' && kind === 'Service' && port === undefined && p.port === undefined) {
    r.fail(at(field, 'port'), 'is required for a Service backend (the Service port to send to)');
  }
  if (name === undefined) return undefined;
  return { group, kind, name, ...(namespace === undefined ? {} : { namespace }), ...(port === undefined ? {} : { port }) };
}

export function parseBackendRef(r: Reader, field: string, v: unknown, filterTypes: 'http' | 'grpc'): BackendRef | undefined {
  const p = r.object(field, v, { required: true, known: [...BACKEND_REF_FIELDS, 'weight', 'filters'] });
  if (!p) return undefined;
  const ref = parseBackendObject(r, field, p);
  const weight = r.int(at(field, 'weight'), p.weight, { min: 0, max: 1_000_000 });
  const filters = parseFilters(r, at(field, 'filters'), p.filters, filterTypes);
  if (!ref) return undefined;
  return { ...ref, weight: weight ?? 1, filters };
}

// ---- Matches ----------------------------------------------------------------------------

/** Header or query-param matches; `names` says how names are compared for duplicates. */
export function parseValueMatches(r: Reader, field: string, v: unknown, names: 'header' | 'query'): ValueMatch[] {
  const seen = new Set<string>();
  return r.list(
    field,
    v,
    (f, item) => {
      const m = r.object(f, item, { required: true, known: ['type', 'name', 'value'] });
      if (!m) return undefined;
      const type = (r.string(at(f, 'type'), m.type, { enum: ['Exact', 'RegularExpression'] }) ?? 'Exact') as ValueMatch['type'];
      const name = r.string(at(f, 'name'), m.name, {
        required: true,
        pattern: HEADER_NAME,
        patternHint: names === 'header' ? 'an HTTP header name (pseudo-headers such as ":method" are not allowed)' : 'a query parameter name',
      });
      const value = r.string(at(f, 'value'), m.value, { required: true, minLength: 1, maxLength: names === 'header' ? 4096 : 1024 });
      if (name === undefined || value === undefined) return undefined;
      // The spec: of entries with equivalent names only the first counts (headers ignore case).
      const key = names === 'header' ? name.toLowerCase() : name;
      if (seen.has(key)) return undefined;
      seen.add(key);
      return { type, name, value };
    },
    { maxItems: 16 },
  );
}

// ---- Filters ----------------------------------------------------------------------------

const FILTER_FIELDS: Record<string, string> = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
};
const ALL_FILTER_FIELDS = Object.values(FILTER_FIELDS);

export function parseFilters(r: Reader, field: string, v: unknown, kind: 'http' | 'grpc'): RouteFilter[] {
  return r.list(field, v, (f, item) => parseFilter(r, f, item, kind), { maxItems: 16 });
}

function parseFilter(r: Reader, field: string, v: unknown, kind: 'http' | 'grpc'): RouteFilter | undefined {
  const known = kind === 'http' ? ALL_FILTER_FIELDS : ['requestHeaderModifier', 'responseHeaderModifier', 'requestMirror', 'extensionRef'];
  const f = r.object(field, v, { required: true, known: ['type', ...known] });
  if (!f) return undefined;
  const type = r.string(at(field, 'type'), f.type, { required: true, minLength: 1 });
  if (type === undefined) return undefined;
  // The CRD's rule: the field named by the type is set, and no other filter field is.
  const own = FILTER_FIELDS[type];
  for (const key of known) {
    if (key !== own && f[key] !== undefined) r.fail(at(field, key), `must not be set when type is ${show(type)}`);
  }
  if (own !== undefined && f[own] === undefined) return r.fail(at(field, own), `is required when type is ${show(type)}`);
  const sub = at(field, own ?? '');
  switch (type) {
    case 'RequestHeaderModifier':
      return { type, requestHeaderModifier: parseHeaderModifier(r, sub, f[own ?? '']) };
    case 'ResponseHeaderModifier':
      return { type, responseHeaderModifier: parseHeaderModifier(r, sub, f[own ?? '']) };
    case 'RequestMirror': {
      const requestMirror = parseMirror(r, sub, f[own ?? '']);
      return requestMirror ? { type, requestMirror } : undefined;
    }
    case 'RequestRedirect': {
      const requestRedirect = parseRedirect(r, sub, f[own ?? '']);
      return requestRedirect ? { type, requestRedirect } : undefined;
    }
    case 'URLRewrite': {
      const urlRewrite = parseRewrite(r, sub, f[own ?? '']);
      return urlRewrite ? { type, urlRewrite } : undefined;
    }
    case 'ExtensionRef': {
      const e = r.object(sub, f[own ?? ''], { required: true, known: ['group', 'kind', 'name'] });
      if (!e) return undefined;
      const group = r.string(at(sub, 'group'), e.group, { required: true, pattern: GROUP, patternHint: 'an API group' });
      const kind = r.string(at(sub, 'kind'), e.kind, { required: true, pattern: KIND, patternHint: 'a kind' });
      const name = r.string(at(sub, 'name'), e.name, { required: true, minLength: 1, maxLength: 253 });
      return group === undefined || kind === undefined || name === undefined ? undefined : { type, extensionRef: { group, kind, name } };
    }
    default:
      // CORS, ExternalAuth and unknown types: kept so status can say "not supported".
      return { type };
  }
}

function parseHeaderModifier(r: Reader, field: string, v: unknown): HeaderModifier {
  const m = r.object(field, v, { known: ['set', 'add', 'remove'] }) ?? {};
  const headers = (key: 'set' | 'add'): HeaderValue[] =>
    r.list(
      at(field, key),
      m[key],
      (f, item) => {
        const h = r.object(f, item, { required: true, known: ['name', 'value'] });
        if (!h) return undefined;
        const name = r.string(at(f, 'name'), h.name, { required: true, pattern: HEADER_NAME, patternHint: 'an HTTP header name' });
        const value = r.string(at(f, 'value'), h.value, { required: true, minLength: 1, maxLength: 4096 });
        return name === undefined || value === undefined ? undefined : { name, value };
      },
      { maxItems: 16 },
    );
  const set = headers('set');
  const add = headers('add');
  const remove = r.stringList(at(field, 'remove'), m.remove, { pattern: HEADER_NAME, patternHint: 'an HTTP header name' });
  return { set, add, remove };
}

function parseMirror(r: Reader, field: string, v: unknown): RequestMirror | undefined {
  const m = r.object(field, v, { required: true, known: ['backendRef', 'percent', 'fraction'] });
  if (!m) return undefined;
  const refObj = r.object(at(field, 'backendRef'), m.backendRef, { required: true, known: BACKEND_REF_FIELDS });
  const backendRef = refObj ? parseBackendObject(r, at(field, 'backendRef'), refObj) : undefined;
  const percent = r.int(at(field, 'percent'), m.percent, { min: 0, max: 100 });
  const fraction = r.object(at(field, 'fraction'), m.fraction, { known: ['numerator', 'denominator'] });
  if (percent !== undefined && fraction) r.fail(field, 'only one of percent or fraction may be set');
  let numerator = 100;
  let denominator = 100;
  if (percent !== undefined) numerator = percent;
  if (fraction) {
    const n = r.int(at(field, 'fraction.numerator'), fraction.numerator, { required: true, min: 0 });
    const d = r.int(at(field, 'fraction.denominator'), fraction.denominator, { min: 1 }) ?? 100;
    if (n !== undefined && n > d) r.fail(at(field, 'fraction'), `numerator must not exceed denominator, got ${n}/${d}`);
    numerator = n ?? 0;
    denominator = d;
  }
  return backendRef ? { backendRef, numerator, denominator } : undefined;
}

function parsePathModifier(r: Reader, field: string, v: unknown): PathModifier | undefined {
  const p = r.object(field, v, { known: ['type', 'replaceFullPath', 'replacePrefixMatch'] });
  if (!p) return undefined;
  const type = r.string(at(field, 'type'), p.type, { required: true, enum: ['ReplaceFullPath', 'ReplacePrefixMatch'] }) as
    | PathModifier['type']
    | undefined;
  const full = r.string(at(field, 'replaceFullPath'), p.replaceFullPath, { maxLength: 1024 });
  const prefix = r.string(at(field, 'replacePrefixMatch'), p.replacePrefixMatch, { maxLength: 1024 });
  if (type === 'ReplaceFullPath') {
    if (full === undefined) return r.fail(at(field, 'replaceFullPath'), 'is required when type is "ReplaceFullPath"');
    if (prefix !== undefined) r.fail(at(field, 'replacePrefixMatch'), 'must not be set when type is "ReplaceFullPath"');
    return { type, value: full };
  }
  if (type === 'ReplacePrefixMatch') {
    if (prefix === undefined) return r.fail(at(field, 'replacePrefixMatch'), 'is required when type is "ReplacePrefixMatch"');
    if (full !== undefined) r.fail(at(field, 'replaceFullPath'), 'must not be set when type is "ReplacePrefixMatch"');
    return { type, value: prefix };
  }
  return undefined;
}

function parseRedirect(r: Reader, field: string, v: unknown): RequestRedirect | undefined {
  const m = r.object(field, v, { required: true, known: ['scheme', 'hostname', 'path', 'port', 'statusCode'] });
  if (!m) return undefined;
  const scheme = r.string(at(field, 'scheme'), m.scheme, { enum: ['http', 'https'] }) as RequestRedirect['scheme'];
  const hostname = r.string(at(field, 'hostname'), m.hostname, { pattern: PRECISE_HOSTNAME, patternHint: 'a hostname such as "example.com"' });
  const path = parsePathModifier(r, at(field, 'path'), m.path);
  const port = r.int(at(field, 'port'), m.port, { min: 1, max: 65535 });
  let statusCode: RequestRedirect['statusCode'] = 302;
  if (m.statusCode !== undefined) {
    const code = r.int(at(field, 'statusCode'), m.statusCode);
    if (code !== undefined && ![301, 302, 303, 307, 308].includes(code)) {
      r.fail(at(field, 'statusCode'), `must be one of 301, 302, 303, 307, 308, got ${show(code)}`);
    } else if (code !== undefined) {
      statusCode = code as RequestRedirect['statusCode'];
    }
  }
  return {
    ...(scheme === undefined ? {} : { scheme }),
    ...(hostname === undefined ? {} : { hostname }),
    ...(path === undefined ? {} : { path }),
    ...(port === undefined ? {} : { port }),
    statusCode,
  };
}

function parseRewrite(r: Reader, field: string, v: unknown): URLRewrite | undefined {
  const m = r.object(field, v, { required: true, known: ['hostname', 'path'] });
  if (!m) return undefined;
  const hostname = r.string(at(field, 'hostname'), m.hostname, { pattern: PRECISE_HOSTNAME, patternHint: 'a hostname such as "example.com"' });
  const path = parsePathModifier(r, at(field, 'path'), m.path);
  return { ...(hostname === undefined ? {} : { hostname }), ...(path === undefined ? {} : { path }) };
}

/** Rule names are unique within a route (a CRD rule). */
export function checkUniqueRuleNames(r: Reader, rules: readonly { name?: string }[]): void {
  const seen = new Set<string>();
  rules.forEach((rule, i) => {
    if (rule.name === undefined) return;
    if (seen.has(rule.name)) r.fail(`spec.rules[${i}].name`, `duplicate rule name ${show(rule.name)}: rule names must be unique within a route`);
    seen.add(rule.name);
  });
}

export const RULE_NAME = { pattern: SECTION_NAME, patternHint: 'a rule name (lower-case letters, digits, "-", ".")', maxLength: 253 };
