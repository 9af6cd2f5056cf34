// Upstream pools against real servers: keep-alive reuse, connect failures classified, HTTP/2
// sessions replaced after GOAWAY or close, REFUSED_STREAM recognised, idle pools closed, and
// the mesh/plain transport choice.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isProxyError } from '../http/errors.js';
import { deadPort, eventually, silentLog, startEchoH1, startEchoH2, type EchoReport } from '../http/testkit.js';
import type { UpstreamConnectTarget, UpstreamTransport } from '../transport/index.js';
import { plainUpstreamTransport } from '../transport/plain.js';
import { createUpstreamPools, type UpstreamPools } from './pools.js';
import type { UpstreamRequest, UpstreamTarget } from './types.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function pools(more: Partial<Parameters<typeof createUpstreamPools>[0]> = {}): UpstreamPools {
  const p = createUpstreamPools({ transport: plainUpstreamTransport, log: silentLog, ...more });
  cleanups.push(() => p.close());
  return p;
}

function req(path = '/', more: Partial<UpstreamRequest> = {}): UpstreamRequest {
  return { method: 'GET', path, authority: 'svc', scheme: 'http', headers: {}, body: null, signal: new AbortController().signal, ...more };
}

async function text(p: UpstreamPools, target: UpstreamTarget, path = '/'): Promise<string> {
  const r = await p.request(target, req(path));
  const chunks: Buffer[] = [];
  for await (const c of r.body) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString();
}

/** A "mesh" transport that connects in plaintext and records what it was asked for. */
function recordingMesh(): { calls: UpstreamConnectTarget[]; mesh: UpstreamTransport } {
  const calls: UpstreamConnectTarget[] = [];
  const mesh: UpstreamTransport = {
    secure: true,
    connect: (t) => {
      calls.push(t);
      return plainUpstreamTransport.connect(t);
    },
  };
  return { calls, mesh };
}

const h1 = (port: number, more: Partial<UpstreamTarget> = {}): UpstreamTarget => ({ host: '127.0.0.1', port, mesh: false, protocol: 'http1', ...more });
const h2 = (port: number): UpstreamTarget => ({ host: '127.0.0.1', port, mesh: false, protocol: 'http2' });

describe('upstream pools', () => {
  it('reuses a keep-alive HTTP/1.1 connection', async () => {
    const echo = await startEchoH1();
    cleanups.push(() => echo.close());
    const p = pools();
    const ports = new Set<number | undefined>();
    for (let i = 0; i < 6; i++) {
      const r = JSON.parse(await text(p, h1(echo.port))) as EchoReport;
      expect(r.authority).toBe('svc');
      ports.add(r.remotePort);
    }
    // undici may open a second socket when a request arrives in the instant between a body's
    // end and its socket's release; it never opens one per request.
    expect(ports.size).toBeLessThanOrEqual(2);
    expect(p.describe()).toMatchObject([{ protocol: 'http1', address: `127.0.0.1:${echo.port}` }]);
    expect(p.describe()[0]!.connections).toBeLessThanOrEqual(2);
  });

  it('classifies a refused connection as upstream_connect, for both protocols', async () => {
    const port = await deadPort();
    const p = pools();
    for (const t of [h1(port), h2(port)]) {
      const err = await p.request(t, req()).catch((e: unknown) => e);
      expect(isProxyError(err, 'upstream_connect')).toBe(true);
    }
    expect(isProxyError(await p.openTunnel(h1(port)).catch((e: unknown) => e), 'upstream_connect')).toBe(true);
  });

  it('multiplexes HTTP/2 streams on one session and reconnects after GOAWAY and after close', async () => {
    const sessions: http2.ServerHttp2Session[] = [];
    const server = http2.createServer();
    server.on('session', (s) => sessions.push(s));
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      stream.end(`session-${sessions.length}`);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => { for (const s of sessions) s.destroy(); server.close(() => r()); }));
    const port = (server.address() as net.AddressInfo).port;
    const p = pools();

    expect(await Promise.all([text(p, h2(port)), text(p, h2(port)), text(p, h2(port))])).toEqual(['session-1', 'session-1', 'session-1']);
    sessions[0]!.goaway();
    await eventually(async () => expect(await text(p, h2(port))).toBe('session-2'));
    sessions[1]!.destroy();
    await eventually(async () => expect(await text(p, h2(port))).toBe('session-3'));
  });

  it('recognises REFUSED_STREAM (safe to retry) apart from other resets', async () => {
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      stream.on('error', () => {}); // a server stream closed with an error code emits one
      stream.close(headers[':path'] === '/refuse' ? http2.constants.NGHTTP2_REFUSED_STREAM : http2.constants.NGHTTP2_INTERNAL_ERROR);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const p = pools();
    const refused = await p.request(h2(port), req('/refuse')).catch((e: unknown) => e);
    expect(isProxyError(refused, 'upstream_refused_stream')).toBe(true);
    const reset = await p.request(h2(port), req('/other')).catch((e: unknown) => e);
    expect(isProxyError(reset, 'upstream_reset')).toBe(true);
  });

  it('closes pools that stay idle', async () => {
    const echo = await startEchoH2();
    cleanups.push(() => echo.close());
    const p = pools({ idleTimeoutMs: 300 });
    await text(p, h2(echo.port));
    expect(p.describe()).toHaveLength(1);
    await eventually(() => expect(p.describe()).toHaveLength(0), { timeoutMs: 3000 });
  });

  it('uses the mesh transport for mesh targets (passing identity and target port) and plaintext otherwise', async () => {
    const echo = await startEchoH1();
    cleanups.push(() => echo.close());
    const { calls, mesh } = recordingMesh();
    const p = pools({ transport: mesh });
    await text(p, h1(echo.port, { mesh: true, identity: 'spiffe://td/ns/a/sa/b', targetPort: 9080 }));
    await text(p, h1(echo.port));
    expect(calls).toEqual([expect.objectContaining({ host: '127.0.0.1', port: echo.port, identity: 'spiffe://td/ns/a/sa/b', targetPort: 9080, alpn: ['http/1.1'] })]);
    expect(p.describe().map((d) => d.key.split('|')[1]).sort()).toEqual(['plain', 'tls']);
  });

  it("keeps one pool per CONNECT authority to a waypoint, and dials each with its own (for both protocols)", async () => {
    const [e1, e2] = await Promise.all([startEchoH1(), startEchoH2()]);
    cleanups.push(() => e1.close(), () => e2.close());
    // Stands in for HBONE: what matters here is what the pools ask the transport for.
    const { calls, mesh } = recordingMesh();
    const p = pools({ transport: mesh });
    const via = (port: number, protocol: 'http1' | 'http2', authority: string): UpstreamTarget =>
      ({ host: '127.0.0.1', port, mesh: true, protocol, tunnel: 'hbone', identity: 'spiffe://td/ns/a/sa/wp', authority });
    for (const authority of ['10.96.0.20:9080', '10.96.0.30:80']) {
      await text(p, via(e1.port, 'http1', authority));
      await text(p, via(e2.port, 'http2', authority));
    }
    expect(calls.map((c) => [c.port, c.alpn[0], c.tunnel, c.authority])).toEqual([
      [e1.port, 'http/1.1', 'hbone', '10.96.0.20:9080'],
      [e2.port, 'h2', 'hbone', '10.96.0.20:9080'],
      [e1.port, 'http/1.1', 'hbone', '10.96.0.30:80'],
      [e2.port, 'h2', 'hbone', '10.96.0.30:80'],
    ]);
    expect(p.describe()).toHaveLength(4);
  });

  it('rejects requests after close()', async () => {
    const p = pools();
    await p.close();
    const err = await p.request(h1(1), req()).catch((e: unknown) => e);
    expect(isProxyError(err, 'upstream_connect')).toBe(true);
  });
  it('retires pools no cluster uses any more: running requests finish, then the pool closes', async () => {
    const echo = await startEchoH1();
    const kept = await startEchoH1();
    cleanups.push(() => echo.close(), () => kept.close());
    const p = pools();
    await text(p, h1(kept.port));
    const running = p.request(h1(echo.port), req('/slow?ms=300'));
    await eventually(() => expect(p.describe().find((d) => d.address === `127.0.0.1:${echo.port}`)?.active).toBe(1));
    // Config change: only `kept` is still used.
    p.retainOnly([h1(kept.port)]);
    expect(p.describe().find((d) => d.address === `127.0.0.1:${echo.port}`)).toMatchObject({ retiring: true, active: 1 });
    const r = await running;
    expect(r.status).toBe(200);
    for await (const _ of r.body) void _;
    await eventually(() => expect(p.describe().map((d) => d.address)).toEqual([`127.0.0.1:${kept.port}`]));
    expect(p.describe()[0]!.retiring).toBe(false);
    // A later request to the retired endpoint gets a fresh pool.
    expect(JSON.parse(await text(p, h1(echo.port)))).toMatchObject({ path: '/' });
  });
});
