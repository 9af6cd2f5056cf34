// Tests for the Model: lookups by namespace/name and workload key, label selection, slices by
// Service, and duplicates left out with a problem.
import { describe, expect, it } from 'vitest';
import { buildModel } from './model.js';
import { objectsFromYaml } from './testing.js';
import { formatProblem } from './types.js';

const CONFIG = `
apiVersion: v1
kind: Service
metadata: { name: reviews, namespace: shop }
spec: { selector: { app: reviews }, ports: [{ port: 9080 }] }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: shop, labels: { app: reviews, version: v1 } }
spec: { address: 127.0.0.1 }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: shop, labels: { app: reviews, version: v2 } }
spec: { address: 127.0.0.1 }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: other, labels: { app: reviews } }
spec: { address: 127.0.0.1 }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: reviews-extra, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
addressType: IPv4
endpoints: [{ addresses: [10.0.0.7] }]
`;

describe('buildModel', () => {
  const model = buildModel(objectsFromYaml(CONFIG));

  it('indexes services and workloads by namespace and name, and workloads by name.namespace', () => {
    expect(model.service('shop', 'reviews')?.spec.ports[0]?.port).toBe(9080);
    expect(model.service('other', 'reviews')).toBeUndefined();
    expect(model.workloadEntry('other', 'reviews-v1')?.metadata.namespace).toBe('other');
    expect(model.workloadByKey('reviews-v2.shop')?.metadata.labels.version).toBe('v2');
  });

  it('selects workloads of the same namespace only, by every selector label', () => {
    expect(model.selectWorkloads('shop', { app: 'reviews' }).map((w) => w.metadata.name)).toEqual(['reviews-v1', 'reviews-v2']);
    expect(model.selectWorkloads('shop', { app: 'reviews', version: 'v2' }).map((w) => w.metadata.name)).toEqual(['reviews-v2']);
  });

  it('finds hand-made EndpointSlices by their Service', () => {
    expect(model.endpointSlices('shop', 'reviews').map((s) => s.metadata.name)).toEqual(['reviews-extra']);
    expect(model.endpointSlices('other', 'reviews')).toEqual([]);
  });

  it('keeps the first of two objects with the same kind, namespace and name, and says so', () => {
    const objects = objectsFromYaml(`
apiVersion: v1
kind: Service
metadata: { name: a }
spec: { ports: [{ port: 1 }] }
---
apiVersion: v1
kind: Service
metadata: { name: a }
spec: { ports: [{ port: 2 }] }
`);
    const m = buildModel(objects, [{ field: 'x', message: 'carried over', file: 'f.yaml' }]);
    expect(m.services).toHaveLength(1);
    expect(m.services[0]?.spec.ports[0]?.port).toBe(1);
    expect(m.problems.map(formatProblem)).toEqual([
      'f.yaml: x: carried over',
      'Service default/a: metadata.name: Service default/a is defined more than once; the later copy is ignored',
    ]);
  });
});
