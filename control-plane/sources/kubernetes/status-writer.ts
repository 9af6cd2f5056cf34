// Writes route status back to the cluster through the status subresource (HTTPRoute and
// GRPCRoute, gateway.networking.k8s.io/v1): Weft's entries in status.parents (its
// controllerName) are replaced by routeStatuses(model); other controllers' entries are kept.
// Read-modify-write with resourceVersion: a conflict is dropped, the next change retries.
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../core/log.js';
import type { Model, ParentRef } from '../../model/index.js';
import { CONTROLLER_NAME, routeStatuses, type RouteCondition, type RouteStatus } from '../../status/index.js';
import { apiErrorMessage, isConflict, isNotFound } from './client.js';
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

const PLURAL: Record<string, string> = { HTTPRoute: 'httproutes', GRPCRoute: 'grpcroutes' };

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

/** Our entries as they should be, keeping lastTransitionTime where a condition's status did not change. */
export function desiredParents(status: RouteStatus, current: readonly WireParentStatus[], now: number): WireParentStatus[] {
  return status.parents.map((p) => {
    const ref = wireParentRef(p.parentRef);
    const before = current.find((c) => c.controllerName === CONTROLLER_NAME && JSON.stringify(c.parentRef) === JSON.stringify(ref));
    return {
      parentRef: ref,
      controllerName: CONTROLLER_NAME,
      conditions: p.conditions.map((c: RouteCondition) => {
        const prev = before?.conditions.find((x) => x.type === c.type);
        return {
          type: c.type,
          status: c.status,
          reason: c.reason,
          message: c.message,
          lastTransitionTime: prev && prev.status === c.status ? prev.lastTransitionTime : nowSeconds(now),
          ...(c.observedGeneration === undefined ? {} : { observedGeneration: c.observedGeneration }),
        };
      }),
    };
  });
}

function same(a: readonly WireParentStatus[], b: readonly WireParentStatus[]): boolean {
  const strip = (list: readonly WireParentStatus[]) =>
    JSON.stringify(list.map((p) => ({ ...p, conditions: p.conditions.map(({ lastTransitionTime: _t, ...rest }) => rest) })));
  return strip(a) === strip(b);
}

export interface StatusWriterOptions {
  readonly kc: KubeConfig;
  readonly raw: (kind: string, namespace: string, name: string) => RawObject | undefined;
  readonly log: Logger;
  readonly now?: () => number;
}

export class RouteStatusWriter {
  private readonly api: CustomObjectsApi;
  private running: Promise<void> | undefined;
  private again = false;
  /** Status writes that reached the API server (tests, monitoring). */
  writes = 0;

  constructor(private readonly opts: StatusWriterOptions) {
    this.api = opts.kc.makeApiClient(CustomObjectsApi);
  }

  /** Brings every route's status in line with `model`; one pass at a time, coalescing requests. */
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
      const body = { ...raw, status: { ...(raw.status as object | undefined), parents: [...others, ...desired] } };
      try {
        await this.api.replaceNamespacedCustomObjectStatus({
          group: GATEWAY_GROUP,
          version: 'v1',
          namespace: status.namespace,
          plural: PLURAL[status.kind] ?? '',
          name: status.name,
          body,
        });
        this.writes++;
      } catch (err) {
        // A conflict or a deleted route: the watch brings the new state, and another pass.
        if (isConflict(err) || isNotFound(err)) continue;
        this.opts.log.warn('could not write route status', { route: `${status.kind} ${status.namespace}/${status.name}`, error: apiErrorMessage(err) });
      }
    }
  }
}
