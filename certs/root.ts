// A new self-signed root CA for a trust domain: RSA key from node:crypto, certificate built and
// signed by node-forge (through the native signer).
import forge from 'node-forge';
import { forgeSigner, generateRsaKeyPair } from './keys.js';
import { serialNumber } from './leaf.js';
import { trustDomainProblem } from './spiffe.js';
import { ErrorCode, WeftError } from '../core/errors.js';

export interface CaKeyMaterial {
  readonly certPem: string;
  /** PKCS#8 PEM. Secret. */
  readonly keyPem: string;
}

export interface RootOptions {
  readonly trustDomain: string;
  /** Epoch ms; defaults to now. */
  readonly now?: number;
  readonly lifetimeDays?: number;
  /** RSA-2048 by default: every leaf is signed with this key, and 2048 keeps issuing fast. */
  readonly keyBits?: number;
}

const DAY_MS = 86_400_000;
// Back-dated so that proxies whose clocks run a little slow still accept the root at once.
const ROOT_BACKDATE_MS = 3_600_000;

export async function createSelfSignedRoot(opts: RootOptions): Promise<CaKeyMaterial> {
  const problem = trustDomainProblem(opts.trustDomain);
  if (problem) throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot create a root CA: ${problem}`);
  const now = opts.now ?? Date.now();
  const keys = await generateRsaKeyPair(opts.keyBits ?? 2048);
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(keys.publicKeyPem);
  cert.serialNumber = serialNumber().toString('hex');
  cert.validity.notBefore = new Date(now - ROOT_BACKDATE_MS);
  cert.validity.notAfter = new Date(now + (opts.lifetimeDays ?? 3650) * DAY_MS);
  const keyId = cert.generateSubjectKeyIdentifier().toHex();
  // The key id in the name keeps two roots of one trust domain (during rotation) apart to a reader.
  const name = [
    { name: 'organizationName', value: opts.trustDomain },
    { name: 'commonName', value: `Weft Root CA ${keyId.slice(0, 8)}` },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forgeSigner(keys.privateKey), forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert).replace(/\r\n/g, '\n'), keyPem: keys.privateKeyPem };
}
