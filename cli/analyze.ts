// `weft analyze [DIR]`: checks a directory of config before it is applied, for people and for
// CI — invalid files, routes whose parent or backends do not resolve (missing Service, missing
// ReferenceGrant), rules whose backends all have weight 0, rules never reached because an
// earlier one matches everything they would (within a route: shadowed; across routes:
// overlapping), Services that select no workload, ambient mode's silent failures. It reuses the control plane's own model,
// route status and translation, so it judges the config exactly as the control plane will.
import path from 'node:path';
import type { Plain } from '../api/codec.js';
import { DEFAULT_ROUTE_SEMANTICS, describeObject, WAYPOINT_GATEWAY_CLASS, type Model } from '../control-plane/model/index.js';
import type { FieldProblemWithFile } from '../control-plane/sources/file.js';
import { FileSource } from '../control-plane/sources/file.js';
import { gatewayStatuses } from '../control-plane/status/gateways.js';
import { routeStatuses } from '../control-plane/status/index.js';
import { outboundRouteConfiguration, serviceVip } from '../control-plane/translate/route-config.js';
import { quietLogger, table, type OutputFormat } from './output.js';

export interface Finding {
  readonly severity: 'error' | 'warning';
  /** Stable code for scripts: ConfigInvalid, NoMatchingParent, BackendNotFound, RefNotPermitted,
   *  ZeroWeights, ShadowedRule, OverlappingRoutes, NoEndpoints, ... */
  readonly code: string;
  /** `Kind namespace/name`. */
  readonly object: string;
  readonly message: string;
  /** Where it is, when known: file (and document), field path. */
  readonly file?: string;
  readonly field?: string;
}

const ERROR_FIRST = { error: 0, warning: 1 } as const;

/** Reads `dir` like the control plane does (without watching) and analyzes it. */
export async function analyzeDir(dir: string): Promise<Finding[]> {
  const source = new FileSource(dir, { debounceMs: 0, log: quietLogger });
  await source.start();
  source.stop();
  return analyzeModel(source.model.get(), source.problems(), dir);
}

/** Every finding, errors first, then by object. Pure. */
export function analyzeModel(model: Model, problems: readonly FieldProblemWithFile[], dir = ''): Finding[] {
  const out = new Map<string, Finding>();
  const add = (f: Finding) => out.set(`${f.code}|${f.object}|${f.field ?? ''}|${f.message}`, f);

  for (const p of problems) {
    const file = p.file && dir ? path.relative(dir, p.file) : p.file;
    add({
      severity: 'error',
      code: 'ConfigInvalid',
      object: p.object ?? '-',
      message: p.message,
      ...(file ? { file: p.document === undefined ? file : `${file}#${p.document}` } : {}),
      ...(p.field ? { field: p.field } : {}),
    });
  }
  routeFindings(model, add);
  weightFindings(model, add);
  shadowFindings(model, add);
  endpointFindings(model, add);
  ambientFindings(model, add);
  return [...out.values()].sort(
    (a, b) => ERROR_FIRST[a.severity] - ERROR_FIRST[b.severity] || a.object.localeCompare(b.object) || a.code.localeCompare(b.code) || a.message.localeCompare(b.message),
  );
}

/** Accepted / ResolvedRefs conditions that are False, as the control plane reports them. */
function routeFindings(model: Model, add: (f: Finding) => void): void {
  for (const [, status] of routeStatuses(model)) {
    const object = `${status.kind} ${status.namespace}/${status.name}`;
    status.parents.forEach((parent, i) => {
      for (const c of parent.conditions) {
        if (c.status !== 'False') continue;
        add({ severity: 'error', code: c.reason, object, message: c.message, ...(c.type === 'Accepted' ? { field: `spec.parentRefs[${i}]` } : {}) });
      }
    });
  }
}

function weightFindings(model: Model, add: (f: Finding) => void): void {
  for (const route of model.routes) {
    route.spec.rules.forEach((rule, i) => {
      if (rule.backendRefs.length === 0) return;
      if (rule.backendRefs.every((b) => b.weight === 0)) {
        add({
          severity: 'error',
          code: 'ZeroWeights',
          object: describeObject(route),
          field: `spec.rules[${i}].backendRefs`,
          message: `every backendRef of rule ${rule.name ?? i} has weight 0: requests it matches are answered 500`,
        });
      }
    });
  }
}

// ---- shadowing: on the routes as the proxies get them, in precedence order --------------------

type PathKind = 'exact' | 'prefix' | 'segment' | 'regex';
interface MatchShape {
  readonly path: { readonly kind: PathKind; readonly value: string };
  readonly headers: readonly string[];
  readonly query: readonly string[];
  readonly grpc: boolean;
}

function shapeOf(match: Plain): MatchShape {
  const path: MatchShape['path'] =
    typeof match.path === 'string'
      ? { kind: 'exact', value: match.path }
      : typeof match.path_separated_prefix === 'string'
        ? { kind: 'segment', value: match.path_separated_prefix }
        : typeof match.prefix === 'string'
          ? { kind: 'prefix', value: match.prefix }
          : { kind: 'regex', value: String((match.safe_regex as Plain | undefined)?.regex ?? '') };
  const list = (v: unknown) => (Array.isArray(v) ? v.map((x) => JSON.stringify(x)) : []);
  return { path, headers: list(match.headers), query: list(match.query_parameters), grpc: match.grpc !== undefined };
}

/** Every request `b` matches, `a` matches too. */
export function covers(a: MatchShape, b: MatchShape): boolean {
  if (a.grpc && !b.grpc) return false;
  if (!a.headers.every((h) => b.headers.includes(h)) || !a.query.every((q) => b.query.includes(q))) return false;
  const p = a.path;
  const q = b.path;
  if (p.kind === 'regex' || q.kind === 'regex') return p.kind === q.kind && p.value === q.value;
  if (p.kind === 'exact') return q.kind === 'exact' && q.value === p.value;
  if (p.kind === 'prefix') return q.value.startsWith(p.value);
  const base = p.value.replace(/\/+$/, '');
  if (base === '') return true;
  // A plain prefix `/api` also matches `/apix`: only `/api/...` stays inside segment `/api`.
  return q.kind === 'prefix' ? q.value.startsWith(`${base}/`) : q.value === base || q.value.startsWith(`${base}/`);
}

function describeShape(s: MatchShape): string {
  const path = s.path.kind === 'exact' ? `path ${s.path.value}` : s.path.kind === 'regex' ? `path ~ ${s.path.value}` : `path prefix ${s.path.value}`;
  const extra = s.headers.length + s.query.length;
  return extra > 0 ? `${path} + ${extra} header/query condition${extra > 1 ? 's' : ''}` : path;
}

function shadowFindings(model: Model, add: (f: Finding) => void): void {
  // Consumer routes make the table differ by client namespace: look at each one in use.
  const namespaces = new Set<string>(['default']);
  for (const o of model.objects) if (o.metadata.namespace) namespaces.add(o.metadata.namespace);
  for (const ns of [...namespaces].sort()) {
    const rc = outboundRouteConfiguration(model, ns, DEFAULT_ROUTE_SEMANTICS);
    for (const vh of (rc.virtual_hosts as Plain[] | undefined) ?? []) {
      const routes = ((vh.routes as Plain[] | undefined) ?? []).map((r) => ({ name: String(r.name ?? ''), shape: shapeOf((r.match as Plain | undefined) ?? {}) }));
      routes.forEach((later, j) => {
        const earlier = routes.slice(0, j).find((e) => covers(e.shape, later.shape));
        if (!earlier || earlier.name === later.name) return;
        const [lns, lroute] = later.name.split('/');
        const [ens, eroute] = earlier.name.split('/');
        const sameRoute = lns === ens && lroute === eroute;
        add({
          severity: 'warning',
          code: sameRoute ? 'ShadowedRule' : 'OverlappingRoutes',
          object: routeObject(model, later.name),
          message: `for ${String(vh.name)}: rule ${later.name} (${describeShape(later.shape)}) is never reached: ${sameRoute ? 'rule' : 'route rule'} ${earlier.name} (${describeShape(earlier.shape)}) comes first in precedence and matches every request it would`,
        });
      });
    }
  }
}

/** `HTTPRoute ns/name` (or GRPCRoute) of an Envoy route name `ns/name/rule`. */
function routeObject(model: Model, ruleName: string): string {
  const [ns, name] = ruleName.split('/');
  const r = model.routes.find((x) => x.metadata.namespace === ns && x.metadata.name === name);
  return r ? describeObject(r) : ruleName;
}

function endpointFindings(model: Model, add: (f: Finding) => void): void {
  for (const s of model.services) {
    if (s.spec.type === 'ExternalName') continue;
    const { namespace, name } = s.metadata;
    const selector = s.spec.selector;
    const selected = selector && Object.keys(selector).length > 0 ? model.selectWorkloads(namespace, selector).length : 0;
    if (selected === 0 && model.endpointSlices(namespace, name).length === 0) {
      add({
        severity: 'warning',
        code: 'NoEndpoints',
        object: describeObject(s),
        message: selector
          ? `selects no WorkloadEntry (selector ${Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(',')}) and has no EndpointSlice: requests to it get 503`
          : 'has no selector and no EndpointSlice: requests to it get 503',
      });
    }
  }
}

/**
 * Ambient mode's silent failures: a Service that names a waypoint with no replicas (its traffic
 * fails closed), or that has no cluster IP (the waypoint routes by VIP, so its traffic goes
 * around it), an ambient workload without a node (no node proxy will ever carry it), a policy
 * that targets a Service without a waypoint (nothing enforces it), and what a waypoint Gateway's
 * status says is wrong with it (a listener it cannot serve, no replica).
 */
function ambientFindings(model: Model, add: (f: Finding) => void): void {
  for (const s of model.services) {
    const waypoint = model.waypointFor(s);
    if (waypoint && waypoint.workloads.length === 0) {
      add({
        severity: 'error',
        code: 'WaypointNotFound',
        object: describeObject(s),
        message: `uses waypoint ${waypoint.namespace}/${waypoint.name} (label weft.dev/use-waypoint), but no workload is labelled gateway.networking.k8s.io/gateway-name=${waypoint.name} there: ambient clients' connections to it are refused`,
      });
    }
    if (waypoint && serviceVip(s) === undefined) {
      add({
        severity: 'warning',
        code: 'WaypointWithoutVip',
        object: describeObject(s),
        field: 'spec.clusterIP',
        message: `uses waypoint ${waypoint.namespace}/${waypoint.name} but has no cluster IP: a waypoint routes by the VIP its clients name, so node proxies and sidecars send this Service's traffic straight to its pods, past the waypoint's routes and policies`,
      });
    }
  }
  const waypoints = gatewayStatuses(model);
  for (const g of model.gateways) {
    if (g.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) {
      add({
        severity: 'warning',
        code: 'GatewayNotServed',
        object: describeObject(g),
        message: `has class ${g.spec.gatewayClassName}: Weft serves only waypoints (class ${WAYPOINT_GATEWAY_CLASS}); an ingress controller must serve this one`,
        field: 'spec.gatewayClassName',
      });
      continue;
    }
    // What the control plane writes in the Gateway's status: a listener it refuses, and no replica.
    const status = waypoints.get(`${g.metadata.namespace}/${g.metadata.name}`);
    status?.listeners.forEach((l, i) => {
      const refused = l.conditions.find((c) => c.type === 'Accepted' && c.status === 'False');
      if (refused) add({ severity: 'error', code: refused.reason, object: describeObject(g), field: `spec.listeners[${i}]`, message: refused.message });
    });
    const programmed = status?.conditions.find((c) => c.type === 'Programmed');
    if (programmed?.reason === 'NoResources') add({ severity: 'warning', code: 'WaypointNotDeployed', object: describeObject(g), message: programmed.message });
  }
  for (const w of model.workloadEntries) {
    if (model.dataplaneMode(w, false) === 'ambient' && !w.spec.nodeName) {
      add({
        severity: 'warning',
        code: 'AmbientWithoutNode',
        object: describeObject(w),
        message: 'is enrolled in ambient mode but has no spec.nodeName: no node proxy carries it, and none may ask for its identity',
        field: 'spec.nodeName',
      });
    }
  }
  for (const p of model.authorizationPolicies) {
    for (const [i, ref] of (p.spec.targetRefs ?? []).entries()) {
      const service = model.services.find((s) => s.metadata.namespace === p.metadata.namespace && s.metadata.name === ref.name);
      if (service && model.waypointFor(service)) continue;
      add({
        severity: 'warning',
        code: 'PolicyNotEnforced',
        object: describeObject(p),
        message: service
          ? `targets Service ${p.metadata.namespace}/${ref.name}, which uses no waypoint: a policy that targets a Service is enforced by its waypoint only`
          : `targets Service ${p.metadata.namespace}/${ref.name}, which does not exist`,
        field: `spec.targetRefs[${i}]`,
      });
    }
  }
}

/** The report and the exit code (1 with errors; with `strict`, warnings too). */
export function formatFindings(findings: readonly Finding[], output: OutputFormat, strict = false): { text: string; exitCode: number } {
  const errors = findings.filter((f) => f.severity === 'error').length;
  const warnings = findings.length - errors;
  const exitCode = errors > 0 || (strict && warnings > 0) ? 1 : 0;
  if (output === 'json') return { text: JSON.stringify({ errors, warnings, findings }, null, 2), exitCode };
  if (findings.length === 0) return { text: 'No problems found.', exitCode };
  const rows = findings.map((f) => [f.severity.toUpperCase(), f.code, f.object, [f.file, f.field].filter(Boolean).join(' ') || '-', f.message]);
  const summary = `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`;
  return { text: `${table(['SEVERITY', 'CODE', 'OBJECT', 'WHERE', 'MESSAGE'], rows)}\n\n${summary}`, exitCode };
}
