// MeshTls over real TLS sockets on 127.0.0.1: mutual authentication, identity checks, refusals
// (wrong identity, foreign root, expired), and rotation without dropping open connections.
import { randomBytes, X509Certificate } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { Registry } from 'prom-client';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CertificateAuthority } from '../../certs/ca.js';
import { eventually, testCa, testIdentity, workloadCert, type TestWorkloadCert } from '../../certs/testing.js';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { createLogger } from '../../core/log.js';
import { registerTlsHandshakes } from '../telemetry/metrics.js';
import { createMeshServer } from './mesh.js';
import { MeshTls, SESSION_LIFETIME_S, SessionCache, TICKET_KEY_PERIOD_MS, parseTargetPortFromSni, sniForTargetPort, type IdentitySource } from './tls.js';

const REVIEWS = testIdentity('default', 'reviews');
const RATINGS = testIdentity('default', 'ratings');
const DAY = 86_400_000;

/** An identity source the test drives by hand. */
class ManualSource implements IdentitySource {
  private listeners = new Set<() => void>();
  constructor(
    private cert: TestWorkloadCert | undefined,
    private roots: readonly string[],
  ) {}
  set(cert: TestWorkloadCert | undefined, roots: readonly string[] = this.roots): void {
    this.cert = cert;
    this.roots = roots;
    for (const l of this.listeners) l();
  }
  current() {
    return this.cert;
  }
  trustBundle() {
    return this.roots;
  }
  subscribe(l: () => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

interface TestServer {
  port: number;
  accepted: tls.TLSSocket[];
  clientErrors: Error[];
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

/** An inbound server that greets each client with what it saw: peer identity, SNI port, ALPN. */
async function serve(mesh: MeshTls): Promise<TestServer> {
  const state: TestServer = { port: 0, accepted: [], clientErrors: [] };
  const server = mesh.createServer((socket) => {
    state.accepted.push(socket);
    socket.on('error', () => undefined);
    socket.write(`peer=${mesh.peerIdentity(socket)} port=${parseTargetPortFromSni(socket.servername)} alpn=${socket.alpnProtocol}\n`);
    socket.on('data', (d) => socket.write(`echo:${d.toString()}`));
  });
  server.on('tlsClientError', (err) => state.clientErrors.push(err));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  closers.push(() => {
    for (const s of state.accepted) s.destroy();
    server.close();
    mesh.close();
  });
  return state;
}

/** The next newline-terminated line from `socket`; rejects if it closes or fails first. */
function readLine(socket: tls.TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) {
        cleanup();
        resolve(buf.slice(0, i));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`closed before a line (got ${JSON.stringify(buf)})`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
  });
}

async function connectError(mesh: MeshTls, opts: Parameters<MeshTls['connect']>[0]): Promise<Error> {
  const result = await mesh.connect(opts).then(
    (s) => {
      s.destroy();
      return undefined;
    },
    (e: Error) => e,
  );
  if (!result) throw new Error('connect should have failed');
  return result;
}

let ca: CertificateAuthority;
let foreignCa: CertificateAuthority;
let reviews: TestWorkloadCert;
let ratings: TestWorkloadCert;

beforeAll(async () => {
  [ca, foreignCa] = await Promise.all([testCa(), testCa()]);
  [reviews, ratings] = await Promise.all([workloadCert(ca, REVIEWS), workloadCert(ca, RATINGS)]);
});

const serialOf = (cert: TestWorkloadCert) => new X509Certificate(cert.chainPem[0] as string).serialNumber;

function mesh(cert: TestWorkloadCert | undefined, roots: readonly string[] = ca.roots(), ticketSecret?: Buffer): { mesh: MeshTls; source: ManualSource } {
  const source = new ManualSource(cert, roots);
  const m = new MeshTls(source, { ticketSecret });
  closers.push(() => m.close());
  return { mesh: m, source };
}

describe('mutual TLS between two workloads', () => {
  it('authenticates both sides over TLS 1.3, carrying the target port in SNI and negotiating ALPN', async () => {
    const server = await serve(mesh(ratings).mesh);
    const client = mesh(reviews).mesh;
    const socket = await client.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS, targetPort: 9080 });
    closers.push(() => socket.destroy());
    expect(await readLine(socket)).toBe(`peer=${REVIEWS} port=9080 alpn=h2`);
    expect(client.peerIdentity(socket)).toBe(RATINGS);
    expect(socket.getProtocol()).toBe('TLSv1.3');
    expect(socket.servername).toBe(sniForTargetPort(9080));
  });

  it('refuses a server whose SPIFFE ID is not the expected one, naming both', async () => {
    const server = await serve(mesh(ratings).mesh);
    const details = testIdentity('default', 'details');
    const err = await connectError(mesh(reviews).mesh, { host: '127.0.0.1', port: server.port, expectedIdentity: details });
    expect(isWeftError(err, ErrorCode.IDENTITY_MISMATCH)).toBe(true);
    expect(err.message).toBe(`127.0.0.1:${server.port} presented identity ${RATINGS} but ${details} was expected`);
  });

  it('refuses a server whose certificate comes from a root outside the trust bundle', async () => {
    const impostor = await workloadCert(foreignCa, RATINGS);
    const server = await serve(mesh(impostor, foreignCa.roots()).mesh);
    const err = await connectError(mesh(reviews).mesh, { host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS });
    expect(isWeftError(err, ErrorCode.CERT_INVALID)).toBe(true);
    expect(err.message).toMatch(
      new RegExp(`presented ${RATINGS} \\(expected ${RATINGS}\\), which does not verify against the trust bundle: issued by a CA not in the trust bundle`),
    );
  });

  it('refuses a client whose certificate comes from a root outside the trust bundle', async () => {
    const server = await serve(mesh(ratings).mesh);
    const impostor = mesh(await workloadCert(foreignCa, REVIEWS), [...ca.roots(), ...foreignCa.roots()]).mesh;
    // TLS 1.3: the client finishes its side first; the server's refusal then closes the socket.
    const socket = await impostor.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS });
    await expect(readLine(socket)).rejects.toThrow(/closed before a line/);
    await eventually(() => expect(server.clientErrors).toHaveLength(1));
    expect(server.accepted).toHaveLength(0);
  });

  it('refuses expired certificates on either side', async () => {
    const past = await testCa({ now: () => Date.now() - 2 * DAY });
    const expiredRatings = await workloadCert(past, RATINGS, 3600);
    const server = await serve(mesh(expiredRatings, [...ca.roots(), ...past.roots()]).mesh);
    const client = mesh(reviews, [...ca.roots(), ...past.roots()]).mesh;
    const err = await connectError(client, { host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS });
    expect(isWeftError(err, ErrorCode.CERT_INVALID)).toBe(true);
    expect(err.message).toMatch(/which does not verify against the trust bundle: certificate expired at/);

    const healthy = await serve(mesh(ratings, [...ca.roots(), ...past.roots()]).mesh);
    const expiredClient = mesh(await workloadCert(past, REVIEWS, 3600), [...ca.roots(), ...past.roots()]).mesh;
    const socket = await expiredClient.connect({ host: '127.0.0.1', port: healthy.port, expectedIdentity: RATINGS });
    await expect(readLine(socket)).rejects.toThrow(/closed before a line/);
    await eventually(() => expect(healthy.clientErrors).toHaveLength(1));
    expect(healthy.accepted).toHaveLength(0);
  });

  it('cannot connect before it has a certificate of its own', async () => {
    const err = await connectError(mesh(undefined).mesh, { host: '127.0.0.1', port: 1, expectedIdentity: RATINGS });
    expect(isWeftError(err, ErrorCode.CERT_INVALID)).toBe(true);
    expect(err.message).toMatch(/no workload certificate yet/);
  });
});

describe('rotation', () => {
  it('keeps open connections working and presents the new certificate on new handshakes', async () => {
    const serverSide = mesh(ratings);
    const server = await serve(serverSide.mesh);
    const clientSide = mesh(reviews);
    const old = await clientSide.mesh.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS, targetPort: 80 });
    closers.push(() => old.destroy());
    await readLine(old);
    const oldServerSerial = clientSide.mesh.peerCertificate(old)?.serialNumber;

    // Both sides renew: new keys, new certificates, same identities.
    const [newRatings, newReviews] = await Promise.all([workloadCert(ca, RATINGS), workloadCert(ca, REVIEWS)]);
    serverSide.source.set(newRatings);
    clientSide.source.set(newReviews);

    old.write('still there?\n');
    expect(await readLine(old)).toBe('echo:still there?');

    const fresh = await clientSide.mesh.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS, targetPort: 80 });
    closers.push(() => fresh.destroy());
    await readLine(fresh);
    const newServerSerial = clientSide.mesh.peerCertificate(fresh)?.serialNumber;
    expect(oldServerSerial).toBe(serialOf(ratings));
    expect(newServerSerial).toBe(serialOf(newRatings));
    // And the server saw the client's new certificate.
    const seenByServer = serverSide.mesh.peerCertificate(server.accepted.at(-1) as tls.TLSSocket)?.serialNumber;
    expect(seenByServer).toBe(serialOf(newReviews));
  });

  it('a client that sends no SNI also gets the current certificate (attachServer)', async () => {
    const serverSide = mesh(ratings);
    const server = await serve(serverSide.mesh);
    const newRatings = await workloadCert(ca, RATINGS);
    serverSide.source.set(newRatings);
    const client = mesh(reviews).mesh;
    const socket = await client.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS });
    closers.push(() => socket.destroy());
    expect(socket.servername).toBeFalsy();
    expect(client.peerCertificate(socket)?.serialNumber).toBe(serialOf(newRatings));
  });

  it('a new root in the trust bundle is honoured on the next handshake, without a restart', async () => {
    const serverSide = mesh(ratings);
    const server = await serve(serverSide.mesh);
    const newcomer = mesh(await workloadCert(foreignCa, REVIEWS), [...ca.roots(), ...foreignCa.roots()]).mesh;
    // With SNI, so the context handed out per handshake (SNICallback) is the one verifying us.
    const refused = await newcomer.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS, targetPort: 8080 });
    await expect(readLine(refused)).rejects.toThrow(/closed before a line/);

    serverSide.source.set(ratings, [...ca.roots(), ...foreignCa.roots()]);
    const accepted = await newcomer.connect({ host: '127.0.0.1', port: server.port, expectedIdentity: RATINGS, targetPort: 8080 });
    closers.push(() => accepted.destroy());
    expect(await readLine(accepted)).toMatch(new RegExp(`^peer=${REVIEWS} `));
  });
});

describe('session resumption', () => {
  /**
   * Connects and reads the server's greeting. Node emits a TLS 1.3 session ticket after the first
   * data, so a full handshake waits for its ticket too (the next connection can resume then).
   */
  async function greet(client: MeshTls, port: number) {
    const socket = await client.connect({ host: '127.0.0.1', port, expectedIdentity: RATINGS, targetPort: 9080 });
    closers.push(() => socket.destroy());
    const resumed = socket.isSessionReused();
    const ticket = resumed ? undefined : new Promise((resolve) => socket.once('session', resolve));
    const line = await readLine(socket);
    await ticket;
    return { socket, line, resumed };
  }

  it('resumes the next connection to the same peer, and both sides still know who the other is', async () => {
    const server = await serve(mesh(ratings).mesh);
    const client = mesh(reviews).mesh;
    const first = await greet(client, server.port);
    const second = await greet(client, server.port);
    expect(first.resumed).toBe(false);
    expect(second.resumed).toBe(true);
    expect(second.line).toBe(`peer=${REVIEWS} port=9080 alpn=h2`);
    expect(client.peerIdentity(second.socket)).toBe(RATINGS);
    expect(client.peerCertificate(second.socket)?.serialNumber).toBe(serialOf(ratings));
    expect(client.handshakes.client).toEqual({ full: 1, resumed: 1 });
  });

  it('counts handshakes by side and resumption, as weft_tls_handshakes_total reports them', async () => {
    const serverMesh = mesh(ratings).mesh;
    const server = await serve(serverMesh);
    const client = mesh(reviews).mesh;
    for (let i = 0; i < 3; i++) await greet(client, server.port);
    const registry = new Registry();
    registerTlsHandshakes(registry, client.handshakes);
    const text = await registry.metrics();
    expect(text).toMatch(/^weft_tls_handshakes_total\{side="client",resumed="false"\} 1$/m);
    expect(text).toMatch(/^weft_tls_handshakes_total\{side="client",resumed="true"\} 2$/m);
    await eventually(() => expect(serverMesh.handshakes.server).toEqual({ full: 1, resumed: 2 }));
  });

  it('the inbound mTLS server lets a resumed client in, knowing who it is', async () => {
    const serverMesh = mesh(ratings).mesh;
    const seen: Array<string | undefined> = [];
    const server = createMeshServer(serverMesh, createLogger('test'), (s) => {
      seen.push(serverMesh.peerIdentity(s));
      s.end('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const client = mesh(reviews).mesh;
    const port = (server.address() as AddressInfo).port;
    expect((await greet(client, port)).resumed).toBe(false);
    expect((await greet(client, port)).resumed).toBe(true);
    expect(seen).toEqual([REVIEWS, REVIEWS]);
  });

  it('the inbound mTLS server refuses a resumed session whose client certificate has expired since', async () => {
    const serverMesh = mesh(ratings).mesh;
    let accepted = 0;
    const server = createMeshServer(serverMesh, createLogger('test'), (s) => {
      accepted++;
      s.end('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const client = mesh(await workloadCert(ca, REVIEWS, 120)).mesh;
    await greet(client, port);
    // Past the client certificate's end, within the ticket's lifetime (OpenSSL's clock is real).
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 121_000 });
    try {
      const socket = await client.connect({ host: '127.0.0.1', port, expectedIdentity: RATINGS, targetPort: 9080 });
      closers.push(() => socket.destroy());
      expect(socket.isSessionReused()).toBe(true);
      await expect(readLine(socket)).rejects.toThrow(/closed before a line/);
    } finally {
      vi.useRealTimers();
    }
    expect(accepted).toBe(1);
  });

  it('does not resume after its own certificate changed: the server sees the new one', async () => {
    const server = await serve(mesh(ratings).mesh);
    const clientSide = mesh(reviews);
    await greet(clientSide.mesh, server.port);
    const newReviews = await workloadCert(ca, REVIEWS);
    clientSide.source.set(newReviews);
    const after = await greet(clientSide.mesh, server.port);
    expect(after.resumed).toBe(false);
    const seenByServer = server.accepted.at(-1) as tls.TLSSocket;
    expect(mesh(ratings).mesh.peerCertificate(seenByServer)?.serialNumber).toBe(serialOf(newReviews));
  });

  /** Two servers behind one port taking its connections in turn, as a `--concurrency`
   *  sidecar's workers take the connections its supervisor accepts. */
  async function serveInTurn(meshes: readonly MeshTls[]): Promise<number> {
    const accepted: tls.TLSSocket[] = [];
    const servers = meshes.map((m) =>
      m.createServer((socket) => {
        accepted.push(socket);
        socket.on('error', () => undefined);
        socket.write(`peer=${m.peerIdentity(socket)} port=${parseTargetPortFromSni(socket.servername)} alpn=${socket.alpnProtocol}\n`);
      }),
    );
    let next = 0;
    const front = net.createServer((socket) => servers[next++ % servers.length]!.emit('connection', socket));
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    closers.push(() => {
      for (const s of accepted) s.destroy();
      front.close();
      for (const m of meshes) m.close();
    });
    return (front.address() as AddressInfo).port;
  }

  it("servers that share a ticket secret (one sidecar's workers) resume each other's sessions, until their trust bundle changes", async () => {
    // Each worker has a certificate of its own, for the same identity.
    const secret = randomBytes(32);
    const workers = [mesh(ratings, ca.roots(), secret), mesh(await workloadCert(ca, RATINGS), ca.roots(), secret)];
    const port = await serveInTurn(workers.map((w) => w.mesh));
    const client = mesh(reviews).mesh;
    const resumed: boolean[] = [];
    for (let i = 0; i < 4; i++) resumed.push((await greet(client, port)).resumed);
    expect(resumed).toEqual([false, true, true, true]);
    expect(workers.map((w) => w.mesh.handshakes.server)).toEqual([{ full: 1, resumed: 1 }, { full: 0, resumed: 2 }]);

    // A new trust bundle ends every ticket, at every worker (each rebuilds on its own).
    for (const w of workers) w.source.set(w.source.current(), [...ca.roots(), ...foreignCa.roots()]);
    const after = [];
    for (let i = 0; i < 3; i++) after.push(await greet(client, port));
    expect(after.map((g) => g.resumed)).toEqual([false, true, true]);
    expect(after[2]!.line).toBe(`peer=${REVIEWS} port=9080 alpn=h2`);
  });

  it('with a ticket secret, the servers move to new ticket keys on the hour', async () => {
    // One second before an hour's end: the client's session is still fresh after it.
    const boundary = (Math.floor(Date.now() / TICKET_KEY_PERIOD_MS) + 1) * TICKET_KEY_PERIOD_MS;
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'], now: boundary - 1000 });
    try {
      const secret = randomBytes(32);
      const port = await serveInTurn([mesh(ratings, ca.roots(), secret).mesh]);
      const client = mesh(reviews).mesh;
      await greet(client, port);
      expect((await greet(client, port)).resumed).toBe(true);
      vi.advanceTimersByTime(1000);
      expect((await greet(client, port)).resumed).toBe(false);
      expect((await greet(client, port)).resumed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('servers without a shared secret each refuse the tickets of the other', async () => {
    const port = await serveInTurn([mesh(ratings).mesh, mesh(await workloadCert(ca, RATINGS)).mesh]);
    const client = mesh(reviews).mesh;
    const resumed: boolean[] = [];
    for (let i = 0; i < 4; i++) resumed.push((await greet(client, port)).resumed);
    expect(resumed).toEqual([false, false, false, false]);
  });

  it("a server's new trust bundle invalidates every ticket it handed out", async () => {
    const serverSide = mesh(ratings);
    const server = await serve(serverSide.mesh);
    const client = mesh(reviews).mesh;
    await greet(client, server.port);
    expect((await greet(client, server.port)).resumed).toBe(true);
    serverSide.source.set(ratings, [...ca.roots(), ...foreignCa.roots()]);
    const after = await greet(client, server.port);
    expect(after.resumed).toBe(false);
    expect(after.line).toBe(`peer=${REVIEWS} port=9080 alpn=h2`);
  });

  it('does not offer a session older than the ticket lifetime', async () => {
    const server = await serve(mesh(ratings).mesh);
    const client = mesh(reviews).mesh;
    await greet(client, server.port);
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + (SESSION_LIFETIME_S + 1) * 1000 });
    try {
      expect((await greet(client, server.port)).resumed).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('an endpoint taken over by another workload is refused, whatever session the client holds', async () => {
    const listen = async (server: tls.Server, port = 0) => {
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      closers.push(() => server.close());
      return (server.address() as AddressInfo).port;
    };
    const original = mesh(ratings).mesh.createServer((s) => s.end('hello\n'));
    const port = await listen(original);
    const client = mesh(reviews).mesh;
    const { socket } = await greet(client, port);
    socket.destroy();
    await new Promise((resolve) => original.close(resolve));

    const details = testIdentity('default', 'details');
    await listen(mesh(await workloadCert(ca, details)).mesh.createServer((s) => s.end('hello\n')), port);
    const err = await connectError(client, { host: '127.0.0.1', port, expectedIdentity: RATINGS, targetPort: 9080 });
    expect(isWeftError(err, ErrorCode.IDENTITY_MISMATCH)).toBe(true);
    expect(err.message).toBe(`127.0.0.1:${port} presented identity ${details} but ${RATINGS} was expected`);
  });
});

describe('SessionCache', () => {
  const peer = () => ({ identity: RATINGS, certificate: new X509Certificate(ratings.chainPem[0] as string) });
  const ticket = (n: number) => Buffer.from([n]);

  it('evicts the peer used least recently, a lookup counting as a use', () => {
    const cache = new SessionCache(2);
    const now = Date.now();
    cache.set('a', ticket(1), peer(), now);
    cache.set('b', ticket(2), peer(), now);
    expect(cache.get('a', now)?.session).toEqual(ticket(1));
    cache.set('c', ticket(3), peer(), now);
    expect(cache.get('b', now)).toBeUndefined();
    expect(cache.get('a', now)?.session).toEqual(ticket(1));
    expect(cache.get('c', now)?.session).toEqual(ticket(3));
  });

  it("keeps a session for the ticket lifetime, never past the peer certificate's end", async () => {
    const now = Date.now();
    const long = new SessionCache();
    long.set('a', ticket(1), peer(), now);
    expect(long.get('a', now + SESSION_LIFETIME_S * 1000 - 1)).toBeDefined();
    expect(long.get('a', now + SESSION_LIFETIME_S * 1000)).toBeUndefined();
    const shortLived = await workloadCert(ca, RATINGS, 60);
    const validTo = Date.parse(new X509Certificate(shortLived.chainPem[0] as string).validTo);
    const short = new SessionCache();
    short.set('a', ticket(1), { identity: RATINGS, certificate: new X509Certificate(shortLived.chainPem[0] as string) }, now);
    expect(short.get('a', validTo - 1)).toBeDefined();
    expect(short.get('a', validTo)).toBeUndefined();
  });
});

describe('parseTargetPortFromSni', () => {
  it.each([
    ['9080.inbound.weft.internal', 9080],
    ['1.INBOUND.weft.internal', 1],
    ['65535.inbound.weft.internal', 65535],
    ['65536.inbound.weft.internal', undefined],
    ['0.inbound.weft.internal', undefined],
    ['x.inbound.weft.internal', undefined],
    ['9080.inbound.weft.internal.evil', undefined],
    ['reviews.default.svc', undefined],
    [false, undefined],
    [undefined, undefined],
  ] as const)('%s -> %s', (sni, port) => {
    expect(parseTargetPortFromSni(sni)).toBe(port);
  });
});
