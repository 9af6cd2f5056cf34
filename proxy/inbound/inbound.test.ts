// The inbound listener: filter chain choice (pure), and the sidecar pair end to end with the
// plaintext transport — app client → outbound → inbound → app — plus XFCC, authorization and
// reset propagation with a fake authenticated transport.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Cluster, FilterChain, Listener } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { ProxyStats } from '../http/stats.js';
import {
  buildConfig, cluster, fakeMtlsInbound, endpoint, eventually, forwardTo, h2Request, rawExchange, retryPolicy, route, serviceDomains, silentLog,
  startEchoH1, startEchoH2, vhost, type Echo, type EchoReport,
} from '../http/testkit.js';
import { createOutboundListener } from '../outbound/listener.js';
import type { AuthorizeHook } from './authz.js';
import { routesFor, selectFilterChain } from './chain.js';
import { createInboundListener, type InboundListenerOptions } from './listener.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function httpChain(port: number, more: Partial<FilterChain> = {}): FilterChain {
  return {
    name: `inbound|${port}`,
    destinationPorts: [port],
    serverNames: [],
    filter: {
      kind: 'http',
      statPrefix: `inbound_${port}`,
      inlineRoutes: { name: `inbound|${port}`, virtualHosts: [vhost(`inbound|http|${port}`, ['*'], [route('default', forwardTo([`inbound|${port}||`]))])] },
      rbac: [],
    },
    ...more,
  };
}

function inboundCluster(port: number, appPort: number, protocol: Cluster['protocol'] = 'http1'): Cluster {
  return cluster(`inbound|${port}||`, { discovery: 'STATIC', protocol, staticEndpoints: [endpoint('127.0.0.1', appPort)] });
}

/** The server sidecar's config: one chain per app port, each to its STATIC app cluster. */
function serverConfig(apps: { port: number; appPort: number; protocol?: Cluster['protocol'] }[]): ProxyConfig {
  const listener: Listener = { name: 'inbound', filterChains: apps.map((a) => httpChain(a.port)) };
  return buildConfig({ listeners: [listener], clusters: apps.map((a) => inboundCluster(a.port, a.appPort, a.protocol)) });
}

describe('selectFilterChain', () => {
  const a = httpChain(8080);
  const b = httpChain(9090);
  const any = httpChain(0, { name: 'any', destinationPorts: [] });
  const def = httpChain(0, { name: 'default', destinationPorts: [] });
  const tlsOnly = httpChain(7070, { name: 'tls-only', transportProtocol: 'tls' });
  const cases: Array<[string, Listener, { targetPort: number | undefined; secure: boolean }, string | undefined]> = [
    ['target port picks its chain', { name: 'l', filterChains: [a, b] }, { targetPort: 9090, secure: true }, 'inbound|9090'],
    ['no target port, one chain: that chain', { name: 'l', filterChains: [a] }, { targetPort: undefined, secure: false }, 'inbound|8080'],
    ['no target port, several chains: none', { name: 'l', filterChains: [a, b] }, { targetPort: undefined, secure: false }, undefined],
    ['unknown port falls to an any-port chain', { name: 'l', filterChains: [a, any] }, { targetPort: 1234, secure: true }, 'any'],
    ['unknown port falls to the default chain', { name: 'l', filterChains: [a, b], defaultFilterChain: def }, { targetPort: 1234, secure: true }, 'default'],
    ['tls-only chain is skipped for plaintext', { name: 'l', filterChains: [tlsOnly] }, { targetPort: 7070, secure: false }, undefined],
    ['tls-only chain serves TLS', { name: 'l', filterChains: [tlsOnly] }, { targetPort: 7070, secure: true }, 'tls-only'],
  ];
  it.each(cases)('%s', (_name, listener, facts, expected) => {
    expect(selectFilterChain(listener, facts)?.name).toBe(expected);
  });

  it('gives each chain a view holding only its own inline routes, cached per snapshot', () => {
    const config = serverConfig([{ port: 8080, appPort: 1 }]);
    const v1 = routesFor(config, httpChain(8080));
    const chain = config.listeners.get('inbound')!.filterChains[0]!;
    const v2 = routesFor(config, chain);
    const v3 = routesFor(config, chain);
    expect(v1?.name).toBe('inbound|8080');
    expect([...v2!.config.routes.keys()]).toEqual(['inbound|8080']);
    expect(v3!.config).toBe(v2!.config);
    expect(v2!.config.clusters).toBe(config.clusters);
  });
});

describe('sidecar pair over plaintext', () => {
  async function app(kind: 'h1' | 'h2' = 'h1', name = 'app'): Promise<Echo> {
    const e = kind === 'h1' ? await startEchoH1(name) : await startEchoH2(name);
    cleanups.push(() => e.close());
    return e;
  }

  async function inbound(config: ProxyConfig, more: Partial<InboundListenerOptions> = {}): Promise<number> {
    const l = createInboundListener({ port: 0, host: '127.0.0.1', getConfig: () => config, log: silentLog, ...more });
    const { port } = await l.listen();
    cleanups.push(() => l.close(200));
    return port;
  }

  const SVC = 'outbound|80||app.default.svc.cluster.local';
  async function outbound(inboundPort: number, targetPort: number, more: { protocol?: Cluster['protocol']; retry?: ReturnType<typeof retryPolicy>; stats?: ProxyStats } = {}): Promise<number> {
    const config = buildConfig({
      routes: [{ name: 'outbound', virtualHosts: [vhost('app', serviceDomains('app', 'default', 80), [route('r', forwardTo([SVC], { retry: more.retry }))])] }],
      clusters: [cluster(SVC, { protocol: more.protocol ?? 'http1' })],
      endpoints: { [SVC]: [endpoint('127.0.0.1', inboundPort, { targetPort, identity: 'spiffe://cluster.local/ns/default/sa/app' })] },
    });
    const l = createOutboundListener({ port: 0, getConfig: () => config, log: silentLog, stats: more.stats });
    const { port } = await l.listen();
    cleanups.push(() => l.close(200));
    return port;
  }

  it('carries a request from the client app to the server app, stripping a forged XFCC', async () => {
    const target = await app();
    const inPort = await inbound(serverConfig([{ port: 8080, appPort: target.port }]));
    const outPort = await outbound(inPort, 8080);
    const res = await request(`http://127.0.0.1:${outPort}/api/items?id=3`, {
      method: 'POST',
      headers: { host: 'app.default', 'x-forwarded-client-cert': 'URI=spiffe://forged', 'content-type': 'text/plain' },
      body: 'payload',
    });
    expect(res.statusCode).toBe(200);
    const seen = (await res.body.json()) as EchoReport;
    expect(seen).toMatchObject({ method: 'POST', path: '/api/items?id=3', authority: 'app.default', bodyBytes: 7 });
    expect(seen.headers['x-forwarded-client-cert']).toBeUndefined();
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('speaks HTTP/2 between the sidecars when the cluster says so, with gRPC trailers to an h2c app', async () => {
    const target = await app('h2');
    const inPort = await inbound(serverConfig([{ port: 8080, appPort: target.port, protocol: 'http2' }]));
    const outPort = await outbound(inPort, 8080, { protocol: 'http2' });
    const session = http2.connect(`http://127.0.0.1:${outPort}`);
    cleanups.push(async () => void session.close());
    const r = await h2Request(session, { ':method': 'POST', ':path': '/trailers', ':authority': 'app.default', 'content-type': 'application/grpc', te: 'trailers' }, 'x');
    expect(r.status).toBe(200);
    expect(r.body).toBe('payload');
    expect(r.trailers).toMatchObject({ 'grpc-status': '0', 'x-trailer': 'yes' });
    expect(target.seen[0]!.protocol).toBe('2.0');
  });

  it('tunnels a WebSocket-style Upgrade through both sidecars', async () => {
    const target = await app();
    const inPort = await inbound(serverConfig([{ port: 8080, appPort: target.port }]));
    const outPort = await outbound(inPort, 8080);
    const text = await rawExchange(
      outPort,
      'GET /chat HTTP/1.1\r\nHost: app.default\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping-pong',
      (t) => t.includes('ping-pong'),
    );
    expect(text).toMatch(/^HTTP\/1\.1 101/);
    expect(target.seen[0]).toMatchObject({ path: '/chat' });
  });

  it('turns an app reset before headers into a reset, which the client sidecar answers 503 or retries', async () => {
    const target = await app();
    const inPort = await inbound(serverConfig([{ port: 8080, appPort: target.port }]));
    // Straight at the inbound listener: the connection is cut, no HTTP answer.
    await expect(request(`http://127.0.0.1:${inPort}/reset`, { headers: { host: 'app' } }).then((r) => r.body.text())).rejects.toThrow();
    // Through the client sidecar: Envoy's 503 wording.
    const outPort = await outbound(inPort, 8080);
    const r = await request(`http://127.0.0.1:${outPort}/reset`, { headers: { host: 'app.default' } });
    expect(r.statusCode).toBe(503);
    expect(await r.body.text()).toContain('connection termination');
    // With `reset` in the client's retry policy, the client sidecar tries again (and again fails).
    const stats = new ProxyStats();
    const retrying = await outbound(inPort, 8080, { retry: retryPolicy(['reset'], 2), stats });
    const r2 = await request(`http://127.0.0.1:${retrying}/reset`, { headers: { host: 'app.default' } });
    expect(r2.statusCode).toBe(503);
    await r2.body.text();
    expect(stats.cluster(SVC).retries).toBe(2);
    expect(stats.cluster(SVC).errors.upstream_reset).toBe(1);
  });

  it('chooses the chain by the target port, adds XFCC for an authenticated peer, and asks authorization', async () => {
    const appA = await app('h1', 'app-a');
    const appB = await app('h1', 'app-b');
    const peer = 'spiffe://cluster.local/ns/default/sa/client';
    const own = 'spiffe://cluster.local/ns/default/sa/server';
    const fakeMtls = fakeMtlsInbound(peer, 9090);
    const asked: Array<{ path: string; identity: string | undefined; chain: string }> = [];
    const authorize: AuthorizeHook = (facts, p, chain) => {
      asked.push({ path: facts.path, identity: p.identity, chain: chain.name });
      return facts.path.startsWith('/admin') ? { allow: false, reason: 'denied by test policy' } : { allow: true, reason: 'ok' };
    };
    const port = await inbound(
      serverConfig([
        { port: 8080, appPort: appA.port },
        { port: 9090, appPort: appB.port },
      ]),
      { transport: fakeMtls, ownIdentity: () => own, authorize },
    );
    const res = await request(`http://127.0.0.1:${port}/hello`, { headers: { host: 'app', 'x-forwarded-client-cert': 'URI=spiffe://forged' } });
    const seen = (await res.body.json()) as EchoReport;
    expect(seen.server).toBe('app-b');
    expect(seen.headers['x-forwarded-client-cert']).toBe(`By=${own};URI=${peer}`);

    const denied = await request(`http://127.0.0.1:${port}/admin`, { headers: { host: 'app' } });
    expect(denied.statusCode).toBe(403);
    expect(await denied.body.text()).toBe('RBAC: access denied\n');
    expect(asked).toEqual([
      { path: '/hello', identity: peer, chain: 'inbound|9090' },
      { path: '/admin', identity: peer, chain: 'inbound|9090' },
    ]);
    expect(appB.seen).toHaveLength(1);
    expect(appA.seen).toHaveLength(0);
  });

  it('answers 404 when a plaintext connection cannot say which of several app ports it wants', async () => {
    const appA = await app();
    const port = await inbound(serverConfig([
      { port: 8080, appPort: appA.port },
      { port: 9090, appPort: appA.port },
    ]));
    const r = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'app' } });
    expect(r.statusCode).toBe(404);
    expect(await r.body.text()).toContain('cannot tell which app port');
  });

  it('closes gracefully: an HTTP/2 client gets GOAWAY after its in-flight stream completes', async () => {
    const target = await app();
    const l = createInboundListener({ port: 0, host: '127.0.0.1', getConfig: () => serverConfig([{ port: 8080, appPort: target.port }]), log: silentLog });
    const { port } = await l.listen();
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const pending = h2Request(session, { ':path': '/slow?ms=300', ':authority': 'app' });
    await eventually(() => expect(target.seen).toHaveLength(1));
    const closed = l.close(5000);
    const r = await pending;
    expect(r.status).toBe(200);
    await closed;
    expect(goaway).toBe(true);
    await expect(new Promise((resolve, reject) => net.connect(port, '127.0.0.1').on('connect', resolve).on('error', reject))).rejects.toThrow();
  });
});
