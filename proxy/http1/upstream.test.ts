// The fast path's upstream pool against raw TCP servers that answer exactly as scripted: framing
// of every kind, keep-alive reuse and expiry, the limit on connections, and the one replay a
// request gets when a reused connection turns out to be closed.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isProxyError } from '../http/errors.js';
import type { HeaderMap } from '../http/headers.js';
import { eventually } from '../http/testkit.js';
import { RawPool, type RawRequest, type RawResponse, type UpstreamConnection } from './upstream.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP server that hands each request head (up to CRLF CRLF) to `answer`, per connection. */
async function scripted(answer: (head: string, socket: net.Socket, index: number) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buf = '';
    let index = 0;
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end + 4);
        buf = buf.slice(end + 4);
        answer(head, socket, index++);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { port: (server.address() as net.AddressInfo).port, connections: () => connections };
}

function pool(port: number, more: Partial<ConstructorParameters<typeof RawPool>[0]> = {}): RawPool {
  const p = new RawPool({
    address: `127.0.0.1:${port}`,
    connect: () =>
      new Promise((resolve, reject) => {
        const s = net.connect(port, '127.0.0.1', () => resolve(s));
        s.once('error', reject);
      }),
    maxConnections: undefined,
    keepAliveTimeoutMs: 4000,
    ...more,
  });
  cleanups.push(() => p.close());
  return p;
}

/** A request whose head is all of it; its response body is collected. */
function req(path: string, method = 'GET'): RawRequest & { conns: UpstreamConnection[] } {
  const conns: UpstreamConnection[] = [];
  return {
    conns,
    target: { host: '127.0.0.1', port: 0, mesh: false, protocol: 'http1' },
    takeHead: () => `${method} ${path} HTTP/1.1\r\nhost: x\r\n\r\n`,
    sent: (c) => {
      conns.push(c);
      c.requestComplete();
    },
    noResponseBody: method === 'HEAD',
    replayable: method === 'GET',
    cancelled: undefined,
  };
}

/** Reads the whole body of `res`. */
function body(res: RawResponse): Promise<{ text: string; trailers: HeaderMap | undefined }> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.start({
      onBodyData: (c) => {
        text += c.toString('latin1');
        return true;
      },
      onBodyEnd: (trailers) => resolve({ text, trailers }),
      onBodyError: reject,
    });
  });
}

describe('RawPool', () => {
  it('reads every framing: length, chunked with trailers, until close, none; skips 1xx', async () => {
    const server = await scripted((head, s) => {
      const path = head.split(' ')[1];
      if (path === '/length') s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
      if (path === '/chunked') s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n');
      if (path === '/informational') s.write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
      if (path === '/close') s.end('HTTP/1.1 200 OK\r\n\r\nuntil-the-end');
    });
    const p = pool(server.port);
    expect(await body(await p.request(req('/length')))).toEqual({ text: 'hello', trailers: undefined });
    expect(await body(await p.request(req('/chunked')))).toEqual({ text: 'abcde', trailers: { 'x-sum': '9' } });
    const r = await p.request(req('/informational'));
    expect(r.status).toBe(204);
    expect(await body(r)).toEqual({ text: '', trailers: undefined });
    expect(await body(await p.request(req('/close')))).toEqual({ text: 'until-the-end', trailers: undefined });
    expect(server.connections()).toBe(1); // one connection for all, until the close-delimited one
  });

  it('keeps connections alive for reuse, then closes them once idle for keepAliveTimeoutMs', async () => {
    const server = await scripted((_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    const p = pool(server.port, { keepAliveTimeoutMs: 300 });
    for (let i = 0; i < 3; i++) await body(await p.request(req('/')));
    expect(server.connections()).toBe(1);
    expect(p.connections).toBe(1);
    await eventually(() => expect(p.connections).toBe(0), { timeoutMs: 3000 });
  });

  it('holds requests beyond maxConnections until a connection is free, in order', async () => {
    const held: net.Socket[] = [];
    const server = await scripted((_h, s) => held.push(s));
    const p = pool(server.port, { maxConnections: 1 });
    const first = p.request(req('/1'));
    const second = p.request(req('/2'));
    await eventually(() => expect(held).toHaveLength(1));
    expect(p.busy).toBe(true);
    held[0]!.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na');
    expect(await body(await first)).toMatchObject({ text: 'a' });
    await eventually(() => expect(held).toHaveLength(2));
    held[1]!.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb');
    expect(await body(await second)).toMatchObject({ text: 'b' });
    expect(server.connections()).toBe(1);
  });

  it('replays an idempotent request once when a reused connection was closed under it, never a POST', async () => {
    // The server answers the first request of each connection, then drops the connection as
    // the next request arrives (the keep-alive race, made certain).
    const server = await scripted((_h, s, i) => {
      if (i === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      else s.destroy();
    });
    const p = pool(server.port);
    await body(await p.request(req('/warm')));
    expect(await body(await p.request(req('/again')))).toMatchObject({ text: 'ok' });
    expect(server.connections()).toBe(2);
    const err = await p.request(req('/post', 'POST')).catch((e: unknown) => e);
    expect(isProxyError(err, 'upstream_reset')).toBe(true);
  });

  it('rejects with upstream_connect when nothing listens, and upstream_reset on a malformed response', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const err = await pool(port).request(req('/')).catch((e: unknown) => e);
    expect(isProxyError(err, 'upstream_connect')).toBe(true);

    const liar = await scripted((_h, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n'));
    const bad = await pool(liar.port).request(req('/')).catch((e: unknown) => e);
    expect(isProxyError(bad, 'upstream_reset')).toBe(true);
    expect((bad as Error & { hint?: string }).hint).toContain('malformed response');
  });
});
