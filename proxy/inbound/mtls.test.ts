// The transport seam with real mTLS: MeshTls adapted to UpstreamTransport / InboundTransport in
// a few lines, a sidecar pair where the SNI picks the app port, ALPN picks HTTP/2, the peer's
// proven identity becomes XFCC, and a wrong identity never reaches the app.
import type tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Cluster } from '../../api/domain.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { testCa, testIdentity, workloadCert, type TestWorkloadCert } from '../../certs/testing.js';
import { ErrorCode, WeftError } from '../../core/errors.js';
import {
  buildConfig, cluster, endpoint, forwardTo, route, serviceDomains, silentLog, startEchoH1, startEchoH2, vhost, type EchoReport,
} from '../http/testkit.js';
import { ProxyStats } from '../http/stats.js';
import { createOutboundListener } from '../outbound/listener.js';
import type { InboundTransport, UpstreamTransport } from '../transport/index.js';
import { MeshTls, type IdentitySource } from '../transport/tls.js';
import { createUpstreamPools } from '../upstream/pools.js';
import { createInboundListener } from './listener.js';

const CLIENT = testIdentity('default', 'client');
const SERVER = testIdentity('default', 'server');

/** The adapter the composition root needs: MeshTls behind the data path's transport seam. */
function meshTransports(mesh: MeshTls): { upstream: UpstreamTransport; inbound: InboundTransport } {
  return {
    upstream: {
      secure: true,
      connect: (t) =>
        t.identity
          ? mesh.connect({ host: t.host, port: t.port, expectedIdentity: t.identity, targetPort: t.targetPort, alpn: t.alpn, timeoutMs: t.connectTimeoutMs })
          : Promise.reject(new WeftError(ErrorCode.IDENTITY_MISMATCH, `endpoint ${t.host}:${t.port} has no identity to verify`)),
    },
    inbound: {
      secure: true,
      createServer: (onSocket) => mesh.createServer(onSocket),
      peerIdentity: (s) => mesh.peerIdentity(s as tls.TLSSocket),
      targetPort: (s) => mesh.parseTargetPortFromSni((s as tls.TLSSocket).servername),
    },
  };
}

function source(cert: TestWorkloadCert, roots: readonly string[]): IdentitySource {
  return { current: () => cert, trustBundle: () => roots, subscribe: () => () => {} };
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let ca: CertificateAuthority;
let clientCert: TestWorkloadCert;
let serverCert: TestWorkloadCert;
beforeAll(async () => {
  ca = await testCa();
  clientCert = await workloadCert(ca, CLIENT);
  serverCert = await workloadCert(ca, SERVER);
});

describe('sidecar pair over mTLS', () => {
  it('routes by SNI target port, negotiates h2 by ALPN, sets XFCC from the proven identity, refuses a wrong identity', async () => {
    const appA = await startEchoH1('app-a');
    const appB = await startEchoH2('app-b');
    cleanups.push(() => appA.close(), () => appB.close());

    const serverMesh = new MeshTls(source(serverCert, ca.trustBundle()), { log: silentLog });
    const clientMesh = new MeshTls(source(clientCert, ca.trustBundle()), { log: silentLog });
    cleanups.push(() => serverMesh.close(), () => clientMesh.close());

    // Server sidecar: two app ports, one chain each.
    const inboundCluster = (p: number, appPort: number, protocol: Cluster['protocol']) =>
      cluster(`inbound|${p}||`, { discovery: 'STATIC', protocol, staticEndpoints: [endpoint('127.0.0.1', appPort)] });
    const chain = (p: number) => ({
      name: `inbound|${p}`,
      destinationPorts: [p],
      serverNames: [],
      filter: {
        kind: 'http' as const,
        statPrefix: `inbound_${p}`,
        inlineRoutes: { name: `inbound|${p}`, virtualHosts: [vhost(`inbound|${p}`, ['*'], [route('default', forwardTo([`inbound|${p}||`]))])] },
        rbac: [],
      },
    });
    const serverConfig = buildConfig({
      listeners: [{ name: 'inbound', filterChains: [chain(8080), chain(9090)] }],
      clusters: [inboundCluster(8080, appA.port, 'http1'), inboundCluster(9090, appB.port, 'http2')],
    });
    const inbound = createInboundListener({
      port: 0,
      host: '127.0.0.1',
      getConfig: () => serverConfig,
      transport: meshTransports(serverMesh).inbound,
      ownIdentity: () => SERVER,
      log: silentLog,
    });
    const inPort = (await inbound.listen()).port;
    cleanups.push(() => inbound.close(200));

    // Client sidecar: three Services on the server workload — HTTP/1.1 to port 8080, HTTP/2 to
    // port 9090, and one whose endpoint claims an identity the server cannot prove.
    const tlsCtx = { requireClientCertificate: true, alpn: [], matchSans: [] };
    const A = 'outbound|80||a.default.svc.cluster.local';
    const B = 'outbound|80||b.default.svc.cluster.local';
    const X = 'outbound|80||x.default.svc.cluster.local';
    const clientConfig = buildConfig({
      routes: [
        {
          name: 'outbound',
          virtualHosts: [
            vhost('a', serviceDomains('a', 'default', 80), [route('a', forwardTo([A]))]),
            vhost('b', serviceDomains('b', 'default', 80), [route('b', forwardTo([B]))]),
            vhost('x', serviceDomains('x', 'default', 80), [route('x', forwardTo([X]))]),
          ],
        },
      ],
      clusters: [cluster(A, { tls: tlsCtx }), cluster(B, { tls: tlsCtx, protocol: 'http2' }), cluster(X, { tls: tlsCtx })],
      endpoints: {
        [A]: [endpoint('127.0.0.1', inPort, { targetPort: 8080, identity: SERVER })],
        [B]: [endpoint('127.0.0.1', inPort, { targetPort: 9090, identity: SERVER })],
        [X]: [endpoint('127.0.0.1', inPort, { targetPort: 8080, identity: testIdentity('default', 'someone-else') })],
      },
    });
    const pools = createUpstreamPools({ transport: meshTransports(clientMesh).upstream, log: silentLog });
    const stats = new ProxyStats();
    const outbound = createOutboundListener({ port: 0, getConfig: () => clientConfig, pools, stats, log: silentLog });
    const outPort = (await outbound.listen()).port;
    cleanups.push(() => pools.close(), () => outbound.close(200));

    const a = await request(`http://127.0.0.1:${outPort}/a`, { headers: { host: 'a.default', 'x-forwarded-client-cert': 'URI=spiffe://forged' } });
    const seenA = (await a.body.json()) as EchoReport;
    expect(seenA).toMatchObject({ server: 'app-a', path: '/a', protocol: '1.1' });
    expect(seenA.headers['x-forwarded-client-cert']).toBe(`By=${SERVER};URI=${CLIENT}`);

    const b = await request(`http://127.0.0.1:${outPort}/b`, { headers: { host: 'b.default' } });
    const seenB = (await b.body.json()) as EchoReport;
    expect(seenB).toMatchObject({ server: 'app-b', path: '/b', protocol: '2.0' });
    expect(pools.describe().map((p) => p.key.split('|').slice(0, 2).join('|')).sort()).toEqual(['http1|tls', 'http2|tls']);

    const x = await request(`http://127.0.0.1:${outPort}/x`, { headers: { host: 'x.default' } });
    expect(x.statusCode).toBe(503);
    expect(await x.body.text()).toContain('reset reason: connection failure');
    expect(stats.cluster(X).errors.upstream_connect).toBe(1);
    expect(appA.seen.map((s) => s.path)).toEqual(['/a']);
  });
});
