// Offline injection (`weft inject -f`): finds the pod (template) in each document of a multi-
// document YAML stream — Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
// CronJobs, and v1 Lists of them — and injects it with injectPod, the webhook's own code.
// Documents that are not workloads, or need no change, come out exactly as they went in.
import { parseAllDocuments, stringify } from 'yaml';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { injectPod, type InjectionResult } from './inject.js';
import type { Json } from './patch.js';
import type { InjectorSettings } from './settings.js';

type JsonObject = { [key: string]: Json };

export interface ManifestResult {
  /** 1-based document number, `Kind namespace/name`, and what happened. */
  readonly document: number;
  readonly object: string;
  readonly outcome: InjectionResult['kind'] | 'not-a-workload';
  readonly detail?: string;
}

const TEMPLATE_PATH: Readonly<Record<string, readonly string[]>> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

function obj(v: Json | undefined): JsonObject | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined;
}

function describe(o: JsonObject): string {
  const meta = obj(o.metadata) ?? {};
  const ns = typeof meta.namespace === 'string' ? `${meta.namespace}/` : '';
  return `${String(o.kind ?? '?')} ${ns}${String(meta.name ?? '')}`;
}

/** Injects one object (recursing into Lists); returns the new object, or the input when unchanged. */
function injectObject(o: JsonObject, settings: InjectorSettings, results: Omit<ManifestResult, 'document'>[]): JsonObject {
  if (o.kind === 'List' && Array.isArray(o.items)) {
    const items = o.items.map((i) => (obj(i) ? injectObject(obj(i)!, settings, results) : i));
    return items.every((i, k) => i === (o.items as Json[])[k]) ? o : { ...o, items };
  }
  const path = typeof o.kind === 'string' ? TEMPLATE_PATH[o.kind] : undefined;
  if (!path) {
    results.push({ object: describe(o), outcome: 'not-a-workload' });
    return o;
  }
  let template: JsonObject | undefined = o;
  for (const key of path) template = obj(template?.[key]);
  if (!template) {
    results.push({ object: describe(o), outcome: 'rejected', detail: `has no pod template at ${path.join('.')}` });
    return o;
  }
  const meta = obj(o.metadata) ?? {};
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : 'default';
  const result = injectPod(template, { settings, namespace, namespaceLabels: undefined });
  results.push({
    object: describe(o),
    outcome: result.kind,
    ...(result.kind === 'skipped' ? { detail: result.reason } : result.kind === 'rejected' ? { detail: result.message } : {}),
  });
  if (result.kind !== 'injected') return o;
  if (path.length === 0) return result.pod;
  // Rebuild the path down to the template with the injected one in place.
  const put = (node: JsonObject, keys: readonly string[]): JsonObject => {
    const [first, ...rest] = keys as [string, ...string[]];
    return { ...node, [first]: rest.length === 0 ? result.pod : put(obj(node[first]) ?? {}, rest) };
  };
  return put(o, path);
}

/** A document as written, without its own `---` marker (the separator is added between documents). */
function untouched(text: string): string {
  return text.replace(/^---[ \t]*\n/, '');
}

/**
 * Injects every workload in `yamlText`. Throws WeftError(CONFIG_INVALID) naming the document
 * when YAML is invalid or a pod is rejected (bad `weft.dev/*` annotations), so nothing half-
 * injected is printed.
 */
export function injectManifests(yamlText: string, settings: InjectorSettings): { output: string; results: ManifestResult[] } {
  const docs = parseAllDocuments(yamlText);
  const parts: string[] = [];
  const results: ManifestResult[] = [];
  docs.forEach((doc, i) => {
    const document = i + 1;
    if (doc.errors.length > 0) {
      throw new WeftError(ErrorCode.CONFIG_INVALID, `document ${document}: invalid YAML: ${doc.errors[0]?.message.split('\n')[0] ?? ''}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as Json;
    if (value === null || value === undefined) return;
    const o = obj(value);
    if (!o) {
      parts.push(untouched(doc.toString()));
      return;
    }
    const own: Omit<ManifestResult, 'document'>[] = [];
    const out = injectObject(o, settings, own);
    for (const r of own) results.push({ document, ...r });
    const rejected = own.find((r) => r.outcome === 'rejected');
    if (rejected) throw new WeftError(ErrorCode.CONFIG_INVALID, `document ${document} (${rejected.object}): ${rejected.detail ?? 'rejected'}`);
    parts.push(out === o ? untouched(doc.toString()) : stringify(out, { lineWidth: 0 }));
  });
  return { output: parts.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('---\n'), results };
}
