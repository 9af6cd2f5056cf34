// KubernetesSource: the config source for a control plane running in a cluster. One reflector
// (list + watch) per kind feeds the SAME Model file mode builds: every object goes through
// parseObject and buildModel; meshed Pods (injected, ambient or waypoints) become workloads. Publishes a new Model (debounced)
// whenever what the model would contain changes; `problems()` lists objects that did not parse.
import type { KubeConfig } from '@kubernetes/client-node';
import { createLogger, type Logger } from '../../../core/log.js';
import { Watch } from '../../../core/watch.js';
import {
  buildModel,
  DATAPLANE_MODE_LABEL,
  describeObject,
  EMPTY_MODEL,
  formatProblem,
  parseObject,
  type ConfigObject,
  type ConfigProblem,
  type Model,
  WAYPOINT_GATEWAY_CLASS,
} from '../../model/index.js';
import { watchedKinds, type WatchedKind } from './kinds.js';
import { endpointSliceDocument, isAmbientPod, isMeshedPod, podWorkload } from './objects.js';
import { Reflector, type RawObject, type ReflectorStats } from './reflector.js';

export interface KubernetesSourceOptions {
  readonly kc: KubeConfig;
  /** Quiet time after the last change before the model is rebuilt. Default 100 ms. */
  readonly debounceMs?: number;
  readonly log?: Logger;
  /** Replaces the kind table (tests). */
  readonly kinds?: readonly WatchedKind[];
  readonly watchTimeoutSeconds?: number;
}

export class KubernetesSource {
  /** The current Model; subscribers hear of every change. */
  readonly model = new Watch<Model>(EMPTY_MODEL);
  /** Called (debounced, after the model) whenever any watched object changed, status included. */
  readonly changed = new Watch<number>(0);

  private readonly reflectors: Reflector[];
  private readonly byKind = new Map<string, Reflector>();
  private readonly log: Logger;
  private readonly debounceMs: number;
  private currentProblems: ConfigProblem[] = [];
  private signature = '';
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private stopped = false;

  constructor(opts: KubernetesSourceOptions) {
    this.log = opts.log ?? createLogger('kubernetes');
    this.debounceMs = opts.debounceMs ?? 100;
    const kinds = opts.kinds ?? watchedKinds(opts.kc);
    this.reflectors = kinds.map(
      (k) =>
        new Reflector({
          kc: opts.kc,
          apiVersion: k.apiVersion,
          kind: k.kind,
          path: k.path,
          list: k.list,
          optional: k.optional,
          ...(k.labelSelector ? { labelSelector: k.labelSelector } : {}),
          ...(opts.watchTimeoutSeconds ? { watchTimeoutSeconds: opts.watchTimeoutSeconds } : {}),
          onChange: () => this.schedule(),
          log: this.log.child(k.kind),
        }),
    );
    for (const r of this.reflectors) this.byKind.set(r.kind, r);
  }

  /** Lists every kind (the Model is complete when this resolves), then keeps watching. */
  async start(): Promise<void> {
    this.stopped = false;
    await Promise.all(this.reflectors.map((r) => r.start()));
    this.started = true;
    this.publish();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const r of this.reflectors) void r.stop();
  }

  /** Objects that could not be read, each naming the object, field and value. */
  problems(): ConfigProblem[] {
    return [...this.currentProblems];
  }

  /** The object as the API last sent it (for status writes, which need its resourceVersion). */
  raw(kind: string, namespace: string | undefined, name: string): RawObject | undefined {
    return this.byKind.get(kind)?.get(namespace, name);
  }

  rawItems(kind: string): RawObject[] {
    return this.byKind.get(kind)?.items() ?? [];
  }

  /** Whether the API server serves `kind` (an optional kind's CRD may not be installed). */
  served(kind: string): boolean {
    return this.byKind.get(kind)?.isServed() ?? false;
  }

  /** Per kind: list / watch / bookmark / 410 counters and the last resourceVersion (monitoring, tests). */
  stats(): Record<string, ReflectorStats & { served: boolean }> {
    return Object.fromEntries(this.reflectors.map((r) => [r.kind, { ...r.stats, served: r.isServed() }]));
  }

  private schedule(): void {
    if (!this.started || this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.publish();
    }, this.debounceMs);
  }

  /** The documents the model is built from, in the same shapes the files hold. */
  private documents(): { doc: unknown; from: string }[] {
    const docs: { doc: unknown; from: string }[] = [];
    const nsLabels = (ns: string | undefined) => labelsOf(this.raw('Namespace', undefined, ns ?? ''));
    // Slice endpoints of pods with a sidecar or a node proxy go through it, never around it.
    const meshed = (p: RawObject) => isMeshedPod(p) || isAmbientPod(p, nsLabels(p.metadata?.namespace));
    const meshedPods = new Set(this.rawItems('Pod').filter(meshed).map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`));
    for (const r of this.reflectors) {
      for (const o of r.items()) {
        const from = `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name ?? ''}`;
        if (o.kind === 'Pod') {
          const w = podWorkload(o, nsLabels(o.metadata?.namespace));
          if (w) docs.push({ doc: w, from });
        } else if (o.kind === 'ServiceAccount' || o.kind === 'GatewayClass') {
          continue; // read for checks below, and for status: not config objects
        } else if (o.kind === 'Gateway' && (o.spec as { gatewayClassName?: unknown } | undefined)?.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) {
          continue; // another controller's Gateway: not Weft's to read or report on
        } else if (o.kind === 'EndpointSlice') {
          docs.push({ doc: endpointSliceDocument(o, (ns, name) => meshedPods.has(`${ns}/${name}`)), from });
        } else {
          docs.push({ doc: o, from });
        }
      }
    }
    return docs;
  }

  private publish(): void {
    const objects: ConfigObject[] = [];
    const problems: ConfigProblem[] = [];
    for (const { doc, from } of this.documents()) {
      const res = parseObject(doc);
      if (res.ok) objects.push(res.object);
      else for (const p of res.problems) problems.push({ ...p, object: res.object ?? from });
    }
    problems.push(...this.serviceAccountProblems(objects), ...this.podLabelProblems(objects));
    this.changed.set(this.changed.get() + 1);
    const signature = JSON.stringify([objects, problems]);
    if (signature === this.signature) return;
    const before = new Set(this.currentProblems.map(formatProblem));
    for (const p of problems) if (!before.has(formatProblem(p))) this.log.warn(`config problem: ${formatProblem(p)}`);
    this.signature = signature;
    this.currentProblems = problems;
    this.log.info('config loaded from the Kubernetes API', { objects: objects.length, problems: problems.length });
    this.model.set(buildModel(objects, problems));
  }

  /**
   * A Pod whose dataplane-mode label Weft does not know, and that is no workload (the model
   * reports those): the label counts as unset, and the operator hears of it.
   */
  private podLabelProblems(objects: readonly ConfigObject[]): ConfigProblem[] {
    const workloads = new Set(objects.filter((o) => o.kind === 'WorkloadEntry').map((o) => `${o.metadata.namespace}/${o.metadata.name}`));
    const out: ConfigProblem[] = [];
    for (const p of this.rawItems('Pod')) {
      const value = labelsOf(p)?.[DATAPLANE_MODE_LABEL];
      if (value === undefined || value === 'ambient' || value === 'none' || workloads.has(`${p.metadata?.namespace}/${p.metadata?.name}`)) continue;
      out.push({
        object: `Pod ${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`,
        field: `metadata.labels["${DATAPLANE_MODE_LABEL}"]`,
        message: `must be "ambient" or "none", got ${JSON.stringify(value)}; the label is ignored`,
      });
    }
    return out;
  }

  /** A WorkloadEntry (a VM) naming a ServiceAccount that does not exist cannot be certified as it. */
  private serviceAccountProblems(objects: readonly ConfigObject[]): ConfigProblem[] {
    const accounts = this.byKind.get('ServiceAccount');
    if (!accounts?.hasSynced()) return [];
    const out: ConfigProblem[] = [];
    for (const o of objects) {
      if (o.kind !== 'WorkloadEntry' || this.raw('Pod', o.metadata.namespace, o.metadata.name)) continue;
      if (accounts.get(o.metadata.namespace, o.spec.serviceAccount)) continue;
      out.push({
        object: describeObject(o),
        field: 'spec.serviceAccount',
        message: `ServiceAccount ${o.metadata.namespace}/${o.spec.serviceAccount} does not exist; create it, or the workload's token cannot prove that identity`,
      });
    }
    return out;
  }
}

function labelsOf(o: RawObject | undefined): Readonly<Record<string, string>> | undefined {
  return o?.metadata?.labels as Readonly<Record<string, string>> | undefined;
}
