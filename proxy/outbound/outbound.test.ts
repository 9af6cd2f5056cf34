// The outbound listener end to end: a real listener on 127.0.0.1:0, echo backends, the real
// planner, HTTP/1.1 and h2c clients. Each test tells one story of an app calling through it.
import http2 from 'node:http2';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Client, request } from 'undici';
import type { ProxyConfig } from '../state/types.js';
import { ProxyStats } from '../http/stats.js';
import {
  buildConfig, cluster, deadPort, endpoint, eventually, forwardTo, h2Request, rawExchange, retryPolicy, route,
  serviceDomains, silentLog, startBlackHole, startEchoH1, startEchoH2, vhost, type Echo, type EchoReport,
} from '../http/testkit.js';
import { createOutboundListener, type OutboundListener, type OutboundListenerOptions } from './listener.js';

const ECHO = 'outbound|8080||echo.default.svc.cluster.local';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoH1(name?: string): Promise<Echo> {
  const e = await startEchoH1(name);
  cleanups.push(() => e.close());
  return e;
}

/** A config where `echo.default` (port 8080) routes to ECHO with the given endpoints. */
function echoConfig(endpoints: ReturnType<typeof endpoint>[], more: { action?: Parameters<typeof route>[1]; protocol?: 'http1' | 'http2'; extraClusters?: ReturnType<typeof cluster>[]; extraEndpoints?: Record<string, ReturnType<typeof endpoint>[]> } = {}): ProxyConfig {
  return buildConfig({
    routes: [{ name: 'outbound', virtualHosts: [vhost('echo.default.svc.cluster.local:8080', serviceDomains('echo', 'default', 8080), [route('default/echo/0', more.action ?? forwardTo([ECHO]))])] }],
    clusters: [cluster(ECHO, { protocol: more.protocol ?? 'http1' }), ...(more.extraClusters ?? [])],
    endpoints: { [ECHO]: endpoints, ...(more.extraEndpoints ?? {}) },
  });
}

async function startOutbound(config: { current: ProxyConfig }, more: Partial<OutboundListenerOptions> = {}): Promise<{ port: number; listener: OutboundListener }> {
  const listener = createOutboundListener({ port: 0, host: '127.0.0.1', getConfig: () => config.current, routeConfigName: 'outbound', log: silentLog, ...more });
  const addr = await listener.listen();
  cleanups.push(() => listener.close(200));
  return { port: addr.port, listener };
}

async function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET') {
  const res = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as EchoReport };
}

describe('outbound listener', () => {
  it('forwards HTTP/1.1 over one keep-alive connection and reuses the upstream connection', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const client = new Client(`http://127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    for (let i = 0; i < 3; i++) {
      const res = await client.request({ path: `/hello/${i}?x=1`, method: 'GET', headers: { host: 'echo.default.svc.cluster.local:8080', 'x-request-id': i === 0 ? 'given-id' : undefined } as Record<string, string> });
      expect(res.statusCode).toBe(200);
      const r = (await res.body.json()) as EchoReport;
      expect(r.path).toBe(`/hello/${i}?x=1`);
      expect(r.authority).toBe('echo.default.svc.cluster.local:8080');
      expect(r.headers['x-forwarded-proto']).toBe('http');
      expect(r.headers['x-request-id']).toEqual(i === 0 ? 'given-id' : expect.stringMatching(/^[0-9a-f-]{36}$/));
    }
    expect(listener.stats().listeners.outbound!.connectionsTotal).toBe(1);
    expect(new Set(echo.seen.map((s) => s.remotePort)).size).toBe(1);
    expect(listener.stats().clusters[ECHO]!.responses['2xx']).toBe(3);
  });

  it('accepts h2c prior knowledge on the same port and forwards to HTTP/1.1 and HTTP/2 upstreams', async () => {
    const h1 = await echoH1('h1');
    const h2 = await startEchoH2('h2');
    cleanups.push(() => h2.close());
    const config = { current: echoConfig([endpoint('127.0.0.1', h1.port)]) };
    const { port } = await startOutbound(config);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(async () => void session.close());

    const a = await h2Request(session, { ':path': '/via-h2', ':authority': 'echo.default:8080' });
    expect(a.status).toBe(200);
    expect(JSON.parse(a.body)).toMatchObject({ server: 'h1', protocol: '1.1', path: '/via-h2', authority: 'echo.default:8080' });

    config.current = echoConfig([endpoint('127.0.0.1', h2.port)], { protocol: 'http2' });
    const b = await h2Request(session, { ':path': '/via-h2', ':authority': 'echo.default:8080' });
    expect(JSON.parse(b.body)).toMatchObject({ server: 'h2', protocol: '2.0' });

    // Trailers (gRPC-style) travel end to end over HTTP/2.
    const t = await h2Request(session, { ':path': '/trailers', ':authority': 'echo.default:8080', te: 'trailers' });
    expect(t.body).toBe('payload');
    expect(t.trailers).toMatchObject({ 'grpc-status': '0', 'x-trailer': 'yes' });
  });

  it('routes absolute-form requests by their target, not by Host, and sends origin-form upstream', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const text = await rawExchange(port, 'GET http://echo.default/abs/path?q=1 HTTP/1.1\r\nHost: somewhere.else\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(echo.seen[0]).toMatchObject({ path: '/abs/path?q=1', authority: 'echo.default' });
  });

  it('matches Host with a port, and answers 404 naming a host that is not a mesh service', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    expect((await get(port, '/', { host: 'echo.default.svc:8080' })).status).toBe(200);
    const withPort = await get(port, '/', { host: 'other.default.svc:8080' });
    expect(withPort.status).toBe(404);
    expect(withPort.text).toContain('"other.default.svc:8080"');
    const unknown = await get(port, '/x', { host: 'nope.example' });
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('"nope.example"');
    expect(unknown.text).toContain('no route');
    expect(echo.seen).toHaveLength(1);
  });

  it('answers gRPC requests with a trailers-only gRPC status (UNIMPLEMENTED for no route)', async () => {
    const { port } = await startOutbound({ current: echoConfig([]) });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(async () => void session.close());
    const r = await h2Request(session, { ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'nope.example', 'content-type': 'application/grpc' }, Buffer.alloc(5));
    expect(r.status).toBe(200);
    expect(r.headers['grpc-status']).toBe('12');
    expect(decodeURIComponent(String(r.headers['grpc-message']))).toContain('nope.example');
    expect(r.body).toBe('');
    // No endpoints: UNAVAILABLE.
    const u = await h2Request(session, { ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': 'echo.default:8080', 'content-type': 'application/grpc' }, Buffer.alloc(5));
    expect(u.headers['grpc-status']).toBe('14');
  });

  it('answers 503 naming the cluster when it has no healthy endpoint', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port, { healthy: false })]) });
    const r = await get(port, '/', { host: 'echo.default' });
    expect(r.status).toBe(503);
    expect(r.text).toContain(ECHO);
    expect(listener.stats().clusters[ECHO]!.errors.no_healthy_upstream).toBe(1);
    expect(echo.seen).toHaveLength(0);
  });

  it('answers the route\'s status when the cluster is missing from the config', async () => {
    const { port } = await startOutbound({ current: echoConfig([], { action: forwardTo(['outbound|1||ghost'], { clusterNotFoundStatus: 500 }) }) });
    const r = await get(port, '/', { host: 'echo.default' });
    expect(r.status).toBe(500);
    expect(r.text).toContain('outbound|1||ghost');
  });

  it('splits by endpoint weight (round robin) and by backend weight (planner)', async () => {
    const a = await echoH1('a');
    const b = await echoH1('b');
    const byEndpoint = echoConfig([endpoint('127.0.0.1', a.port, { weight: 3 }), endpoint('127.0.0.1', b.port, { weight: 1 })]);
    const config = { current: byEndpoint };
    const { port } = await startOutbound(config);
    const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 1, connections: 4 } as ConstructorParameters<typeof Client>[1]);
    cleanups.push(() => client.close());
    const count = async (n: number) => {
      const servers: string[] = [];
      for (let i = 0; i < n; i++) {
        const res = await client.request({ path: '/', method: 'GET', headers: { host: 'echo.default' } });
        servers.push(((await res.body.json()) as EchoReport).server);
      }
      return servers.filter((s) => s === 'a').length / n;
    };
    expect(await count(400)).toBeCloseTo(0.75, 2); // smooth WRR is exact over whole cycles

    const A = 'outbound|8080||a';
    const B = 'outbound|8080||b';
    config.current = buildConfig({
      routes: [{ name: 'outbound', virtualHosts: [vhost('echo', ['echo.default'], [route('r', forwardTo([{ cluster: A, weight: 80 }, { cluster: B, weight: 20 }]))])] }],
      clusters: [cluster(A), cluster(B)],
      endpoints: { [A]: [endpoint('127.0.0.1', a.port)], [B]: [endpoint('127.0.0.1', b.port)] },
    });
    const share = await count(500);
    expect(share).toBeGreaterThan(0.8 - 0.07);
    expect(share).toBeLessThan(0.8 + 0.07);
  });

  it('finishes an in-flight request on the snapshot it started with when the config is swapped', async () => {
    const old = await echoH1('old');
    const next = await echoH1('new');
    const config = { current: echoConfig([endpoint('127.0.0.1', old.port)]) };
    const { port } = await startOutbound(config);
    const inFlight = get(port, '/slow?ms=400', { host: 'echo.default' });
    await eventually(() => expect(old.seen).toHaveLength(1));
    // The new snapshot drops the old cluster entirely and sends the Service elsewhere.
    const NEXT = 'outbound|8080||next';
    config.current = buildConfig({
      routes: [{ name: 'outbound', virtualHosts: [vhost('echo', ['echo.default'], [route('r', forwardTo([NEXT]))])] }],
      clusters: [cluster(NEXT)],
      endpoints: { [NEXT]: [endpoint('127.0.0.1', next.port)] },
    });
    const after = await get(port, '/', { host: 'echo.default' });
    expect(after.json().server).toBe('new');
    const done = await inFlight;
    expect(done.status).toBe(200);
    expect(done.json().server).toBe('old');
  });

  it('resets the client when the upstream resets after the response started (HTTP/1.1 and h2)', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const res = await request(`http://127.0.0.1:${port}/reset-mid-body`, { headers: { host: 'echo.default' } });
    expect(res.statusCode).toBe(200);
    await expect(res.body.arrayBuffer()).rejects.toThrow();

    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    cleanups.push(async () => void session.destroy());
    const err = await new Promise<{ rst: number | undefined; gotHeaders: boolean }>((resolve) => {
      const s = session.request({ ':path': '/reset-mid-body', ':authority': 'echo.default' });
      let gotHeaders = false;
      s.on('response', () => (gotHeaders = true));
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve({ rst: s.rstCode, gotHeaders }));
    });
    expect(err.gotHeaders).toBe(true);
    expect(err.rst).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    expect(listener.stats().clusters[ECHO]!.resetsAfterHeaders).toBe(2);
  });

  it('answers 503 (Envoy wording) when the upstream resets before headers', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const r = await get(port, '/reset', { host: 'echo.default' });
    expect(r.status).toBe(503);
    expect(r.text).toContain('upstream connect error or disconnect/reset before headers');
  });

  it('retries a connect failure on another endpoint; without a retry policy the failure shows', async () => {
    const echo = await echoH1('alive');
    const dead = await deadPort();
    const eps = [endpoint('127.0.0.1', dead), endpoint('127.0.0.1', echo.port)];
    const config = { current: echoConfig(eps, { action: forwardTo([ECHO], { retry: retryPolicy(['connect-failure'], 2) }) }) };
    const stats = new ProxyStats();
    const { port } = await startOutbound(config, { stats });
    for (let i = 0; i < 6; i++) {
      const r = await get(port, '/', { host: 'echo.default' });
      expect(r.status).toBe(200);
      expect(r.json().server).toBe('alive');
    }
    expect(stats.cluster(ECHO).retries).toBeGreaterThanOrEqual(3);

    config.current = echoConfig(eps);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await get(port, '/', { host: 'echo.default' }));
    const failed = statuses.filter((s) => s.status === 503);
    expect(failed.length).toBe(2);
    expect(failed[0]!.text).toContain('reset reason: connection failure');
  });

  it('retries on a retriable status with a buffered body and replays the body', async () => {
    const bad = await echoH1('bad');
    const good = await echoH1('good');
    const A = 'outbound|8080||a';
    const config = buildConfig({
      routes: [{ name: 'outbound', virtualHosts: [vhost('echo', ['echo.default'], [route('r', forwardTo([A], { retry: retryPolicy(['retriable-status-codes'], 1, { retriableStatusCodes: new Set([503]) }) }))])] }],
      clusters: [cluster(A)],
      endpoints: { [A]: [endpoint('127.0.0.1', bad.port), endpoint('127.0.0.1', good.port)] },
    });
    // Both answer 503 on /status/503: the first try (bad) is retried on the other endpoint with
    // the same buffered body; the retry budget (1) is then spent, so its 503 is forwarded.
    const { port } = await startOutbound({ current: config });
    const r = await request(`http://127.0.0.1:${port}/status/503`, { method: 'POST', headers: { host: 'echo.default' }, body: 'hello body' });
    expect(r.statusCode).toBe(503);
    await r.body.text();
    expect(bad.seen.map((s) => s.bodyBytes)).toEqual([10]);
    expect(good.seen.map((s) => s.bodyBytes)).toEqual([10]);
  });

  it('answers 504 when the route timeout expires before the response', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)], { action: forwardTo([ECHO], { timeoutMs: 200 }) }) });
    const t0 = Date.now();
    const r = await get(port, '/slow?ms=3000', { host: 'echo.default' });
    expect(r.status).toBe(504);
    expect(r.text).toBe('upstream request timeout\n');
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(listener.stats().clusters[ECHO]!.errors.upstream_timeout).toBe(1);
  });

  it('moves on to the next endpoint when a try exceeds its per-try timeout', async () => {
    const hole = await startBlackHole();
    cleanups.push(() => hole.close());
    const echo = await echoH1('alive');
    const retry = retryPolicy(['5xx'], 1, { perTryTimeoutMs: 150 });
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', hole.port), endpoint('127.0.0.1', echo.port)], { action: forwardTo([ECHO], { retry }) }) });
    const r = await get(port, '/', { host: 'echo.default' });
    expect(r.status).toBe(200);
    expect(r.json().server).toBe('alive');
  });

  it('resets a response that started when the route timeout expires, and cancels the upstream', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)], { action: forwardTo([ECHO], { timeoutMs: 300 }) }) });
    const res = await request(`http://127.0.0.1:${port}/hold`, { headers: { host: 'echo.default' } });
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await eventually(() => expect(echo.aborted.value).toBe(1));
    expect(listener.stats().clusters[ECHO]!.inFlight).toBe(0);
  });

  it('cancels the upstream request when the client goes away', async () => {
    const echo = await echoH1();
    const { port, listener } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const text = await rawExchange(port, 'GET /hold HTTP/1.1\r\nHost: echo.default\r\n\r\n', (t) => t.includes('first;'));
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    await eventually(() => expect(echo.aborted.value).toBe(1));
    await eventually(() => expect(listener.stats().clusters[ECHO]!.inFlight).toBe(0));
  });

  it('streams a 20 MB upload and a 20 MB download without buffering them', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const total = 20 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    const hash = createHash('sha256');
    // The upload pauses after 1 MB until the backend has received bytes of it: a proxy that
    // buffered the whole body before forwarding would never get past this point.
    async function* upload() {
      for (let sent = 0; sent < total; sent += chunk.length) {
        if (sent === 4 * chunk.length) await eventually(() => expect(echo.bytesInFlight.value).toBeGreaterThan(0), { timeoutMs: 5000 });
        hash.update(chunk);
        yield chunk;
      }
    }
    const heapBefore = process.memoryUsage().heapUsed;
    const up = await request(`http://127.0.0.1:${port}/upload`, {
      method: 'POST',
      headers: { host: 'echo.default', 'content-type': 'application/octet-stream' },
      body: Readable.from(upload()),
    });
    const report = (await up.body.json()) as EchoReport;
    expect(report.bodyBytes).toBe(total);
    expect(report.bodySha256).toBe(hash.digest('hex'));

    const down = await request(`http://127.0.0.1:${port}/download?bytes=${total}`, { headers: { host: 'echo.default' } });
    let received = 0;
    for await (const c of down.body) received += (c as Buffer).length;
    expect(received).toBe(total);
    // Loose sanity bound: 40 MB went through; far less than that may stay on the heap.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(30 * 1024 * 1024);
  });

  it('streams the response: the client reads the first chunk before the upstream has finished', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const res = await request(`http://127.0.0.1:${port}/hold`, { headers: { host: 'echo.default' } });
    const it = res.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(String(first.value)).toBe('first;');
    echo.release();
    let rest = '';
    for (let r = await it.next(); !r.done; r = await it.next()) rest += String(r.value);
    expect(rest).toBe('last');
  });

  it('tunnels an HTTP/1.1 Upgrade (WebSocket style) and echoes bytes both ways', async () => {
    const echo = await echoH1();
    const { port } = await startOutbound({ current: echoConfig([endpoint('127.0.0.1', echo.port)]) });
    const text = await rawExchange(
      port,
      'GET /ws HTTP/1.1\r\nHost: echo.default\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: x\r\n\r\nhello-through-tunnel',
      (t) => t.includes('hello-through-tunnel'),
    );
    expect(text).toMatch(/^HTTP\/1\.1 101/);
    expect(text).toContain('hello-through-tunnel');
    expect(echo.seen[0]).toMatchObject({ path: '/ws', authority: 'echo.default' });
    expect(echo.seen[0]!.headers['x-forwarded-proto']).toBe('http');
  });

  it('passes absolute-form requests for non-mesh hosts through, unless the policy is REGISTRY_ONLY', async () => {
    const external = await echoH1('external');
    const { port, listener } = await startOutbound({ current: echoConfig([]) });
    const text = await rawExchange(port, `GET http://127.0.0.1:${external.port}/ext?a=b HTTP/1.1\r\nHost: 127.0.0.1:${external.port}\r\nConnection: close\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(external.seen[0]).toMatchObject({ path: '/ext?a=b' });
    expect(listener.stats().listeners.outbound!.passthrough).toBe(1);

    // CONNECT to a non-mesh host: a plain TCP tunnel.
    const viaConnect = await rawExchange(
      port,
      `CONNECT 127.0.0.1:${external.port} HTTP/1.1\r\nHost: 127.0.0.1:${external.port}\r\n\r\nGET /in-tunnel HTTP/1.1\r\nHost: ext\r\nConnection: close\r\n\r\n`,
      (t) => t.includes('"/in-tunnel"'),
    );
    expect(viaConnect).toMatch(/^HTTP\/1\.1 200 Connection Established/);

    const strict = await startOutbound({ current: echoConfig([]) }, { outboundPolicy: 'REGISTRY_ONLY' });
    const refused = await rawExchange(strict.port, `GET http://127.0.0.1:${external.port}/ext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(refused).toMatch(/^HTTP\/1\.1 502/);
    expect(refused).toContain('BlackHoleCluster');
    expect(external.seen).toHaveLength(2);
  });

  it('carries out direct responses, redirects, header mutations and mirrors', async () => {
    const echo = await echoH1('primary');
    const shadow = await echoH1('shadow');
    const SHADOW = 'outbound|8080||shadow';
    const config = buildConfig({
      routes: [
        {
          name: 'outbound',
          virtualHosts: [
            vhost('echo', ['echo.default'], [
              route('direct', { kind: 'direct', status: 418, body: 'teapot' }, { prefix: '/direct' }),
              route('redirect', { kind: 'redirect', status: 301, path: { kind: 'full', value: '/moved' }, stripQuery: false }, { prefix: '/old' }),
              route('main', forwardTo([ECHO], { mirrors: [{ cluster: SHADOW, fraction: 1 }] }), {
                requestHeaders: { add: [{ name: 'x-added', value: 'yes', action: 'overwrite' }], remove: ['x-remove-me'] },
                responseHeaders: { add: [{ name: 'x-resp', value: 'mutated', action: 'overwrite' }], remove: ['x-echo-server'] },
              }),
            ]),
          ],
        },
      ],
      clusters: [cluster(ECHO), cluster(SHADOW)],
      endpoints: { [ECHO]: [endpoint('127.0.0.1', echo.port)], [SHADOW]: [endpoint('127.0.0.1', shadow.port)] },
    });
    const { port } = await startOutbound({ current: config });
    const d = await get(port, '/direct', { host: 'echo.default' });
    expect([d.status, d.text]).toEqual([418, 'teapot']);
    const r = await get(port, '/old', { host: 'echo.default' });
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe('http://echo.default/moved');
    const m = await get(port, '/main', { host: 'echo.default', 'x-remove-me': '1' });
    expect(m.headers['x-resp']).toBe('mutated');
    expect(m.headers['x-echo-server']).toBeUndefined();
    expect(m.json().headers['x-added']).toBe('yes');
    expect(m.json().headers['x-remove-me']).toBeUndefined();
    await eventually(() => expect(shadow.seen[0]).toMatchObject({ path: '/main', authority: 'echo.default-shadow' }));
  });

  /** Closes the listener while a slow request to `echo` is in flight: the request finishes, and
   *  its client learns the connection ends with this response (HTTP/1.1 drain). Returns the port. */
  async function drainWithOneInFlight(config: ProxyConfig, echo: { seen: unknown[] }): Promise<number> {
    const listener = createOutboundListener({ port: 0, getConfig: () => config, log: silentLog });
    const { port } = await listener.listen();
    const inFlight = get(port, '/slow?ms=300', { host: 'echo.default' });
    await eventually(() => expect(echo.seen).toHaveLength(1));
    const closed = listener.close(5000);
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.headers.connection).toBe('close');
    await closed;
    return port;
  }

  it('drains on close: in-flight requests finish, new connections are refused', async () => {
    const echo = await echoH1();
    const port = await drainWithOneInFlight(echoConfig([endpoint('127.0.0.1', echo.port)]), echo);
    await expect(get(port, '/', { host: 'echo.default' })).rejects.toThrow();
  });

  it('drains on close on the node:http path too: a response not started yet says Connection: close', async () => {
    // A mirrored route is not a plain forward: node:http's path carries it, not the fast path.
    const echo = await echoH1('primary');
    const shadow = await echoH1('shadow');
    const SHADOW = 'outbound|8080||shadow';
    const config = buildConfig({
      routes: [{ name: 'outbound', virtualHosts: [vhost('echo', ['echo.default'], [route('main', forwardTo([ECHO], { mirrors: [{ cluster: SHADOW, fraction: 1 }] }))])] }],
      clusters: [cluster(ECHO), cluster(SHADOW)],
      endpoints: { [ECHO]: [endpoint('127.0.0.1', echo.port)], [SHADOW]: [endpoint('127.0.0.1', shadow.port)] },
    });
    await drainWithOneInFlight(config, echo);
  });
});
