// The HBONE server through the HBONE client, over real mTLS to real TCP apps: bytes and half-close
// both ways, resets carried both ways, the handler's refusals and bad requests answered with a
// status and `x-weft-reason`, drain with a deadline, and certificate rotation under open tunnels.
import http2 from 'node:http2';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { workloadCert } from '../../certs/testing.js';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { eventually } from '../../test/support/eventually.js';
import type { MeshTls } from '../transport/tls.js';
import { HboneClient, HboneRefusedError } from './client.js';
import { REASON_HEADER } from './stream.js';
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

function mesh(which: 'server' | 'alice' | 'bob'): ReturnType<typeof meshOf> {
  const m = meshOf(pki[which], pki.ca.roots());
  cleanups.push(() => m.mesh.close());
  return m;
}

async function backend(mode: 'echo' | 'banner' = 'echo'): Promise<Backend> {
  const b = await startBackend(mode);
  cleanups.push(() => b.close());
  return b;
}

async function hboneServer(serverMesh: MeshTls = mesh('server').mesh, deny: string[] = []): Promise<TestHboneServer> {
  const s = await startHboneServer(serverMesh, { log: recordingLog(), deny });
  cleanups.push(() => s.close());
  return s;
}

function client(): HboneClient {
  const c = new HboneClient({ log: recordingLog() });
  cleanups.push(() => c.close());
  return c;
}

const to = (server: TestHboneServer, authority: string) => ({ host: '127.0.0.1', port: server.port, identity: SERVER_ID, authority, connectTimeoutMs: 3000 });

async function refusal(p: Promise<unknown>): Promise<HboneRefusedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof HboneRefusedError)) throw new Error(`expected an HboneRefusedError, got ${String(err)}`);
  return err;
}

describe('HBONE tunnels', () => {
  it('carry bytes both ways, with the client half-closing first', async () => {
    const app = await backend('echo');
    const server = await hboneServer();
    const t = await client().connect(mesh('alice').mesh, { ...to(server, `127.0.0.1:${app.port}`), headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });
    // The handler heard who is calling (the verified certificate), where to, and the headers.
    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]).toMatchObject({ peer: ALICE, target: { host: '127.0.0.1', port: app.port } });
    expect(server.requests[0]!.headers.traceparent).toBe('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
    const payload = Buffer.alloc(3 << 20, 'x'); // several flow-control windows
    const received = readAll(t);
    t.write(payload);
    t.end('!');
    const text = await received;
    expect(text.length).toBe(payload.length + 1 + `[eof after ${payload.length + 1} bytes]`.length);
    expect(text.endsWith(`![eof after ${payload.length + 1} bytes]`)).toBe(true);
    await eventually(() => expect(app.connections[0]?.ended).toBe(true));
    await eventually(() => expect(server.hbone.tunnels).toBe(0));
  });

  it('carry the app’s half-close to the client, which can still send afterwards', async () => {
    const app = await backend('banner');
    const server = await hboneServer();
    const t = await client().connect(mesh('alice').mesh, to(server, `127.0.0.1:${app.port}`));
    // The app said hello and closed its side: the client reads to the end...
    expect(await readAll(t)).toBe('hello');
    // ...and its own direction is still open.
    t.end('late data');
    await eventually(() => expect(app.connections[0]).toMatchObject({ received: 'late data', ended: true }));
    await eventually(() => expect(server.hbone.tunnels).toBe(0));
  });

  it('turn a client reset into a TCP reset of the app connection, and an app reset into a stream error', async () => {
    const app = await backend('echo');
    const server = await hboneServer();
    const c = client();
    const alice = mesh('alice').mesh;

    const t1 = await c.connect(alice, to(server, `127.0.0.1:${app.port}`));
    t1.on('error', () => {});
    t1.write('ping');
    expect(await readBytes(t1, 4)).toBe('ping');
    t1.resetAndDestroy();
    await eventually(() => expect(app.connections[0]?.error).toBe('ECONNRESET'));

    const t2 = await c.connect(alice, to(server, `127.0.0.1:${app.port}`));
    t2.write('ping');
    expect(await readBytes(t2, 4)).toBe('ping');
    const failed = new Promise<Error>((resolve) => t2.once('error', resolve));
    t2.resume();
    app.connections[1]!.socket.resetAndDestroy();
    expect((await failed).message).toMatch(/NGHTTP2_CONNECT_ERROR/);
    await eventually(() => expect(server.hbone.tunnels).toBe(0));
  });
});

describe('HBONE refusals', () => {
  it('the handler’s 403 reaches the client as a rejection carrying the reason', async () => {
    const app = await backend();
    const server = await hboneServer(undefined, [BOB]);
    const err = await refusal(client().connect(mesh('bob').mesh, to(server, `127.0.0.1:${app.port}`)));
    expect(err.status).toBe(403);
    expect(err.reason).toBe(`${BOB} may not reach 127.0.0.1:${app.port}`);
    expect(isWeftError(err, ErrorCode.PERMISSION_DENIED)).toBe(true);
    expect(app.connections).toHaveLength(0);
    // Refused tunnels do not poison the session: alice (allowed) still gets through.
    const t = await client().connect(mesh('alice').mesh, to(server, `127.0.0.1:${app.port}`));
    t.end('ok');
    expect(await readAll(t)).toBe('ok[eof after 2 bytes]');
  });

  it('an app that refuses the connection is answered 503 with the reason', async () => {
    const server = await hboneServer();
    const gone = await backend();
    await gone.close();
    const err = await refusal(client().connect(mesh('alice').mesh, to(server, `127.0.0.1:${gone.port}`)));
    expect(err.status).toBe(503);
    expect(err.reason).toMatch(new RegExp(`cannot reach 127.0.0.1:${gone.port}: .*ECONNREFUSED`));
    expect(isWeftError(err, ErrorCode.UPSTREAM_CONNECT)).toBe(true);
    expect(err.message).toMatch(/was answered 503: cannot reach/);
  });

  it('answers 400 to an authority that is not ip:port and 405 to methods other than CONNECT', async () => {
    const server = await hboneServer();
    const c = client();
    const alice = mesh('alice').mesh;
    const named = await refusal(c.connect(alice, to(server, 'ratings.apps.svc:9080')));
    expect(named.status).toBe(400);
    expect(named.reason).toBe(':authority must be the destination ip:port, got "ratings.apps.svc:9080"');
    expect((await refusal(c.connect(alice, to(server, '127.0.0.1:0')))).status).toBe(400);
    expect((await refusal(c.connect(alice, to(server, '[::1]:80x')))).status).toBe(400);

    // A plain GET over the same mTLS: 405.
    const socket = await alice.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: SERVER_ID, alpn: ['h2'] });
    const session = http2.connect(`http://127.0.0.1:${server.port}`, { createConnection: () => socket });
    cleanups.push(() => session.destroy());
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = session.request({ ':method': 'GET', ':path': '/' });
      req.once('response', resolve);
      req.once('error', reject);
      req.resume();
    });
    expect(headers[':status']).toBe(405);
    expect(headers[REASON_HEADER]).toBe('HBONE accepts only CONNECT, not GET');
  });

  it('refuses clients that do not speak h2, and logs why', async () => {
    const log = recordingLog();
    const server = await startHboneServer(mesh('server').mesh, { log });
    cleanups.push(() => server.close());
    const alice = mesh('alice').mesh;
    // Offering only HTTP/1.1: the handshake fails on ALPN.
    const err = await alice.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: SERVER_ID, alpn: ['http/1.1'] }).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.UPSTREAM_CONNECT)).toBe(true);
    expect((err as Error).message).toMatch(/no application protocol/);
    // Offering no ALPN at all: verified, then closed with a logged reason.
    const socket = await alice.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: SERVER_ID, alpn: [] });
    await new Promise<void>((resolve) => socket.once('close', () => resolve()).resume());
    expect(log.lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'refused an HBONE client that did not negotiate h2' }));
    expect(server.hbone.tunnels).toBe(0);
  });
});

describe('HBONE server lifecycle', () => {
  it('close(deadline) lets tunnels run until the deadline, then cuts them', async () => {
    const app = await backend();
    const server = await hboneServer();
    const t = await client().connect(mesh('alice').mesh, to(server, `127.0.0.1:${app.port}`));
    t.on('error', () => {});
    t.write('x');
    await readBytes(t, 1);
    expect(server.hbone.tunnels).toBe(1);
    const closed = new Promise<void>((resolve) => t.once('close', () => resolve()));
    const started = Date.now();
    await server.close(300);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await closed;
    expect(server.hbone.tunnels).toBe(0);
    await eventually(() => expect(app.connections[0]?.socket.destroyed).toBe(true));
  });

  it('keeps tunnels open across certificate rotation on both sides; new handshakes use the new certificates', async () => {
    const app = await backend();
    const serverSide = mesh('server');
    const clientSide = mesh('alice');
    const server = await hboneServer(serverSide.mesh);
    const t = await client().connect(clientSide.mesh, to(server, `127.0.0.1:${app.port}`));
    t.write('before');
    expect(await readBytes(t, 6)).toBe('before');

    const [newServer, newAlice] = await Promise.all([workloadCert(pki.ca, SERVER_ID), workloadCert(pki.ca, ALICE)]);
    serverSide.source.set(newServer);
    clientSide.source.set(newAlice);

    const rest = readAll(t);
    t.end('after');
    expect(await rest).toBe('after[eof after 11 bytes]');
    // A new client makes a new handshake, which sees the rotated certificates.
    const t2 = await client().connect(clientSide.mesh, to(server, `127.0.0.1:${app.port}`));
    t2.end('new');
    expect(await readAll(t2)).toBe('new[eof after 3 bytes]');
    expect(server.handshakes.value).toBe(2);
    const lastServerSocket = server.sockets.at(-1) as import('node:tls').TLSSocket;
    expect(serverSide.mesh.peerCertificate(lastServerSocket)?.serialNumber).toBe(
      new (await import('node:crypto')).X509Certificate(newAlice.chainPem[0] as string).serialNumber,
    );
  });
});

describe('HBONE server interop with node:http2 clients', () => {
  /** A CONNECT stream from node:http2 over the mesh's mTLS, answered 200. */
  async function nodeTunnel(server: TestHboneServer, app: Backend): Promise<http2.ClientHttp2Stream> {
    const socket = await mesh('alice').mesh.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: SERVER_ID, alpn: ['h2'] });
    const session = http2.connect(`http://127.0.0.1:${server.port}`, { createConnection: () => socket });
    cleanups.push(() => session.destroy());
    const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${app.port}` });
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('error', reject);
    });
    expect(head[':status']).toBe(200);
    return stream;
  }

  it('carries bytes and half-close both ways', async () => {
    const app = await backend();
    const server = await hboneServer();
    const t = await nodeTunnel(server, app);
    const text = readAll(t);
    t.end('from node');
    expect(await text).toBe('from node[eof after 9 bytes]');
    await eventually(() => expect(server.hbone.tunnels).toBe(0));
  });

  it('resets the app connection when node resets the stream (END_STREAM then RST_STREAM in one write)', async () => {
    const app = await backend();
    const server = await hboneServer();
    const t = await nodeTunnel(server, app);
    t.on('error', () => {});
    t.write('ping');
    expect(await readBytes(t, 4)).toBe('ping');
    // node:http2 ends the stream's writable side before it resets it: the app must see the
    // reset, not a clean FIN first.
    t.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    await eventually(() => expect(app.connections[0]?.error).toBe('ECONNRESET'));
    expect(app.connections[0]?.ended).toBe(false);
    await eventually(() => expect(server.hbone.tunnels).toBe(0));
  });
});
