// The control plane goes away (a real `weft control-plane` process, SIGKILLed) for 30 s under
// steady load: the sidecars keep serving their last config with zero failed requests, reconnect
// when it is back, and resync without churn — the restarted control plane rebuilds the same
// content-hashed snapshots, so the proxies build no new config (same generation, same versions).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { startBackend, startTestSidecar, waitReady, type TestBackend, type TestSidecar } from '../support/mesh.js';
import { CLI, call, serviceYaml, steadyLoad, weft, workloadYaml, type WeftProcess } from './resilience-support.js';

const OUTAGE_S = 30;
const LOAD_S = 40;
const RPS = 50;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Dump {
  generation: number;
  xds: Record<string, { version?: string }>;
}

describe('control plane away', () => {
  it(`killed for ${OUTAGE_S} s under ${RPS} rps: zero failed requests, then reconnect and resync without churn`, async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-cp-away-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const configDir = path.join(dir, 'config');
    const stateDir = path.join(dir, 'state');
    mkdirSync(configDir);
    const app: TestBackend = await startBackend('v1');
    cleanups.push(() => app.close());
    writeFileSync(path.join(configDir, 'services.yaml'), serviceYaml('reviews'));
    writeFileSync(path.join(configDir, 'workloads.yaml'), [workloadYaml('reviews-v1', 'reviews', app.port), workloadYaml('client', 'client')].join('---\n'));

    const [xdsPort, monitorPort] = [await freePort(), await freePort()];
    const monitor = `http://127.0.0.1:${monitorPort}`;
    const startCp = async (): Promise<WeftProcess> => {
      const p = weft(['control-plane', '--config', configDir, '--state-dir', stateDir, '--host', '127.0.0.1',
        '--xds-port', String(xdsPort), '--xds-tls-port', '-1', '--monitor-port', String(monitorPort)]);
      cleanups.push(() => p.kill('SIGKILL'));
      await eventually(async () => expect((await fetch(`${monitor}/ready`)).status).toBe(200), { timeoutMs: 20_000, message: 'control plane ready' });
      return p;
    };
    let cp = await startCp();

    const token = (n: string) => path.join(stateDir, 'tokens', 'default', `${n}.token`);
    const sidecars: TestSidecar[] = await Promise.all(
      ['reviews-v1', 'client'].map((w) => startTestSidecar(`127.0.0.1:${xdsPort}`, `${w}.default`, token(w))),
    );
    cleanups.push(() => Promise.all(sidecars.map((s) => s.stop())));
    const client = sidecars[1]!;
    await waitReady(...sidecars);
    await eventually(async () => expect((await call(client.outbound, 'reviews')).status).toBe(200), { timeoutMs: 15_000 });

    const dump = async (): Promise<Dump> => (await (await fetch(`${client.admin}/config_dump`)).json()) as Dump;
    const served = async () => (await (await fetch(`${monitor}/debug/config_dump?proxy=client.default`)).json()) as Record<string, { version: string }>;
    const versions = (d: Record<string, { version?: string }>) => Object.fromEntries(Object.entries(d).map(([t, v]) => [t, v.version]));
    // Settled: the control plane has pushed everything (both sidecars' endpoints) and the client holds it.
    await eventually(async () => expect(versions((await dump()).xds)).toEqual(versions(await served())), { timeoutMs: 10_000 });
    const before = await dump();
    const servedBefore = versions(await served());

    // Steady load; the control plane dies 2 s in and comes back 30 s later.
    const outage = (async () => {
      await new Promise((r) => setTimeout(r, 2_000));
      cp.kill('SIGKILL');
      await cp.exited;
      await new Promise((r) => setTimeout(r, OUTAGE_S * 1000));
      cp = await startCp();
    })();
    const load = await steadyLoad(() => call(client.outbound, 'reviews'), RPS, LOAD_S);
    await outage;
    expect(load.failures).toEqual([]);
    expect(load.ok).toBe(RPS * LOAD_S);

    // Both sidecars reconnect (jittered backoff, at most ~10 s) and ACK what they are sent.
    await eventually(async () => {
      const syncz = (await (await fetch(`${monitor}/debug/syncz`)).json()) as Array<{ id: string; types: Record<string, { status: string }> }>;
      expect(syncz.map((p) => p.id).sort()).toEqual(['client.default', 'reviews-v1.default']);
      for (const p of syncz) for (const t of ['CDS', 'LDS', 'RDS', 'EDS']) expect([p.id, t, p.types[t]?.status]).toEqual([p.id, t, 'SYNCED']);
    }, { timeoutMs: 30_000, intervalMs: 200, message: 'proxies resynced' });

    // No churn: the restarted control plane serves the same content hashes, and the client
    // built no new config from them (same generation: no balancer or pool rebuilt).
    expect(versions(await served())).toEqual(servedBefore);
    const after = await dump();
    expect(after.generation).toBe(before.generation);
    expect(versions(after.xds)).toEqual(versions(before.xds));
    expect((await call(client.outbound, 'reviews')).status).toBe(200);
  }, 150_000);
});
