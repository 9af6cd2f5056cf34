// Parsing of Weft's own kinds in weft.dev/v1alpha1: WorkloadEntry (local workloads, modelled on
// Istio's), PeerAuthentication and AuthorizationPolicy (modelled on Istio's security API).
import { isIP } from 'node:net';
import { at, DNS_SUBDOMAIN, LABEL_KEY, Reader, show, type Obj } from './read.js';
import type {
  AuthorizationOperation,
  AuthorizationPolicy,
  AuthorizationRule,
  AuthorizationSource,
  MtlsMode,
  ObjectMeta,
  PeerAuthentication,
  WorkloadEntry,
} from './types.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PORT_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

export function parseWorkloadEntry(r: Reader, doc: Obj, metadata: ObjectMeta): WorkloadEntry | undefined {
  const spec = r.object('spec', doc.spec, {
    required: true,
    known: ['address', 'ports', 'serviceAccount', 'nodeName', 'command', 'env', 'labels'],
  });
  if (!spec) return undefined;
  if (spec.labels !== undefined) {
    // Istio puts them in spec; Weft follows Kubernetes and selects on metadata.labels.
    r.fail('spec.labels', 'is not read: put the labels Services select on in metadata.labels');
  }
  const address = r.string('spec.address', spec.address, { required: true, minLength: 1 });
  if (address !== undefined && address !== '' && isIP(address) === 0 && !DNS_SUBDOMAIN.test(address)) {
    r.fail('spec.address', `must be an IP address or a host name (no scheme or port), got ${show(address)}`);
  }
  const ports: Record<string, number> = {};
  const portsObj = r.object('spec.ports', spec.ports);
  for (const [name, port] of Object.entries(portsObj ?? {})) {
    if (!PORT_NAME.test(name)) {
      r.fail(at('spec.ports', name), `port names must be letters, digits, "-", "_" or ".", got ${show(name)}`);
      continue;
    }
    const p = r.int(at('spec.ports', name), port, { min: 1, max: 65535 });
    if (p !== undefined) ports[name] = p;
  }
  const serviceAccount =
    r.string('spec.serviceAccount', spec.serviceAccount, { pattern: DNS_SUBDOMAIN, patternHint: 'a service account name', maxLength: 253 }) ??
    'default';
  // Kubernetes node names are DNS-1123 subdomains; the node proxy's token file is named after it.
  const nodeName = r.string('spec.nodeName', spec.nodeName, {
    pattern: DNS_SUBDOMAIN,
    patternHint: 'a node name (a DNS-1123 subdomain: lower-case letters, digits, "-", ".")',
    maxLength: 253,
  });
  const command = spec.command === undefined ? undefined : r.stringList('spec.command', spec.command, { minItems: 1, minLength: 1 });
  const env = parseEnv(r, 'spec.env', spec.env);
  if (address === undefined) return undefined;
  return {
    kind: 'WorkloadEntry',
    apiVersion: 'weft.dev/v1alpha1',
    metadata,
    spec: { address, ports, serviceAccount, ...(nodeName === undefined ? {} : { nodeName }), ...(command ? { command } : {}), env },
  };
}

/** `env` as a mapping (`NAME: value`) or in the Kubernetes list form (`- name: N, value: v`). */
function parseEnv(r: Reader, field: string, v: unknown): Record<string, string> {
  const env: Record<string, string> = {};
  if (v === undefined || v === null) return env;
  if (Array.isArray(v)) {
    r.list(field, v, (f, item) => {
      const e = r.object(f, item, { required: true, known: ['name', 'value'] });
      const name = r.string(at(f, 'name'), e?.name, { required: true, pattern: ENV_NAME, patternHint: 'an environment variable name' });
      const value = r.string(at(f, 'value'), e?.value) ?? '';
      if (name !== undefined) env[name] = value;
      return name;
    });
    return env;
  }
  return r.stringMap(field, v, { keyPattern: ENV_NAME, keyHint: 'an environment variable name' });
}

// ---- PeerAuthentication ---------------------------------------------------------------------

const MTLS_MODES = ['STRICT', 'PERMISSIVE'];

function parseSelector(r: Reader, field: string, v: unknown): { matchLabels: Record<string, string> } | undefined {
  const s = r.object(field, v, { known: ['matchLabels'] });
  if (!s) return undefined;
  return { matchLabels: r.stringMap(at(field, 'matchLabels'), s.matchLabels, { keyPattern: LABEL_KEY }) };
}

export function parsePeerAuthentication(r: Reader, doc: Obj, metadata: ObjectMeta): PeerAuthentication | undefined {
  const spec = r.object('spec', doc.spec, { known: ['selector', 'mtls', 'portLevelMtls'] }) ?? {};
  const selector = parseSelector(r, 'spec.selector', spec.selector);
  const mtlsObj = r.object('spec.mtls', spec.mtls, { known: ['mode'] });
  const mode = mtlsObj ? (r.string('spec.mtls.mode', mtlsObj.mode, { required: true, enum: MTLS_MODES }) as MtlsMode | undefined) : undefined;
  const portLevelMtls: Record<number, { mode: MtlsMode }> = {};
  const ports = r.object('spec.portLevelMtls', spec.portLevelMtls);
  for (const [key, value] of Object.entries(ports ?? {})) {
    const f = at('spec.portLevelMtls', key);
    const port = Number(key);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      r.fail(f, `keys must be port numbers from 1 to 65535, got ${show(key)}`);
      continue;
    }
    const o = r.object(f, value, { required: true, known: ['mode'] });
    const m = r.string(at(f, 'mode'), o?.mode, { required: true, enum: MTLS_MODES }) as MtlsMode | undefined;
    if (m) portLevelMtls[port] = { mode: m };
  }
  if (ports && Object.keys(ports).length > 0 && !selector) {
    // As in Istio: ports belong to particular workloads, so port-level settings need a selector.
    r.fail('spec.portLevelMtls', 'requires spec.selector (port-level settings apply to selected workloads only)');
  }
  return {
    kind: 'PeerAuthentication',
    apiVersion: 'weft.dev/v1alpha1',
    metadata,
    spec: { ...(selector ? { selector } : {}), ...(mode ? { mtls: { mode } } : {}), portLevelMtls },
  };
}

// ---- AuthorizationPolicy --------------------------------------------------------------------

/** Istio's string match: exact, or one `*` at the start or end (prefix / suffix / presence). */
function wildcardList(r: Reader, field: string, v: unknown, what: string): string[] | undefined {
  if (v === undefined) return undefined;
  const items = r.stringList(field, v, { minLength: 1 });
  items.forEach((s, i) => {
    const inner = s.slice(1, -1);
    if (s.length > 1 && inner.includes('*')) r.fail(`${field}[${i}]`, `${what} may use "*" only at the start or end, got ${show(s)}`);
  });
  return items;
}

function portList(r: Reader, field: string, v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  // Istio writes ports as strings; accept both forms.
  return r.list(field, v, (f, item) => {
    const n = typeof item === 'string' && /^[0-9]+$/.test(item) ? Number(item) : item;
    return r.int(f, n, { min: 1, max: 65535 });
  });
}

function methodList(r: Reader, field: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  return r.stringList(field, v, { pattern: /^([A-Z]+|\*)$/, patternHint: 'an upper-case HTTP method such as "GET"' });
}

function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function parseSource(r: Reader, field: string, v: unknown): { source: AuthorizationSource } | undefined {
  const from = r.object(field, v, { required: true, known: ['source'] });
  const s = r.object(at(field, 'source'), from?.source, {
    required: true,
    known: ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'],
  });
  if (!s) return undefined;
  const f = at(field, 'source');
  return {
    source: defined({
      principals: wildcardList(r, at(f, 'principals'), s.principals, 'a principal'),
      notPrincipals: wildcardList(r, at(f, 'notPrincipals'), s.notPrincipals, 'a principal'),
      namespaces: wildcardList(r, at(f, 'namespaces'), s.namespaces, 'a namespace'),
      notNamespaces: wildcardList(r, at(f, 'notNamespaces'), s.notNamespaces, 'a namespace'),
    }),
  };
}

function parseOperation(r: Reader, field: string, v: unknown): { operation: AuthorizationOperation } | undefined {
  const to = r.object(field, v, { required: true, known: ['operation'] });
  const o = r.object(at(field, 'operation'), to?.operation, {
    required: true,
    known: ['methods', 'notMethods', 'paths', 'notPaths', 'ports', 'notPorts'],
  });
  if (!o) return undefined;
  const f = at(field, 'operation');
  return {
    operation: defined({
      methods: methodList(r, at(f, 'methods'), o.methods),
      notMethods: methodList(r, at(f, 'notMethods'), o.notMethods),
      paths: wildcardList(r, at(f, 'paths'), o.paths, 'a path'),
      notPaths: wildcardList(r, at(f, 'notPaths'), o.notPaths, 'a path'),
      ports: portList(r, at(f, 'ports'), o.ports),
      notPorts: portList(r, at(f, 'notPorts'), o.notPorts),
    }),
  };
}

export function parseAuthorizationPolicy(r: Reader, doc: Obj, metadata: ObjectMeta): AuthorizationPolicy | undefined {
  const spec = r.object('spec', doc.spec, { known: ['selector', 'targetRefs', 'action', 'rules'] }) ?? {};
  const selector = parseSelector(r, 'spec.selector', spec.selector);
  const targetRefs =
    spec.targetRefs === undefined
      ? undefined
      : r.list('spec.targetRefs', spec.targetRefs, (f, v) => {
          const ref = r.object(f, v, { required: true, known: ['group', 'kind', 'name'] });
          if (!ref) return undefined;
          const group = r.string(at(f, 'group'), ref.group) ?? '';
          const kind = r.string(at(f, 'kind'), ref.kind, { required: true, enum: ['Service'] });
          const name = r.string(at(f, 'name'), ref.name, { required: true });
          if (group !== '' && group !== 'core') r.fail(at(f, 'group'), `a Service's group is "" (core), got ${JSON.stringify(group)}`);
          return kind && name ? { group: '', kind: 'Service' as const, name } : undefined;
        });
  if (targetRefs && selector) r.fail('spec.targetRefs', 'cannot be used with spec.selector (a policy targets Services, enforced by their waypoint, or selects workloads)');
  const action = (r.string('spec.action', spec.action, { enum: ['ALLOW', 'DENY'] }) ?? 'ALLOW') as AuthorizationPolicy['spec']['action'];
  const rules = r.list('spec.rules', spec.rules, (f, v): AuthorizationRule | undefined => {
    const rule = r.object(f, v, { required: true, known: ['from', 'to'] });
    if (!rule) return undefined;
    return {
      from: r.list(at(f, 'from'), rule.from, (ff, s) => parseSource(r, ff, s)),
      to: r.list(at(f, 'to'), rule.to, (tf, o) => parseOperation(r, tf, o)),
    };
  });
  return {
    kind: 'AuthorizationPolicy',
    apiVersion: 'weft.dev/v1alpha1',
    metadata,
    spec: { ...(selector ? { selector } : {}), ...(targetRefs && targetRefs.length > 0 ? { targetRefs } : {}), action, rules },
  };
}
