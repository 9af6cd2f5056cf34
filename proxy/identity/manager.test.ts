// The proxy's IdentityManager against a real gRPC CA on 127.0.0.1: first certificate, renewal,
// retries with backoff, token re-read per request, trust bundle hand-over, stop.
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { caService, type IstioCertificateRequest, type IstioCertificateResponse } from '../../api/services.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { parseCsr } from '../../certs/csr.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import { eventually, tempDir, testCa, testIdentity } from '../../certs/testing.js';
import type { Fields, Logger } from '../../core/log.js';
import { MeshTls } from '../transport/tls.js';
import { IdentityManager, type IdentityManagerOptions } from './manager.js';

const ID = testIdentity('default', 'reviews');
const TOKEN = 'reviews-token';
const RATINGS = testIdentity('default', 'ratings');
const RATINGS_TOKEN = 'ratings-token';
const PROVES: Record<string, string> = { [TOKEN]: ID, [RATINGS_TOKEN]: RATINGS };

/** A stand-in CA endpoint: each token proves one identity; can be told to fail or to misbehave. */
class FakeCaServer {
  readonly server = new grpc.Server();
  port = 0;
  tokensSeen: string[] = [];
  ttlsSeen: number[] = [];
  failNext = 0;
  certifyOtherKey = false;

  constructor(readonly ca: CertificateAuthority) {
    const handler: grpc.handleUnaryCall<IstioCertificateRequest, IstioCertificateResponse> = (call, callback) => {
      const token = String(call.metadata.get('authorization')[0] ?? '').replace(/^Bearer /, '');
      this.tokensSeen.push(token);
      const ttl = call.request.validity_duration;
      this.ttlsSeen.push(ttl === undefined ? 0 : typeof ttl === 'number' ? ttl : ttl.toNumber());
      if (this.failNext > 0) {
        this.failNext--;
        return callback({ code: grpc.status.UNAVAILABLE, details: 'CA warming up' });
      }
      const identity = PROVES[token];
      if (!identity) return callback({ code: grpc.status.UNAUTHENTICATED, details: 'unknown token' });
      void (async () => {
        const key = this.certifyOtherKey ? (await generateWorkloadKeyPair()).publicKey : parseCsr(call.request.csr).publicKey;
        const chain = await this.ca.issue({ publicKey: key, identity, ttlSeconds: this.ttlsSeen.at(-1) ?? 0 });
        callback(null, { cert_chain: chain });
      })();
    };
    this.server.addService(caService, { CreateCertificate: handler });
  }

  async start(credentials = grpc.ServerCredentials.createInsecure()): Promise<string> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
    return `127.0.0.1:${this.port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.tryShutdown(() => resolve()));
  }
}

function recordingLogger(lines: string[]): Logger {
  const at = (level: string) => (msg: string, fields?: Fields) => void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

let ca: CertificateAuthority;
let fake: FakeCaServer;
let address: string;
const managers: IdentityManager[] = [];
const logs: string[] = [];

beforeEach(async () => {
  ca = await testCa();
  fake = new FakeCaServer(ca);
  address = await fake.start();
  logs.length = 0;
});
afterEach(async () => {
  for (const m of managers.splice(0)) m.stop();
  await fake.stop();
});

function manager(opts: Partial<IdentityManagerOptions> = {}): IdentityManager {
  const m = new IdentityManager({
    caAddress: address,
    token: () => TOKEN,
    backoff: { initialMs: 20, maxMs: 100 },
    log: recordingLogger(logs),
    ...opts,
  });
  managers.push(m);
  return m;
}

describe('IdentityManager', () => {
  it('gets a certificate for its own locally generated key, and never logs the key', async () => {
    const m = manager({ expectedIdentity: ID, ttlSeconds: 3600 });
    expect(m.current()).toBeUndefined();
    m.start();
    const cert = await m.ready();
    expect(cert.identity).toBe(ID);
    expect(m.current()).toBe(cert);
    const leaf = new X509Certificate(cert.chainPem[0] as string);
    expect(leaf.publicKey.equals(createPublicKey(createPrivateKey(cert.keyPem)))).toBe(true);
    expect(ca.bundle().verifyChain(cert.chainPem).identity).toBe(ID);
    expect(fake.ttlsSeen).toEqual([3600]);
    // Until SDS delivers a bundle, the root at the end of the CA's answer is trusted.
    expect(m.trustBundle()).toEqual(ca.roots());
    expect(logs.join('\n')).toContain('obtained a workload certificate');
    expect(logs.join('\n')).not.toMatch(/PRIVATE KEY/);
  });

  it('renews at about half the lifetime with a fresh key, telling subscribers', async () => {
    const m = manager({ ttlSeconds: 2, renewal: { random: () => 0.5 } });
    const seenAt: number[] = [];
    m.certificate.subscribe(() => seenAt.push(Date.now()));
    m.start();
    const first = await m.ready();
    const second = await eventually(() => {
      const c = m.current();
      if (!c || c === first) throw new Error('not renewed yet');
      return c;
    }, 5000);
    expect(second.keyPem).not.toBe(first.keyPem);
    expect(second.notAfter).toBeGreaterThan(first.notAfter);
    // The 2 s lifetime ends on a whole second, so it is 1-2 s from receipt: renewal comes
    // 0.5-1 s later (plus the request's own time), and before the first certificate expires.
    const [gotFirst, gotSecond] = seenAt as [number, number];
    expect(gotSecond - gotFirst).toBeGreaterThanOrEqual(450);
    expect(gotSecond - gotFirst).toBeLessThan(1900);
    expect(gotSecond).toBeLessThan(first.notAfter);
  });

  it('retries with backoff while the CA fails, then becomes ready', async () => {
    fake.failNext = 3;
    const m = manager();
    m.start();
    const cert = await m.ready();
    expect(cert.identity).toBe(ID);
    expect(fake.tokensSeen).toHaveLength(4);
    expect(m.lastError()).toBeUndefined();
    expect(logs.filter((l) => l.startsWith('warn could not get a workload certificate'))).toHaveLength(3);
    expect(logs.join('\n')).toContain('CA warming up');
  });

  it('re-reads the token file for every request, so a fixed token gets through', async () => {
    const dir = await tempDir();
    try {
      const file = path.join(dir.dir, 'token');
      await writeFile(file, 'stale-token\n');
      const m = manager({ token: undefined, tokenFile: file });
      m.start();
      await eventually(() => expect(m.lastError()).toMatch(/did not accept our token: unknown token/));
      expect(m.current()).toBeUndefined();
      await writeFile(file, `${TOKEN}\n`);
      expect((await m.ready()).identity).toBe(ID);
      expect(fake.tokensSeen[0]).toBe('stale-token');
      expect(fake.tokensSeen.at(-1)).toBe(TOKEN);
    } finally {
      await dir.cleanup();
    }
  });

  it('refuses an answer that certifies another key, and an unexpected identity', async () => {
    fake.certifyOtherKey = true;
    const m = manager();
    m.start();
    await eventually(() => expect(m.lastError()).toMatch(/returned an unusable certificate: it does not certify the key we sent/));
    expect(m.current()).toBeUndefined();

    fake.certifyOtherKey = false;
    const other = manager({ expectedIdentity: testIdentity('default', 'ratings') });
    other.start();
    await eventually(() => expect(other.lastError()).toMatch(/not the expected spiffe:\/\/cluster.local\/ns\/default\/sa\/ratings/));
  });

  it('uses the trust bundle set from outside, and tells subscribers', async () => {
    const m = manager();
    m.start();
    await m.ready();
    const other = await testCa();
    let told = 0;
    m.subscribe(() => told++);
    m.setTrustBundle([...ca.roots(), ...other.roots()]);
    expect(m.trustBundle()).toEqual([...ca.roots(), ...other.roots()]);
    expect(told).toBe(1);
    m.setTrustBundle([...ca.roots(), ...other.roots()]);
    expect(told).toBe(1); // unchanged: nobody rebuilds anything
  });

  it('talks to the CA over TLS (as on port 15012), trusting the mesh root', async () => {
    const serving = await ca.servingCertificate(['localhost', '127.0.0.1']);
    const tlsCa = new FakeCaServer(ca);
    const tlsAddress = await tlsCa.start(
      grpc.ServerCredentials.createSsl(null, [
        { private_key: Buffer.from(serving.keyPem), cert_chain: Buffer.from(serving.chainPem.join('')) },
      ]),
    );
    try {
      const m = manager({ caAddress: tlsAddress, caRootPem: ca.roots()[0] as string });
      m.start();
      expect((await m.ready()).identity).toBe(ID);

      const untrusting = manager({ caAddress: tlsAddress, caRootPem: (await testCa()).roots()[0] as string });
      untrusting.start();
      await eventually(() => expect(untrusting.lastError()).toMatch(/is unavailable/));
      expect(tlsCa.tokensSeen).toHaveLength(1); // the untrusting one never got its token through
    } finally {
      await tlsCa.stop();
    }
  });

  it('drops a certificate that expires while the CA keeps failing', async () => {
    const m = manager({ ttlSeconds: 1, renewal: { fraction: 0.9, jitter: 0 } });
    m.start();
    await m.ready();
    fake.failNext = 1000;
    await eventually(() => expect(m.current()).toBeUndefined(), 5000);
    expect(m.lastError()).toMatch(/CA warming up/);
    expect(logs.join('\n')).toMatch(/error the workload certificate expired and could not be renewed/);
  });

  it('stop ends renewals and rejects a pending ready()', async () => {
    fake.failNext = 1000;
    const m = manager();
    m.start();
    await eventually(() => expect(fake.tokensSeen.length).toBeGreaterThan(0));
    m.stop();
    await expect(m.ready()).rejects.toThrow(/stopped before a certificate arrived/);
    const seen = fake.tokensSeen.length;
    await new Promise((r) => setTimeout(r, 300)); // several backoff periods
    expect(fake.tokensSeen.length).toBeLessThanOrEqual(seen + 1);
  });
});

describe('IdentityManager feeding MeshTls', () => {
  it('two sidecars talk mTLS with CA-issued certificates, and renewal does not drop the open connection', async () => {
    const server = manager({ token: () => RATINGS_TOKEN, ttlSeconds: 2, renewal: { random: () => 0.5 } });
    const client = manager({ token: () => TOKEN, ttlSeconds: 3600 });
    server.start();
    client.start();
    await Promise.all([server.ready(), client.ready()]);
    const serverTls = new MeshTls(server);
    const clientTls = new MeshTls(client);
    const listener = tls.createServer(serverTls.serverOptions(), (socket) => {
      socket.on('error', () => undefined);
      socket.on('data', (d) => socket.write(`${serverTls.peerIdentity(socket)} says ${d.toString()}`));
    });
    serverTls.attachServer(listener);
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as AddressInfo;
    const open: tls.TLSSocket[] = [];
    try {
      const first = await clientTls.connect({ host: '127.0.0.1', port, expectedIdentity: RATINGS, targetPort: 8080 });
      open.push(first);
      const before = clientTls.peerCertificate(first)?.serialNumber;
      expect(await roundTrip(first, 'hi')).toBe(`${ID} says hi`);

      const renewed = server.current();
      await eventually(() => expect(server.current()).not.toBe(renewed), 5000);
      expect(await roundTrip(first, 'still here')).toBe(`${ID} says still here`);
      const second = await clientTls.connect({ host: '127.0.0.1', port, expectedIdentity: RATINGS, targetPort: 8080 });
      open.push(second);
      expect(clientTls.peerCertificate(second)?.serialNumber).not.toBe(before);
      expect(clientTls.peerCertificate(second)?.serialNumber).toBe(new X509Certificate(server.current()?.chainPem[0] as string).serialNumber);
    } finally {
      for (const s of open) s.destroy();
      listener.close();
      serverTls.close();
      clientTls.close();
    }
  });
});

function roundTrip(socket: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (d) => resolve(d.toString()));
    socket.once('error', reject);
    socket.write(text);
  });
}
