// `weft simulate --from <workload> 'GET http://reviews/api -H x-user:test'`: what the mesh would
// do with one request, offline. The model is translated for the workload's sidecar exactly as
// the control plane would, every resource goes through the proxy's own decoders (so a config
// the proxy would reject says so), the proxy's planner decides, and the destination sidecar's
// authorization policy gives its verdict. Nothing is sent anywhere.
import type { Endpoint, HeaderMutation, RouteMatch, StringMatch } from '../api/domain.js';
import { pack } from '../api/codec.js';
import { RESOURCE_TYPES } from '../api/registry.js';
import { PUSH_ORDER, SHORT_NAME, TypeUrl } from '../api/types.js';
import { spiffeId } from '../certs/spiffe.js';
import { ErrorCode, WeftError } from '../core/errors.js';
import type { Model } from '../control-plane/model/index.js';
import { FileSource } from '../control-plane/sources/file.js';
import { translate, type ProxyNode } from '../control-plane/translate/index.js';
import { endpointsOf } from '../proxy/balance/registry.js';
import { readRequest, type DownstreamRequest } from '../proxy/http/facts.js';
import { rbacAuthorizer } from '../proxy/inbound/authz.js';
import { selectFilterChain } from '../proxy/inbound/chain.js';
import { plan as planRequest } from '../proxy/route/plan.js';
import type { Plan } from '../proxy/route/types.js';
import { ProxyState } from '../proxy/state/state.js';
import type { ProxyConfig } from '../proxy/state/types.js';
import { quietLogger, table, type OutputFormat } from './output.js';

/** The inbound port every simulated sidecar is taken to listen on (the default). */
const SIMULATED_INBOUND_PORT = 15006;

export interface SimulatedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: readonly (readonly [string, string])[];
}

export interface Simulation {
  readonly from: string;
  readonly request: { readonly method: string; readonly url: string; readonly headers: Readonly<Record<string, string>> };
  /** Problems the sidecar's decoders would NACK (it would keep its previous config). */
  readonly rejected: readonly string[];
  readonly outcome: Plan['kind'];
  readonly vhost?: string;
  readonly route?: { readonly name: string; readonly match: string };
  readonly noRoute?: { readonly reason: string; readonly detail?: string };
  readonly backends?: readonly { readonly cluster: string; readonly weight: number; readonly share: string; readonly chosen: boolean }[];
  readonly upstream?: { readonly authority: string; readonly path: string };
  readonly filters: readonly string[];
  readonly timeoutMs?: number;
  readonly retry?: string;
  readonly mirrors?: readonly string[];
  readonly redirect?: { readonly status: number; readonly location: string };
  readonly direct?: { readonly status: number; readonly body: string };
  readonly endpoints?: readonly { readonly address: string; readonly workload: string; readonly identity: string }[];
  readonly policy?: readonly { readonly workload: string; readonly verdict: 'ALLOW' | 'DENY'; readonly reason: string }[];
}

/** `GET http://host/path -H name:value ...` (method optional, GET). */
export function parseRequestLine(line: string): SimulatedRequest {
  const tokens = [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3] ?? '');
  let method = 'GET';
  if (tokens[0] && !tokens[0].includes('://')) method = tokens.shift()!.toUpperCase();
  const url = tokens.shift();
  if (!url || !/^https?:\/\/[^/]/.test(url)) throw new WeftError(ErrorCode.USAGE, `simulate: expected 'METHOD http://host/path [-H name:value ...]', got ${JSON.stringify(line)}`);
  const headers: [string, string][] = [];
  while (tokens.length > 0) {
    const flag = tokens.shift()!;
    const h = tokens.shift();
    const colon = h?.indexOf(':') ?? -1;
    if (flag !== '-H' || !h || colon <= 0) throw new WeftError(ErrorCode.USAGE, `simulate: expected -H name:value, got ${JSON.stringify([flag, h].filter(Boolean).join(' '))}`);
    headers.push([h.slice(0, colon).trim().toLowerCase(), h.slice(colon + 1).trim()]);
  }
  return { method, url, headers };
}

/** A small deterministic [0,1) source for `--seed` (mulberry32). */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


function node(model: Model, workload: string): { node: ProxyNode; key: string } {
  const [name = '', ns = 'default'] = workload.split('.');
  const we = model.workloadEntry(ns, name);
  if (!we) {
    const known = model.workloadEntries.map((w) => `${w.metadata.name}.${w.metadata.namespace}`).join(', ') || 'none';
    throw new WeftError(ErrorCode.USAGE, `simulate: no WorkloadEntry ${ns}/${name} in the config (workloads: ${known})`);
  }
  return { node: { id: `${name}.${ns}`, workload: name, namespace: ns, mode: 'sidecar' }, key: `${name}.${ns}` };
}

/** The config `workload`'s sidecar would hold, through the proxy's own decoders. */
function sidecarConfig(model: Model, workload: string, trustDomain: string): { config: ProxyConfig; rejected: string[] } {
  const { node: n } = node(model, workload);
  const directory = (key: string) => (model.workloadByKey(key) ? { inboundPort: SIMULATED_INBOUND_PORT } : undefined);
  const set = translate(model, n, directory, { trustDomain, mtls: true });
  const state = new ProxyState();
  const rejected: string[] = [];
  for (const typeUrl of PUSH_ORDER) {
    const type = RESOURCE_TYPES.get(typeUrl);
    if (!type) continue;
    const decoded = new Map<string, unknown>();
    for (const [name, plain] of set[typeUrl] ?? []) {
      const r = type.decode(pack(typeUrl, plain));
      if (r.ok) decoded.set(r.name, r.value);
      else for (const p of r.problems) rejected.push(`${SHORT_NAME[typeUrl]} ${name}: ${p.field}: ${p.message}`);
    }
    state.apply(typeUrl, decoded, 'simulated');
  }
  return { config: state.config.get(), rejected };
}

function stringMatch(m: StringMatch): string {
  return m.kind === 'regex' ? `~ ${m.regex.source}` : m.kind === 'exact' ? `= ${m.value}` : `${m.kind} ${m.value}`;
}

export function describeMatch(m: RouteMatch): string {
  const p = m.path;
  const parts = [p.kind === 'exact' ? `path = ${p.value}` : p.kind === 'regex' ? `path ~ ${p.regex.source}` : `path prefix ${p.value}`];
  for (const h of m.headers) parts.push(`${h.invert ? 'not ' : ''}header ${h.name} ${h.match ? stringMatch(h.match) : h.present === false ? 'absent' : 'present'}`);
  for (const q of m.query) parts.push(`query ${q.name} ${q.match ? stringMatch(q.match) : 'present'}`);
  if (m.grpc) parts.push('gRPC');
  return parts.join(', ');
}

function describeMutations(side: 'request' | 'response', mutations: readonly HeaderMutation[]): string[] {
  const out: string[] = [];
  for (const m of mutations) {
    for (const a of m.add) out.push(`${side} header ${a.action === 'overwrite' ? 'set' : a.action === 'append' ? 'add' : 'add-if-absent'} ${a.name}: ${a.value}`);
    for (const r of m.remove) out.push(`${side} header remove ${r}`);
  }
  return out;
}

/** Runs the simulation. Pure apart from the random source. */
export function simulate(model: Model, from: string, req: SimulatedRequest, opts: { trustDomain?: string; random?: () => number } = {}): Simulation {
  const trustDomain = opts.trustDomain ?? 'cluster.local';
  const source = node(model, from);
  const we = model.workloadEntry(source.node.namespace, source.node.workload)!;
  const sourceId = spiffeId(trustDomain, source.node.namespace, we.spec.serviceAccount || 'default');
  const { config, rejected } = sidecarConfig(model, from, trustDomain);

  // The request as the outbound listener reads it (absolute-form, as an HTTP_PROXY client sends it).
  const url = new URL(req.url);
  const fake = { method: req.method, url: url.href, rawHeaders: ['Host', url.host, ...req.headers.flat()], httpVersionMajor: 1, headers: {} };
  const info = readRequest(fake as unknown as DownstreamRequest, false);
  const plan = planRequest(config, 'outbound', info.facts, opts.random ?? Math.random);

  const base: Simulation = {
    from: source.key,
    request: { method: req.method, url: req.url, headers: Object.fromEntries(req.headers) },
    rejected,
    outcome: plan.kind,
    filters: [],
  };
  switch (plan.kind) {
    case 'noRoute':
      return { ...base, ...(plan.vhost ? { vhost: plan.vhost.name } : {}), noRoute: { reason: plan.reason, ...(plan.detail ? { detail: plan.detail } : {}) } };
    case 'redirect':
      return {
        ...base,
        vhost: plan.vhost.name,
        route: { name: plan.route.name, match: describeMatch(plan.route.match) },
        redirect: { status: plan.status, location: plan.location },
        filters: describeMutations('response', plan.responseHeaders),
      };
    case 'direct':
      return {
        ...base,
        vhost: plan.vhost.name,
        route: { name: plan.route.name, match: describeMatch(plan.route.match) },
        direct: { status: plan.status, body: plan.body },
        filters: describeMutations('response', plan.responseHeaders),
      };
    case 'forward':
      break;
  }
  const action = plan.route.action;
  const backends =
    action.kind === 'forward'
      ? action.backends.map((b) => ({
          cluster: b.cluster,
          weight: b.weight,
          share: action.totalWeight > 0 ? `${Math.round((1000 * b.weight) / action.totalWeight) / 10}%` : '0%',
          chosen: b.cluster === plan.cluster,
        }))
      : [];
  const filters = [
    ...(info.path !== plan.path ? [`path rewrite ${info.path} → ${plan.path}`] : []),
    ...(info.authority !== plan.authority ? [`host rewrite ${info.authority} → ${plan.authority}`] : []),
    ...describeMutations('request', plan.requestHeaders),
    ...describeMutations('response', plan.responseHeaders),
  ];
  const cluster = config.clusters.get(plan.cluster);
  const endpoints: readonly Endpoint[] = cluster ? endpointsOf(config, cluster) : [];
  return {
    ...base,
    vhost: plan.vhost.name,
    route: { name: plan.route.name, match: describeMatch(plan.route.match) },
    backends,
    upstream: { authority: plan.authority, path: plan.path },
    filters,
    ...(plan.timeoutMs ? { timeoutMs: plan.timeoutMs } : {}),
    ...(plan.retry ? { retry: `${plan.retry.numRetries} on ${[...plan.retry.retryOn].join(',')}` } : {}),
    ...(plan.mirrors.length > 0 ? { mirrors: plan.mirrors.map((m) => m.cluster) } : {}),
    endpoints: endpoints.map((e) => ({ address: `${e.host}:${e.port}`, workload: e.workload ?? '-', identity: e.identity ?? '-' })),
    policy: policyVerdicts(model, endpoints, sourceId, req.method, plan, trustDomain),
  };
}

/** Each destination workload's inbound authorization for the request as it arrives there. */
function policyVerdicts(
  model: Model,
  endpoints: readonly Endpoint[],
  sourceId: string,
  method: string,
  plan: Plan & { kind: 'forward' },
  trustDomain: string,
): Simulation['policy'] {
  const authorize = rbacAuthorizer(quietLogger);
  const out: { workload: string; verdict: 'ALLOW' | 'DENY'; reason: string }[] = [];
  const seen = new Set<string>();
  for (const e of endpoints) {
    if (!e.workload || seen.has(e.workload) || !model.workloadByKey(e.workload)) continue;
    seen.add(e.workload);
    const { config } = sidecarConfig(model, e.workload, trustDomain);
    const listener = config.listeners.get('inbound');
    const chain = listener && selectFilterChain(listener, { secure: true, targetPort: e.targetPort });
    if (!chain) {
      out.push({ workload: e.workload, verdict: 'DENY', reason: `its sidecar has no inbound filter chain for port ${e.targetPort ?? '?'}` });
      continue;
    }
    const d = authorize(
      { authority: plan.authority, method, path: plan.path, scheme: 'http', header: () => undefined },
      { identity: sourceId, address: undefined, secure: true, targetPort: e.targetPort },
      chain,
    );
    out.push({ workload: e.workload, verdict: d.allow ? 'ALLOW' : 'DENY', reason: d.reason });
  }
  return out;
}

/** Human output. Pure. */
export function formatSimulation(s: Simulation): string {
  const rows: [string, string][] = [];
  const headers = Object.entries(s.request.headers).map(([k, v]) => ` -H ${k}:${v}`).join('');
  rows.push(['request', `${s.request.method} ${s.request.url}${headers}  (from ${s.from})`]);
  for (const r of s.rejected) rows.push(['REJECTED', `the sidecar would NACK this config: ${r}`]);
  if (s.vhost) rows.push(['virtual host', s.vhost]);
  if (s.noRoute) {
    const why =
      s.noRoute.reason === 'no_virtual_host'
        ? 'the host is not a mesh Service: an HTTP_PROXY request passes through to it (outbound policy ALLOW_ANY), an origin-form one gets 404'
        : 'the Service has routes but none matches: 404';
    rows.push(['no route', `${s.noRoute.reason}: ${s.noRoute.detail ?? why}`]);
  }
  if (s.route) rows.push(['rule', `${s.route.name}  (${s.route.match})`]);
  if (s.redirect) rows.push(['redirect', `${s.redirect.status} → ${s.redirect.location}`]);
  if (s.direct) rows.push(['direct response', `${s.direct.status}${s.direct.body ? ` ${JSON.stringify(s.direct.body)}` : ''}`]);
  for (const b of s.backends ?? []) rows.push([rows.some(([k]) => k === 'backend') ? '' : 'backend', `${b.cluster}  weight ${b.weight} (${b.share})${b.chosen ? '  ← chosen this time' : ''}`]);
  if (s.upstream) rows.push(['sent as', `Host ${s.upstream.authority}, path ${s.upstream.path}`]);
  for (const f of s.filters) rows.push([rows.some(([k]) => k === 'filters') ? '' : 'filters', f]);
  if (s.timeoutMs) rows.push(['timeout', `${s.timeoutMs} ms`]);
  if (s.retry) rows.push(['retry', s.retry]);
  for (const m of s.mirrors ?? []) rows.push(['mirror', m]);
  for (const e of s.endpoints ?? []) rows.push([rows.some(([k]) => k === 'endpoints') ? '' : 'endpoints', `${e.address}  ${e.workload}  ${e.identity}`]);
  if (s.endpoints && s.endpoints.length === 0) rows.push(['endpoints', 'none: the request would get 503 (no healthy upstream)']);
  for (const p of s.policy ?? []) rows.push([rows.some(([k]) => k === 'policy') ? '' : 'policy', `${p.workload}: ${p.verdict} (${p.reason})`]);
  return table(['STEP', 'RESULT'], rows);
}

export async function runSimulate(opts: { config: string; from: string; request: string; output: OutputFormat; seed?: number; trustDomain?: string }): Promise<string> {
  const req = parseRequestLine(opts.request);
  const source = new FileSource(opts.config, { debounceMs: 0, log: quietLogger });
  await source.start();
  source.stop();
  const s = simulate(source.model.get(), opts.from, req, {
    ...(opts.trustDomain ? { trustDomain: opts.trustDomain } : {}),
    ...(opts.seed !== undefined ? { random: seeded(opts.seed) } : {}),
  });
  return opts.output === 'json' ? JSON.stringify(s, null, 2) : formatSimulation(s);
}
