// One inbound port for mTLS and plaintext: the first byte decides; plaintext is served only by a
// chain that takes it (PERMISSIVE) and refused, closed and logged otherwise (STRICT), also when
// the config turns STRICT under a kept-alive plaintext connection. RBAC denials answer 403 (and
// gRPC status 7) from the listener's default authorizer.
import http from 'node:http';
import http2 from 'node:http2';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { FilterChain, Listener, RbacRules, TlsContextRef } from '../../api/domain.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { testCa, testIdentity, workloadCert, type TestWorkloadCert } from '../../certs/testing.js';
import type { Logger } from '../../core/log.js';
import { buildConfig, cluster, endpoint, eventually, forwardTo, h2Request, rawExchange, route, startEchoH1, vhost } from '../http/testkit.js';
import type { ProxyConfig } from '../state/types.js';
import { tlsTransports } from '../transport/mesh.js';
import { MeshTls } from '../transport/tls.js';
import { createInboundListener } from './listener.js';

const SERVER = testIdentity('default', 'server');
const CLIENT = testIdentity('default', 'client');
const TLS: TlsContextRef = { certificateSecret: 'default', validationSecret: 'ROOTCA', requireClientCertificate: true, alpn: [] };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let ca: CertificateAuthority;
let serverCert: TestWorkloadCert;
let clientCert: TestWorkloadCert;
beforeAll(async () => {
  ca = await testCa();
  serverCert = await workloadCert(ca, SERVER);
  clientCert = await workloadCert(ca, CLIENT);
});

function chain(port: number, transport: 'tls' | 'raw_buffer', rbac: RbacRules[] = []): FilterChain {
  return {
    name: transport === 'tls' ? `inbound|${port}` : `inbound|${port}|plaintext`,
    destinationPorts: [port],
    serverNames: [],
    transportProtocol: transport,
    ...(transport === 'tls' ? { tls: TLS } : {}),
    filter: {
      kind: 'http',
      statPrefix: `inbound_${port}`,
      inlineRoutes: { name: `inbound|${port}`, virtualHosts: [vhost(`inbound|${port}`, ['*'], [route('default', forwardTo([`inbound|${port}||`]))])] },
      rbac,
    },
  };
}

function config(appPort: number, mode: 'STRICT' | 'PERMISSIVE', rbac: RbacRules[] = []): ProxyConfig {
  const chains = mode === 'STRICT' ? [chain(8080, 'tls', rbac)] : [chain(8080, 'tls', rbac), chain(8080, 'raw_buffer', rbac)];
  const listener: Listener = { name: 'inbound', filterChains: chains };
  return buildConfig({
    listeners: [listener],
    clusters: [cluster('inbound|8080||', { discovery: 'STATIC', staticEndpoints: [endpoint('127.0.0.1', appPort)] })],
  });
}

async function setup(initial: 'STRICT' | 'PERMISSIVE', rbac: RbacRules[] = []) {
  const app = await startEchoH1('app');
  const logs: string[] = [];
  const log: Logger = {
    debug() {},
    info: (m, f) => void logs.push(`${m} ${JSON.stringify(f ?? {})}`),
    warn: (m, f) => void logs.push(`${m} ${JSON.stringify(f ?? {})}`),
    error: (m, f) => void logs.push(`${m} ${JSON.stringify(f ?? {})}`),
    child: () => log,
  };
  const mesh = new MeshTls({ current: () => serverCert, trustBundle: () => ca.trustBundle(), subscribe: () => () => {} }, { log });
  let current = config(app.port, initial, rbac);
  const listener = createInboundListener({
    port: 0,
    host: '127.0.0.1',
    getConfig: () => current,
    transport: tlsTransports(mesh, { log }).inbound,
    ownIdentity: () => SERVER,
    log,
  });
  const { port } = await listener.listen();
  cleanups.push(() => app.close(), () => mesh.close(), () => listener.close(200));
  return { app, port, logs, set: (mode: 'STRICT' | 'PERMISSIVE') => (current = config(app.port, mode, rbac)) };
}

function mtlsRequest(port: number, path = '/m'): Promise<{ status: number; xfcc: string | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: clientCert.keyPem,
      cert: clientCert.chainPem[0],
      ca: ca.trustBundle(),
      servername: '8080.inbound.weft.internal',
      checkServerIdentity: () => undefined,
      ALPNProtocols: ['http/1.1'],
    });
    const req = http.request({ createConnection: () => socket, path, headers: { host: 'server' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const seen = res.statusCode === 200 ? (JSON.parse(body) as { headers: Record<string, string> }).headers : {};
        resolve({ status: res.statusCode ?? 0, xfcc: seen['x-forwarded-client-cert'] });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('inbound: TLS or plaintext on one port', () => {
  it('PERMISSIVE serves both; only the mTLS peer has an identity', async () => {
    const s = await setup('PERMISSIVE');
    const plain = await rawExchange(s.port, 'GET /p HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n');
    expect(plain).toMatch(/^HTTP\/1.1 200/);
    expect(plain).not.toContain('x-forwarded-client-cert');
    const m = await mtlsRequest(s.port);
    expect(m).toEqual({ status: 200, xfcc: `By=${SERVER};URI=${CLIENT}` });
    expect(s.app.seen.map((r) => r.path)).toEqual(['/p', '/m']);
  });

  it('STRICT closes a plaintext connection before reading it, and logs who and why; mTLS goes on', async () => {
    const s = await setup('STRICT');
    const answer = await rawExchange(s.port, 'GET /p HTTP/1.1\r\nhost: server\r\n\r\n');
    expect(answer).toBe('');
    expect(s.logs.find((l) => l.startsWith('refused a plaintext connection'))).toMatch(/"client":"127\.0\.0\.1:\d+".*mTLS is STRICT on every port/);
    expect((await mtlsRequest(s.port)).status).toBe(200);
    expect(s.app.seen.map((r) => r.path)).toEqual(['/m']);
  });

  it('a kept-alive plaintext connection is closed at its next request once the port turns STRICT', async () => {
    const s = await setup('PERMISSIVE');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const get = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: s.port, path, agent, headers: { host: 'server' } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
    expect(await get('/before')).toBe(200);
    s.set('STRICT');
    await expect(get('/after')).rejects.toThrow(/socket hang up|ECONNRESET/);
    await eventually(() => expect(s.logs.filter((l) => l.startsWith('refused a plaintext connection'))).toHaveLength(1));
    expect(s.app.seen.map((r) => r.path)).toEqual(['/before']);
  });

  it('bytes that start like TLS go to the TLS server: a broken handshake is logged as such, not as plaintext', async () => {
    const s = await setup('PERMISSIVE');
    const answer = await rawExchange(s.port, '\x16\x03\x01\x00\x05hello');
    expect(answer).not.toMatch(/^HTTP/);
    await eventually(() => expect(s.logs.some((l) => l.startsWith('TLS handshake with a client failed'))).toBe(true));
    expect(s.logs.some((l) => l.startsWith('refused a plaintext connection'))).toBe(false);
  });
});

describe('inbound: the default authorizer is RBAC', () => {
  const denyAdmin: RbacRules[] = [
    { action: 'DENY', policies: [{ name: 'ns[default]-policy[no-admin]-rule[0]', principals: [{ any: true }], permissions: [{ paths: [{ kind: 'prefix', value: '/admin' }] }] }] },
  ];

  it('answers 403 "RBAC: access denied", or gRPC status 7, and logs the policy and the peer', async () => {
    const s = await setup('PERMISSIVE', denyAdmin);
    const h1 = await rawExchange(s.port, 'GET /admin/x HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n');
    expect(h1).toMatch(/^HTTP\/1.1 403/);
    expect(h1.endsWith('RBAC: access denied\n')).toBe(true);
    const session = http2.connect(`http://127.0.0.1:${s.port}`);
    cleanups.push(() => void session.close());
    const g = await h2Request(session, { ':method': 'POST', ':path': '/admin/Svc/Method', 'content-type': 'application/grpc' }, Buffer.alloc(5));
    expect(g.status).toBe(200);
    expect(g.headers['grpc-status']).toBe('7');
    expect(decodeURIComponent(String(g.headers['grpc-message']))).toBe('RBAC: access denied');
    expect((await mtlsRequest(s.port, '/admin/y')).status).toBe(403);
    const denials = s.logs.filter((l) => l.startsWith('request denied by authorization policy'));
    expect(denials).toHaveLength(3);
    expect(denials[2]).toContain('"policy":"ns[default]-policy[no-admin]-rule[0]"');
    expect(denials[2]).toContain(`"peer":"${CLIENT}"`);
    expect(denials[0]).toContain('"peer":"unauthenticated"');
    expect(s.app.seen).toHaveLength(0);
  });
});
