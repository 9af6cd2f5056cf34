// Graceful drain of a real `weft proxy` process (dist/cli, as `npm run build` leaves it): SIGTERM
// with 100 slow requests in flight loses none and the process exits 0; POST /drain on the admin
// port does the same; and a cluster removed by config lets its in-flight request finish.
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { startTestMesh, waitReady, type TestMesh } from '../support/mesh.js';
import { CLI, call, controlledBackend, ok, serviceYaml, weft, workloadYaml, type ControlledBackend, type WeftProcess } from './resilience-support.js';

const SLOW_MS = 1_500;
let mesh: TestMesh;
let backend: ControlledBackend;
const processes: WeftProcess[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  backend = await controlledBackend('slow-a');
  backend.behaviour = (_req, res) => ok(res, 'slow-a', SLOW_MS);
  mesh = await startTestMesh({
    'services.yaml': serviceYaml('slow'),
    'workloads.yaml': [workloadYaml('slow-a', 'slow', backend.port), workloadYaml('client', 'client'), workloadYaml('other', 'other')].join('---\n'),
  });
  await waitReady(await mesh.sidecar('slow-a.default'));
}, 60_000);

afterAll(async () => {
  for (const p of processes) p.kill('SIGKILL');
  await mesh?.close();
  await backend?.close();
});

/** `weft proxy` for `workload` as a child process; resolves once it is ready. */
async function cliProxy(workload: string, drainSeconds: number): Promise<{ p: WeftProcess; outbound: string; admin: string }> {
  const [name, ns] = workload.split('.') as [string, string];
  const p = weft([
    'proxy',
    '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`,
    '--workload', workload,
    '--token-file', path.join(mesh.stateDir, 'tokens', ns, `${name}.token`),
    '--bind-address', '127.0.0.1',
    '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0',
    '--drain-seconds', String(drainSeconds),
  ]);
  processes.push(p);
  const line = await p.line(/^weft-proxy-listening /);
  const ports = JSON.parse(line.slice('weft-proxy-listening '.length)) as { outbound: number; admin: number };
  const sc = { p, outbound: `http://127.0.0.1:${ports.outbound}`, admin: `http://127.0.0.1:${ports.admin}` };
  await eventually(async () => expect((await fetch(`${sc.admin}/ready`)).status).toBe(200), { timeoutMs: 20_000, message: `${workload} ready` });
  await eventually(async () => expect((await call(sc.outbound, 'slow')).status).toBe(200), { timeoutMs: 20_000 });
  return sc;
}

/** Whether a new TCP connection to `url`'s port is refused. */
function refused(url: string): Promise<boolean> {
  const port = Number(new URL(url).port);
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

/** `n` slow requests at once; resolves when the backend holds all of them. */
async function inFlight(outbound: string, n: number) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: n });
  const before = backend.count;
  const responses = Array.from({ length: n }, () => call(outbound, 'slow', { agent }).catch((err: Error) => ({ status: 0, body: err.message, headers: {} })));
  await eventually(() => expect(backend.count - before).toBe(n), { timeoutMs: 10_000, message: 'all requests at the backend' });
  return { responses: Promise.all(responses), agent };
}

describe('graceful drain', () => {
  it('SIGTERM with 100 slow requests in flight: none lost, no new connections, exit 0', async () => {
    const proxy = await cliProxy('client.default', 10);
    const { responses, agent } = await inFlight(proxy.outbound, 100);
    proxy.p.kill('SIGTERM');

    // It stops accepting at once, while the requests are still running.
    await eventually(async () => expect(await refused(proxy.outbound)).toBe(true), { timeoutMs: 1_000 });
    const results = await responses;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.every((r) => r.body === 'slow-a')).toBe(true);

    expect(await proxy.p.exited).toBe(0);
    agent.destroy();
  });

  it('POST /drain on the admin port drains the same way, then the process exits', async () => {
    const proxy = await cliProxy('other.default', 10);
    const { responses, agent } = await inFlight(proxy.outbound, 20);
    const res = await fetch(`${proxy.admin}/drain`, { method: 'POST' });
    expect(res.status).toBe(202);
    // Not ready while draining (a load balancer in front stops sending).
    expect((await fetch(`${proxy.admin}/ready`)).status).toBe(503);
    await eventually(async () => expect(await refused(proxy.outbound)).toBe(true), { timeoutMs: 1_000 });
    const results = await responses;
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(await proxy.p.exited).toBe(0);
    agent.destroy();
  });

  it('a cluster removed by config lets its in-flight request finish', async () => {
    const client = await mesh.sidecar('client.default');
    await waitReady(client);
    await eventually(async () => expect((await call(client.outbound, 'slow')).status).toBe(200), { timeoutMs: 15_000 });
    const before = backend.count;
    const pending = call(client.outbound, 'slow');
    await eventually(() => expect(backend.count).toBe(before + 1));
    // The Service goes away: the client's config loses the cluster while the request runs.
    mesh.write('services.yaml', '');
    await eventually(async () => {
      const dump = (await (await fetch(`${client.admin}/config_dump`)).json()) as { clusters: Array<{ name: string }> };
      expect(dump.clusters.map((c) => c.name)).not.toContain('outbound|9080||slow.default.svc.cluster.local');
    }, { timeoutMs: 5_000 });
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.body).toBe('slow-a');
    mesh.write('services.yaml', serviceYaml('slow'));
  });
});
