// Test fixtures for anything that needs certificates: a throwaway CA, workload certificates, an
// intermediate under an "organisation" root, and an `eventually` poller. Never used by product code.
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import forge from 'node-forge';
import { CertificateAuthority, type CertificateAuthorityOptions } from './ca.js';
import { forgeSigner, generateRsaKeyPair, generateWorkloadKeyPair } from './keys.js';
import { serialNumber } from './leaf.js';
import type { CaKeyMaterial } from './root.js';

export const TEST_TRUST_DOMAIN = 'cluster.local';

export function testIdentity(namespace: string, serviceAccount: string, trustDomain = TEST_TRUST_DOMAIN): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** An in-memory CA (no state dir). */
export function testCa(opts: Partial<CertificateAuthorityOptions> = {}): Promise<CertificateAuthority> {
  return CertificateAuthority.loadOrCreate({ trustDomain: TEST_TRUST_DOMAIN, ...opts });
}

export interface TestWorkloadCert {
  readonly keyPem: string;
  readonly chainPem: string[];
  readonly identity: string;
}

/** A fresh key and a certificate for `identity` from `ca`. */
export async function workloadCert(ca: CertificateAuthority, identity: string, ttlSeconds?: number): Promise<TestWorkloadCert> {
  const keys = await generateWorkloadKeyPair();
  const chainPem = await ca.issue({ publicKey: keys.publicKey, identity, ...(ttlSeconds ? { ttlSeconds } : {}) });
  return { keyPem: keys.privateKeyPem, chainPem, identity };
}

/** An intermediate CA certificate signed by `root` (for plugged-in CA tests). */
export async function intermediateCa(root: CaKeyMaterial, name = 'Org Intermediate CA'): Promise<CaKeyMaterial> {
  const keys = await generateRsaKeyPair();
  const rootCert = forge.pki.certificateFromPem(root.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumber().toString('hex');
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 365 * 86_400_000);
  cert.setSubject([
    { name: 'organizationName', value: 'Example Org' },
    { name: 'commonName', value: name },
  ]);
  cert.setIssuer(rootCert.subject.attributes);
  const rootKeyId = rootCert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: rootKeyId },
  ]);
  cert.sign(forgeSigner(createPrivateKey(root.keyPem)), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: keys.privateKeyPem };
}

/** A temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'weft-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Polls `check` until it stops throwing (returning its value) or `timeoutMs` passes (rethrowing). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
