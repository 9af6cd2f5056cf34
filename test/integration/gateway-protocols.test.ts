// Protocols through the mesh, client app → sidecar → mTLS → sidecar → app: HTTP/1.1 keep-alive
// and chunked bodies with trailers, h2c from the app, HTTP/2 between sidecars chosen by
// appProtocol (`http`, `kubernetes.io/h2c`, `kubernetes.io/ws`), WebSocket and another Upgrade,
// and 50 MB bodies that are streamed, not buffered, in both directions.
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { eventually } from '../support/eventually.js';
import { call, startEcho, type EchoApp } from '../support/echo.js';
import { startTestMesh, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { httpRoute, workload } from './gateway-config.js';

const MB = 1024 * 1024;
const LARGE = 50 * MB;

/** Deterministic bytes for large bodies: chunk i of 1 MiB is filled with (i % 251). */
function chunkOf(i: number): Buffer {
  return Buffer.alloc(MB, i % 251);
}

function sha256Of(chunks: number): string {
  const h = createHash('sha256');
  for (let i = 0; i < chunks; i++) h.update(chunkOf(i));
  return h.digest('hex');
}

/** A promise with its resolve, for the gates the large-body tests use. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

/**
 * The HTTP/1.1 app behind Service `web` and `ws`: counts its connections (keep-alive), receives
 * and sends large bodies at a pace the test controls, answers chunked with trailers, and speaks
 * WebSocket (package ws) and a made-up `weft-echo` Upgrade that echoes bytes upper-cased.
 */
interface WebApp {
  readonly port: number;
  connections: number;
  /** Upload bytes received so far (reset per upload). */
  received: number;
  /** Opened by the test once the client has the first MiB of a download. */
  downloadGate: { promise: Promise<void>; open: () => void };
  readonly upgrades: string[];
  close(): Promise<void>;
}

async function startWebApp(): Promise<WebApp> {
  const sockets = new Set<net.Socket>();
  const app: WebApp = {
    port: 0,
    connections: 0,
    received: 0,
    downloadGate: gate(),
    upgrades: [],
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/upload') {
      app.received = 0;
      const h = createHash('sha256');
      req.on('data', (c: Buffer) => {
        app.received += c.length;
        h.update(c);
      });
      req.on('end', () => res.end(JSON.stringify({ bytes: app.received, sha256: h.digest('hex') })));
      return;
    }
    req.resume();
    if (url.pathname === '/download') {
      const chunks = Number(url.searchParams.get('mb'));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(chunks * MB) });
      res.write(chunkOf(0));
      // The rest only once the client holds the first MiB: a proxy that buffered the whole
      // response before sending it on would wait here forever.
      await app.downloadGate.promise;
      for (let i = 1; i < chunks; i++) {
        if (!res.write(chunkOf(i))) await new Promise((r) => res.once('drain', r));
        if (res.destroyed) return;
      }
      res.end();
      return;
    }
    if (url.pathname === '/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      const parts = ['alpha-', 'beta-', 'gamma'];
      for (const p of parts) res.write(p);
      res.addTrailers({ 'x-checksum': createHash('sha256').update(parts.join('')).digest('hex') });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, protocol: req.httpVersion, headers: req.headers }));
  });
  server.on('connection', (s: net.Socket) => {
    app.connections++;
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({ noServer: true });
  wss.on('connection', (ws, req) => {
    ws.send(JSON.stringify({ hello: req.url, header: req.headers['x-route'] ?? null }));
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const proto = String(req.headers.upgrade ?? '').toLowerCase();
    app.upgrades.push(proto);
    if (proto === 'websocket') {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
      return;
    }
    if (proto === 'weft-echo') {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: weft-echo\r\n\r\n');
      if (head.length > 0) socket.write(head.toString('latin1').toUpperCase());
      socket.on('data', (d: Buffer) => socket.write(d.toString('latin1').toUpperCase()));
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(app, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  });
}

function protocolMesh(webPort: number, h2cPort: number): Record<string, string> {
  const svc = (name: string, app: string, port: number, appProtocol: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  selector: { app: ${app} }
  ports: [{ name: port-${port}, port: ${port}, targetPort: app, appProtocol: ${appProtocol} }]
`;
  return {
    'workloads.yaml': [
      workload('client', 'default', { app: 'client' }),
      workload('web', 'default', { app: 'web' }, webPort, 'app'),
      workload('h2c', 'default', { app: 'h2c' }, h2cPort, 'app'),
    ].join('---\n'),
    'services.yaml': [svc('web', 'web', 80, 'http'), svc('ws', 'web', 8080, 'kubernetes.io/ws'), svc('h2c', 'h2c', 8080, 'kubernetes.io/h2c')].join('---\n'),
    // Retries and a mirror make the proxy want to replay bodies: large ones must still stream.
    'routes.yaml': [
      httpRoute('web', 'web', `- retry: { attempts: 2 }\n  backendRefs: [{ name: web, port: 80 }]`),
      httpRoute(
        'ws',
        'ws',
        `- matches: [{ path: { value: /chat } }]
  filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-route, value: chat } ] } }]
  backendRefs: [{ name: ws, port: 8080 }]
- backendRefs: [{ name: ws, port: 8080 }]`,
      ),
    ].join('---\n'),
  };
}

let mesh: TestMesh;
let client: TestSidecar;
let webSidecar: TestSidecar;
let h2cSidecar: TestSidecar;
let web: WebApp;
let h2c: EchoApp;

beforeAll(async () => {
  [web, h2c] = await Promise.all([startWebApp(), startEcho('h2c', { h2c: true })]);
  mesh = await startTestMesh(protocolMesh(web.port, h2c.port));
  [client, webSidecar, h2cSidecar] = (await Promise.all(['client.default', 'web.default', 'h2c.default'].map((w) => mesh.sidecar(w)))) as [
    TestSidecar,
    TestSidecar,
    TestSidecar,
  ];
  await waitReady(client, webSidecar, h2cSidecar);
  await eventually(async () => {
    expect((await call(client.outbound, 'web', '/warmup')).status).toBe(200);
    expect((await call(client.outbound, 'h2c:8080', '/warmup')).status).toBe(200);
  }, { timeoutMs: 20_000, message: 'apps reachable' });
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  await Promise.all([web?.close(), h2c?.close()]);
});

/** One request over a given agent (to control connection reuse). */
function viaAgent(agent: http.Agent, host: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}) {
  const proxy = new URL(client.outbound);
  return new Promise<{ status: number; body: string; reused: boolean; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, path, method: init.method ?? 'GET', headers: { host, ...init.headers }, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket, trailers: res.trailers }));
    });
    req.on('error', reject);
    req.end(init.body);
  });
}

async function statsOf(s: TestSidecar): Promise<{ listeners: Record<string, { connectionsTotal: number; requests: number }> }> {
  return (await (await fetch(`${s.admin}/stats`)).json()) as { listeners: Record<string, { connectionsTotal: number; requests: number }> };
}

describe('HTTP/1.1', () => {
  it('keep-alive: one client connection carries many requests, and the hops behind it reuse theirs', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const appConnections = web.connections;
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await viaAgent(agent, 'web', `/keepalive/${i}`));
    agent.destroy();
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(results.slice(1).every((r) => r.reused)).toBe(true);
    expect(web.connections - appConnections).toBeLessThanOrEqual(1);
  });

  it('chunked request and response bodies, with response trailers', async () => {
    const agent = new http.Agent({ keepAlive: true });
    const body = Buffer.alloc(200_000, 'c');
    const up = await viaAgent(agent, 'web', '/upload', { method: 'POST', headers: { 'transfer-encoding': 'chunked' }, body });
    expect(JSON.parse(up.body)).toEqual({ bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') });
    const down = await viaAgent(agent, 'web', '/chunked');
    expect(down.body).toBe('alpha-beta-gamma');
    expect(down.trailers['x-checksum']).toBe(createHash('sha256').update('alpha-beta-gamma').digest('hex'));
    agent.destroy();
  });
});

describe('HTTP/2', () => {
  it('h2c from the app (prior knowledge) to an HTTP/1.1 app', async () => {
    const session = http2.connect(client.outbound);
    try {
      const r = await h2Get(session, 'web', '/h2c-in');
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ path: '/h2c-in', protocol: '1.1' });
    } finally {
      session.close();
    }
  });

  it('appProtocol kubernetes.io/h2c: the app is reached with h2c, from HTTP/1.1 and h2c clients', async () => {
    const fromH1 = await call(client.outbound, 'h2c:8080', '/from-h1');
    expect(fromH1.echo).toMatchObject({ name: 'h2c', protocol: '2.0', path: '/from-h1', host: 'h2c:8080' });
    const session = http2.connect(client.outbound);
    try {
      const r = await h2Get(session, 'h2c.default:8080', '/from-h2');
      expect(JSON.parse(r.body)).toMatchObject({ name: 'h2c', protocol: '2.0', path: '/from-h2' });
    } finally {
      session.close();
    }
  });

  it('between sidecars an HTTP/2 Service multiplexes: 50 concurrent requests, at most one new mTLS connection', async () => {
    const before = (await statsOf(h2cSidecar)).listeners.inbound!;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => call(client.outbound, 'h2c:8080', `/mux/${i}`)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    const after = (await statsOf(h2cSidecar)).listeners.inbound!;
    expect(after.requests - before.requests).toBe(50);
    expect(after.connectionsTotal - before.connectionsTotal).toBeLessThanOrEqual(1);
  });

  it('an HTTP/1.1 Service does not: concurrent requests open several connections', async () => {
    const before = (await statsOf(webSidecar)).listeners.inbound!;
    await Promise.all(Array.from({ length: 20 }, (_, i) => call(client.outbound, 'web', `/h1-par/${i}`)));
    const after = (await statsOf(webSidecar)).listeners.inbound!;
    expect(after.connectionsTotal - before.connectionsTotal).toBeGreaterThan(1);
  });
});

describe('Upgrade', () => {
  it('WebSocket (appProtocol kubernetes.io/ws): text, binary, ping and close through both sidecars', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${new URL(client.outbound).port}/socket`, { headers: { host: 'ws:8080' } });
    const messages: (string | Buffer)[] = [];
    ws.on('message', (d: Buffer, binary: boolean) => messages.push(binary ? d : d.toString()));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await eventually(() => expect(messages).toHaveLength(1));
    expect(JSON.parse(messages[0] as string)).toEqual({ hello: '/socket', header: null });
    ws.send('hello over the mesh');
    ws.send(Buffer.from([0, 1, 2, 255]));
    const big = 'x'.repeat(300_000);
    ws.send(big);
    await eventually(() => expect(messages).toHaveLength(4));
    expect(messages[1]).toBe('hello over the mesh');
    expect([...(messages[2] as Buffer)]).toEqual([0, 1, 2, 255]);
    expect(messages[3]).toBe(big);
    const pong = new Promise<void>((r) => ws.once('pong', () => r()));
    ws.ping();
    await pong;
    const closed = new Promise<number>((r) => ws.once('close', (code: number) => r(code)));
    ws.close(4001, 'done');
    expect(await closed).toBe(4001);
  });

  it('WebSocket on a route with a path match and a request header filter', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${new URL(client.outbound).port}/chat/room`, { headers: { host: 'ws.default:8080' } });
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(d.toString()));
      ws.once('error', reject);
    });
    expect(JSON.parse(first)).toEqual({ hello: '/chat/room', header: 'chat' });
    ws.terminate();
  });

  it('another Upgrade protocol is tunnelled as bytes both ways', async () => {
    const port = Number(new URL(client.outbound).port);
    const socket = net.connect(port, '127.0.0.1');
    try {
      socket.write('GET /raw HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: weft-echo\r\n\r\n');
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (got += d));
      await eventually(() => expect(got).toContain('\r\n\r\n'));
      expect(got).toMatch(/^HTTP\/1\.1 101 /);
      got = '';
      socket.write('ping across the mesh');
      await eventually(() => expect(got).toBe('PING ACROSS THE MESH'));
      expect(web.upgrades).toContain('weft-echo');
    } finally {
      socket.destroy();
    }
  });
});

describe('large bodies are streamed, not buffered', () => {
  it('a 50 MB upload reaches the app before the client has sent it all, intact', async () => {
    const proxy = new URL(client.outbound);
    const req = http.request({
      host: proxy.hostname,
      port: proxy.port,
      method: 'POST',
      path: '/upload',
      headers: { host: 'web', 'content-length': String(LARGE), 'content-type': 'application/octet-stream' },
    });
    const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
    });
    req.write(chunkOf(0));
    // The rest only once the app has the first MiB: a proxy that buffered the whole request
    // body first would never deliver it.
    await eventually(() => expect(web.received).toBeGreaterThanOrEqual(MB), { timeoutMs: 20_000, message: 'first MiB at the app' });
    for (let i = 1; i < LARGE / MB; i++) {
      if (!req.write(chunkOf(i))) await new Promise((r) => req.once('drain', r));
    }
    req.end();
    const r = await response;
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ bytes: LARGE, sha256: sha256Of(LARGE / MB) });
  }, 120_000);

  it('a 50 MB download reaches the client before the app has sent it all, intact', async () => {
    web.downloadGate = gate();
    const proxy = new URL(client.outbound);
    const result = await new Promise<{ status: number; bytes: number; sha256: string }>((resolve, reject) => {
      const req = http.request({ host: proxy.hostname, port: proxy.port, path: `/download?mb=${LARGE / MB}`, headers: { host: 'web' } }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          bytes += c.length;
          h.update(c);
          if (bytes >= MB) web.downloadGate.open();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, sha256: h.digest('hex') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    expect(result).toEqual({ status: 200, bytes: LARGE, sha256: sha256Of(LARGE / MB) });
  }, 120_000);
});

function h2Get(session: http2.ClientHttp2Session, authority: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'GET', ':path': path, ':authority': authority });
    let status = 0;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: string) => (body += c));
    stream.on('end', () => resolve({ status, body }));
    stream.on('error', reject);
    stream.end();
  });
}
