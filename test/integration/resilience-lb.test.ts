// Load balancing across a real local mesh (control plane, sidecars with mTLS, backends): the
// default P2C + peak-EWMA sends most traffic to the fast endpoint of two, a consistent-hash
// Service keeps each user on one endpoint, and a round-robin Service spreads evenly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMesh, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { call, controlledBackend, ok, serviceYaml, workloadYaml, type ControlledBackend } from './resilience-support.js';

let mesh: TestMesh;
let client: TestSidecar;
const backends = new Map<string, ControlledBackend>();

/** Which backend answered: the x-version header carries its workload name. */
const served = (r: { headers: Record<string, unknown> }) => String(r.headers['x-version']);

beforeAll(async () => {
  const workloads: Array<[string, string]> = [
    ['reviews-fast', 'reviews'],
    ['reviews-slow', 'reviews'],
    ['carts-a', 'carts'],
    ['carts-b', 'carts'],
    ['carts-c', 'carts'],
    ['ratings-a', 'ratings'],
    ['ratings-b', 'ratings'],
    ['ratings-c', 'ratings'],
  ];
  for (const [w] of workloads) backends.set(w, await controlledBackend(w));
  backends.get('reviews-slow')!.behaviour = (_req, res) => ok(res, 'reviews-slow', 300);
  mesh = await startTestMesh({
    'services.yaml': [
      serviceYaml('reviews'),
      serviceYaml('carts', { 'weft.dev/lb-hash-key': 'header:x-user' }),
      serviceYaml('ratings', { 'weft.dev/lb-policy': 'ROUND_ROBIN' }),
    ].join('---\n'),
    'workloads.yaml': [...workloads.map(([w, app]) => workloadYaml(w, app, backends.get(w)!.port)), workloadYaml('client', 'client')].join('---\n'),
  });
  const sidecars = await Promise.all(workloads.map(([w]) => mesh.sidecar(`${w}.default`)));
  client = await mesh.sidecar('client.default');
  await waitReady(client, ...sidecars);
}, 120_000);

afterAll(async () => {
  await mesh?.close();
  for (const b of backends.values()) await b.close();
});

/** Waits until the client's sidecar reaches every endpoint of `host` (all sidecars connected). */
async function warm(host: string, expected: string[]): Promise<void> {
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < expected.length; i++) {
    const r = await call(client.outbound, host, { headers: { 'x-user': `warm-${i}` } });
    if (r.status === 200) seen.add(served(r));
    else await new Promise((res) => setTimeout(res, 50));
  }
  expect([...seen].sort()).toEqual(expected);
}

describe('load balancing', () => {
  it('P2C + peak-EWMA (the default) prefers the fast endpoint over the slow one', async () => {
    await warm('reviews', ['reviews-fast', 'reviews-slow']);
    const counts = { 'reviews-fast': 0, 'reviews-slow': 0 } as Record<string, number>;
    // Three callers in parallel, 60 requests each.
    await Promise.all(
      [0, 1, 2].map(async () => {
        for (let i = 0; i < 60; i++) {
          const r = await call(client.outbound, 'reviews');
          expect(r.status).toBe(200);
          counts[served(r)]!++;
        }
      }),
    );
    expect(counts['reviews-fast']! / 180).toBeGreaterThan(0.9);
  });

  it('consistent hash on a header keeps each user on one endpoint, and spreads users', async () => {
    await warm('carts', ['carts-a', 'carts-b', 'carts-c']);
    const byUser = new Map<string, Set<string>>();
    for (let round = 0; round < 5; round++) {
      for (let u = 0; u < 12; u++) {
        const r = await call(client.outbound, 'carts', { headers: { 'x-user': `user-${u}` } });
        expect(r.status).toBe(200);
        const set = byUser.get(`user-${u}`) ?? new Set<string>();
        set.add(served(r));
        byUser.set(`user-${u}`, set);
      }
    }
    for (const [user, endpoints] of byUser) expect([user, [...endpoints]]).toEqual([user, [expect.any(String)]]);
    const used = new Set([...byUser.values()].flatMap((s) => [...s]));
    expect(used.size).toBeGreaterThanOrEqual(2);
  });

  it('round robin spreads requests evenly', async () => {
    await warm('ratings', ['ratings-a', 'ratings-b', 'ratings-c']);
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const r = await call(client.outbound, 'ratings');
      expect(r.status).toBe(200);
      counts.set(served(r), (counts.get(served(r)) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ 'ratings-a': 10, 'ratings-b': 10, 'ratings-c': 10 });
  });
});
