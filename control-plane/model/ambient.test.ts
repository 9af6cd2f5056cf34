// Tests for ambient mode in the model: spec.nodeName, enrollment by the workload's or its
// Namespace's label (the workload's wins, a sidecar wins over both), workloads by node and by
// identity, which waypoint a Service uses, and labels with unknown values reported and ignored.
import { describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { buildModel } from './model.js';
import { parseObject } from './parse.js';
import { modelFromYaml, objectsFromYaml } from './testing.js';
import { formatProblem, type WorkloadEntry } from './types.js';

function workload(name: string, ns: string, labels: Record<string, string> = {}, extra = ''): string {
  return `
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${ns}, labels: ${JSON.stringify(labels)} ${extra} }
spec: { address: 10.0.0.1, nodeName: node-a, serviceAccount: sa-${name} }`;
}

function namespace(name: string, labels: Record<string, string> = {}): string {
  return `
apiVersion: v1
kind: Namespace
metadata: { name: ${name}, labels: ${JSON.stringify(labels)} }`;
}

const MODE = 'weft.dev/dataplane-mode';

describe('WorkloadEntry spec.nodeName', () => {
  const parse = (yaml: string) => parseObject(parseDocument(yaml).toJS());

  it('is read when present, absent otherwise', () => {
    const res = parse(workload('a', 'shop'));
    expect(res.ok && (res.object as WorkloadEntry).spec.nodeName).toBe('node-a');
    const none = parse(workload('a', 'shop').replace('nodeName: node-a, ', ''));
    expect(none.ok && 'nodeName' in (none.object as WorkloadEntry).spec).toBe(false);
  });

  it('must be a DNS-1123 name, reported with its field path and value', () => {
    const res = parse(workload('a', 'shop').replace('node-a', 'Node_A'));
    expect(res.ok).toBe(false);
    expect(res.ok ? [] : res.problems).toEqual([
      { field: 'spec.nodeName', message: 'must be a node name (a DNS-1123 subdomain: lower-case letters, digits, "-", "."), got "Node_A"' },
    ]);
  });
});

describe('dataplaneMode', () => {
  const model = modelFromYaml(
    namespace('amb', { [MODE]: 'ambient' }),
    namespace('plain'),
    namespace('off', { [MODE]: 'none' }),
    workload('by-ns', 'amb'),
    workload('opt-out', 'amb', { [MODE]: 'none' }),
    workload('own', 'plain', { [MODE]: 'ambient' }),
    workload('unlabelled', 'plain'),
    workload('own-in-off', 'off', { [MODE]: 'ambient' }),
    workload('by-off', 'off'),
    workload('no-ns-object', 'ghost', { [MODE]: 'ambient' }),
    workload('waypoint', 'amb', { 'gateway.networking.k8s.io/gateway-name': 'wp' }),
    workload('injected', 'amb', {}, ', annotations: { weft.dev/status: "{}" }'),
    workload('bad-value', 'amb', { [MODE]: 'Ambient' }),
  );
  const w = (ns: string, name: string) => {
    const found = model.workloadEntry(ns, name);
    if (!found) throw new Error(`no workload ${ns}/${name}`);
    return found;
  };

  it.each([
    ['the namespace label enrolls', 'amb', 'by-ns', 'ambient'],
    ['`none` on the workload opts out of an ambient namespace', 'amb', 'opt-out', 'none'],
    ["the workload's own label enrolls it in a plain namespace", 'plain', 'own', 'ambient'],
    ['nothing enrolls nothing', 'plain', 'unlabelled', 'none'],
    ["the workload's label wins over the namespace's `none`", 'off', 'own-in-off', 'ambient'],
    ['`none` on a namespace enrolls nobody', 'off', 'by-off', 'none'],
    ['a workload label counts without a Namespace object', 'ghost', 'no-ns-object', 'ambient'],
    ['a waypoint replica is never carried by the node proxy', 'amb', 'waypoint', 'none'],
    ['a pod the injector gave a sidecar is a sidecar workload', 'amb', 'injected', 'sidecar'],
    ['an unknown value counts as unset (the namespace decides)', 'amb', 'bad-value', 'ambient'],
  ] as const)('%s', (_name, ns, name, mode) => {
    expect(model.dataplaneMode(w(ns, name), false)).toBe(mode);
  });

  it('a connected sidecar always wins', () => {
    for (const x of model.workloadEntries) expect(model.dataplaneMode(x, true)).toBe('sidecar');
  });

  it('ambientWorkloadsOnNode: enrolled workloads naming that node, nothing for other nodes', () => {
    expect(model.ambientWorkloadsOnNode('node-a').map((x) => `${x.metadata.namespace}/${x.metadata.name}`)).toEqual([
      'amb/bad-value',
      'amb/by-ns',
      'ghost/no-ns-object',
      'off/own-in-off',
      'plain/own',
    ]);
    expect(model.ambientWorkloadsOnNode('node-b')).toEqual([]);
    expect(model.nodes).toEqual(['node-a']);
  });

  it('workloadsWithIdentity: by namespace and service account', () => {
    expect(model.workloadsWithIdentity('amb', 'sa-by-ns').map((x) => x.metadata.name)).toEqual(['by-ns']);
    expect(model.workloadsWithIdentity('plain', 'sa-by-ns')).toEqual([]);
  });
});

describe('waypointFor', () => {
  const service = (name: string, labels: Record<string, string> = {}, selector: Record<string, string> = { app: name }) => `
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: shop, labels: ${JSON.stringify(labels)} }
spec: { selector: ${JSON.stringify(selector)}, ports: [{ port: 80 }] }`;
  const WP = 'weft.dev/use-waypoint';
  const model = modelFromYaml(
    namespace('shop', { [WP]: 'ns-wp' }),
    service('own', { [WP]: 'svc-wp' }),
    service('inherits'),
    service('opts-out', { [WP]: 'none' }),
    service('waypoint-svc', {}, { 'gateway.networking.k8s.io/gateway-name': 'ns-wp' }),
    workload('svc-wp-1', 'shop', { 'gateway.networking.k8s.io/gateway-name': 'svc-wp' }),
    workload('ns-wp-1', 'shop', { 'gateway.networking.k8s.io/gateway-name': 'ns-wp' }),
    workload('ns-wp-2', 'shop', { 'gateway.networking.k8s.io/gateway-name': 'ns-wp' }),
    workload('elsewhere', 'other', { 'gateway.networking.k8s.io/gateway-name': 'svc-wp' }),
  );
  const of = (name: string) => {
    const wp = model.waypointFor(model.service('shop', name)!);
    return wp && { name: wp.name, namespace: wp.namespace, workloads: wp.workloads.map((x) => x.metadata.name) };
  };

  it("the Service's label wins over its Namespace's; replicas are the labelled workloads of that namespace", () => {
    expect(of('own')).toEqual({ name: 'svc-wp', namespace: 'shop', workloads: ['svc-wp-1'] });
    expect(of('inherits')).toEqual({ name: 'ns-wp', namespace: 'shop', workloads: ['ns-wp-1', 'ns-wp-2'] });
  });

  it('`none` opts a Service out; a waypoint is not its own waypoint', () => {
    expect(of('opts-out')).toBeUndefined();
    expect(of('waypoint-svc')).toBeUndefined();
  });

  it('no label anywhere: no waypoint', () => {
    const m = modelFromYaml(namespace('shop'), service('x'));
    expect(m.waypointFor(m.service('shop', 'x')!)).toBeUndefined();
  });
});

describe('ambient labels with values Weft does not know', () => {
  it('are problems naming the object, field and value, and count as unset', () => {
    const model = buildModel(
      objectsFromYaml(
        [
          namespace('shop', { [MODE]: 'sidecar', 'weft.dev/use-waypoint': 'Not_A_Name' }),
          workload('a', 'shop', { [MODE]: 'yes' }),
          workload('b', 'shop', { [MODE]: 'ambient' }).replace('nodeName: node-a, ', ''),
          workload('c', 'shop', { [MODE]: 'ambient' }),
        ].join('\n---\n'),
      ),
    );
    expect(model.problems.map(formatProblem)).toEqual([
      'Namespace shop: metadata.labels["weft.dev/dataplane-mode"]: must be "ambient" or "none", got "sidecar"; the label is ignored',
      'Namespace shop: metadata.labels["weft.dev/use-waypoint"]: must name a waypoint (a DNS-1123 subdomain) or be "none", got "Not_A_Name"; the label is ignored',
      'WorkloadEntry shop/a: metadata.labels["weft.dev/dataplane-mode"]: must be "ambient" or "none", got "yes"; the label is ignored',
      'WorkloadEntry shop/b: spec.nodeName: is required for a workload labelled weft.dev/dataplane-mode=ambient: it names the node whose proxy carries the workload',
    ]);
    expect(model.dataplaneMode(model.workloadEntry('shop', 'a')!, false)).toBe('none');
    expect(model.dataplaneMode(model.workloadEntry('shop', 'c')!, false)).toBe('ambient');
  });
});
