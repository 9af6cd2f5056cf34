// The routing decision: a pure function from (config snapshot, request facts, a random source)
// to a Plan. No I/O, no clock; the data path carries the plan out.
import type { ForwardAction, Mirror, RouteConfig } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { effectiveRoutes } from './assemble.js';
import { compiled, findVhost, type CompiledRoute, type CompiledVhost } from './compile.js';
import { redirectLocation, rewritePath } from './rewrite.js';
import type { DirectPlan, Plan, RequestFacts } from './types.js';

const NO_MIRRORS: readonly Mirror[] = Object.freeze([]);
const inlineByConfig = new WeakMap<ProxyConfig, ReadonlyMap<string, RouteConfig>>();

/** Route configurations carried inline by the snapshot's listeners (inbound chains), by name. */
function inlineRoutes(config: ProxyConfig): ReadonlyMap<string, RouteConfig> {
  let m = inlineByConfig.get(config);
  if (!m) {
    const found = new Map<string, RouteConfig>();
    for (const l of config.listeners.values()) {
      for (const c of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]) {
        const rc = c.filter.kind === 'http' ? c.filter.inlineRoutes : undefined;
        if (rc && !found.has(rc.name)) found.set(rc.name, rc);
      }
    }
    m = found;
    inlineByConfig.set(config, m);
  }
  return m;
}

/**
 * Plans one request against the route configuration named `routeConfigName` (from RDS, or
 * inline in a listener of the snapshot). `random` returns [0, 1); it is called once for the
 * weighted backend choice when there are several backends, then once per mirror whose fraction
 * is strictly between 0 and 1, in order.
 * Called per request: everything derived from the config is precompiled and cached.
 */
export function plan(config: ProxyConfig, routeConfigName: string, facts: RequestFacts, random: () => number): Plan {
  const rc = config.routes.get(routeConfigName) ?? inlineRoutes(config).get(routeConfigName);
  if (!rc) {
    return {
      kind: 'noRoute',
      reason: 'no_virtual_host',
      authority: facts.authority,
      detail: `route configuration ${JSON.stringify(routeConfigName)} is not in the proxy's config`,
    };
  }
  return planRoutes(effectiveRoutes(config, rc), facts, random);
}

/** Plans against a RouteConfig the caller already holds (e.g. a listener's inline routes). */
export function planRoutes(rc: RouteConfig, facts: RequestFacts, random: () => number): Plan {
  const cv = findVhost(compiled(rc), facts.authority);
  if (!cv) return { kind: 'noRoute', reason: 'no_virtual_host', authority: facts.authority };
  const path = facts.path;
  const q = path.indexOf('?');
  const pathOnly = q < 0 ? path : path.slice(0, q);
  for (const cr of cv.routes) {
    if (cr.test(facts, path, pathOnly)) return act(cv, cr, facts, pathOnly, random);
  }
  return { kind: 'noRoute', reason: 'no_route_match', authority: facts.authority, vhost: cv.vhost };
}

function act(cv: CompiledVhost, cr: CompiledRoute, facts: RequestFacts, pathOnly: string, random: () => number): Plan {
  const { route } = cr;
  const a = route.action;
  switch (a.kind) {
    case 'direct':
      return { kind: 'direct', vhost: cv.vhost, route, status: a.status, body: a.body ?? '', responseHeaders: cr.localResponseHeaders };
    case 'redirect':
      return {
        kind: 'redirect',
        vhost: cv.vhost,
        route,
        status: a.status,
        location: redirectLocation(a, route.match.path, facts, pathOnly),
        responseHeaders: cr.localResponseHeaders,
      };
    case 'forward':
      return forward(cv, cr, a, facts, pathOnly, random);
  }
}

function noBackend(cv: CompiledVhost, cr: CompiledRoute): DirectPlan {
  // Gateway API: a rule whose backends all have weight 0 answers 500.
  return {
    kind: 'direct',
    vhost: cv.vhost,
    route: cr.route,
    status: 500,
    body: `no backend: every backend of route ${JSON.stringify(cr.route.name)} has weight 0\n`,
    responseHeaders: cr.localResponseHeaders,
  };
}

function pickBackend(a: ForwardAction, random: () => number): number {
  const n = a.backends.length;
  if (n === 1) return 0;
  let r = random() * a.totalWeight;
  let last = 0;
  for (let i = 0; i < n; i++) {
    const w = a.backends[i]!.weight;
    if (w <= 0) continue;
    if (r < w) return i;
    r -= w;
    last = i;
  }
  return last; // floating-point remainder: the last backend with weight
}

function sampleMirrors(mirrors: readonly Mirror[], random: () => number): readonly Mirror[] {
  if (mirrors.length === 0) return NO_MIRRORS;
  let out: Mirror[] | undefined;
  for (let i = 0; i < mirrors.length; i++) {
    const m = mirrors[i]!;
    const keep = m.fraction >= 1 || (m.fraction > 0 && random() < m.fraction);
    if (keep && out) out.push(m);
    if (!keep && !out) out = mirrors.slice(0, i);
  }
  return out ?? mirrors;
}

function forward(
  cv: CompiledVhost, cr: CompiledRoute, a: ForwardAction, facts: RequestFacts, pathOnly: string, random: () => number,
): Plan {
  if (a.totalWeight <= 0) return noBackend(cv, cr);
  const i = pickBackend(a, random);
  return {
    kind: 'forward',
    vhost: cv.vhost,
    route: cr.route,
    cluster: a.backends[i]!.cluster,
    path: a.pathRewrite ? rewritePath(a.pathRewrite, cr.route.match.path, facts.path, pathOnly) : facts.path,
    authority: a.hostRewrite ?? facts.authority,
    requestHeaders: cr.requestHeaders[i]!,
    responseHeaders: cr.responseHeaders[i]!,
    timeoutMs: a.timeoutMs || undefined,
    retry: a.retry,
    mirrors: sampleMirrors(a.mirrors, random),
    clusterNotFoundStatus: a.clusterNotFoundStatus,
  };
}
