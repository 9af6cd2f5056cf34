// The proxy against its control plane: invalid config is NACKed with its reason and the last
// good config keeps routing; a proxy started before its control plane connects once it is up.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Plain } from '../../api/codec.js';
import { adsService } from '../../api/services.js';
import { HCM_TYPE_URL, ROUTER_TYPE_URL, TypeUrl } from '../../api/types.js';
import { controlPlaneConfig } from '../../control-plane/config.js';
import { startControlPlane, type ControlPlane } from '../../control-plane/main.js';
import { MemorySnapshotCache } from '../../control-plane/snapshot/cache.js';
import { buildSnapshot } from '../../control-plane/snapshot/snapshot.js';
import { XdsServer } from '../../control-plane/xds-server/server.js';
import { createLogger } from '../../core/log.js';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { canaryConfig, startBackend, startTestSidecar, viaProxy, waitReady, type TestBackend } from '../support/mesh.js';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Envoy resources: STATIC clusters `a` and `b`; host `backend` routed to `target`, optionally
 *  behind a route whose regex the proxy cannot compile. */
function resources(ports: { a: number; b: number }, target: 'a' | 'b', opts: { badRegex?: boolean } = {}) {
  const listener: Plain = {
    name: 'outbound',
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM_TYPE_URL,
              stat_prefix: 'outbound',
              rds: { route_config_name: 'outbound', config_source: { ads: {} } },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } }],
            },
          },
        ],
      },
    ],
  };
  const route: Plain = {
    name: 'outbound',
    virtual_hosts: [
      {
        name: 'backend',
        domains: ['backend', 'backend:80'],
        routes: [
          ...(opts.badRegex ? [{ match: { safe_regex: { regex: '(unclosed' } }, route: { cluster: target } }] : []),
          { match: { prefix: '/' }, route: { cluster: target } },
        ],
      },
    ],
  };
  const cluster = (name: 'a' | 'b'): Plain => ({
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 1 },
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: ports[name] } } } }] }],
    },
  });
  return {
    [TypeUrl.Listener]: new Map([['outbound', listener]]),
    [TypeUrl.RouteConfiguration]: new Map([['outbound', route]]),
    [TypeUrl.Cluster]: new Map([['a', cluster('a')], ['b', cluster('b')]]),
  };
}


describe('proxy and control plane', () => {
  it('NACKs an invalid update with the field path and keeps routing on the last good config', async () => {
    // A stand-in ADS server: Weft's real XdsServer over a cache we fill by hand, so that we can
    // send config our own translator would never produce.
    const a: TestBackend = await startBackend('a');
    const b: TestBackend = await startBackend('b');
    cleanups.push(() => a.close(), () => b.close());
    const ports = { a: a.port, b: b.port };
    const cache = new MemorySnapshotCache();
    const quiet = createLogger('stand-in');
    quiet.warn = () => {};
    quiet.info = () => {};
    const nacks: string[] = [];
    const xds = new XdsServer(
      cache,
      {
        authenticate: async (node) => ({ id: node.id!, workload: node.id!, namespace: 'default', metadata: {} }),
        connected: (p) => cache.set(p.id, buildSnapshot(resources(ports, 'a'))),
        disconnected: () => {},
        nacked: (_p, _t, m) => nacks.push(m),
      },
      quiet,
    );
    const server = new grpc.Server();
    server.addService(adsService, xds.handlers());
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    cleanups.push(() => server.forceShutdown());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-nack-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(path.join(dir, 'token'), 'stand-in');
    const sc = await startTestSidecar(`127.0.0.1:${port}`, 'client.default', path.join(dir, 'token'));
    cleanups.push(() => sc.stop());

    await eventually(async () => expect((await viaProxy(sc.outbound, 'http://backend/')).headers['x-version']).toBe('a'));

    // Version 2 routes to b but carries a regex the proxy cannot compile: refused whole.
    const bad = resources(ports, 'b', { badRegex: true });
    cache.set('client.default', buildSnapshot(bad));
    await eventually(() => expect(nacks.join('\n')).toContain('virtual_hosts[0].routes[0].match.safe_regex.regex'));
    const rds = xds.syncStates()[0]!.types.get(TypeUrl.RouteConfiguration)!;
    expect(rds.nack?.message).toContain('(unclosed');
    for (let i = 0; i < 10; i++) expect((await viaProxy(sc.outbound, 'http://backend/')).headers['x-version']).toBe('a');

    // Version 3 is valid again: accepted, and routing follows it.
    cache.set('client.default', buildSnapshot(resources(ports, 'b')));
    await eventually(async () => expect((await viaProxy(sc.outbound, 'http://backend/')).headers['x-version']).toBe('b'));
    const dump = (await (await fetch(`${sc.admin}/config_dump`)).json()) as { xds: Record<string, { version?: string; lastNack?: unknown }> };
    expect(dump.xds.RDS?.lastNack).toBeUndefined();
  });

  it('connects a proxy started before its control plane once the control plane is up, and again after a restart', async () => {
    const v1 = await startBackend('v1');
    cleanups.push(() => v1.close());
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-late-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const configDir = path.join(dir, 'config');
    const stateDir = path.join(dir, 'state');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(configDir);
    for (const [f, y] of Object.entries(canaryConfig(v1.port, 1, 100, 0))) writeFileSync(path.join(configDir, f), y);
    const xdsPort = await freePort();
    const cfg = controlPlaneConfig({ configDir, stateDir, xdsPort, xdsTlsPort: -1, monitorPort: 0, debounceMs: 50 });

    // First start creates the CA and the tokens; then the control plane goes away.
    let cp: ControlPlane = await startControlPlane(cfg);
    await cp.stop();

    const token = (n: string) => path.join(stateDir, 'tokens', 'default', `${n}.token`);
    const [r1, client] = await Promise.all([
      startTestSidecar(`127.0.0.1:${xdsPort}`, 'reviews-v1.default', token('reviews-v1')),
      startTestSidecar(`127.0.0.1:${xdsPort}`, 'client.default', token('client')),
    ]);
    cleanups.push(() => r1.stop(), () => client.stop());
    expect((await fetch(`${client.admin}/ready`)).status).toBe(503);

    cp = await startControlPlane(cfg);
    cleanups.push(() => cp.stop());
    await waitReady(r1, client);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200), { timeoutMs: 15_000 });

    // The control plane restarts: traffic keeps flowing on the last config meanwhile.
    await cp.stop();
    for (let i = 0; i < 10; i++) expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200);
    cp = await startControlPlane(cfg);
    await eventually(async () => {
      const syncz = (await (await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/syncz`)).json()) as Array<{ id: string }>;
      expect(syncz.map((p) => p.id).sort()).toEqual(['client.default', 'reviews-v1.default']);
    }, { timeoutMs: 15_000 });
  });
});
