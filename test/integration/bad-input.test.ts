// Bad input through the local mesh: unknown hosts, services without endpoints and invalid config
// files are answered clearly and break nothing else.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { canaryConfig, originForm, startBackend, startTestMesh, viaProxy, waitReady, type TestBackend, type TestMesh, type TestSidecar } from '../support/mesh.js';

describe('bad input', () => {
  let mesh: TestMesh;
  let v1: TestBackend;
  let client: TestSidecar;

  beforeAll(async () => {
    v1 = await startBackend('v1');
    const files = canaryConfig(v1.port, 1, 100, 0);
    // reviews-v2 has no sidecar connected in this test: it has no endpoints.
    mesh = await startTestMesh(files);
    const [r1, c] = await Promise.all([mesh.sidecar('reviews-v1.default'), mesh.sidecar('client.default')]);
    client = c;
    await waitReady(r1, c);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200), { timeoutMs: 10_000 });
  });

  afterAll(async () => {
    await mesh?.close();
    await v1?.close();
  });

  it('answers 404 naming the host when no route matches (origin-form)', async () => {
    const res = await originForm(client.outbound, 'nope.default.svc.cluster.local');
    expect(res.status).toBe(404);
    const body = res.body;
    expect(body).toContain('nope.default.svc.cluster.local');
  });

  it('answers 503 naming the service when it has no endpoints', async () => {
    const res = await viaProxy(client.outbound, 'http://reviews-v2:9080/');
    expect(res.status).toBe(503);
    expect(res.body).toContain('reviews-v2');
  });

  it('reports an invalid file with file, field and value and keeps serving the last good config', async () => {
    mesh.write('route.yaml', `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs: [{ name: reviews-v1, port: 9080, weight: ninety }]
`);
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${mesh.cp.monitorAddress.port}/debug/status`);
      const status = JSON.stringify(await res.json());
      expect(status).toContain('route.yaml');
      expect(status).toContain('spec.rules[0].backendRefs[0].weight');
      expect(status).toContain('ninety');
    });
    for (let i = 0; i < 20; i++) expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200);
  });

  it('reports a backendRef to a Service that does not exist on the route status, and answers 500 for it', async () => {
    mesh.write('extra.yaml', `apiVersion: v1
kind: Service
metadata: { name: ratings, namespace: default }
spec:
  selector: { app: reviews, version: v1 }
  ports: [{ name: http, port: 9080, targetPort: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ratings, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: ratings, port: 9080 }]
  rules:
    - backendRefs: [{ name: ghost, port: 9080 }]
`);
    await eventually(async () => {
      const res = await fetch(`http://127.0.0.1:${mesh.cp.monitorAddress.port}/debug/status`);
      const status = JSON.stringify(await res.json());
      expect(status).toContain('BackendNotFound');
      expect(status).toContain('ghost');
    });
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://ratings:9080/')).status).toBe(500));
    expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200);
  });
});
