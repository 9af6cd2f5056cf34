// Writes status back to the cluster through the status subresource (gateway.networking.k8s.io/v1):
// on HTTPRoutes and GRPCRoutes, Weft's entries in status.parents (its controllerName) are
// replaced by routeStatuses(model), other controllers' entries kept; on Gateways of class
// weft-waypoint, the whole status (conditions, addresses, listeners) is gatewayStatuses(model),
// the class being Weft's. As Istio's control plane does for its own, it creates the GatewayClass
// weft-waypoint when it is missing, and accepts it (any other class naming Weft's controller is
// refused: Weft serves waypoints only). Read-modify-write with resourceVersion: a conflict is
// dropped, the next change retries.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../core/log.js';
import { WAYPOINT_GATEWAY_CLASS, type Model, type ParentRef } from '../../model/index.js';
import { gatewayStatuses, type GatewayCondition, type GatewayStatus } from '../../status/gateways.js';
import { CONTROLLER_NAME, routeStatuses, type RouteCondition, type RouteStatus } from '../../status/index.js';
import { apiErrorMessage, apiStatusCode, isConflict, isNotFound } from './client.js';
import { GATEWAY_GROUP } from './kinds.js';
import type { RawObject } from './reflector.js';

interface WireCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

interface WireParentStatus {
  parentRef: Record<string, unknown>;
  controllerName: string;
  conditions: WireCondition[];
}

const PLURAL: Record<string, string> = { HTTPRoute: 'httproutes', GRPCRoute: 'grpcroutes', Gateway: 'gateways', GatewayClass: 'gatewayclasses' };

function wireParentRef(ref: ParentRef): Record<string, unknown> {
  return {
    group: ref.group,
    kind: ref.kind,
    ...(ref.namespace === undefined ? {} : { namespace: ref.namespace }),
    name: ref.name,
    ...(ref.sectionName === undefined ? {} : { sectionName: ref.sectionName }),
    ...(ref.port === undefined ? {} : { port: ref.port }),
  };
}

function nowSeconds(now: number): string {
  return new Date(now).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Conditions on the wire, keeping lastTransitionTime where a condition's status did not change. */
function wireConditions(conditions: readonly (RouteCondition | GatewayCondition)[], before: readonly WireCondition[] | undefined, now: number): WireCondition[] {
  return conditions.map((c) => {
    const prev = before?.find((x) => x.type === c.type);
    return {
      type: c.type,
      status: c.status,
      reason: c.reason,
      message: c.message,
      lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : nowSeconds(now),
      ...(c.observedGeneration === undefined ? {} : { observedGeneration: c.observedGeneration }),
    };
  });
}

/** Our entries as they should be, keeping lastTransitionTime where a condition's status did not change. */
export function desiredParents(status: RouteStatus, current: readonly WireParentStatus[], now: number): WireParentStatus[] {
  return status.parents.map((p) => {
    const ref = wireParentRef(p.parentRef);
    const before = current.find((c) => c.controllerName === CONTROLLER_NAME && canonical(c.parentRef) === canonical(ref));
    return { parentRef: ref, controllerName: CONTROLLER_NAME, conditions: wireConditions(p.conditions, before?.conditions, now) };
  });
}

interface WireListenerStatus {
  name: string;
  supportedKinds: { group: string; kind: string }[];
  attachedRoutes: number;
  conditions: WireCondition[];
}

interface WireGatewayStatus {
  addresses: { type: string; value: string }[];
  conditions: WireCondition[];
  listeners: WireListenerStatus[];
}

/** A waypoint Gateway's status as it should be, keeping lastTransitionTime where a condition's status did not change. */
export function desiredGatewayStatus(status: GatewayStatus, current: Partial<WireGatewayStatus> | undefined, now: number): WireGatewayStatus {
  return {
    addresses: status.addresses.map((a) => ({ ...a })),
    conditions: wireConditions(status.conditions, current?.conditions, now),
    listeners: status.listeners.map((l) => ({
      name: l.name,
      supportedKinds: l.supportedKinds.map((k) => ({ ...k })),
      attachedRoutes: l.attachedRoutes,
      conditions: wireConditions(l.conditions, current?.listeners?.find((x) => x.name === l.name)?.conditions, now),
    })),
  };
}

/**
 * JSON with every object's keys sorted, and without the keys in `skip`: the API server sends a
 * custom resource back with its keys sorted, not in the order they were written, so values are
 * compared in this form.
 */
function canonical(v: unknown, skip: readonly string[] = []): string {
  return JSON.stringify(v, (key, value: unknown) => {
    if (skip.includes(key)) return undefined;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  });
}

/** Equal but for the conditions' lastTransitionTime. */
function same(a: unknown, b: unknown): boolean {
  return canonical(a, ['lastTransitionTime']) === canonical(b, ['lastTransitionTime']);
}

export interface StatusWriterOptions {
  readonly kc: KubeConfig;
  readonly raw: (kind: string, namespace: string, name: string) => RawObject | undefined;
  /** Every object of a kind, as last listed or watched (GatewayClasses). */
  readonly rawItems: (kind: string) => readonly RawObject[];
  /** Whether the API server serves a kind (an optional CRD may be missing). */
  readonly served: (kind: string) => boolean;
  readonly log: Logger;
  readonly now?: () => number;
}

export class StatusWriter {
  private readonly api: CustomObjectsApi;
  private running: Promise<void> | undefined;
  private again = false;
  /** Status writes that reached the API server, and passes over the model completed (tests, monitoring). */
  writes = 0;
  passes = 0;

  constructor(private readonly opts: StatusWriterOptions) {
    this.api = opts.kc.makeApiClient(CustomObjectsApi);
  }

  /** Brings every route's and waypoint Gateway's status in line with `model`; one pass at a time, coalescing requests. */
  reconcile(model: Model): Promise<void> {
    this.latest = model;
    this.again = true;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      // A request that arrived as the last pass was finishing.
      if (this.again) if (this.latest) void this.reconcile(this.latest);
    });
    return this.running;
  }

  private latest: Model | undefined;

  private async drain(): Promise<void> {
    while (this.again) {
      this.again = false;
      try {
        await this.pass(this.latest);
      } catch (err) {
        this.opts.log.warn('reconciling failed; the next change retries', { error: apiErrorMessage(err) });
      }
      this.passes++;
    }
  }

  private async pass(model: Model | undefined): Promise<void> {
    if (!model) return;
    const now = (this.opts.now ?? Date.now)();
    for (const status of routeStatuses(model).values()) {
      const raw = this.opts.raw(status.kind, status.namespace, status.name);
      if (!raw) continue;
      const current = (((raw.status as { parents?: WireParentStatus[] } | undefined)?.parents ?? []) as WireParentStatus[]).filter(Boolean);
      const ours = current.filter((p) => p.controllerName === CONTROLLER_NAME);
      const desired = desiredParents(status, current, now);
      if (same(ours, desired)) continue;
      const others = current.filter((p) => p.controllerName !== CONTROLLER_NAME);
      await this.write(status.kind, status.namespace, status.name, { ...raw, status: { ...(raw.status as object | undefined), parents: [...others, ...desired] } });
    }
    await this.waypointClass(now);
    for (const status of gatewayStatuses(model).values()) {
      const raw = this.opts.raw('Gateway', status.namespace, status.name);
      if (!raw) continue;
      const current = raw.status as Partial<WireGatewayStatus> | undefined;
      const desired = desiredGatewayStatus(status, current, now);
      if (current && same({ addresses: current.addresses, conditions: current.conditions, listeners: current.listeners }, desired)) continue;
      await this.write('Gateway', status.namespace, status.name, { ...raw, status: desired });
    }
  }

  /** GatewayClass weft-waypoint: created when missing, and every class naming Weft's controller given its Accepted condition. */
  private async waypointClass(now: number): Promise<void> {
    if (!this.opts.served('GatewayClass')) return;
    const classes = this.opts.rawItems('GatewayClass');
    if (!classes.some((c) => c.metadata?.name === WAYPOINT_GATEWAY_CLASS)) {
      try {
        await this.api.createClusterCustomObject({
          group: GATEWAY_GROUP,
          version: 'v1',
          plural: 'gatewayclasses',
          body: {
            apiVersion: `${GATEWAY_GROUP}/v1`,
            kind: 'GatewayClass',
            metadata: { name: WAYPOINT_GATEWAY_CLASS, labels: { 'app.kubernetes.io/managed-by': 'weft' } },
            spec: { controllerName: CONTROLLER_NAME, description: 'Weft waypoints: L7 for Services using weft.dev/use-waypoint' },
          },
        });
        this.writes++;
      } catch (err) {
        // Someone created it meanwhile: the watch brings it, and another pass accepts it.
        if (apiStatusCode(err) !== 409) this.opts.log.warn('could not create GatewayClass weft-waypoint', { error: apiErrorMessage(err) });
      }
    }
    for (const raw of classes) {
      const name = raw.metadata?.name ?? '';
      if ((raw.spec as { controllerName?: unknown } | undefined)?.controllerName !== CONTROLLER_NAME) continue;
      const generation = raw.metadata?.generation as number | undefined;
      const condition: GatewayCondition =
        name === WAYPOINT_GATEWAY_CLASS
          ? { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'Gateways of this class are Weft waypoints' }
          : { type: 'Accepted', status: 'False', reason: 'Unsupported', message: `Weft serves waypoints only, of class ${WAYPOINT_GATEWAY_CLASS}` };
      const current = (raw.status as { conditions?: WireCondition[] } | undefined)?.conditions;
      const desired = wireConditions([generation === undefined ? condition : { ...condition, observedGeneration: generation }], current, now);
      if (current && same(current, desired)) continue;
      await this.write('GatewayClass', undefined, name, { ...raw, status: { ...(raw.status as object | undefined), conditions: desired } });
    }
  }

  private async write(kind: string, namespace: string | undefined, name: string, body: RawObject): Promise<void> {
    try {
      if (namespace === undefined) await this.api.replaceClusterCustomObjectStatus({ group: GATEWAY_GROUP, version: 'v1', plural: PLURAL[kind] ?? '', name, body });
      else await this.api.replaceNamespacedCustomObjectStatus({ group: GATEWAY_GROUP, version: 'v1', namespace, plural: PLURAL[kind] ?? '', name, body });
      this.writes++;
    } catch (err) {
      // A conflict or a deleted object: the watch brings the new state, and another pass.
      if (isConflict(err) || isNotFound(err)) return;
      this.opts.log.warn('could not write status', { object: `${kind} ${namespace === undefined ? '' : `${namespace}/`}${name}`, error: apiErrorMessage(err) });
    }
  }
}
