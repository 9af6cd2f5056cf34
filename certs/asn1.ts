// The ASN.1 pieces Weft's X.509 code shares: OIDs, signature algorithms per key type, exact DER
// slicing (for bytes that are signed), and node-forge ASN.1 helpers for reading and building.
import type { KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { ErrorCode, WeftError } from '../core/errors.js';

const { asn1 } = forge;
export type Asn1 = forge.asn1.Asn1;

export const OID = {
  rsaEncryption: '1.2.840.113549.1.1.1',
  ecPublicKey: '1.2.840.10045.2.1',
  sha256WithRSA: '1.2.840.113549.1.1.11',
  sha384WithRSA: '1.2.840.113549.1.1.12',
  sha512WithRSA: '1.2.840.113549.1.1.13',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  ecdsaWithSha384: '1.2.840.10045.4.3.3',
  ecdsaWithSha512: '1.2.840.10045.4.3.4',
  ed25519: '1.3.101.112',
  extensionRequest: '1.2.840.113549.1.9.14',
  subjectKeyIdentifier: '2.5.29.14',
  subjectAltName: '2.5.29.17',
} as const;

/** A signature algorithm as node:crypto runs it and as X.509 names it. */
export interface SignatureAlgorithm {
  readonly oid: string;
  /** Digest for crypto.sign/verify; null for Ed25519 (no pre-hash). */
  readonly hash: 'sha256' | 'sha384' | 'sha512' | null;
  /** RSA PKCS#1 algorithm identifiers carry an explicit NULL parameter; ECDSA/EdDSA none. */
  readonly nullParams: boolean;
}

const ALGORITHMS: readonly SignatureAlgorithm[] = [
  { oid: OID.sha256WithRSA, hash: 'sha256', nullParams: true },
  { oid: OID.sha384WithRSA, hash: 'sha384', nullParams: true },
  { oid: OID.sha512WithRSA, hash: 'sha512', nullParams: true },
  { oid: OID.ecdsaWithSha256, hash: 'sha256', nullParams: false },
  { oid: OID.ecdsaWithSha384, hash: 'sha384', nullParams: false },
  { oid: OID.ecdsaWithSha512, hash: 'sha512', nullParams: false },
  { oid: OID.ed25519, hash: null, nullParams: false },
];

export function signatureAlgorithmByOid(oid: string): SignatureAlgorithm | undefined {
  return ALGORITHMS.find((a) => a.oid === oid);
}

/** The algorithm a CA with this private key signs with (SHA-256, or SHA-384 for P-384). */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const pick = (oid: string) => signatureAlgorithmByOid(oid) as SignatureAlgorithm;
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return pick(OID.sha256WithRSA);
    case 'ec':
      return pick(key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? OID.ecdsaWithSha384 : OID.ecdsaWithSha256);
    case 'ed25519':
      return pick(OID.ed25519);
    default:
      throw new WeftError(ErrorCode.CERT_INVALID, `unsupported CA key type ${String(key.asymmetricKeyType)}`, {
        hint: 'use an RSA, ECDSA (P-256/P-384) or Ed25519 CA key',
      });
  }
}

/** AlgorithmIdentifier SEQUENCE for `alg`. */
export function algorithmIdentifier(alg: SignatureAlgorithm): Asn1 {
  const parts = [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(alg.oid).getBytes())];
  if (alg.nullParams) parts.push(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.NULL, false, ''));
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, parts);
}

// ---- exact DER slicing ------------------------------------------------------------------------

function header(buf: Buffer, off: number): { headerLength: number; length: number } {
  const first = buf[off + 1];
  if (buf[off] === undefined || first === undefined) throw derError('truncated element');
  if (first < 0x80) return { headerLength: 2, length: first };
  const n = first & 0x7f;
  if (n === 0 || n > 4) throw derError('indefinite or oversized length');
  let length = 0;
  for (let i = 0; i < n; i++) {
    const b = buf[off + 2 + i];
    if (b === undefined) throw derError('truncated length');
    length = length * 256 + b;
  }
  return { headerLength: 2 + n, length };
}

function derError(what: string): WeftError {
  return new WeftError(ErrorCode.CERT_INVALID, `malformed DER: ${what}`);
}

/**
 * The raw bytes of each child of the constructed element at the start of `der`. Used where bytes
 * are signed or copied into a new certificate, so nothing is re-encoded on the way.
 */
export function derChildren(der: Buffer): Buffer[] {
  const outer = header(der, 0);
  const end = outer.headerLength + outer.length;
  if (end > der.length) throw derError('element longer than its input');
  const out: Buffer[] = [];
  for (let off = outer.headerLength; off < end; ) {
    const h = header(der, off);
    const next = off + h.headerLength + h.length;
    if (next > end) throw derError('child longer than its parent');
    out.push(der.subarray(off, next));
    off = next;
  }
  return out;
}

/** The fields of a certificate that issuing needs, sliced from its DER exactly. */
export interface CertificateParts {
  readonly subject: Buffer;
  readonly subjectPublicKeyInfo: Buffer;
  /** Subject key identifier bytes, when the certificate carries the extension. */
  readonly subjectKeyId: Buffer | undefined;
}

export function certificateParts(certDer: Buffer): CertificateParts {
  const tbs = derChildren(certDer)[0];
  if (!tbs) throw derError('certificate without TBSCertificate');
  const fields = derChildren(tbs);
  const v = fields[0]?.[0] === 0xa0 ? 1 : 0; // [0] version is optional (absent in v1)
  const subject = fields[v + 4];
  const spki = fields[v + 5];
  if (!subject || !spki) throw derError('TBSCertificate is missing subject or key');
  const extensions = fields.slice(v + 6).find((f) => f[0] === 0xa3);
  let subjectKeyId: Buffer | undefined;
  if (extensions) {
    for (const ext of derChildren(derChildren(extensions)[0] ?? Buffer.alloc(0))) {
      const node = fromDer(ext);
      const parts = node.value as Asn1[];
      if (oidOf(parts[0]) !== OID.subjectKeyIdentifier) continue;
      const octets = parts[parts.length - 1]?.value;
      if (typeof octets === 'string') {
        const inner = asn1.fromDer(octets);
        if (typeof inner.value === 'string') subjectKeyId = Buffer.from(inner.value, 'binary');
      }
    }
  }
  return { subject, subjectPublicKeyInfo: spki, subjectKeyId };
}

// ---- forge ASN.1 helpers --------------------------------------------------------------------

/** Parses DER with node-forge, keeping BIT STRING contents as raw bytes (never re-interpreted). */
export function fromDer(der: Buffer | string): Asn1 {
  const bytes = typeof der === 'string' ? der : der.toString('binary');
  // The typings only know the older `strict` boolean; forge also takes an options object.
  const parse = asn1.fromDer as unknown as (b: string, o: { strict: boolean; decodeBitStrings: boolean }) => Asn1;
  return parse(bytes, { strict: true, decodeBitStrings: false });
}

export function toDer(node: Asn1): Buffer {
  return Buffer.from(asn1.toDer(node).getBytes(), 'binary');
}

export function oidOf(node: Asn1 | undefined): string | undefined {
  if (!node || node.type !== asn1.Type.OID || typeof node.value !== 'string') return undefined;
  return asn1.derToOid(node.value);
}

/** URIs and DNS names in a GeneralNames value (the contents of a subjectAltName extension). */
export function readGeneralNames(der: string): { uris: string[]; dnsNames: string[] } {
  const seq = asn1.fromDer(der);
  const uris: string[] = [];
  const dnsNames: string[] = [];
  if (!Array.isArray(seq.value)) return { uris, dnsNames };
  for (const name of seq.value) {
    if (name.tagClass !== asn1.Class.CONTEXT_SPECIFIC || typeof name.value !== 'string') continue;
    // GeneralName: [2] dNSName, [6] uniformResourceIdentifier, both IA5String (ASCII).
    if (name.type === 6) uris.push(name.value);
    if (name.type === 2) dnsNames.push(name.value);
  }
  return { uris, dnsNames };
}

/** GeneralNames for a subjectAltName extension value. */
export function generalNames(uris: readonly string[], dnsNames: readonly string[] = [], ips: readonly string[] = []): Asn1 {
  const names = [
    ...uris.map((u) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, u)),
    ...dnsNames.map((d) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 2, false, d)),
    // [7] iPAddress: the 4 or 16 address bytes.
    ...ips.map((ip) => asn1.create(asn1.Class.CONTEXT_SPECIFIC, 7, false, ipBytes(ip))),
  ];
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, names);
}

function ipBytes(ip: string): string {
  // forge has the conversion but its typings do not declare it.
  const bytes = (forge.util as unknown as { bytesFromIP(ip: string): string | null }).bytesFromIP(ip);
  if (bytes === null) throw new WeftError(ErrorCode.USAGE, `${JSON.stringify(ip)} is not an IP address`);
  return bytes;
}
