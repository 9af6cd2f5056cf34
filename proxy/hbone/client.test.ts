// The HBONE client against a real HBONE server over real mTLS: one session per (source,
// destination, address) shared by concurrent tunnels, one dial for concurrent first connects,
// a second session at the peer's stream limit, sessions replaced after a kill or GOAWAY while
// running tunnels finish, idle sessions closed, and identity checks both ways.
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { workloadCert } from '../../certs/testing.js';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { eventually } from '../../test/support/eventually.js';
import { connectTcp } from '../capture/tcp.js';
import { H2Connection } from '../http2/connection.js';
import { H2Error } from '../http2/frames.js';
import type { MeshTls } from '../transport/tls.js';
import { HboneClient, type Dial, type HboneStream } from './client.js';
import {
  ALICE, BOB, SERVER_ID, makePki, meshOf, readAll, readBytes, recordingLog, startBackend, startHboneServer,
  type Backend, type Pki, type TestHboneServer,
} from './testkit.js';

let pki: Pki;
beforeAll(async () => {
  pki = await makePki();
});

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function mesh(which: 'server' | 'alice' | 'bob'): MeshTls {
  const m = meshOf(pki[which], pki.ca.roots()).mesh;
  cleanups.push(() => m.close());
  return m;
}

async function backend(mode: 'echo' | 'banner' = 'echo'): Promise<Backend> {
  const b = await startBackend(mode);
  cleanups.push(() => b.close());
  return b;
}

async function hboneServer(opts: Partial<Parameters<typeof startHboneServer>[1]> = {}): Promise<TestHboneServer & { log: ReturnType<typeof recordingLog> }> {
  const log = recordingLog();
  const s = await startHboneServer(mesh('server'), { log, ...opts });
  cleanups.push(() => s.close());
  return { ...s, log };
}

function client(opts: { idleTimeoutMs?: number; dial?: Dial } = {}): HboneClient {
  const c = new HboneClient({ log: recordingLog(), ...opts });
  cleanups.push(() => c.close());
  return c;
}

const to = (server: TestHboneServer, app: Backend | number, more: { identity?: string } = {}) => ({
  host: '127.0.0.1',
  port: server.port,
  identity: more.identity ?? SERVER_ID,
  authority: `127.0.0.1:${typeof app === 'number' ? app : app.port}`,
  connectTimeoutMs: 3000,
});

/** Writes `text`, half-closes, and reads the echo back to the end. */
async function roundTrip(t: HboneStream, text: string): Promise<string> {
  const all = readAll(t);
  t.end(text);
  return all;
}

describe('HBONE client sessions', () => {
  it('multiplexes many concurrent tunnels on one mTLS connection per source identity, dialled once', async () => {
    const app = await backend();
    const server = await hboneServer();
    const dials: string[] = [];
    const dial: Dial = (host, port, timeoutMs) => {
      dials.push(`${host}:${port}`);
      return connectTcp(host, port, { timeoutMs });
    };
    const c = client({ dial });
    const alice = mesh('alice');
    const bob = mesh('bob');

    const results = await Promise.all([
      ...Array.from({ length: 40 }, async (_, i) => roundTrip(await c.connect(alice, to(server, app)), `alice-${i}`)),
      ...Array.from({ length: 10 }, async (_, i) => roundTrip(await c.connect(bob, to(server, app)), `bob-${i}`)),
    ]);
    expect(results.slice(0, 3)).toEqual(['alice-0[eof after 7 bytes]', 'alice-1[eof after 7 bytes]', 'alice-2[eof after 7 bytes]']);
    expect(results.at(-1)).toBe('bob-9[eof after 5 bytes]');
    expect(app.connections).toHaveLength(50);
    // Two TLS connections in all: one for alice→server, one for bob→server; one dial each.
    expect(server.handshakes.value).toBe(2);
    expect(dials).toEqual([`127.0.0.1:${server.port}`, `127.0.0.1:${server.port}`]);
    const rows = c.describe();
    expect(rows.map((r) => r.source).sort()).toEqual([ALICE, BOB].sort());
    expect(rows.every((r) => r.destination === SERVER_ID && r.address === `127.0.0.1:${server.port}`)).toBe(true);
    await eventually(() => expect(c.describe().map((r) => r.streams)).toEqual([0, 0]));
    expect(server.hbone.tunnels).toBe(0);
  });

  it('opens another session when the peer’s SETTINGS_MAX_CONCURRENT_STREAMS is reached', async () => {
    const app = await backend();
    const server = await hboneServer({ settings: { maxConcurrentStreams: 2 } });
    const c = client();
    const alice = mesh('alice');
    const tunnels = await Promise.all(Array.from({ length: 5 }, () => c.connect(alice, to(server, app))));
    expect(server.handshakes.value).toBe(3);
    expect(c.describe().map((r) => r.streams).sort()).toEqual([1, 2, 2]);
    expect(await Promise.all(tunnels.map((t, i) => roundTrip(t, `t${i}`)))).toEqual(
      ['t0', 't1', 't2', 't3', 't4'].map((s) => `${s}[eof after 2 bytes]`),
    );
    // Freed streams are reused rather than a fourth connection opened.
    await eventually(() => expect(c.describe().every((r) => r.streams === 0)).toBe(true));
    await roundTrip(await c.connect(alice, to(server, app)), 'again');
    expect(server.handshakes.value).toBe(3);
  });

  it('replaces a session that was killed; the next tunnel opens a new mTLS connection', async () => {
    const app = await backend();
    const server = await hboneServer();
    // Dialled half-open, as relays' sockets are: the session must still notice the peer is gone.
    const c = client({ dial: (host, port, timeoutMs) => connectTcp(host, port, { timeoutMs }) });
    const alice = mesh('alice');
    expect(await roundTrip(await c.connect(alice, to(server, app)), 'one')).toBe('one[eof after 3 bytes]');
    for (const s of server.sockets) s.destroy();
    await eventually(() => expect(c.describe()).toEqual([]));
    expect(await roundTrip(await c.connect(alice, to(server, app)), 'two')).toBe('two[eof after 3 bytes]');
    expect(server.handshakes.value).toBe(2);
  });

  it('on GOAWAY, running tunnels finish on the old session and new ones go to a new one', async () => {
    const app = await backend();
    const first = await hboneServer();
    const c = client();
    const alice = mesh('alice');
    const running = await c.connect(alice, to(first, app));
    running.write('before ');
    expect(await readBytes(running, 7)).toBe('before ');

    // The server drains (GOAWAY) and stops listening; a new server takes its address.
    const drained = first.close(10_000);
    await eventually(() => expect(first.hbone.server.listening).toBe(false));
    const second = await hboneServer({ port: first.port });
    await eventually(() => expect(c.describe()).toHaveLength(1)); // still the old one, draining
    const fresh = await c.connect(alice, to(second, app));
    expect(second.handshakes.value).toBe(1);
    expect(c.describe()).toHaveLength(2);

    // The tunnel on the GOAWAYed session still carries bytes and its half-close both ways.
    const rest = readAll(running);
    running.end('after');
    expect(await rest).toBe('after[eof after 12 bytes]');
    await drained; // the old session closed once its last tunnel ended, well before the deadline
    expect(first.hbone.tunnels).toBe(0);
    expect(await roundTrip(fresh, 'new')).toBe('new[eof after 3 bytes]');
    await eventually(() => expect(c.describe()).toHaveLength(1));
  });

  it('closes sessions that stay idle, and keeps using them while they are not', async () => {
    const app = await backend();
    const server = await hboneServer();
    const c = client({ idleTimeoutMs: 300 });
    const alice = mesh('alice');
    for (let i = 0; i < 3; i++) await roundTrip(await c.connect(alice, to(server, app)), `x${i}`);
    expect(server.handshakes.value).toBe(1);
    expect(c.describe()).toHaveLength(1);
    await eventually(() => expect(c.describe()).toEqual([]), { timeoutMs: 3000 });
    await eventually(() => expect(server.sockets.every((s) => s.destroyed)).toBe(true));
  });
});

describe('HBONE client identity checks', () => {
  it('refuses a server that proves another identity (IDENTITY_MISMATCH)', async () => {
    const app = await backend();
    const server = await hboneServer();
    const err = await client().connect(mesh('alice'), to(server, app, { identity: BOB })).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.IDENTITY_MISMATCH)).toBe(true);
    expect((err as Error).message).toBe(`127.0.0.1:${server.port} presented identity ${SERVER_ID} but ${BOB} was expected`);
    expect(app.connections).toHaveLength(0);
  });

  it('is refused by the server when its certificate comes from a CA outside the trust bundle', async () => {
    const app = await backend();
    const server = await hboneServer();
    const impostor = meshOf(await workloadCert(pki.foreign, ALICE), [...pki.ca.roots(), ...pki.foreign.roots()]).mesh;
    cleanups.push(() => impostor.close());
    const err = await client().connect(impostor, to(server, app)).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.UPSTREAM_CONNECT)).toBe(true);
    expect((err as Error).message).toMatch(/closed the connection before its HTTP\/2 SETTINGS/);
    await eventually(() =>
      expect(server.log.lines).toContainEqual(
        expect.objectContaining({ level: 'warn', msg: 'refused an mTLS client', fields: expect.objectContaining({ reason: expect.stringMatching(/CA not in the trust bundle/) }) }),
      ),
    );
    expect(app.connections).toHaveLength(0);
  });

  it('reports an unreachable HBONE listener as UPSTREAM_CONNECT', async () => {
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    const err = await client()
      .connect(mesh('alice'), { host: '127.0.0.1', port, identity: SERVER_ID, authority: '127.0.0.1:80' })
      .catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.UPSTREAM_CONNECT)).toBe(true);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });
});

describe('HBONE client interop with a node:http2 server', () => {
  /** An HBONE listener on node:http2 (as Weft's was before its own engine): CONNECT to 127.0.0.1
   *  ports, bytes piped both ways with half-close; `streams` are the server's tunnel streams. */
  async function nodeHboneServer(): Promise<{ port: number; streams: http2.ServerHttp2Stream[] }> {
    const h2 = http2.createServer();
    const streams: http2.ServerHttp2Stream[] = [];
    h2.on('stream', (stream, headers) => {
      streams.push(stream);
      stream.on('error', () => {});
      const [host, port] = String(headers[':authority']).split(':');
      const app = net.connect({ host, port: Number(port), allowHalfOpen: true }, () => {
        stream.respond({ ':status': 200 });
        stream.pipe(app);
        app.pipe(stream);
      });
      app.on('error', () => stream.close(http2.constants.NGHTTP2_CONNECT_ERROR));
      stream.once('close', () => app.destroy());
    });
    const tlsServer = mesh('server').createServer((socket) => h2.emit('connection', socket));
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => tlsServer.close(() => r())));
    cleanups.push(() => {
      for (const s of streams) s.session?.destroy();
    });
    return { port: (tlsServer.address() as net.AddressInfo).port, streams };
  }

  it('carries bytes and half-close, and hears the server’s reset as a stream error', async () => {
    const app = await backend();
    const server = await nodeHboneServer();
    const c = client();
    const alice = mesh('alice');
    const target = { host: '127.0.0.1', port: server.port, identity: SERVER_ID, authority: `127.0.0.1:${app.port}`, connectTimeoutMs: 3000 };
    expect(await roundTrip(await c.connect(alice, target), 'hello node')).toBe('hello node[eof after 10 bytes]');

    const t = await c.connect(alice, target);
    t.write('ping');
    expect(await readBytes(t, 4)).toBe('ping');
    const failed = new Promise<Error>((resolve) => t.once('error', resolve));
    t.resume();
    server.streams.at(-1)!.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    expect((await failed).message).toMatch(/NGHTTP2_CONNECT_ERROR/);
    await eventually(() => expect(c.describe().map((r) => r.streams)).toEqual([0]));
  });

});

describe('HBONE client, the server’s RST_STREAM(NO_ERROR)', () => {
  it('ends and closes the tunnel when the server resets it with NO_ERROR, without END_STREAM', async () => {
    // A server that answers 200, sends two bytes, then RST_STREAM(NO_ERROR) ("I want no more";
    // RFC 9113 §8.1): Weft's own engine, which can send that reset alone.
    const tlsServer = mesh('server').createServer((socket) => {
      const conn = new H2Connection(socket, {
        role: 'server',
        onStream: (stream) => {
          stream.handler = { onHead() {}, onData: (st, _b, from, to) => st.consumed(to - from), onEnd() {}, onClose() {}, onWritable() {} };
          stream.sendHead([':status', '200'], false);
          // Framed at once (the window is open), then the reset: both leave in this order.
          stream.writeFrom(Buffer.from('hi'), 0, 2);
          stream.reset(H2Error.NoError);
        },
      });
      conn.start();
    });
    await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => tlsServer.close(() => r())));
    const port = (tlsServer.address() as net.AddressInfo).port;
    const t = await client().connect(mesh('alice'), { host: '127.0.0.1', port, identity: SERVER_ID, authority: '127.0.0.1:9', connectTimeoutMs: 3000 });
    const closed = new Promise<void>((resolve) => t.once('close', () => resolve()));
    expect(await readAll(t)).toBe('hi'); // resolves at 'end': the server's bytes are over
    t.end();
    await closed;
  });
});
