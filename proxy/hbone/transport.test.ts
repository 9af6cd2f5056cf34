// Sidecars and waypoints reaching ambient endpoints: `tunnel: 'hbone'` targets through
// tlsTransports — the upstream pools (undici HTTP/1.1 and node:http2 over the tunnel stream) and
// the captured-TCP path (tcpToCluster) — to apps behind a real HBONE server.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createBalancers } from '../balance/registry.js';
import { TcpStreams, tcpToCluster, NOTHING_READ } from '../capture/tcp.js';
import { ProxyStats } from '../http/stats.js';
import { buildConfig, cluster, endpoint, silentLog, startEchoH1, startEchoH2, type EchoReport } from '../http/testkit.js';
import { tlsTransports } from '../transport/mesh.js';
import { createUpstreamPools, type UpstreamPools } from '../upstream/pools.js';
import { targetFor } from '../upstream/target.js';
import type { UpstreamRequest, UpstreamTarget } from '../upstream/types.js';
import { makePki, meshOf, readAll, recordingLog, SERVER_ID, socketPair, startBackend, startHboneServer, type Pki, type TestHboneServer } from './testkit.js';

let pki: Pki;
beforeAll(async () => {
  pki = await makePki();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function hboneServer(): Promise<TestHboneServer> {
  const m = meshOf(pki.server, pki.ca.roots()).mesh;
  const s = await startHboneServer(m, { log: recordingLog() });
  cleanups.push(() => m.close(), () => s.close());
  return s;
}

/** A sidecar's outbound pools with its mesh transport, as proxy/main.ts makes them. */
function sidecarPools(): UpstreamPools {
  const m = meshOf(pki.alice, pki.ca.roots()).mesh;
  const pools = createUpstreamPools({ transport: tlsTransports(m, { log: silentLog }).upstream, log: silentLog });
  cleanups.push(() => m.close(), () => pools.close());
  return pools;
}

function req(path: string): UpstreamRequest {
  return { method: 'GET', path, authority: 'ratings.apps.svc.cluster.local:9080', scheme: 'http', headers: { 'x-test': '1' }, body: null, signal: new AbortController().signal };
}

async function report(pools: UpstreamPools, target: UpstreamTarget, path: string): Promise<EchoReport> {
  const r = await pools.request(target, req(path));
  expect(r.status).toBe(200);
  const chunks: Buffer[] = [];
  for await (const c of r.body) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString()) as EchoReport;
}

/** An ambient endpoint as EDS describes it: the HBONE listener, the app port behind it. */
function ambientTarget(server: TestHboneServer, appPort: number, protocol: 'http1' | 'http2'): UpstreamTarget {
  return targetFor(
    cluster('outbound|9080||ratings.apps.svc.cluster.local', { protocol, tls: { requireClientCertificate: true, alpn: [] } as never }),
    endpoint('127.0.0.1', server.port, { identity: SERVER_ID, targetPort: appPort, tunnel: 'hbone' }),
  );
}

describe('sidecar pools to a `tunnel: hbone` endpoint', () => {
  it.each(['http1', 'http2'] as const)('%s requests reach the app behind the HBONE server, on one mTLS connection', async (protocol) => {
    const app = protocol === 'http1' ? await startEchoH1() : await startEchoH2();
    cleanups.push(() => app.close());
    const server = await hboneServer();
    const pools = sidecarPools();
    const target = ambientTarget(server, app.port, protocol);
    expect(target).toMatchObject({ mesh: true, tunnel: 'hbone', port: server.port, targetPort: app.port });

    const first = await report(pools, target, '/one');
    expect(first).toMatchObject({ path: '/one', authority: 'ratings.apps.svc.cluster.local:9080', protocol: protocol === 'http1' ? '1.1' : '2.0' });
    expect(first.headers['x-test']).toBe('1');
    const more = await Promise.all([1, 2, 3, 4].map((i) => report(pools, target, `/n${i}`)));
    expect(more.map((r) => r.path)).toEqual(['/n1', '/n2', '/n3', '/n4']);
    expect(server.handshakes.value).toBe(1);
    expect(pools.describe()[0]!.key.endsWith('|hbone')).toBe(true);
  });

  it('a refused tunnel is a connect failure of the pool (upstream_connect)', async () => {
    const server = await hboneServer();
    const gone = await startBackend();
    await gone.close();
    const err = await sidecarPools()
      .request(ambientTarget(server, gone.port, 'http1'), req('/'))
      .catch((e: unknown) => e);
    expect((err as { kind?: string }).kind).toBe('upstream_connect');
    expect(String((err as Error).cause ?? '')).toMatch(/answered 503/);
  });
});

describe('captured TCP to a `tunnel: hbone` endpoint', () => {
  it('relays bytes and half-close over the tunnel (no weft-tcp ALPN to check)', async () => {
    const app = await startBackend('echo');
    cleanups.push(() => app.close());
    const server = await hboneServer();
    const m = meshOf(pki.alice, pki.ca.roots()).mesh;
    cleanups.push(() => m.close());
    const name = 'outbound|5432||db.apps.svc.cluster.local';
    const config = buildConfig({
      clusters: [cluster(name, { tls: { requireClientCertificate: true, alpn: [] } as never })],
      endpoints: { [name]: [endpoint('127.0.0.1', server.port, { identity: SERVER_ID, targetPort: app.port, tunnel: 'hbone' })] },
    });
    const streams = new TcpStreams();
    const [appSide, proxySide] = await socketPair();
    cleanups.push(() => appSide.destroy());
    await tcpToCluster(
      { getConfig: () => config, balancers: createBalancers(), mesh: tlsTransports(m, { log: silentLog }).upstream, stats: new ProxyStats(), streams, log: silentLog },
      proxySide,
      name,
      NOTHING_READ,
    );
    const answer = readAll(appSide);
    appSide.end('select 1');
    expect(await answer).toBe('select 1[eof after 8 bytes]');
    expect(server.handshakes.value).toBe(1);
  });
});
