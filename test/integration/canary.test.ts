// The local mesh end to end on loopback: real control plane, real xDS, real sidecars with mTLS,
// real HTTP. A canary split by weight, and a live weight change under load with no failures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import {
  canaryConfig,
  canaryRoute,
  originForm,
  startBackend,
  startTestMesh,
  viaProxy,
  waitReady,
  type TestBackend,
  type TestMesh,
  type TestSidecar,
} from '../support/mesh.js';

describe('canary split through the local mesh', () => {
  let mesh: TestMesh;
  let v1: TestBackend;
  let v2: TestBackend;
  let client: TestSidecar;

  beforeAll(async () => {
    v1 = await startBackend('v1');
    v2 = await startBackend('v2');
    mesh = await startTestMesh(canaryConfig(v1.port, v2.port, 90, 10));
    const [r1, r2, c] = await Promise.all([
      mesh.sidecar('reviews-v1.default'),
      mesh.sidecar('reviews-v2.default'),
      mesh.sidecar('client.default'),
    ]);
    client = c;
    await waitReady(r1, r2, c);
    // Both versions' endpoints must be in the client's config before we count.
    await eventually(async () => {
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) seen.add((await viaProxy(client.outbound, 'http://reviews:9080/')).headers['x-version'] as string);
      expect([...seen].sort()).toEqual(['v1', 'v2']);
    }, { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    await mesh?.close();
    await Promise.all([v1?.close(), v2?.close()]);
  });

  it('sends 90 % ± 5 % of 1000 requests to v1', async () => {
    const counts: Record<string, number> = {};
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(Array.from({ length: 50 }, () => viaProxy(client.outbound, 'http://reviews:9080/')));
      for (const r of results) {
        expect(r.status).toBe(200);
        const v = r.headers['x-version'] as string;
        counts[v] = (counts[v] ?? 0) + 1;
      }
    }
    expect((counts.v1 ?? 0) + (counts.v2 ?? 0)).toBe(1000);
    expect(counts.v1! / 1000).toBeGreaterThanOrEqual(0.85);
    expect(counts.v1! / 1000).toBeLessThanOrEqual(0.95);
  });

  it('routes every name form of the Service, origin-form and absolute-form', async () => {
    for (const host of ['reviews', 'reviews:9080', 'reviews.default', 'reviews.default.svc:9080', 'reviews.default.svc.cluster.local:9080']) {
      const abs = await viaProxy(client.outbound, `http://${host}/x`);
      expect(abs.status, host).toBe(200);
      const origin = await originForm(client.outbound, host, '/x');
      expect(origin.status, host).toBe(200);
      expect(JSON.parse(origin.body).path).toBe('/x');
    }
  });

  it('applies a weight change within 2 s with no failed request while 200 rps flow', async () => {
    const failures: string[] = [];
    const seen: Array<{ t: number; v: string }> = [];
    let running = true;
    // 200 rps: 10 requests every 50 ms, bounded to 15 s whatever happens.
    const stopAt = Date.now() + 15_000;
    const load = (async () => {
      while (running && Date.now() < stopAt) {
        const tick = Date.now();
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            try {
              const r = await viaProxy(client.outbound, 'http://reviews:9080/');
              if (r.status !== 200) failures.push(`HTTP ${r.status}: ${r.body}`);
              else seen.push({ t: Date.now(), v: r.headers['x-version'] as string });
            } catch (err) {
              failures.push(String(err));
            }
          }),
        );
        await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - tick))));
      }
    })();

    await new Promise((r) => setTimeout(r, 1000)); // load before the change, on purpose
    const changedAt = Date.now();
    mesh.write('route.yaml', canaryRoute(0, 100));
    // Everything that starts 2 s after the edit must go to v2.
    await eventually(() => {
      const after = seen.filter((s) => s.t > changedAt + 2000);
      expect(after.length).toBeGreaterThan(100);
    }, { timeoutMs: 10_000 });
    running = false;
    await load;
    const late = seen.filter((s) => s.t > changedAt + 2000);
    expect(late.filter((s) => s.v !== 'v2')).toEqual([]);
    expect(failures).toEqual([]);
    mesh.write('route.yaml', canaryRoute(90, 10));
  });
});
