// The CA: a root made on first start and reloaded after, a plugged-in intermediate, the shape and
// lifetime of issued certificates, and root rotation through a multi-root trust bundle.
import { X509Certificate } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../core/errors.js';
import { TrustBundle, spiffeIdOf } from './bundle.js';
import { BACKDATE_SECONDS, CertificateAuthority, DEFAULT_TTL_SECONDS } from './ca.js';
import { generateWorkloadKeyPair } from './keys.js';
import { certTime } from './pem.js';
import { createSelfSignedRoot } from './root.js';
import { intermediateCa, tempDir, testCa, testIdentity, workloadCert } from './testing.js';

const ID = testIdentity('default', 'reviews');
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function stateDir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}
const leafOf = (chain: readonly string[]) => new X509Certificate(chain[0] as string);

describe('self-signed CA in the state dir', () => {
  it('creates a private root on first start and reloads the same one later', async () => {
    const dir = await stateDir();
    const first = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir });
    const caDir = path.join(dir, 'ca');
    expect((await stat(caDir)).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(caDir, 'ca-key.pem'))).mode & 0o777).toBe(0o600);

    const root = first.signingCertificate();
    expect(root.ca).toBe(true);
    expect(root.subject).toContain('O=cluster.local');
    const years = (certTime(root.validTo) - Date.now()) / (365 * 86_400_000);
    expect(years).toBeGreaterThan(9.9);
    expect(years).toBeLessThan(10.1);
    expect(root.publicKey.asymmetricKeyType).toBe('rsa');

    const again = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir });
    expect(again.signingCertificate().fingerprint256).toBe(root.fingerprint256);
    expect(again.roots()).toEqual(first.roots());
    // A certificate issued before the restart still verifies against the reloaded bundle.
    const before = await workloadCert(first, ID);
    expect(again.bundle().verifyChain(before.chainPem).identity).toBe(ID);
  });

  it('with create: false, a missing CA is an error that says how to make one', async () => {
    const dir = await stateDir();
    await expect(CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir, create: false })).rejects.toThrow(
      /no CA in .*ca/,
    );
  });

  it('refuses a state dir whose key belongs to another certificate', async () => {
    const dir = await stateDir();
    await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir });
    const other = await createSelfSignedRoot({ trustDomain: 'cluster.local' });
    await writeFile(path.join(dir, 'ca', 'ca-key.pem'), other.keyPem);
    await expect(CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir })).rejects.toThrow(
      'the CA key (ca-key.pem) does not belong to the CA certificate (ca-cert.pem)',
    );
  });
});

describe('issued certificates', () => {
  it('are SPIFFE X.509-SVIDs: one URI SAN, not a CA, server+client auth, back-dated, 24 h by default', async () => {
    const now = Date.now();
    const ca = await testCa({ now: () => now });
    const keys = await generateWorkloadKeyPair();
    const chain = await ca.issue({ publicKey: keys.publicKey, identity: ID });
    expect(chain).toHaveLength(2);
    expect(chain[1]).toBe(ca.roots()[0]);
    const leaf = leafOf(chain);
    expect(leaf.subjectAltName).toBe(`URI:${ID}`);
    expect(spiffeIdOf(leaf)).toBe(ID);
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage?.sort()).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']); // serverAuth, clientAuth
    expect(leaf.publicKey.equals(keys.publicKey)).toBe(true);
    expect(leaf.checkIssued(ca.signingCertificate())).toBe(true);
    const second = (t: number) => Math.floor(t / 1000) * 1000;
    expect(certTime(leaf.validFrom)).toBe(second(now - BACKDATE_SECONDS * 1000));
    expect(certTime(leaf.validTo)).toBe(second(now + DEFAULT_TTL_SECONDS * 1000));
    expect(ca.bundle().verifyChain(chain, now).identity).toBe(ID);
  });

  it('honour the requested TTL and clamp it to the maximum', async () => {
    const now = Date.now();
    const ca = await testCa({ now: () => now, maxTtlSeconds: 7200 });
    const keys = await generateWorkloadKeyPair();
    const lifetime = async (ttlSeconds: number) =>
      (certTime(leafOf(await ca.issue({ publicKey: keys.publicKeyPem, identity: ID, ttlSeconds })).validTo) - Math.floor(now / 1000) * 1000) /
      1000;
    expect(await lifetime(600)).toBe(600);
    expect(await lifetime(30 * 86_400)).toBe(7200);
    expect(await lifetime(0)).toBe(7200); // default (24 h) is above the maximum too
  });

  it('are only issued inside the CA trust domain', async () => {
    const ca = await testCa();
    const keys = await generateWorkloadKeyPair();
    await expect(ca.issue({ publicKey: keys.publicKey, identity: 'spiffe://other.mesh/ns/a/sa/b' })).rejects.toThrow(
      "identity spiffe://other.mesh/ns/a/sa/b is outside this CA's trust domain cluster.local",
    );
  });

  it('are refused once the CA itself has expired', async () => {
    let now = Date.now();
    const ca = await testCa({ now: () => now });
    const keys = await generateWorkloadKeyPair();
    now += 11 * 365 * 86_400_000;
    await expect(ca.issue({ publicKey: keys.publicKey, identity: ID })).rejects.toThrow(/the CA certificate chain expired at/);
  });

  it('never outlive the CA', async () => {
    let now = Date.now();
    const ca = await testCa({ now: () => now, maxTtlSeconds: 400 * 86_400 });
    now += 3649 * 86_400_000; // a day before the root expires
    const chain = await ca.issue({ publicKey: (await generateWorkloadKeyPair()).publicKey, identity: ID, ttlSeconds: 30 * 86_400 });
    expect(leafOf(chain).validTo).toBe(ca.signingCertificate().validTo);
  });

  it('for serving have the control plane identity and DNS / IP SANs', async () => {
    const ca = await testCa();
    const serving = await ca.servingCertificate(['weft-control-plane', 'localhost', '127.0.0.1']);
    const leaf = leafOf(serving.chainPem);
    expect(leaf.subjectAltName).toBe(
      'URI:spiffe://cluster.local/ns/weft-system/sa/weft-control-plane, DNS:weft-control-plane, DNS:localhost, IP Address:127.0.0.1',
    );
    expect(leaf.checkHost('localhost')).toBe('localhost');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });
});

describe('plugged-in CA (Istio cacerts layout)', () => {
  async function cacerts(opts: { withChain: boolean }) {
    const dir = await stateDir();
    const root = await createSelfSignedRoot({ trustDomain: 'example.org' });
    const mid = await intermediateCa(root);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'ca-cert.pem'), mid.certPem);
    await writeFile(path.join(dir, 'ca-key.pem'), mid.keyPem);
    await writeFile(path.join(dir, 'root-cert.pem'), root.certPem);
    if (opts.withChain) await writeFile(path.join(dir, 'cert-chain.pem'), mid.certPem + root.certPem);
    return { dir, root, mid };
  }

  it.each([true, false])('issues under the intermediate; chain is leaf, intermediate, org root (cert-chain.pem: %s)', async (withChain) => {
    const { dir, root, mid } = await cacerts({ withChain });
    const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', pluggedDir: dir, stateDir: await stateDir() });
    expect(ca.source).toBe('plugged');
    expect(ca.roots()).toEqual([root.certPem]);
    const chain = (await workloadCert(ca, ID)).chainPem;
    expect(chain.slice(1)).toEqual([mid.certPem, root.certPem]);
    expect(leafOf(chain).issuer).toBe(new X509Certificate(mid.certPem).subject);
    expect(TrustBundle.fromPem(root.certPem).verifyChain(chain).identity).toBe(ID);
  });

  it('names the missing file and the expected layout', async () => {
    const { dir } = await cacerts({ withChain: true });
    await writeFile(path.join(dir, 'ca-key.pem'), '');
    await expect(CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', pluggedDir: dir })).rejects.toThrow(
      'the CA key (ca-key.pem) is not a readable private key',
    );
    const empty = await stateDir();
    await expect(CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', pluggedDir: empty })).rejects.toThrow(
      `plugged-in CA directory ${empty} has no ca-cert.pem, ca-key.pem, root-cert.pem`,
    );
  });

  it('refuses an intermediate that does not chain to root-cert.pem', async () => {
    const { dir } = await cacerts({ withChain: false });
    const stranger = await createSelfSignedRoot({ trustDomain: 'example.org' });
    await writeFile(path.join(dir, 'root-cert.pem'), stranger.certPem);
    const err = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', pluggedDir: dir }).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.CERT_INVALID)).toBe(true);
    expect((err as Error).message).toMatch(/the CA certificate does not chain to the trust bundle: certificate "O=Example Org, CN=Org Intermediate CA" was not issued/);
  });
});

describe('root rotation', () => {
  it('adds a second root, issues from it, and removes the old one; the bundle is persisted', async () => {
    const dir = await stateDir();
    const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir });
    const oldRoot = ca.roots()[0] as string;
    const seen: string[][] = [];
    ca.subscribeRoots((roots) => seen.push(roots));
    const oldLeaf = await workloadCert(ca, ID);

    const newRoot = await ca.rotateRoot();
    expect(ca.roots()).toEqual([oldRoot, newRoot]);
    expect(seen).toEqual([[oldRoot, newRoot]]);
    const newLeaf = await workloadCert(ca, ID);
    expect(newLeaf.chainPem.at(-1)).toBe(newRoot);
    // During the overlap both generations verify against the bundle.
    expect(ca.bundle().verifyChain(oldLeaf.chainPem.slice(0, 1)).identity).toBe(ID);
    expect(ca.bundle().verifyChain(newLeaf.chainPem.slice(0, 1)).identity).toBe(ID);
    await expect(ca.removeRoot(newRoot)).rejects.toThrow('that root is the one the CA signs under');

    const reloaded = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: dir });
    expect(reloaded.roots()).toEqual([oldRoot, newRoot]);
    expect(reloaded.signingCertificate().fingerprint256).toBe(new X509Certificate(newRoot).fingerprint256);

    await ca.removeRoot(new X509Certificate(oldRoot).fingerprint256);
    expect(ca.roots()).toEqual([newRoot]);
    expect(() => ca.bundle().verifyChain(oldLeaf.chainPem.slice(0, 1))).toThrow(/was not issued by any of the 1 root/);
    expect(await readFile(path.join(dir, 'ca', 'root-cert.pem'), 'utf8')).toBe(newRoot);
  });

  it('addRoot accepts only CA certificates', async () => {
    const ca = await testCa();
    const leaf = await workloadCert(ca, ID);
    await expect(ca.addRoot(leaf.chainPem[0] as string)).rejects.toThrow('root #1 is not a CA certificate');
    const other = await createSelfSignedRoot({ trustDomain: 'cluster.local' });
    await ca.addRoot(other.certPem);
    expect(ca.roots()).toHaveLength(2);
  });
});
