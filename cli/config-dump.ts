// `weft config-dump <proxy>`: the config one proxy gets, as the control plane will send it
// (/debug/config_dump on the monitor port) or as the proxy holds it (`--admin`: the proxy's own
// /config_dump). Tables of listeners, routes, clusters and endpoints by default; -o json prints
// the document as served.
import { ErrorCode, WeftError } from '../core/errors.js';
import { fetchJson, hostPort, table, type OutputFormat } from './output.js';

/** The one shape both sources are summarised into. */
export interface DumpSummary {
  readonly source: 'control-plane' | 'proxy';
  readonly versions: Readonly<Record<string, string>>;
  readonly listeners: readonly { name: string; address: string; chains: number }[];
  readonly routes: readonly { config: string; vhost: string; route: string; match: string; action: string }[];
  readonly clusters: readonly { name: string; type: string; lb: string; tls: boolean }[];
  readonly endpoints: readonly { cluster: string; address: string; workload: string; healthy: boolean }[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

// ---- control plane: Envoy resources as the translator made them ---------------------------

function envoyMatch(m: Obj): string {
  const parts: string[] = [];
  if (m.path !== undefined) parts.push(`path = ${str(m.path)}`);
  else if (m.path_separated_prefix !== undefined) parts.push(`path prefix ${str(m.path_separated_prefix)}`);
  else if (m.prefix !== undefined) parts.push(`prefix ${str(m.prefix)}`);
  else if (m.safe_regex !== undefined) parts.push(`path ~ ${str(obj(m.safe_regex).regex)}`);
  for (const h of arr(m.headers).map(obj)) {
    const sm = obj(h.string_match);
    const [kind, value] = Object.entries(sm).find(([k]) => k !== 'ignore_case') ?? [h.present_match ? 'present' : 'any', ''];
    const v = kind === 'safe_regex' ? `~ ${str(obj(value).regex)}` : kind === 'exact' ? `= ${str(value)}` : `${kind} ${str(value)}`.trim();
    parts.push(`${h.invert_match ? 'not ' : ''}${str(h.name)} ${v}`);
  }
  for (const q of arr(m.query_parameters).map(obj)) parts.push(`?${str(q.name)} ${JSON.stringify(q.string_match ?? 'present')}`);
  if (m.grpc !== undefined) parts.push('grpc');
  return parts.join(', ') || 'any';
}

function envoyAction(r: Obj): string {
  const route = obj(r.route);
  if (r.redirect !== undefined) return `redirect ${JSON.stringify(r.redirect)}`;
  if (r.direct_response !== undefined) return `direct ${str(obj(r.direct_response).status)}`;
  if (route.cluster !== undefined) return `→ ${str(route.cluster)}`;
  const wc = arr(obj(route.weighted_clusters).clusters).map(obj);
  if (wc.length > 0) return `→ ${wc.map((c) => `${str(c.name)} (${str(obj(c.weight).value ?? c.weight)})`).join(', ')}`;
  return '-';
}

function structField(meta: unknown, key: string): string {
  const weft = obj(obj(obj(meta).filter_metadata).weft);
  const field = obj(obj(weft.fields)[key]);
  return str(field.string_value ?? field.stringValue ?? weft[key]);
}

export function summariseControlPlaneDump(dump: unknown): DumpSummary {
  const types = obj(dump);
  const resources = (t: string) => arr(obj(types[t]).resources).map((r) => ({ name: str(obj(r).name), plain: obj(obj(r).resource) }));
  const versions = Object.fromEntries(Object.entries(types).map(([t, v]) => [t, str(obj(v).version)]));
  return {
    source: 'control-plane',
    versions,
    listeners: resources('LDS').map(({ name, plain }) => {
      const sa = obj(obj(plain.address).socket_address);
      return { name, address: sa.address ? `${str(sa.address)}:${str(sa.port_value)}` : plain.api_listener ? 'api_listener' : '-', chains: arr(plain.filter_chains).length };
    }),
    routes: [
      ...resources('RDS').flatMap(({ name, plain }) => arr(plain.virtual_hosts).map((vh) => ({ config: name, vh: obj(vh) }))),
      // VHDS virtual hosts (`<route configuration>/<virtual host>`) under their route configuration.
      ...resources('VHDS').map(({ name, plain }) => ({ config: name.slice(0, Math.max(0, name.indexOf('/'))), vh: obj({ ...plain, name: name.slice(name.indexOf('/') + 1) }) })),
    ].flatMap(({ config, vh }) =>
      arr(vh.routes).map(obj).map((r) => ({ config, vhost: str(vh.name), route: str(r.name) || '-', match: envoyMatch(obj(r.match)), action: envoyAction(r) })),
    ),
    clusters: resources('CDS').map(({ name, plain }) => ({
      name,
      type: str(plain.type) || 'EDS',
      lb: str(plain.lb_policy) || 'ROUND_ROBIN',
      tls: plain.transport_socket !== undefined,
    })),
    endpoints: resources('EDS').flatMap(({ name, plain }) =>
      arr(plain.endpoints)
        .map(obj)
        .flatMap((loc) =>
          arr(loc.lb_endpoints)
            .map(obj)
            .map((lb) => {
              const sa = obj(obj(obj(lb.endpoint).address).socket_address);
              const status = str(lb.health_status);
              return { cluster: name, address: `${str(sa.address)}:${str(sa.port_value)}`, workload: structField(lb.metadata, 'workload') || '-', healthy: status === '' || status === 'HEALTHY' || status === 'UNKNOWN' };
            }),
        ),
    ),
  };
}

// ---- proxy admin: the decoded domain config -------------------------------------------------

function domainMatch(m: Obj): string {
  const p = obj(m.path);
  const kind = str(p.kind);
  const path = kind === 'exact' ? `path = ${str(p.value)}` : kind === 'segmentPrefix' ? `path prefix ${str(p.value)}` : kind === 'prefix' ? `prefix ${str(p.value)}` : kind === 'regex' ? `path ~ ${str(p.regex)}` : '';
  const headers = arr(m.headers).map(obj).map((h) => `${h.invert ? 'not ' : ''}${str(h.name)} ${h.match ? `${str(obj(h.match).kind)} ${str(obj(h.match).value ?? obj(h.match).regex)}` : 'present'}`);
  return [path, ...headers, ...(m.grpc ? ['grpc'] : [])].filter(Boolean).join(', ') || 'any';
}

function domainAction(a: Obj): string {
  switch (a.kind) {
    case 'forward':
      return `→ ${arr(a.backends)
        .map(obj)
        .map((b) => (arr(a.backends).length > 1 ? `${str(b.cluster)} (${str(b.weight)})` : str(b.cluster)))
        .join(', ')}`;
    case 'redirect':
      return `redirect ${str(a.status)}`;
    case 'direct':
      return `direct ${str(a.status)}`;
    default:
      return '-';
  }
}

export function summariseProxyDump(dump: unknown): DumpSummary {
  const d = obj(dump);
  const xds = obj(d.xds);
  return {
    source: 'proxy',
    versions: Object.fromEntries(Object.entries(xds).map(([t, v]) => [t, str(obj(v).version)])),
    listeners: arr(d.listeners).map(obj).map((l) => {
      const a = obj(l.address);
      return { name: str(l.name), address: a.host ? `${str(a.host)}:${str(a.port)}` : '-', chains: arr(l.filterChains).length };
    }),
    routes: arr(d.routes)
      .map(obj)
      .flatMap((rc) =>
        arr(rc.virtualHosts)
          .map(obj)
          .flatMap((vh) => arr(vh.routes).map(obj).map((r) => ({ config: str(rc.name), vhost: str(vh.name), route: str(r.name) || '-', match: domainMatch(obj(r.match)), action: domainAction(obj(r.action)) }))),
      ),
    clusters: arr(d.clusters).map(obj).map((c) => ({ name: str(c.name), type: str(c.discovery), lb: str(c.lbPolicy), tls: c.tls !== undefined })),
    endpoints: arr(d.endpoints)
      .map(obj)
      .flatMap((ea) => arr(ea.endpoints).map(obj).map((e) => ({ cluster: str(ea.clusterName), address: `${str(e.host)}:${str(e.port)}`, workload: str(e.workload) || '-', healthy: e.healthy !== false }))),
  };
}

/** The tables. Pure. */
export function formatDump(proxy: string, s: DumpSummary): string {
  const versions = Object.entries(s.versions)
    .map(([t, v]) => `${t} ${v || '-'}`)
    .join('  ');
  const from = s.source === 'control-plane' ? 'as the control plane sends it' : 'as the proxy holds it';
  return [
    `Config of ${proxy} ${from}`,
    `Versions: ${versions || '-'}`,
    '',
    'LISTENERS',
    table(['NAME', 'ADDRESS', 'FILTER CHAINS'], s.listeners.map((l) => [l.name, l.address, String(l.chains)])),
    '',
    'ROUTES',
    table(['ROUTE CONFIG', 'VIRTUAL HOST', 'ROUTE', 'MATCH', 'ACTION'], s.routes.map((r) => [r.config, r.vhost, r.route, r.match, r.action])),
    '',
    'CLUSTERS',
    table(['NAME', 'TYPE', 'LB', 'MTLS'], s.clusters.map((c) => [c.name, c.type, c.lb, c.tls ? 'yes' : 'no'])),
    '',
    'ENDPOINTS',
    table(['CLUSTER', 'ADDRESS', 'WORKLOAD', 'HEALTHY'], s.endpoints.map((e) => [e.cluster, e.address, e.workload, e.healthy ? 'yes' : 'no'])),
  ].join('\n');
}

export async function runConfigDump(opts: { proxy: string; monitor: string; admin: string | undefined; output: OutputFormat }): Promise<string> {
  if (!opts.proxy) throw new WeftError(ErrorCode.USAGE, 'config-dump: name the proxy (NAME.NAMESPACE, as `weft status` lists it)');
  const dump = opts.admin
    ? await fetchJson(`${hostPort('--admin', opts.admin)}/config_dump`, `the admin port of ${opts.proxy}`)
    : await fetchJson(`${hostPort('--monitor', opts.monitor)}/debug/config_dump?proxy=${encodeURIComponent(opts.proxy)}`, 'the control plane');
  if (opts.output === 'json') return JSON.stringify(dump, null, 2);
  return formatDump(opts.proxy, opts.admin ? summariseProxyDump(dump) : summariseControlPlaneDump(dump));
}
