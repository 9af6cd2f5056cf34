// Failing backends across a real local mesh: outlier detection ejects an endpoint that keeps
// answering 5xx and takes it back after its ejection time; the circuit breaker refuses with 503
// UO past its limits and closes when requests end; the retry budget caps how many requests
// retry at once; a response that started streaming is never retried; resets retry only
// idempotent methods.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { startTestMesh, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { call, controlledBackend, fail, ok, retryRouteYaml, serviceYaml, workloadYaml, type ControlledBackend } from './resilience-support.js';

let mesh: TestMesh;
let client: TestSidecar;
const backends = new Map<string, ControlledBackend>();
const NO_OUTLIER = { 'weft.dev/outlier-detection': 'off' };
const cluster = (svc: string) => `outbound|9080||${svc}.default.svc.cluster.local`;

beforeAll(async () => {
  const workloads: Array<[string, string]> = [
    ['orders-good', 'orders'],
    ['orders-bad', 'orders'],
    ['slowpoke-a', 'slowpoke'],
    ['flaky-a', 'flaky'],
    ['unbudgeted-a', 'unbudgeted'],
    ['stream-a', 'stream'],
  ];
  for (const [w] of workloads) backends.set(w, await controlledBackend(w));
  mesh = await startTestMesh({
    'services.yaml': [
      serviceYaml('orders', {
        'weft.dev/lb-policy': 'ROUND_ROBIN',
        'weft.dev/outlier-detection': 'consecutive5xx=3,interval=200ms,baseEjectionTime=2s,maxEjectionPercent=50',
      }),
      serviceYaml('slowpoke', { ...NO_OUTLIER, 'weft.dev/circuit-breaker': 'maxConnections=1,maxPendingRequests=1' }),
      serviceYaml('flaky', { ...NO_OUTLIER, 'weft.dev/retry-budget': 'budgetPercent=10,minRetryConcurrency=2' }),
      serviceYaml('unbudgeted', { ...NO_OUTLIER, 'weft.dev/retry-budget': 'off', 'weft.dev/circuit-breaker': 'maxRetries=1000' }),
      serviceYaml('stream', NO_OUTLIER),
    ].join('---\n'),
    'workloads.yaml': [...workloads.map(([w, app]) => workloadYaml(w, app, backends.get(w)!.port)), workloadYaml('client', 'client')].join('---\n'),
    'routes.yaml': [retryRouteYaml('flaky', 5), retryRouteYaml('unbudgeted', 5), retryRouteYaml('stream', 3)].join('---\n'),
  });
  const sidecars = await Promise.all(workloads.map(([w]) => mesh.sidecar(`${w}.default`)));
  client = await mesh.sidecar('client.default');
  await waitReady(client, ...sidecars);
  for (const svc of ['orders', 'slowpoke', 'flaky', 'unbudgeted', 'stream']) {
    await eventually(async () => expect((await call(client.outbound, svc)).status).toBe(200), { timeoutMs: 15_000, message: `${svc} reachable` });
  }
  for (const b of backends.values()) b.count = 0;
}, 120_000);

afterAll(async () => {
  await mesh?.close();
  for (const b of backends.values()) await b.close();
});

async function clusterStats(name: string): Promise<{ inFlight: number; retries: number }> {
  const stats = (await (await fetch(`${client.admin}/stats`)).json()) as { clusters: Record<string, { inFlight: number; retries: number }> };
  return stats.clusters[name] ?? { inFlight: 0, retries: 0 };
}

describe('outlier detection', () => {
  it('ejects an endpoint after consecutive 5xx, and takes it back after its ejection time', async () => {
    const good = backends.get('orders-good')!;
    const bad = backends.get('orders-bad')!;
    bad.behaviour = (_req, res) => fail(res, 500);
    // Round robin alternates: the bad endpoint's third 500 ejects it.
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await call(client.outbound, 'orders')).status);
    expect(statuses.filter((s) => s === 500)).toHaveLength(3);
    expect(bad.count).toBe(3);

    // Ejected (for 2 s): every request goes to the good endpoint.
    const ejectedAt = Date.now();
    for (let i = 0; i < 10; i++) expect((await call(client.outbound, 'orders')).status).toBe(200);
    expect(bad.count).toBe(3);
    // The admin port shows which endpoint is out, and how often it has been.
    const clusters = (await (await fetch(`${client.admin}/clusters`)).json()) as Array<{
      name: string;
      endpoints: Array<{ workload?: string; ejected?: boolean; timesEjected?: number }>;
    }>;
    const orders = clusters.find((c) => c.name.includes('||orders.default'))!;
    expect(orders.endpoints.map((e) => [e.workload, e.ejected]).sort()).toEqual([
      ['orders-bad.default', true],
      ['orders-good.default', false],
    ]);
    expect(orders.endpoints.find((e) => e.ejected)?.timesEjected).toBe(1);

    // It recovers; once its ejection time is over it gets traffic again.
    bad.behaviour = (_req, res) => ok(res, 'orders-bad');
    await eventually(async () => {
      expect((await call(client.outbound, 'orders')).status).toBe(200);
      expect(bad.count).toBeGreaterThan(3);
    }, { timeoutMs: 10_000, intervalMs: 20 });
    // Not before its ejection time was over.
    expect(Date.now() - ejectedAt).toBeGreaterThanOrEqual(1_900);
    expect(good.count).toBeGreaterThan(0);
  });
});

describe('circuit breaking', () => {
  it('answers 503 UO naming the cluster and the limit when tripped, and recovers', async () => {
    const backend = backends.get('slowpoke-a')!;
    const held: http.ServerResponse[] = [];
    backend.behaviour = (_req, res) => held.push(res);
    const agent = new http.Agent({ keepAlive: false });
    // One request holds the only connection the cluster may use; one waits for it.
    const first = call(client.outbound, 'slowpoke', { agent });
    await eventually(() => expect(held).toHaveLength(1));
    const second = call(client.outbound, 'slowpoke', { agent });
    await eventually(async () => expect((await clusterStats(cluster('slowpoke'))).inFlight).toBe(2));
    // The third finds the pending queue full.
    const third = await call(client.outbound, 'slowpoke', { agent });
    expect(third.status).toBe(503);
    expect(third.body).toBe(`upstream overflow: cluster "${cluster('slowpoke')}" is at its circuit breaker limit max_pending_requests=1\n`);
    expect(held).toHaveLength(1);

    // Recovery: the held request ends, the waiting one gets the connection, then new ones pass.
    backend.behaviour = (_req, res) => ok(res, 'slowpoke-a');
    ok(held[0]!, 'slowpoke-a');
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await call(client.outbound, 'slowpoke', { agent })).status).toBe(200);
    agent.destroy();
  });
});

describe('retries', () => {
  it('the retry budget caps how many requests retry at once', async () => {
    // 20 requests fail together; each may retry 5 times. With a budget of 10 % (at least 2),
    // only 2 of them retry: at most 20 + 2 × 5 tries reach the backend.
    const concurrent = 20;
    const budgeted = backends.get('flaky-a')!;
    const unbudgeted = backends.get('unbudgeted-a')!;
    for (const b of [budgeted, unbudgeted]) b.behaviour = (_req, res) => fail(res, 503, 200);
    const agent = new http.Agent({ keepAlive: true, maxSockets: concurrent });
    const burst = (svc: string) => Promise.all(Array.from({ length: concurrent }, () => call(client.outbound, svc, { agent })));

    const results = await burst('flaky');
    expect(results.every((r) => r.status === 503)).toBe(true);
    expect(budgeted.count).toBeGreaterThanOrEqual(concurrent + 5);
    expect(budgeted.count).toBeLessThanOrEqual(concurrent + 2 * 5);
    expect((await clusterStats(cluster('flaky'))).retries).toBe(budgeted.count - concurrent);

    // The same burst without a budget: every request retries 5 times.
    await burst('unbudgeted');
    expect(unbudgeted.count).toBe(concurrent * 6);
    agent.destroy();
  });

  it('never retries once the response has started streaming', async () => {
    const backend = backends.get('stream-a')!;
    backend.count = 0;
    // Headers and a first chunk reach the client, then the upstream resets: the route retries
    // resets, but the client already has a response, so it sees a cut body and nothing is resent.
    backend.behaviour = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.destroy(), 50);
    };
    await expect(call(client.outbound, 'stream')).rejects.toThrow();
    expect(backend.count).toBe(1);
  });

  it('retries a reset for GET, never for POST (the app may have acted on it)', async () => {
    const backend = backends.get('stream-a')!;
    backend.behaviour = (req, res) => {
      if (req.headers['x-attempt-ok'] === undefined) res.socket?.destroy();
      else ok(res, 'stream-a');
    };
    backend.count = 0;
    const post = await call(client.outbound, 'stream', { method: 'POST', body: 'order #1' });
    expect(post.status).toBe(503);
    expect(backend.count).toBe(1);

    backend.count = 0;
    const get = await call(client.outbound, 'stream');
    expect(get.status).toBe(503);
    expect(backend.count).toBe(4); // 1 + 3 retries
  });
});
