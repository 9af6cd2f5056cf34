// Route status: for every HTTPRoute and GRPCRoute, the Gateway API conditions per Service parent
// (Accepted, ResolvedRefs) with reasons from the spec and messages a person can act on. Pure.
import {
  DEFAULT_ROUTE_SEMANTICS,
  resolveBackend,
  resolveParent,
  routeBackendRefs,
  routeExtensionRefs,
  routeKey,
  routeProblems,
  type Model,
  type ParentRef,
  type RouteObject,
  type RouteSemanticsOptions,
  type Service,
} from '../model/index.js';

export const CONTROLLER_NAME = 'weft.dev/control-plane';

export interface RouteCondition {
  readonly type: 'Accepted' | 'ResolvedRefs';
  readonly status: 'True' | 'False';
  /** Accepted, NoMatchingParent, UnsupportedValue, IncompatibleFilters, Conflicted; ResolvedRefs, BackendNotFound, InvalidKind, RefNotPermitted. */
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
}

export interface RouteParentStatus {
  readonly parentRef: ParentRef;
  readonly controllerName: string;
  readonly conditions: readonly RouteCondition[];
}

export interface RouteStatus {
  readonly kind: RouteObject['kind'];
  readonly namespace: string;
  readonly name: string;
  /** One entry per Service parentRef; parents of other kinds (Gateways) are not Weft's to report. */
  readonly parents: readonly RouteParentStatus[];
}

function condition(route: RouteObject, c: Omit<RouteCondition, 'observedGeneration'>): RouteCondition {
  const gen = route.metadata.generation;
  return gen === undefined ? c : { ...c, observedGeneration: gen };
}

function resolvedRefs(model: Model, route: RouteObject, semantics: RouteSemanticsOptions): RouteCondition {
  const failures = [
    ...[...routeBackendRefs(route)]
      .map(({ ref, field, mirror }) => ({ res: resolveBackend(model, route, ref, field, semantics), mirror }))
      .flatMap(({ res, mirror }) => (res.ok ? [] : [{ ...res, mirror }])),
    ...routeExtensionRefs(route).map((e) => ({ reason: 'InvalidKind', message: e.message, mirror: false })),
  ];
  const first = failures[0];
  if (!first) return condition(route, { type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'All references resolved' });
  const effect = failures.some((f) => !f.mirror)
    ? 'Requests for an unresolved reference get 500 (for a backend, in proportion to its weight) until this is fixed'
    : 'Requests are not mirrored to an unresolved target until this is fixed';
  return condition(route, {
    type: 'ResolvedRefs',
    status: 'False',
    reason: first.reason,
    message: `${failures.map((f) => f.message).join('; ')}. ${effect}.`,
  });
}

/** Ports of `service` that an accepted GRPCRoute of the same namespace also claims. */
function grpcClaimedPorts(model: Model, route: RouteObject, service: Service): Map<number, string> {
  const claimed = new Map<number, string>();
  for (const other of model.grpcRoutes) {
    if (other.metadata.namespace !== route.metadata.namespace || routeProblems(other).length > 0) continue;
    other.spec.parentRefs.forEach((ref, i) => {
      const res = resolveParent(model, other, ref, i);
      if (res.kind !== 'attached' || res.service !== service) return;
      for (const p of res.ports) if (!claimed.has(p.port)) claimed.set(p.port, `${other.metadata.namespace}/${other.metadata.name}`);
    });
  }
  return claimed;
}

function accepted(model: Model, route: RouteObject, ref: ParentRef, index: number): RouteCondition | undefined {
  const res = resolveParent(model, route, ref, index);
  if (res.kind === 'foreign') return undefined;
  if (res.kind === 'rejected') return condition(route, { type: 'Accepted', status: 'False', reason: res.reason, message: res.message });
  const problems = routeProblems(route);
  if (problems.length > 0) {
    return condition(route, {
      type: 'Accepted',
      status: 'False',
      // Filters that exclude each other have a reason of their own; anything else is a value Weft cannot honour.
      reason: problems.some((p) => p.reason === 'IncompatibleFilters') ? 'IncompatibleFilters' : 'UnsupportedValue',
      message: `The route is not applied: ${problems.map((p) => `${p.field}: ${p.message}`).join('; ')}`,
    });
  }
  const svc = `${res.service.metadata.namespace}/${res.service.metadata.name}`;
  let ports = res.ports.map((p) => p.port);
  let note = '';
  if (route.kind === 'HTTPRoute') {
    const claimed = grpcClaimedPorts(model, route, res.service);
    const lost = ports.filter((p) => claimed.has(p));
    if (lost.length === ports.length) {
      const by = [...new Set(lost.map((p) => claimed.get(p)))].join(', ');
      return condition(route, {
        type: 'Accepted',
        status: 'False',
        reason: 'Conflicted',
        message: `GRPCRoute ${by} also attaches to Service ${svc} port ${lost.join(', ')}; a GRPCRoute takes precedence over an HTTPRoute on the same Service port, so this route is not applied there. Attach one of them to a different port`,
      });
    }
    if (lost.length > 0) note = ` (port ${lost.join(', ')} is taken by a GRPCRoute)`;
    ports = ports.filter((p) => !claimed.has(p));
  }
  const scope =
    route.metadata.namespace === res.service.metadata.namespace
      ? 'for clients in every namespace'
      : `for clients in namespace ${route.metadata.namespace} only (a consumer route)`;
  return condition(route, {
    type: 'Accepted',
    status: 'True',
    reason: 'Accepted',
    message: `Attached to Service ${svc} port ${ports.join(', ')}${note}, ${scope}`,
  });
}

/** Status of every route in the model, keyed by `Kind/namespace/name` (see `routeKey`). */
export function routeStatuses(model: Model, semantics: RouteSemanticsOptions = DEFAULT_ROUTE_SEMANTICS): Map<string, RouteStatus> {
  const out = new Map<string, RouteStatus>();
  for (const route of model.routes) {
    const refs = resolvedRefs(model, route, semantics);
    const parents: RouteParentStatus[] = [];
    route.spec.parentRefs.forEach((ref, i) => {
      const acc = accepted(model, route, ref, i);
      if (acc) parents.push({ parentRef: ref, controllerName: CONTROLLER_NAME, conditions: [acc, refs] });
    });
    out.set(routeKey(route), { kind: route.kind, namespace: route.metadata.namespace, name: route.metadata.name, parents });
  }
  return out;
}

export { routeKey };
