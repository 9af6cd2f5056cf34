// `weft inject` golden files: test/k8s/golden/workloads.yaml (every workload kind, plus objects
// to leave alone) injected with native sidecars and with regular containers must equal the
// checked-in outputs; the outputs are valid objects of their kinds by the Kubernetes OpenAPI
// schemas, and injecting an output again changes nothing. WEFT_UPDATE_GOLDEN=1 rewrites them.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runInject } from '../../cli/inject.js';
import { isWeftError } from '../../core/errors.js';

const GOLDEN = path.join(import.meta.dirname, 'golden');
const INPUT = path.join(GOLDEN, 'workloads.yaml');
const FIXED = { image: 'ghcr.io/weft-mesh/weft:0.1.0' };
const tmp = mkdtempSync(path.join(os.tmpdir(), 'weft-inject-'));

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const VALIDATORS: Record<string, new (data: never) => { validate(): void }> = {
  Deployment,
  StatefulSet,
  DaemonSet,
  Job,
  CronJob,
  Pod,
  Service,
};

function golden(name: string, actual: string): void {
  const file = path.join(GOLDEN, name);
  if (process.env.WEFT_UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

function containersOf(doc: Record<string, unknown>): { init: string[]; main: string[] } {
  const kind = doc.kind as string;
  let t = doc as Record<string, any>;
  if (kind === 'CronJob') t = t.spec.jobTemplate.spec.template;
  else if (kind !== 'Pod') t = t.spec.template;
  const names = (l: { name: string }[] | undefined) => (l ?? []).map((c) => c.name);
  return { init: names(t.spec.initContainers), main: names(t.spec.containers) };
}

describe('weft inject (golden files)', () => {
  for (const [mode, native] of [
    ['native', true],
    ['regular', false],
  ] as const) {
    it(`${mode} sidecars`, () => {
      const notes: string[] = [];
      const out = runInject({ filename: INPUT, settings: { ...FIXED, nativeSidecars: native }, note: (l) => notes.push(l) });
      golden(`workloads.${mode}.yaml`, out);
      expect(notes).toEqual([
        'Deployment bookinfo/legacy: not injected: the pod opted out (weft.dev/inject: "false")',
        'Deployment kube-system/coredns: not injected: namespace kube-system is never injected',
      ]);
      const docs = parseAllDocuments(out).map((d) => d.toJS() as Record<string, unknown>);
      expect(docs.map((d) => `${d.kind}/${(d.metadata as { name: string }).name}`)).toEqual([
        'Service/reviews',
        'Deployment/reviews-v1',
        'StatefulSet/ledger',
        'DaemonSet/node-agent',
        'Job/report',
        'CronJob/nightly',
        'Pod/debug',
        'Deployment/legacy',
        'Deployment/coredns',
      ]);
      for (const d of docs) {
        const Model = VALIDATORS[d.kind as string];
        expect(Model, `a validator for ${String(d.kind)}`).toBeDefined();
        expect(() => new Model!(d as never).validate(), `${String(d.kind)} validates`).not.toThrow();
      }
      const ledger = containersOf(docs[2]!);
      if (native) {
        expect(ledger).toEqual({ init: ['weft-init', 'weft-proxy', 'migrate'], main: ['ledger'] });
      } else {
        expect(ledger).toEqual({ init: ['migrate', 'weft-init'], main: ['weft-proxy', 'ledger'] });
      }
      expect(containersOf(docs[7]!)).toEqual({ init: [], main: ['legacy'] });
      // The untouched documents are printed as they were written, comments included.
      expect(out).toContain('# Opted out: printed unchanged, comments and all.');

      // Idempotent: an injected file injects to itself.
      const again = path.join(tmp, `${mode}.yaml`);
      writeFileSync(again, out);
      expect(runInject({ filename: again, settings: { ...FIXED, nativeSidecars: native } })).toBe(out);
    });
  }

  it('refuses a workload with an invalid annotation, naming document, object, annotation and value', () => {
    const file = path.join(tmp, 'bad.yaml');
    writeFileSync(
      file,
      readFileSync(INPUT, 'utf8').replace('weft.dev/proxy-memory: 256Mi', 'weft.dev/proxy-memory: lots'),
    );
    let error: unknown;
    try {
      runInject({ filename: file, settings: FIXED });
    } catch (err) {
      error = err;
    }
    expect(isWeftError(error)).toBe(true);
    expect((error as Error).message).toMatch(/^document 2 \(Deployment bookinfo\/reviews-v1\): annotation weft\.dev\/proxy-memory="lots": must be a positive Kubernetes quantity/);
  });
});
