// PKCS#10 certificate signing requests: parsed + signature-checked by the CA (node-forge's ASN.1);
// built for a proxy's key by csr-build.ts, re-exported here. RSA, ECDSA and Ed25519 keys both
// ways, so istio-agent's (RSA) and ztunnel's (ECDSA) CSRs are accepted too.
import crypto, { type KeyObject } from 'node:crypto';
import { ErrorCode, WeftError } from '../core/errors.js';
import { OID, type Asn1, derChildren, fromDer, oidOf, readGeneralNames, signatureAlgorithmByOid } from './asn1.js';
import { pemToDer } from './pem.js';

// A proxy imports the builder from csr-build.ts itself, so that it never loads node-forge.
export { buildCsr, type CsrInput } from './csr-build.js';

export interface ParsedCsr {
  /** The key to certify, as the CSR carries it. */
  readonly publicKey: KeyObject;
  /** The exact SubjectPublicKeyInfo DER, copied as-is into the certificate. */
  readonly subjectPublicKeyInfo: Buffer;
  /** URI SANs requested in the extensionRequest attribute (SPIFFE IDs, normally one). */
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
}

function invalid(problem: string, hint?: string): WeftError {
  return new WeftError(ErrorCode.CERT_INVALID, `invalid CSR: ${problem}`, hint === undefined ? {} : { hint });
}

/**
 * Parses a PEM CSR and verifies its self-signature. Throws WeftError(CERT_INVALID) whose message
 * names the problem; the CA service turns that into INVALID_ARGUMENT.
 */
export function parseCsr(pem: string): ParsedCsr {
  const label = pem.includes('BEGIN NEW CERTIFICATE REQUEST') ? 'NEW CERTIFICATE REQUEST' : 'CERTIFICATE REQUEST';
  let der: Buffer;
  try {
    der = pemToDer(pem, label, 'the CSR');
  } catch {
    throw invalid('not a PEM "CERTIFICATE REQUEST" block');
  }
  const csr = readStructure(der);
  const publicKey = readPublicKey(csr.spki);
  const alg = csr.algOid === undefined ? undefined : signatureAlgorithmByOid(csr.algOid);
  if (!alg) throw invalid(`unsupported signature algorithm ${csr.algOid ?? '(unreadable)'}`);
  if (!keyMatchesAlgorithm(publicKey, alg.oid)) {
    throw invalid(`signature algorithm ${alg.oid} does not fit a ${String(publicKey.asymmetricKeyType)} key`);
  }
  if (!crypto.verify(alg.hash, csr.info, publicKey, csr.signature)) {
    throw invalid('signature does not verify', 'the CSR was altered, or signed with a key other than the one it carries');
  }
  const names = csr.attributes ? requestedNames(csr.attributes) : { uris: [], dnsNames: [] };
  return { publicKey, subjectPublicKeyInfo: csr.spki, ...names };
}

/** CertificationRequest ::= { info { version, subject, spki, [0] attributes }, algorithm, signature }. */
function readStructure(der: Buffer) {
  try {
    const top = derChildren(der);
    if (top.length !== 3) throw invalid('not a PKCS#10 CertificationRequest (expected 3 parts)');
    const [info, sigAlg, sigBits] = top as [Buffer, Buffer, Buffer];
    const [version, , spki, attributes] = derChildren(info);
    if (!version || !spki || version.toString('hex') !== '020100') throw invalid('unsupported version or missing key');
    const algOid = oidOf((fromDer(sigAlg).value as Asn1[])[0]);
    const bits = fromDer(sigBits).value;
    if (typeof bits !== 'string' || bits.charCodeAt(0) !== 0) throw invalid('malformed signature');
    return { info, spki, attributes, algOid, signature: Buffer.from(bits.slice(1), 'binary') };
  } catch (err) {
    if (err instanceof WeftError && err.message.startsWith('invalid CSR')) throw err;
    throw invalid(err instanceof WeftError ? err.message : 'malformed DER');
  }
}

function readPublicKey(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw invalid('public key is unreadable');
  }
  const d = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      if ((d?.modulusLength ?? 0) < 2048 || (d?.modulusLength ?? 0) > 8192) {
        throw invalid(`RSA key of ${d?.modulusLength ?? '?'} bits`, 'use 2048 to 8192 bits');
      }
      return key;
    case 'ec':
      if (d?.namedCurve !== 'prime256v1' && d?.namedCurve !== 'secp384r1') {
        throw invalid(`EC key on curve ${d?.namedCurve ?? '?'}`, 'use P-256 or P-384');
      }
      return key;
    case 'ed25519':
      return key;
    default:
      throw invalid(`unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

function keyMatchesAlgorithm(key: KeyObject, algOid: string): boolean {
  if (key.asymmetricKeyType === 'rsa') return [OID.sha256WithRSA, OID.sha384WithRSA, OID.sha512WithRSA].includes(algOid as never);
  if (key.asymmetricKeyType === 'ec') return [OID.ecdsaWithSha256, OID.ecdsaWithSha384, OID.ecdsaWithSha512].includes(algOid as never);
  return key.asymmetricKeyType === 'ed25519' && algOid === OID.ed25519;
}

/** SANs from the extensionRequest attribute: attributes [0] SET OF { type, SET OF Extensions }. */
function requestedNames(attributes: Buffer): { uris: string[]; dnsNames: string[] } {
  const uris: string[] = [];
  const dnsNames: string[] = [];
  try {
    for (const attr of fromDer(attributes).value as Asn1[]) {
      const [type, values] = attr.value as Asn1[];
      if (oidOf(type) !== OID.extensionRequest || !values || !Array.isArray(values.value)) continue;
      for (const extensions of values.value) {
        for (const ext of extensions.value as Asn1[]) {
          const parts = ext.value as Asn1[];
          const octets = parts[parts.length - 1]?.value;
          if (oidOf(parts[0]) !== OID.subjectAltName || typeof octets !== 'string') continue;
          const names = readGeneralNames(octets);
          uris.push(...names.uris);
          dnsNames.push(...names.dnsNames);
        }
      }
    }
  } catch {
    throw invalid('unreadable extensionRequest attribute');
  }
  return { uris, dnsNames };
}
