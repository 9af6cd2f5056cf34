// The lean HTTP/2 path end to end: a real outbound listener on 127.0.0.1:0, h2c clients, h2c
// backends, the real planner. Every story runs twice, lean (the default) and through node:http2's
// compat objects (--http2-fast-path=false), and must come out the same: what the backend gets,
// what the client gets, the counters and the telemetry.
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { FilterChain } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import {
  buildConfig, cluster, fakeMtlsInbound, deadPort, endpoint, eventually, forwardTo, h2Request, retryPolicy, route, serviceDomains, silentLog, startEchoH1,
  startEchoH2, vhost, type Echo, type EchoReport, type SimpleResponse,
} from '../http/testkit.js';
import type { AuthorizeHook } from '../inbound/authz.js';
import { createInboundListener } from '../inbound/listener.js';
import { createOutboundListener, type OutboundListener, type OutboundListenerOptions } from '../outbound/listener.js';
import { MeshMetrics, Telemetry, type AccessLogEntry } from '../telemetry/index.js';
import { h2LaneFor } from '../upstream/http2.js';
import { targetFor } from '../upstream/target.js';

const ECHO = 'outbound|8080||echo.default.svc.cluster.local';
const AUTHORITY = 'echo.default:8080';
const GRPC = { ':method': 'POST', ':path': '/pkg.Svc/Call', ':authority': AUTHORITY, 'content-type': 'application/grpc', te: 'trailers' };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoH2(name = 'h2'): Promise<Echo> {
  const e = await startEchoH2(name);
  cleanups.push(() => e.close());
  return e;
}

type Action = Parameters<typeof route>[1];

function echoConfig(endpoints: ReturnType<typeof endpoint>[], more: { action?: Action; routeMore?: Parameters<typeof route>[2]; protocol?: 'http1' | 'http2' } = {}): ProxyConfig {
  return buildConfig({
    routes: [{ name: 'outbound', virtualHosts: [vhost('echo.default.svc.cluster.local:8080', serviceDomains('echo', 'default', 8080), [route('default/echo/0', more.action ?? forwardTo([ECHO]), more.routeMore)])] }],
    clusters: [cluster(ECHO, { protocol: more.protocol ?? 'http2' })],
    endpoints: { [ECHO]: endpoints },
  });
}

/** An h2c backend on the core API that notices cancellations (compat's writableFinished does
 *  not tell a reset stream): `/hold` answers one chunk and waits; `/slow?ms=N` answers after N
 *  ms; anything else answers 200 at once. */
async function holdingBackend(): Promise<{ port: number; cancelled: { value: number } }> {
  // 'aborted': the stream closed before its response ended (RST_STREAM from the proxy).
  const cancelled = { value: 0 };
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (s, h) => {
    s.on('error', () => {});
    s.on('aborted', () => cancelled.value++);
    s.resume();
    const path = String(h[':path']);
    if (path === '/hold') {
      s.respond({ ':status': 200 });
      s.write('first;');
      return;
    }
    const ms = path.startsWith('/slow') ? Number(new URL(path, 'http://x').searchParams.get('ms')) : 0;
    setTimeout(() => {
      if (!s.destroyed) s.respond({ ':status': 200 }, { endStream: true });
    }, ms);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(
    () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return { port: (server.address() as AddressInfo).port, cancelled };
}

/** A telemetry that keeps its access log lines. */
function recordingTelemetry(): { telemetry: Telemetry; lines: AccessLogEntry[] } {
  const lines: AccessLogEntry[] = [];
  const telemetry = new Telemetry({
    workload: 'client.default', identity: () => undefined, metrics: new MeshMetrics(), decisionHeader: 'local',
    accessLog: { write: (e) => void lines.push(e), close: async () => {} }, localAddresses: new Set(['127.0.0.1']),
  });
  return { telemetry, lines };
}

/** The access log line without what differs from request to request (times, generated ids). */
function stable(e: AccessLogEntry | undefined): Partial<AccessLogEntry> {
  if (!e) return {};
  const { start_time: _s, duration: _d, upstream_service_time: _u, request_id: _r, ...rest } = e;
  return rest;
}

describe.each([
  ['lean', true],
  ['compat', false],
] as const)('HTTP/2 plain forwards (%s)', (_name, lean) => {
  async function outbound(config: ProxyConfig | { current: ProxyConfig }, more: Partial<OutboundListenerOptions> = {}): Promise<{ port: number; listener: OutboundListener; session: http2.ClientHttp2Session }> {
    const box = 'current' in config ? config : { current: config };
    const listener = createOutboundListener({ port: 0, host: '127.0.0.1', getConfig: () => box.current, log: silentLog, http2FastPath: lean, ...more });
    const { port } = await listener.listen();
    cleanups.push(() => listener.close(200));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    cleanups.push(async () => void session.destroy());
    return { port, listener, session };
  }

  it('forwards headers the way the generic path does, both directions, and takes the lean path only when on', async () => {
    const echo = await echoH2();
    const ep = endpoint('127.0.0.1', echo.port);
    const config = echoConfig([ep], {
      routeMore: {
        requestHeaders: { add: [{ name: 'x-added', value: 'yes', action: 'overwrite' }], remove: ['x-remove-me'] },
        responseHeaders: { add: [{ name: 'x-resp', value: 'mutated', action: 'overwrite' }], remove: ['x-echo-server'] },
      },
    });
    const { session } = await outbound(config);
    const r = await h2Request(session, { ':path': '/a/b?c=d', ':authority': AUTHORITY, 'x-remove-me': '1', 'x-request-id': 'given', te: 'trailers', cookie: ['a=1', 'b=2'] });
    expect(r.status).toBe(200);
    expect(r.headers['x-resp']).toBe('mutated');
    expect(r.headers['x-echo-server']).toBeUndefined();
    const seen = JSON.parse(r.body) as EchoReport;
    expect(seen).toMatchObject({ server: 'h2', protocol: '2.0', path: '/a/b?c=d', authority: AUTHORITY, method: 'GET' });
    expect(seen.headers).toMatchObject({ 'x-added': 'yes', 'x-forwarded-proto': 'http', 'x-request-id': 'given', te: 'trailers', ':scheme': 'http' });
    expect(seen.headers['x-remove-me']).toBeUndefined();
    // A second request gets its own generated id.
    const r2 = JSON.parse((await h2Request(session, { ':path': '/', ':authority': AUTHORITY })).body) as EchoReport;
    expect(r2.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // The lean path opened a lane to the endpoint; the compat path never does.
    const target = targetFor(config.clusters.get(ECHO)!, ep);
    expect(h2LaneFor(target, performance.now()) !== undefined).toBe(lean);
  });

  it('relays a request body and trailers, and a trailers-only gRPC answer as one HEADERS frame', async () => {
    const echo = await echoH2();
    // A backend answering gRPC calls trailers-only (HEADERS with END_STREAM).
    const grpc = http2.createServer();
    grpc.on('stream', (s) => {
      s.resume();
      s.on('end', () => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5', 'grpc-message': 'not%20found' }, { endStream: true }));
    });
    await new Promise<void>((r) => grpc.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => grpc.close(() => r())));
    const config = { current: echoConfig([endpoint('127.0.0.1', echo.port)]) };
    const { session } = await outbound(config);
    const up = await h2Request(session, { ':method': 'POST', ':path': '/upload', ':authority': AUTHORITY }, 'x'.repeat(100_000));
    expect((JSON.parse(up.body) as EchoReport).bodyBytes).toBe(100_000);
    const t = await h2Request(session, { ':path': '/trailers', ':authority': AUTHORITY, te: 'trailers' });
    expect(t.body).toBe('payload');
    expect(t.trailers).toMatchObject({ 'grpc-status': '0', 'x-trailer': 'yes' });

    config.current = echoConfig([endpoint('127.0.0.1', (grpc.address() as AddressInfo).port)]);
    const got = await new Promise<{ headers: http2.IncomingHttpHeaders; endStream: boolean; trailers: boolean }>((resolve, reject) => {
      const s = session.request(GRPC);
      let trailers = false;
      s.on('response', (h, flags) => {
        s.on('trailers', () => (trailers = true));
        s.resume();
        s.on('end', () => resolve({ headers: h, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0, trailers }));
      });
      s.on('error', reject);
      s.end(Buffer.alloc(5));
    });
    expect(got.endStream).toBe(true);
    expect(got.trailers).toBe(false);
    expect(got.headers).toMatchObject({ ':status': 200, 'grpc-status': '5', 'grpc-message': 'not%20found' });
  });

  it('answers failures before the response as the generic path does: HTTP status or gRPC status, with the counters', async () => {
    const dead = await deadPort();
    const echo = await echoH2();
    const config = { current: echoConfig([]) };
    const { session, listener } = await outbound(config);
    // No endpoint.
    const a = await h2Request(session, { ':path': '/', ':authority': AUTHORITY });
    expect([a.status, a.body]).toEqual([503, `no healthy upstream for "${ECHO}"\n`]);
    const g = await h2Request(session, GRPC, Buffer.alloc(5));
    expect([g.status, g.headers['grpc-status'], g.body]).toEqual([200, '14', '']);
    // Connect failure.
    config.current = echoConfig([endpoint('127.0.0.1', dead)]);
    const c = await h2Request(session, { ':path': '/', ':authority': AUTHORITY });
    expect(c.status).toBe(503);
    expect(c.body).toContain('reset reason: connection failure');
    // The upstream resets the stream before its head.
    config.current = echoConfig([endpoint('127.0.0.1', echo.port)]);
    const r = await h2Request(session, { ':path': '/reset', ':authority': AUTHORITY });
    expect(r.status).toBe(503);
    expect(r.body).toContain('reset reason: connection termination');
    const gr = await h2Request(session, { ...GRPC, ':path': '/reset' }, Buffer.alloc(5));
    expect(gr.headers['grpc-status']).toBe('14');
    const stats = listener.stats().clusters[ECHO]!;
    expect(stats.errors).toEqual({ no_healthy_upstream: 2, upstream_connect: 1, upstream_reset: 2 });
    expect(stats.inFlight).toBe(0);
    expect(stats.requests).toBe(5);
  });

  it('resets the client when the upstream resets after the response started', async () => {
    const echo = await echoH2();
    const { session, listener } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]));
    const got = await new Promise<{ rst: number | undefined; headers: boolean }>((resolve) => {
      const s = session.request({ ':path': '/reset-mid-body', ':authority': AUTHORITY });
      let headers = false;
      s.on('response', () => (headers = true));
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve({ rst: s.rstCode, headers }));
    });
    expect(got).toEqual({ rst: http2.constants.NGHTTP2_INTERNAL_ERROR, headers: true });
    expect(listener.stats().clusters[ECHO]!.resetsAfterHeaders).toBe(1);
    expect(listener.stats().clusters[ECHO]!.inFlight).toBe(0);
  });

  it('times out before the head (504 / DEADLINE_EXCEEDED) and after it (reset / DEADLINE_EXCEEDED in trailers), cancelling the upstream', async () => {
    const backend = await holdingBackend();
    const { session, listener } = await outbound(echoConfig([endpoint('127.0.0.1', backend.port)], { action: forwardTo([ECHO], { timeoutMs: 200 }) }));
    const a = await h2Request(session, { ':path': '/slow?ms=2000', ':authority': AUTHORITY });
    expect([a.status, a.body]).toEqual([504, 'upstream request timeout\n']);
    const g = await h2Request(session, { ...GRPC, ':path': '/slow?ms=2000' }, Buffer.alloc(5));
    expect(g.headers['grpc-status']).toBe('4');
    // After the head: an HTTP response can only be reset; a gRPC one ends with its status.
    const reset = await new Promise<number | undefined>((resolve) => {
      const s = session.request({ ':path': '/hold', ':authority': AUTHORITY });
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve(s.rstCode));
    });
    expect(reset).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    const held = await new Promise<SimpleResponse>((resolve, reject) => {
      const s = session.request({ ...GRPC, ':path': '/hold' });
      let trailers: SimpleResponse['trailers'];
      let status = 0;
      const chunks: Buffer[] = [];
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('trailers', (t) => (trailers = t));
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => resolve({ status, headers: {}, body: Buffer.concat(chunks).toString(), trailers }));
      s.on('error', reject);
      s.end(Buffer.alloc(5));
    });
    expect(held.body).toBe('first;');
    expect(held.trailers).toMatchObject({ 'grpc-status': '4' });
    await eventually(() => expect(backend.cancelled.value).toBe(4));
    const stats = listener.stats().clusters[ECHO]!;
    expect(stats.errors).toEqual({ upstream_timeout: 2 });
    expect(stats.resetsAfterHeaders).toBe(2);
    expect(stats.inFlight).toBe(0);
  });

  it('cancels the upstream stream when the client resets its own', async () => {
    const backend = await holdingBackend();
    const { session, listener } = await outbound(echoConfig([endpoint('127.0.0.1', backend.port)]));
    await new Promise<void>((resolve) => {
      const s = session.request({ ':path': '/hold', ':authority': AUTHORITY });
      s.on('data', () => s.close(http2.constants.NGHTTP2_CANCEL));
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
    await eventually(() => expect(backend.cancelled.value).toBe(1));
    await eventually(() => expect(listener.stats().clusters[ECHO]!.inFlight).toBe(0));
    expect(listener.stats().clusters[ECHO]!.errors).toEqual({});
  });

  it('streams 20 MB up and 20 MB down with flow control, intact', async () => {
    const echo = await echoH2();
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]));
    const total = 20 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
    const hash = createHash('sha256');
    const report = await new Promise<EchoReport>((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': '/upload', ':authority': AUTHORITY });
      const parts: Buffer[] = [];
      s.on('data', (c: Buffer) => parts.push(c));
      s.on('end', () => resolve(JSON.parse(Buffer.concat(parts).toString()) as EchoReport));
      s.on('error', reject);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          hash.update(chunk);
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
    expect(report.bodyBytes).toBe(total);
    expect(report.bodySha256).toBe(hash.digest('hex'));
    const received = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': `/download?bytes=${total}`, ':authority': AUTHORITY });
      let n = 0;
      // A slow reader: the proxy must hold the upstream back, not buffer 20 MB.
      s.on('data', (c: Buffer) => {
        n += c.length;
        if (n % (4 * 1024 * 1024) < c.length) {
          s.pause();
          setTimeout(() => s.resume(), 20);
        }
      });
      s.on('end', () => resolve(n));
      s.on('error', reject);
    });
    expect(received).toBe(total);
  });

  it('leaves retries, mirrors and local answers to the generic path, which plans with the same random draws', async () => {
    const echo = await echoH2('primary');
    const other = await startEchoH1('h1-backend');
    cleanups.push(() => other.close());
    const H1 = 'outbound|8080||h1';
    const RETRY = 'outbound|8080||retry';
    const config = buildConfig({
      routes: [{
        name: 'outbound',
        virtualHosts: [vhost('echo', [AUTHORITY], [
          route('direct', { kind: 'direct', status: 418, body: 'teapot' }, { prefix: '/direct' }),
          route('retry', forwardTo([RETRY], { retry: retryPolicy(['5xx'], 1) }), { prefix: '/status/' }),
          // Half to the HTTP/2 cluster (lean), half to the HTTP/1.1 one (generic path).
          route('split', forwardTo([{ cluster: ECHO, weight: 1 }, { cluster: H1, weight: 1 }])),
        ])],
      }],
      clusters: [cluster(ECHO, { protocol: 'http2' }), cluster(H1), cluster(RETRY, { protocol: 'http2' })],
      endpoints: { [ECHO]: [endpoint('127.0.0.1', echo.port)], [H1]: [endpoint('127.0.0.1', other.port)], [RETRY]: [endpoint('127.0.0.1', echo.port)] },
    });
    // Draws alternate low / high: the first plan of each request decides its backend, so a
    // request the lean path passes on must be planned to the same backend again.
    let i = 0;
    const draws = [0.1, 0.9];
    const { session } = await outbound(config, { random: () => draws[i++ % 2]! });
    const d = await h2Request(session, { ':path': '/direct', ':authority': AUTHORITY });
    expect([d.status, d.body]).toEqual([418, 'teapot']);
    const r = await h2Request(session, { ':path': '/status/503', ':authority': AUTHORITY });
    expect(r.status).toBe(503);
    expect(echo.seen.filter((s) => s.path === '/status/503')).toHaveLength(2);
    const servers: string[] = [];
    for (let n = 0; n < 6; n++) {
      i = n % 2; // this request's first draw
      servers.push((JSON.parse((await h2Request(session, { ':path': '/split', ':authority': AUTHORITY })).body) as EchoReport).server);
    }
    expect(servers).toEqual(['primary', 'h1-backend', 'primary', 'h1-backend', 'primary', 'h1-backend']);
  });

  it('tells telemetry the same story: access log lines, bytes and the decision header', async () => {
    const echo = await echoH2();
    const { telemetry, lines } = recordingTelemetry();
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]), { telemetry });
    const ok = await h2Request(session, { ':method': 'POST', ':path': '/x', ':authority': AUTHORITY, 'user-agent': 'test' }, 'hello');
    expect(ok.status).toBe(200);
    const dbg = await h2Request(session, { ':path': '/status/503', ':authority': AUTHORITY, 'x-weft-debug': '1' });
    expect(dbg.status).toBe(503);
    expect(String(dbg.headers['x-weft-decision'])).toContain(ECHO);
    const g = await h2Request(session, { ...GRPC, ':path': '/reset' }, Buffer.alloc(5));
    expect(g.headers['grpc-status']).toBe('14');
    await eventually(() => expect(lines).toHaveLength(3));
    expect(stable(lines[0])).toMatchObject({
      method: 'POST', path: '/x', protocol: 'HTTP/2', response_code: 200, response_flags: '-', bytes_received: 5, bytes_sent: ok.body.length,
      user_agent: 'test', authority: AUTHORITY, upstream_cluster: ECHO, upstream_host: `127.0.0.1:${echo.port}`, upstream_request_attempt_count: 1,
      route_name: 'default/echo/0', reporter: 'source',
    });
    expect(stable(lines[1])).toMatchObject({ response_code: 503, response_flags: '-', bytes_sent: dbg.body.length });
    expect(stable(lines[2])).toMatchObject({ response_code: 200, response_flags: 'UC', grpc_status: '14', bytes_received: 5, bytes_sent: 0 });
    const text = (await telemetry.metrics.exposition()).body;
    expect(text).toMatch(/istio_requests_total\{[^}]*response_code="200",grpc_response_status="",response_flags="-"[^}]*\} 1/);
    expect(text).toMatch(/istio_requests_total\{[^}]*request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="UC"[^}]*\} 1/);
  });

  it('reports the gRPC status from the upstream head (trailers-only) and from its trailers', async () => {
    const grpc = http2.createServer();
    grpc.on('stream', (s, h) => {
      s.resume();
      s.on('end', () => {
        if (h[':path'] === '/pkg.Svc/Only') return s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '5' }, { endStream: true });
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '3', 'grpc-message': 'bad' }));
        s.end(Buffer.alloc(5));
      });
    });
    await new Promise<void>((r) => grpc.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => grpc.close(() => r())));
    const { telemetry, lines } = recordingTelemetry();
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', (grpc.address() as AddressInfo).port)]), { telemetry });
    const only = await h2Request(session, { ...GRPC, ':path': '/pkg.Svc/Only' }, Buffer.alloc(5));
    expect(only.headers['grpc-status']).toBe('5');
    const trailed = await h2Request(session, { ...GRPC, ':path': '/pkg.Svc/Trailed' }, Buffer.alloc(5));
    expect(trailed.trailers).toMatchObject({ 'grpc-status': '3' });
    await eventually(() => expect(lines).toHaveLength(2));
    expect(lines.map((l) => l.grpc_status)).toEqual(['5', '3']);
    const text = (await telemetry.metrics.exposition()).body;
    expect(text).toMatch(/istio_requests_total\{[^}]*grpc_response_status="5"[^}]*\} 1/);
    expect(text).toMatch(/istio_requests_total\{[^}]*grpc_response_status="3"[^}]*\} 1/);
  });

  it('drains: an in-flight stream finishes after GOAWAY, then the listener closes', async () => {
    const echo = await echoH2();
    const { session, listener } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]));
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    const inFlight = h2Request(session, { ':path': '/slow?ms=300', ':authority': AUTHORITY });
    await eventually(() => expect(echo.seen).toHaveLength(1));
    const closed = listener.close(5000);
    const res = await inFlight;
    expect(res.status).toBe(200);
    await closed;
    expect(goaway).toBe(true);
  });

  it('opens a new upstream session when the old one went away (backend restarted on its port)', async () => {
    const first = await startEchoH2('first');
    const port = first.port;
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', port)]));
    expect((JSON.parse((await h2Request(session, { ':path': '/', ':authority': AUTHORITY })).body) as EchoReport).server).toBe('first');
    await first.close();
    // The same port again, a new server: the proxy's session to the old one is gone.
    const server = http2.createServer();
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (s) => sessions.add(s));
    server.on('stream', (s) => s.respond({ ':status': 200, 'x-server': 'second' }, { endStream: true }));
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    cleanups.push(
      () =>
        new Promise((r) => {
          for (const s of sessions) s.destroy();
          server.close(() => r());
        }),
    );
    // A request racing the old session's close may fail (nothing retries it); the next ones
    // go to the new server.
    await eventually(async () => {
      const r = await h2Request(session, { ':path': '/', ':authority': AUTHORITY });
      expect(r.headers['x-server']).toBe('second');
    });
  });

  it('ends the client stream (RST_STREAM NO_ERROR) after a response that came before the end of its request', async () => {
    const server = http2.createServer();
    server.on('stream', (s) => s.respond({ ':status': 202 }, { endStream: true }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('session', (x) => sessions.add(x));
    cleanups.push(() => new Promise((r) => {
      for (const x of sessions) x.destroy();
      server.close(() => r());
    }));
    const { session, listener } = await outbound(echoConfig([endpoint('127.0.0.1', (server.address() as AddressInfo).port)]));
    const got = await new Promise<{ status: number; rst: number | undefined }>((resolve) => {
      const s = session.request({ ':method': 'POST', ':path': '/early', ':authority': AUTHORITY });
      let status = 0;
      s.on('response', (h) => {
        status = Number(h[':status']);
        // The lean path has ended the stream already (RST_STREAM NO_ERROR); compat waits for it.
        setTimeout(() => s.end(), 50);
      });
      s.write('the start of a body');
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve({ status, rst: s.rstCode }));
    });
    expect(got).toEqual({ status: 202, rst: http2.constants.NGHTTP2_NO_ERROR });
    await eventually(() => expect(listener.stats().clusters[ECHO]!.inFlight).toBe(0));
    expect(listener.stats().clusters[ECHO]!.responses['2xx']).toBe(1);
  });

  it('answers CONNECT 405 and Expect: 100-continue as node:http2 does', async () => {
    const echo = await echoH2();
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]));
    const connect = await new Promise<number>((resolve, reject) => {
      const s = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
    });
    expect(connect).toBe(405);
    const got = await new Promise<{ continued: boolean; body: string }>((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': '/expect', ':authority': AUTHORITY, expect: '100-continue' });
      let continued = false;
      let body = '';
      s.on('continue', () => {
        continued = true;
        s.end('after 100');
      });
      s.on('data', (c: Buffer) => (body += c.toString()));
      s.on('end', () => resolve({ continued, body }));
      s.on('error', reject);
    });
    expect(got.continued).toBe(true);
    expect((JSON.parse(got.body) as EchoReport).bodyBytes).toBe(9);
  });

  it('serves HEAD, and a Content-Length: 0 request whose END_STREAM comes in an empty DATA frame', async () => {
    const echo = await echoH2();
    const { session } = await outbound(echoConfig([endpoint('127.0.0.1', echo.port)]));
    const head = await h2Request(session, { ':method': 'HEAD', ':path': '/', ':authority': AUTHORITY });
    expect([head.status, head.body]).toEqual([200, '']);
    const empty = await h2Request(session, { ':method': 'POST', ':path': '/empty', ':authority': AUTHORITY, 'content-length': '0' }, '');
    expect((JSON.parse(empty.body) as EchoReport).bodyBytes).toBe(0);
  });
});

describe.each([
  ['lean', true],
  ['compat', false],
] as const)('HTTP/2 on the inbound side (%s)', (_name, lean) => {
  const peer = 'spiffe://cluster.local/ns/default/sa/client';
  const own = 'spiffe://cluster.local/ns/default/sa/server';
  const fakeMtls = fakeMtlsInbound(peer, 8080);

  function appConfig(appPort: number): ProxyConfig {
    const chain: FilterChain = {
      name: 'inbound|8080',
      destinationPorts: [8080],
      serverNames: [],
      filter: {
        kind: 'http',
        statPrefix: 'inbound_8080',
        inlineRoutes: { name: 'inbound|8080', virtualHosts: [vhost('inbound|http|8080', ['*'], [route('default', forwardTo(['inbound|8080||']))])] },
        rbac: [],
      },
    };
    return buildConfig({
      listeners: [{ name: 'inbound', filterChains: [chain] }],
      clusters: [cluster('inbound|8080||', { discovery: 'STATIC', protocol: 'http2', staticEndpoints: [endpoint('127.0.0.1', appPort)] })],
    });
  }

  it('sets XFCC for the authenticated peer, asks authorization once per request, and resets on an app reset', async () => {
    const app = await echoH2('app');
    const asked: string[] = [];
    const authorize: AuthorizeHook = (facts) => {
      asked.push(facts.path);
      return facts.path.startsWith('/admin') ? { allow: false, reason: 'denied by test policy' } : { allow: true, reason: 'ok' };
    };
    const listener = createInboundListener({ port: 0, host: '127.0.0.1', getConfig: () => appConfig(app.port), transport: fakeMtls, ownIdentity: () => own, authorize, log: silentLog, http2FastPath: lean });
    const { port } = await listener.listen();
    cleanups.push(() => listener.close(200));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    cleanups.push(async () => void session.destroy());

    const ok = await h2Request(session, { ':path': '/hello', ':authority': 'app.default', 'x-forwarded-client-cert': 'URI=spiffe://forged' });
    const seen = JSON.parse(ok.body) as EchoReport;
    expect(seen.headers['x-forwarded-client-cert']).toBe(`By=${own};URI=${peer}`);
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    const denied = await h2Request(session, { ':path': '/admin', ':authority': 'app.default' });
    expect([denied.status, denied.body]).toEqual([403, 'RBAC: access denied\n']);
    const grpcDenied = await h2Request(session, { ...GRPC, ':path': '/admin/x', ':authority': 'app.default' }, Buffer.alloc(5));
    expect(grpcDenied.headers['grpc-status']).toBe('7');
    expect(asked).toEqual(['/hello', '/admin', '/admin/x']);
    // An app reset before headers travels back as a reset (the client sidecar may retry it).
    const rst = await new Promise<number | undefined>((resolve) => {
      const s = session.request({ ':path': '/reset', ':authority': 'app.default' });
      s.resume();
      s.on('error', () => {});
      s.on('close', () => resolve(s.rstCode));
    });
    expect(rst).toBe(http2.constants.NGHTTP2_INTERNAL_ERROR);
    expect(listener.stats().clusters['inbound|8080||']!.errors).toEqual({ upstream_reset: 1 });
  });

  it('refuses a request on a plaintext connection once the config turned STRICT (no chain takes plaintext)', async () => {
    const app = await echoH2('app');
    const strict = appConfig(app.port);
    const chain = strict.listeners.get('inbound')!.filterChains[0]!;
    const config = { ...strict, listeners: new Map([['inbound', { name: 'inbound', filterChains: [{ ...chain, transportProtocol: 'tls' as const }] }]]) };
    const listener = createInboundListener({ port: 0, host: '127.0.0.1', getConfig: () => config, log: silentLog, http2FastPath: lean });
    const { port } = await listener.listen();
    cleanups.push(() => listener.close(200));
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => {});
    cleanups.push(async () => void session.destroy());
    // handle.ts refuses it (log, destroy "the socket": for HTTP/2, the stream) — no answer.
    const outcome = await new Promise<string>((resolve) => {
      const s = session.request({ ':path': '/', ':authority': 'app.default' });
      s.on('response', () => resolve('answered'));
      s.on('error', () => {});
      s.on('close', () => resolve('closed'));
    });
    expect(outcome).toBe('closed');
    expect(app.seen).toHaveLength(0);
  });
});
