// The fast path through a real outbound / inbound listener: which requests it carries, how it
// hands a connection to node:http before consuming a byte of a request it will not take, and
// that what it carries looks to clients and apps exactly like node:http's path.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { FilterChain } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import {
  buildConfig, cluster, deadPort, endpoint, eventually, forwardTo, rawExchange, retryPolicy, route,
  serviceDomains, silentLog, startEchoH1, vhost, type Echo, type EchoReport,
} from '../http/testkit.js';
import { createOutboundListener, type OutboundListener, type OutboundListenerOptions } from '../outbound/listener.js';
import { createInboundListener } from '../inbound/listener.js';
import type { AuthorizeHook } from '../inbound/authz.js';
import { MeshMetrics } from '../telemetry/metrics.js';
import { Telemetry } from '../telemetry/telemetry.js';

const ECHO = 'outbound|8080||echo.default.svc.cluster.local';
const HOST = 'echo.default.svc.cluster.local:8080';
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function echoH1(name?: string): Promise<Echo> {
  const e = await startEchoH1(name);
  cleanups.push(() => e.close());
  return e;
}

function echoConfig(port: number, action = forwardTo([ECHO]), more: Parameters<typeof cluster>[1] = {}): ProxyConfig {
  return buildConfig({
    routes: [{ name: 'outbound', virtualHosts: [vhost(HOST, serviceDomains('echo', 'default', 8080), [route('default/echo/0', action)])] }],
    clusters: [cluster(ECHO, more)],
    endpoints: { [ECHO]: [endpoint('127.0.0.1', port)] },
  });
}

async function outbound(config: ProxyConfig, more: Partial<OutboundListenerOptions> = {}): Promise<{ port: number; listener: OutboundListener }> {
  const listener = createOutboundListener({ port: 0, host: '127.0.0.1', getConfig: () => config, log: silentLog, ...more });
  const { port } = await listener.listen();
  cleanups.push(() => listener.close(200));
  return { port, listener };
}

const counters = (l: OutboundListener) => l.stats().listeners.outbound!;

/** Raw HTTP/1.1 on one connection: write `data`, read until `responses` complete responses came
 *  (Content-Length or chunked bodies; `noBody`: the first response answers a HEAD). */
function rawResponses(port: number, data: string | Buffer, responses: number, noBody = false): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const out: string[] = [];
    /** Where the response starting at 0 ends in `buf`, or -1. */
    const end = (): number => {
      const h = buf.indexOf('\r\n\r\n');
      if (h < 0) return -1;
      const head = buf.subarray(0, h).toString('latin1');
      if (noBody && out.length === 0) return h + 4;
      if (!/transfer-encoding: chunked/i.test(head)) {
        const e = h + 4 + Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        return buf.length >= e ? e : -1;
      }
      let p = h + 4;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le < 0) return -1;
        const size = parseInt(buf.subarray(p, le).toString('latin1'), 16);
        if (size === 0) return buf.length >= le + 4 ? le + 4 : -1;
        p = le + 2 + size + 2;
        if (p > buf.length) return -1;
      }
    };
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let e = end(); e >= 0; e = end()) {
        out.push(buf.subarray(0, e).toString('latin1'));
        buf = buf.subarray(e);
        if (out.length === responses) {
          sock.destroy();
          return resolve(out);
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => resolve(out));
    sock.write(data);
  });
}

/** The JSON body of a raw response (chunked or not). */
function jsonOf(raw: string): EchoReport {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4);
  if (!/transfer-encoding: chunked/i.test(raw.slice(0, raw.indexOf('\r\n\r\n')))) return JSON.parse(body) as EchoReport;
  let text = '';
  for (let p = 0; ; ) {
    const le = body.indexOf('\r\n', p);
    const size = parseInt(body.slice(p, le), 16);
    if (size === 0) break;
    text += body.slice(le + 2, le + 2 + size);
    p = le + 2 + size + 2;
  }
  return JSON.parse(text) as EchoReport;
}

describe('fast path: what it carries', () => {
  it('carries plain forwards: the app sees what node:http’s path sends, the client gets keep-alive', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const [raw] = await rawResponses(port, `GET /hello?x=1 HTTP/1.1\r\nHost: ${HOST}\r\nX-Custom: a\r\nConnection: keep-alive, x-hop\r\nX-Hop: gone\r\nTE: trailers\r\n\r\n`, 1);
    const head = raw!.slice(0, raw!.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(head).toMatch(/\r\ncontent-type: application\/json\r\n/);
    expect(head).toMatch(/\r\nx-echo-server: echo-h1\r\n/);
    expect(head).toMatch(/\r\ndate: .* GMT\r\n/i);
    expect(head).toMatch(/\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\nTransfer-Encoding: chunked$/);
    const seen = jsonOf(raw!);
    expect(seen).toMatchObject({ method: 'GET', path: '/hello?x=1', authority: HOST, protocol: '1.1' });
    expect(seen.headers).toMatchObject({ 'x-custom': 'a', te: 'trailers', 'x-forwarded-proto': 'http', 'x-request-id': expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(seen.headers['x-hop']).toBeUndefined();
    expect(counters(listener)).toMatchObject({ requests: 1, fastPath: 1 });
  });

  it('keeps one client connection for many requests, pipelined ones answered in order', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const req = (i: number) => `GET /p/${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    const answers = await rawResponses(port, [0, 1, 2, 3, 4].map(req).join(''), 5);
    expect(answers.map((a) => jsonOf(a).path)).toEqual(['/p/0', '/p/1', '/p/2', '/p/3', '/p/4']);
    expect(counters(listener)).toMatchObject({ connectionsTotal: 1, fastPath: 5 });
  });

  it('relays bodies both ways, chunked and with Content-Length, with backpressure, and response trailers', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(async () => agent.destroy());
    const body = Buffer.alloc(3_000_000, 'x');
    const send = (headers: Record<string, string>) =>
      new Promise<EchoReport>((resolve, reject) => {
        const r = http.request({ port, path: '/upload', method: 'POST', headers: { host: HOST, ...headers }, agent }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(JSON.parse(text) as EchoReport));
        });
        r.on('error', reject);
        // Several writes: the chunked request carries many chunks.
        for (let i = 0; i < body.length; i += 256 * 1024) r.write(body.subarray(i, i + 256 * 1024));
        r.end();
      });
    const sha = createHash('sha256').update(body).digest('hex');
    expect(await send({ 'transfer-encoding': 'chunked' })).toMatchObject({ bodyBytes: body.length, bodySha256: sha });
    expect(await send({ 'content-length': String(body.length) })).toMatchObject({ bodyBytes: body.length, bodySha256: sha });

    const down = await request(`http://127.0.0.1:${port}/download?bytes=5000000`, { headers: { host: HOST } });
    let n = 0;
    for await (const c of down.body) n += (c as Buffer).length;
    expect(n).toBe(5_000_000);

    const t = await new Promise<{ body: string; trailers: http.IncomingHttpHeaders }>((resolve) => {
      http.get({ port, path: '/trailers', headers: { host: HOST }, agent }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ body: text, trailers: res.trailers }));
      });
    });
    expect(t).toEqual({ body: 'payload', trailers: { 'grpc-status': '0', 'x-trailer': 'yes' } });
    expect(counters(listener).fastPath).toBe(4);
  });

  it('answers HEAD without a body and keeps the connection', async () => {
    const echo = await echoH1();
    const { port } = await outbound(echoConfig(echo.port));
    const [head, next] = await rawResponses(port, `HEAD /h HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 2, true);
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(jsonOf(next!).path).toBe('/after');
  });

  it('turns upstream failures into the same answers: 503 connection failure, then keeps serving', async () => {
    const { port, listener } = await outbound(echoConfig(await deadPort()));
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: HOST } });
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toContain('reset reason: connection failure');
    expect(listener.stats().clusters[ECHO]!.errors.upstream_connect).toBe(1);
    expect(counters(listener).fastPath).toBe(1);
  });

  it('resets the client when the upstream resets in the middle of the body', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const text = await rawExchange(port, `GET /reset-mid-body HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).not.toContain('\r\n0\r\n\r\n'); // never a complete chunked body
    await eventually(() => expect(listener.stats().clusters[ECHO]!.resetsAfterHeaders).toBe(1));
  });

  it('applies the route timeout: 504 before the head', async () => {
    const echo = await echoH1();
    const { port } = await outbound(echoConfig(echo.port, forwardTo([ECHO], { timeoutMs: 100 })));
    const res = await request(`http://127.0.0.1:${port}/slow?ms=2000`, { headers: { host: HOST } });
    expect(res.statusCode).toBe(504);
    expect(await res.body.text()).toContain('upstream request timeout');
  });

  it('refuses request smuggling with 400 and closes; the app never sees the request', async () => {
    const echo = await echoH1();
    const { port } = await outbound(echoConfig(echo.port));
    for (const attack of [
      `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n`,
      `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n`,
      `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1\r\nContent-Length: 40\r\n\r\nx`,
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX: a\r\n b\r\n\r\n`,
    ]) {
      const text = await rawExchange(port, attack);
      expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(text).toMatch(/connection: close/i);
    }
    // A bad chunk size in the middle of a body: the request is cut, never completed upstream.
    const text = await rawExchange(port, `POST /c HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n\r\n`);
    expect(text).toMatch(/^HTTP\/1\.1 400/);
    expect(echo.seen).toEqual([]);
  });

  it('reports every request to telemetry as node:http’s path does: counts, body bytes, flags, decision records', async () => {
    const echo = await echoH1();
    const served = async (fastPath: boolean) => {
      const metrics = new MeshMetrics();
      const telemetry = new Telemetry({ workload: 'client.default', identity: () => undefined, metrics, decisionHeader: 'local', localAddresses: new Set(['127.0.0.1']) });
      const { port, listener } = await outbound(echoConfig(echo.port), { telemetry, http1FastPath: fastPath });
      const dead = await outbound(echoConfig(await deadPort()), { telemetry, http1FastPath: fastPath });
      const answers = await rawResponses(
        port,
        `GET /a HTTP/1.1\r\nHost: ${HOST}\r\n\r\n` +
          `POST /b HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\n\r\nhello` +
          `POST /c HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n` +
          `GET /d HTTP/1.1\r\nHost: ${HOST}\r\nX-Weft-Debug: 1\r\n\r\n`,
        4,
      );
      const failed = await request(`http://127.0.0.1:${dead.port}/`, { headers: { host: HOST } });
      await failed.body.dump();
      const bodyBytes = answers.reduce((n, a) => n + Buffer.byteLength(JSON.stringify(jsonOf(a))), 0);
      await eventually(async () => expect((await metrics.exposition()).body).toMatch(/istio_requests_total\{[^}]*response_code="503"[^}]*response_flags="UF"[^}]*\} 1/));
      const text = (await metrics.exposition()).body;
      const line = (name: string, code: string) => text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`response_code="${code}"`));
      expect(counters(listener).fastPath).toBe(fastPath ? 4 : 0);
      return {
        decision: /\r\nx-weft-decision: \{"dir":"outbound","action":"forward"/.test(answers[3]!),
        ok: line('istio_requests_total', '200')?.replace(/^.*\} /, ''),
        okFlags: /response_flags="-"/.test(line('istio_requests_total', '200') ?? ''),
        requestBytes: line('istio_request_bytes_sum', '200')?.replace(/^.*\} /, ''),
        responseBytes: Number(line('istio_response_bytes_sum', '200')?.replace(/^.*\} /, '')) === bodyBytes,
        failed: line('istio_requests_total', '503')?.replace(/^.*\} /, ''),
      };
    };
    const expected = { decision: true, ok: '4', okFlags: true, requestBytes: '8', responseBytes: true, failed: '1' };
    expect(await served(true)).toEqual(expected);
    expect(await served(false)).toEqual(expected);
  });

  it('is off with http1FastPath: false (everything through node:http)', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port), { http1FastPath: false });
    const res = await request(`http://127.0.0.1:${port}/`, { headers: { host: HOST } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(counters(listener)).toMatchObject({ requests: 1, fastPath: 0 });
  });
});

describe('fast path: writes', () => {
  it('sends a chunked response that came in one read as one write: framing, chunks and the last chunk together', async () => {
    // A raw upstream: the whole chunked response in one write, so the proxy reads it at once.
    const upstream = net.createServer((s) => {
      s.on('data', () => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n'));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => upstream.close(() => r())));
    const { port } = await outbound(echoConfig((upstream.address() as net.AddressInfo).port));
    const client = net.connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    // Every write the proxy makes to this client, as the socket hands it to the kernel.
    const flushes: number[] = [];
    const proto = net.Socket.prototype as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
    const { _write: write, _writev: writev } = proto;
    const mine = (s: net.Socket) => s.remotePort === client.localPort && s !== client;
    proto._write = function (this: net.Socket, ...a: unknown[]) {
      if (mine(this)) flushes.push(1);
      return write.apply(this, a);
    };
    proto._writev = function (this: net.Socket, ...a: unknown[]) {
      if (mine(this)) flushes.push((a[0] as unknown[]).length);
      return writev.apply(this, a);
    };
    try {
      let text = '';
      client.on('data', (d: Buffer) => (text += d.toString('latin1')));
      client.write(`GET /c HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
      await eventually(() => expect(text).toMatch(/\r\n0\r\n\r\n$/));
      expect(text).toMatch(/\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n$/);
      expect(flushes).toHaveLength(1);
    } finally {
      proto._write = write;
      proto._writev = writev;
      client.destroy();
    }
  });
});

describe('fast path: hand-off to node:http', () => {
  it('hands over at the first request it will not take, on the same connection, and node:http serves the rest', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    // 1: fast. 2: Expect: 100-continue (node:http's). 3: after the hand-off, node:http's too.
    const sock = net.connect(port, '127.0.0.1');
    cleanups.push(async () => void sock.destroy());
    let text = '';
    sock.on('data', (d: Buffer) => (text += d.toString('latin1')));
    sock.write(`GET /one HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await eventually(() => expect(text).toContain('"path":"/one"'));
    sock.write(`PUT /two HTTP/1.1\r\nHost: ${HOST}\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n`);
    await eventually(() => expect(text).toContain('HTTP/1.1 100 Continue'));
    sock.write('abc');
    await eventually(() => expect(text).toContain('"path":"/two"'));
    sock.write(`GET /three HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await eventually(() => expect(text).toContain('"path":"/three"'));
    expect(echo.seen.map((s) => [s.path, s.bodyBytes])).toEqual([['/one', 0], ['/two', 3], ['/three', 0]]);
    expect(counters(listener)).toMatchObject({ connectionsTotal: 1, requests: 3, fastPath: 1 });
  });

  it('hands over Upgrade (WebSocket) with its bytes intact', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const text = await rawExchange(
      port,
      `GET /ws HTTP/1.1\r\nHost: ${HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping-bytes`,
      (t) => t.includes('ping-bytes'),
    );
    expect(text).toMatch(/^HTTP\/1\.1 101 /);
    expect(counters(listener).fastPath).toBe(0);
  });

  it('hands over what needs the body twice (retries, mirrors), with the same weighted choice', async () => {
    const a = await echoH1('a');
    const b = await echoH1('b');
    const A = 'outbound|8080||a.default.svc.cluster.local';
    const B = 'outbound|8080||b.default.svc.cluster.local';
    const config = buildConfig({
      routes: [
        {
          name: 'outbound',
          virtualHosts: [
            vhost(HOST, serviceDomains('echo', 'default', 8080), [
              route('retrying', forwardTo([{ cluster: A, weight: 1 }, { cluster: B, weight: 1 }], { retry: retryPolicy(['5xx'], 1) }), { prefix: '/r' }),
              route('plain', forwardTo([{ cluster: A, weight: 1 }, { cluster: B, weight: 1 }])),
            ]),
          ],
        },
      ],
      clusters: [cluster(A), cluster(B)],
      endpoints: { [A]: [endpoint('127.0.0.1', a.port)], [B]: [endpoint('127.0.0.1', b.port)] },
    });
    // A seeded sequence: node:http's path must see the same draw the fast path's plan made.
    const draws = [0.9, 0.1, 0.9, 0.1];
    let i = 0;
    const { port, listener } = await outbound(config, { random: () => draws[i++ % draws.length]! });
    const servers: string[] = [];
    for (const path of ['/plain', '/r1', '/plain', '/r2']) {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { host: HOST } });
      servers.push(res.headers['x-echo-server'] as string);
      await res.body.dump();
    }
    expect(servers).toEqual(['b', 'a', 'b', 'a']);
    expect(counters(listener)).toMatchObject({ requests: 4, fastPath: 2 });
  });

  it('hands over local answers (404, pass-through) and HTTP/1.0', async () => {
    const echo = await echoH1();
    const { port, listener } = await outbound(echoConfig(echo.port));
    const unknown = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'nope.default' } });
    expect(unknown.statusCode).toBe(404);
    expect(await unknown.body.text()).toContain('no route');
    const old = await rawExchange(port, `GET /old HTTP/1.0\r\nHost: ${HOST}\r\n\r\n`);
    expect(old).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(counters(listener).fastPath).toBe(0);
  });
});

describe('fast path: inbound', () => {
  it('authorizes once per request, forwards allowed ones fast with XFCC removed, leaves denials to handle.ts', async () => {
    const app = await echoH1('app');
    const IN = 'inbound|8080||';
    const config = buildConfig({
      listeners: [
        {
          name: 'inbound',
          filterChains: [
            {
              name: 'inbound|8080',
              destinationPorts: [8080],
              serverNames: [],
              filter: { kind: 'http', statPrefix: 'inbound_8080', inlineRoutes: { name: 'inbound|8080', virtualHosts: [vhost('inbound|8080', ['*'], [route('default', forwardTo([IN]))])] }, rbac: [] },
            } as unknown as FilterChain,
          ],
        },
      ],
      clusters: [cluster(IN, { discovery: 'STATIC', staticEndpoints: [endpoint('127.0.0.1', app.port)] })],
    });
    const asked: string[] = [];
    const authorize: AuthorizeHook = (facts) => {
      asked.push(facts.path);
      return facts.path.startsWith('/admin') ? { allow: false, reason: 'no admin' } : { allow: true, reason: 'ok' };
    };
    const l = createInboundListener({ port: 0, host: '127.0.0.1', getConfig: () => config, authorize, log: silentLog });
    const { port } = await l.listen();
    cleanups.push(() => l.close(200));
    const ok = await request(`http://127.0.0.1:${port}/hello`, { headers: { host: 'web', 'x-forwarded-client-cert': 'URI=spiffe://forged' } });
    expect(ok.statusCode).toBe(200);
    const seen = (await ok.body.json()) as EchoReport;
    expect(seen.headers['x-forwarded-client-cert']).toBeUndefined();
    const denied = await request(`http://127.0.0.1:${port}/admin`, { headers: { host: 'web' } });
    expect(denied.statusCode).toBe(403);
    expect(await denied.body.text()).toBe('RBAC: access denied\n');
    expect(asked).toEqual(['/hello', '/admin']);
    expect(l.stats().listeners.inbound).toMatchObject({ requests: 2, fastPath: 1 });
  });
});
