// Observability end to end on loopback: a client sidecar and server sidecars with mTLS, real
// traffic, then what an operator reads — Istio metrics scraped from /stats/prometheus and
// parsed as Prometheus text, TCP metrics for a tunnel, the JSON access log of both sides, and
// decision records returned to the local app that asks for one.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { originForm, startTestMesh, viaProxy, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { samples, scrape, total } from '../support/prometheus.js';

const SPIFFE = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

function config(reviewsPort: number, ratingsPort: number): Record<string, string> {
  const service = (name: string, selector: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  selector: { ${selector} }
  ports: [{ name: http, port: 9080, targetPort: http }]
`;
  return {
    'services.yaml': [service('reviews', 'app: reviews'), service('reviews-v1', 'app: reviews, version: v1'), service('ratings', 'app: ratings')].join('---\n'),
    'workloads.yaml': `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: default, labels: { app: reviews, version: v1 } }
spec: { address: 127.0.0.1, ports: { http: ${reviewsPort} }, serviceAccount: reviews }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ratings-v1, namespace: default, labels: { app: ratings } }
spec: { address: 127.0.0.1, ports: { http: ${ratingsPort} }, serviceAccount: ratings }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { address: 127.0.0.1, serviceAccount: client }
`,
    'route.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /flaky } }]
      backendRefs: [{ name: reviews-v1, port: 9080 }]
      retry: { codes: [503], attempts: 2, backoff: 1ms }
    - backendRefs: [{ name: reviews-v1, port: 9080 }]
`,
  };
}

interface App {
  readonly port: number;
  close(): Promise<void>;
}

/** reviews-v1's app: echoes what it saw; /flaky answers 503 to every other request; an
 *  Upgrade gets 101 and its bytes echoed. */
async function startReviewsApp(): Promise<App> {
  let flaky = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url?.startsWith('/flaky') && flaky++ % 2 === 0) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('try again\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-version': 'v1' });
      res.end(JSON.stringify({ path: req.url, headers: req.headers }));
    });
  });
  server.on('upgrade', (_req, socket: net.Socket, head: Buffer) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** A port nothing listens on (the ratings app is down). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('observability through a sidecar pair', () => {
  let mesh: TestMesh;
  let app: App;
  let client: TestSidecar;
  let reviews: TestSidecar;
  let ratings: TestSidecar;
  let dir: string;
  const clientLog = () => path.join(dir, 'client-access.log');
  const reviewsLog = () => path.join(dir, 'reviews-access.log');
  const readLog = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown> & { decision: Record<string, unknown> });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'weft-obs-'));
    app = await startReviewsApp();
    mesh = await startTestMesh(config(app.port, await deadPort()));
    [client, reviews, ratings] = await Promise.all([
      mesh.sidecar('client.default', { accessLog: clientLog() }),
      mesh.sidecar('reviews-v1.default', { accessLog: reviewsLog() }),
      mesh.sidecar('ratings-v1.default'),
    ]);
    await waitReady(client, reviews, ratings);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://reviews:9080/warmup')).status).toBe(200), { timeoutMs: 15_000 });
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://ratings:9080/warmup')).status).toBe(503), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    await mesh?.close();
    await app?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const stats = (s: TestSidecar) => `http://127.0.0.1:${s.proxy.ports.stats}/stats/prometheus`;

  it('exports Istio request metrics with Istio labels from both reporters', async () => {
    const body = 'x'.repeat(100);
    const received: number[] = [];
    for (let i = 0; i < 10; i++) received.push(Buffer.byteLength((await viaProxy(client.outbound, `http://reviews:9080/m/${i}`)).body));
    for (let i = 0; i < 5; i++) {
      const r = await viaProxy(client.outbound, `http://reviews:9080/m/post/${i}`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
      expect(r.status).toBe(200);
      received.push(Buffer.byteLength(r.body));
    }
    const source = {
      reporter: 'source',
      source_workload: 'client',
      source_workload_namespace: 'default',
      source_principal: SPIFFE('client'),
      destination_workload: 'reviews-v1',
      destination_workload_namespace: 'default',
      destination_principal: SPIFFE('reviews'),
      destination_service: 'reviews-v1.default.svc.cluster.local',
      destination_service_name: 'reviews-v1',
      destination_service_namespace: 'default',
      request_protocol: 'http',
      response_code: '200',
      grpc_response_status: '',
      response_flags: '-',
      connection_security_policy: 'unknown',
    };
    const destination = {
      ...source,
      reporter: 'destination',
      destination_service: 'reviews.default.svc.cluster.local',
      destination_service_name: 'reviews',
      connection_security_policy: 'mutual_tls',
    };
    // The 15 requests (plus the warm-up, which the counts below include) are recorded when
    // each response closes: look until both sides have them all.
    const before = { requests: 1 };
    await eventually(async () => {
      const c = (await scrape(stats(client))).families;
      const s = (await scrape(stats(reviews))).families;
      expect(total(c, 'istio_requests_total', source)).toBe(15 + before.requests);
      expect(total(s, 'istio_requests_total', destination)).toBe(15 + before.requests);
    });
    const { families: c, contentType } = await scrape(stats(client));
    const { families: s } = await scrape(stats(reviews));
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    // One series per side, carrying every Istio label (and only those).
    const [series] = samples(c, 'istio_requests_total', source);
    expect(Object.keys(series!.labels!).sort()).toEqual(Object.keys(source).sort());
    for (const fam of [c, s]) {
      const dur = samples(fam, 'istio_request_duration_milliseconds', { response_code: '200', response_flags: '-' });
      expect(dur.reduce((n, m) => n + Number(m.count), 0)).toBe(16);
      expect(samples(fam, 'istio_request_duration_milliseconds')[0]!.buckets).toHaveProperty('0.5');
    }
    // Body sizes: the POSTs' 100 bytes each in; the responses' bodies out, the same on both sides.
    const reqBytes = samples(c, 'istio_request_bytes', source)[0]!;
    expect(Number(reqBytes.sum)).toBe(500);
    expect(Number(reqBytes.count)).toBe(16);
    expect(Number(samples(s, 'istio_request_bytes', destination)[0]!.sum)).toBe(500);
    const sent = received.reduce((a, b) => a + b, 0);
    const warmup = Number(samples(c, 'istio_response_bytes', source)[0]!.sum) - sent;
    expect(warmup).toBeGreaterThan(0);
    expect(Number(samples(s, 'istio_response_bytes', destination)[0]!.sum)).toBe(sent + warmup);
  });

  it('labels failures with Envoy response flags: NR on the client side, UF on the server side', async () => {
    const nr = await originForm(client.outbound, 'nowhere.default:9080');
    expect(nr.status).toBe(404);
    await viaProxy(client.outbound, 'http://ratings:9080/down');
    await eventually(async () => {
      const c = (await scrape(stats(client))).families;
      expect(total(c, 'istio_requests_total', { reporter: 'source', response_code: '404', response_flags: 'NR' })).toBeGreaterThanOrEqual(1);
      // The ratings sidecar could not connect to its app: 503 UF where it happened ...
      const r = (await scrape(stats(ratings))).families;
      expect(total(r, 'istio_requests_total', { reporter: 'destination', destination_workload: 'ratings-v1', response_code: '503', response_flags: 'UF' })).toBeGreaterThanOrEqual(2);
      // ... and a plain upstream 503 on the client side.
      expect(total(c, 'istio_requests_total', { reporter: 'source', destination_workload: 'ratings-v1', response_code: '503', response_flags: '-' })).toBeGreaterThanOrEqual(2);
    });
  });

  it('returns a decision record to the local app that asks, and never forwards the ask', async () => {
    const r = await viaProxy(client.outbound, 'http://reviews:9080/flaky/1', { headers: { 'x-weft-debug': '1' } });
    expect(r.status).toBe(200);
    const decision = JSON.parse(String(r.headers['x-weft-decision']));
    expect(decision).toMatchObject({
      dir: 'outbound',
      action: 'forward',
      vhost: 'reviews.default.svc.cluster.local:9080',
      route: 'default/reviews/0',
      backend: { cluster: 'outbound|9080||reviews-v1.default.svc.cluster.local', weight: '1/1', backends: 1 },
      endpoint: { address: `127.0.0.1:${reviews.proxy.ports.inbound}`, workload: 'reviews-v1.default', identity: SPIFFE('reviews') },
      retries: 1,
      retryOn: expect.stringContaining('retriable-status-codes'),
    });
    expect(decision.tries.map((t: { result: string }) => t.result)).toEqual(['503', '200']);
    // The app saw neither the ask nor the mesh's own peer header.
    const seen = JSON.parse(r.body).headers as Record<string, string>;
    expect(seen['x-weft-debug']).toBeUndefined();
    expect(seen['x-weft-source-workload']).toBeUndefined();
    // Without the ask there is no record.
    const plain = await viaProxy(client.outbound, 'http://reviews:9080/flaky/2');
    expect(plain.headers['x-weft-decision']).toBeUndefined();
    // A local answer explains itself too.
    const miss = await new Promise<http.IncomingMessage>((resolve, reject) =>
      http
        .request({ host: '127.0.0.1', port: client.proxy.ports.outbound, path: '/', headers: { host: 'nowhere', 'x-weft-debug': '1' } }, resolve)
        .on('error', reject)
        .end(),
    );
    miss.resume();
    expect(miss.statusCode).toBe(404);
    expect(JSON.parse(String(miss.headers['x-weft-decision']))).toMatchObject({ action: 'noRoute', noRoute: 'no_virtual_host', error: { flag: 'NR', kind: 'no_route' } });
  });

  it('writes one JSON access log line per request with Envoy field names, on both sides', async () => {
    const r = await viaProxy(client.outbound, 'http://reviews:9080/logged?q=1', { headers: { 'user-agent': 'obs-test/1', 'x-request-id': 'req-obs-1' } });
    expect(r.status).toBe(200);
    await eventually(() => {
      const c = readLog(clientLog()).filter((l) => l.request_id === 'req-obs-1');
      const s = readLog(reviewsLog()).filter((l) => l.request_id === 'req-obs-1');
      expect(c).toHaveLength(1);
      expect(s).toHaveLength(1);
    });
    const [c] = readLog(clientLog()).filter((l) => l.request_id === 'req-obs-1');
    const [s] = readLog(reviewsLog()).filter((l) => l.request_id === 'req-obs-1');
    expect(c).toMatchObject({
      method: 'GET',
      path: '/logged?q=1',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      bytes_received: 0,
      bytes_sent: Buffer.byteLength(r.body),
      user_agent: 'obs-test/1',
      authority: 'reviews:9080',
      upstream_host: `127.0.0.1:${reviews.proxy.ports.inbound}`,
      upstream_cluster: 'outbound|9080||reviews-v1.default.svc.cluster.local',
      upstream_transport_failure_reason: null,
      upstream_request_attempt_count: 1,
      route_name: 'default/reviews/1',
      upstream_peer_uri_san: SPIFFE('reviews'),
      reporter: 'source',
      decision: { action: 'forward', route: 'default/reviews/1' },
    });
    expect(new Date(String(c!.start_time)).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(typeof c!.duration).toBe('number');
    expect(s).toMatchObject({
      response_code: 200,
      bytes_sent: Buffer.byteLength(r.body),
      downstream_peer_uri_san: SPIFFE('client'),
      upstream_host: `127.0.0.1:${app.port}`,
      upstream_cluster: expect.stringMatching(/^inbound\|\d+\|\|$/),
      reporter: 'destination',
      decision: { dir: 'inbound', authz: { allow: true } },
    });
  });

  it('names the upstream failure in the access log', async () => {
    // ratings-v1 has no access log; the client's line says what the upstream sidecar answered.
    await viaProxy(client.outbound, 'http://ratings:9080/why', { headers: { 'x-request-id': 'req-obs-2' } });
    await eventually(() => expect(readLog(clientLog()).filter((l) => l.request_id === 'req-obs-2')).toHaveLength(1));
    const [c] = readLog(clientLog()).filter((l) => l.request_id === 'req-obs-2');
    expect(c).toMatchObject({ response_code: 503, upstream_cluster: 'outbound|9080||ratings.default.svc.cluster.local' });
  });

  it('counts an Upgrade tunnel in the TCP metrics on both sides', async () => {
    const sock = net.connect(client.proxy.ports.outbound, '127.0.0.1');
    await new Promise<void>((r) => sock.once('connect', () => r()));
    let got = '';
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (got += d));
    sock.write('GET /ws HTTP/1.1\r\nHost: reviews:9080\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await eventually(() => expect(got).toMatch(/^HTTP\/1\.1 101 /));
    sock.write('ping-ping-ping');
    await eventually(() => expect(got).toContain('ping-ping-ping'));
    const tcp = { request_protocol: 'tcp', destination_service: 'reviews-v1.default.svc.cluster.local' };
    await eventually(async () => {
      const c = (await scrape(stats(client))).families;
      expect(total(c, 'istio_tcp_connections_opened_total', { ...tcp, reporter: 'source', source_workload: 'client' })).toBe(1);
    });
    sock.end();
    await new Promise<void>((r) => sock.once('close', () => r()));
    await eventually(async () => {
      const c = (await scrape(stats(client))).families;
      const src = { reporter: 'source', destination_workload: 'reviews-v1', request_protocol: 'tcp' };
      expect(total(c, 'istio_tcp_connections_closed_total', src)).toBe(1);
      // The request head went out over HTTP; after the 101 the client sent 14 bytes and got them back.
      expect(total(c, 'istio_tcp_received_bytes_total', src)).toBeGreaterThanOrEqual(14);
      expect(total(c, 'istio_tcp_sent_bytes_total', src)).toBeGreaterThanOrEqual(14);
      const s = (await scrape(stats(reviews))).families;
      const dst = { reporter: 'destination', source_principal: SPIFFE('client'), request_protocol: 'tcp', connection_security_policy: 'mutual_tls' };
      expect(total(s, 'istio_tcp_connections_opened_total', dst)).toBe(1);
      expect(total(s, 'istio_tcp_connections_closed_total', dst)).toBe(1);
    });
  });
});
