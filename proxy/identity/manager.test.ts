// The proxy's IdentityManager against a real gRPC CA on 127.0.0.1: first certificate, renewal,
// retries with backoff, token re-read per request, trust bundle hand-over, stop.
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { caService, type IstioCertificateRequest, type IstioCertificateResponse } from '../../api/services.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { parseCsr } from '../../certs/csr.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import { eventually, tempDir, testCa, testIdentity } from '../../certs/testing.js';
import type { Fields, Logger } from '../../core/log.js';
import { IdentityManager, type IdentityManagerOptions } from './manager.js';

const ID = testIdentity('default', 'reviews');
const TOKEN = 'reviews-token';

/** A stand-in CA endpoint: token TOKEN proves ID; can be told to fail or to misbehave. */
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
      if (token !== TOKEN) return callback({ code: grpc.status.UNAUTHENTICATED, details: 'unknown token' });
      void (async () => {
        const key = this.certifyOtherKey ? (await generateWorkloadKeyPair()).publicKey : parseCsr(call.request.csr).publicKey;
        const chain = await this.ca.issue({ publicKey: key, identity: ID, ttlSeconds: this.ttlsSeen.at(-1) ?? 0 });
        callback(null, { cert_chain: chain });
      })();
    };
    this.server.addService(caService, { CreateCertificate: handler });
  }

  async start(): Promise<string> {
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
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
    let changes = 0;
    m.subscribe(() => changes++);
    m.start();
    const first = await m.ready();
    const second = await eventually(() => {
      const c = m.current();
      if (!c || c === first) throw new Error('not renewed yet');
      return c;
    }, 5000);
    expect(second.keyPem).not.toBe(first.keyPem);
    expect(second.notAfter).toBeGreaterThan(first.notAfter);
    // Renewed around 1 s after the first (half of 2 s), well before the first expired.
    expect(second.notAfter - first.notAfter).toBeGreaterThan(700);
    expect(second.notAfter - first.notAfter).toBeLessThan(1900);
    expect(changes).toBeGreaterThanOrEqual(2);
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
