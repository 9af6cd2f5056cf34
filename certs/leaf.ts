// Workload (leaf) certificates: node-forge assembles the TBSCertificate, node:crypto signs it.
// The requester's key is copied in as the exact SubjectPublicKeyInfo it sent, so RSA, ECDSA and
// Ed25519 keys are all certifiable even though forge itself only models RSA keys.
import crypto, { type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import { type Asn1, type SignatureAlgorithm, algorithmIdentifier, fromDer, generalNames, toDer } from './asn1.js';
import { derToPem } from './pem.js';

const { asn1 } = forge;

/** crypto.sign in libuv's thread pool, so a burst of CSRs does not stall the event loop. */
function sign(hash: string | null, data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => crypto.sign(hash, data, key, (err, sig) => (err ? reject(err) : resolve(sig))));
}

/** The signing side of a CA, prepared once per signing certificate and reused for every leaf. */
export interface LeafIssuer {
  readonly key: KeyObject;
  readonly algorithm: SignatureAlgorithm;
  /** The issuing certificate's subject, copied byte for byte into each leaf's issuer field. */
  readonly issuerName: Buffer;
  /** Extensions every leaf carries (constraints, key usages, authority key id), already encoded. */
  readonly fixedExtensions: readonly Asn1[];
}

export function prepareLeafIssuer(opts: {
  key: KeyObject;
  algorithm: SignatureAlgorithm;
  issuerName: Buffer;
  issuerKeyId: Buffer | undefined;
}): LeafIssuer {
  // forge fills each extension's encoded value from these friendly fields.
  const template = forge.pki.createCertificate();
  template.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    ...(opts.issuerKeyId ? [{ name: 'authorityKeyIdentifier', keyIdentifier: opts.issuerKeyId.toString('binary') }] : []),
  ]);
  const toAsn1 = (forge.pki as unknown as { certificateExtensionToAsn1(e: unknown): Asn1 }).certificateExtensionToAsn1;
  return {
    key: opts.key,
    algorithm: opts.algorithm,
    issuerName: opts.issuerName,
    fixedExtensions: template.extensions.map((e: unknown) => toAsn1(e)),
  };
}

export interface LeafRequest {
  readonly subjectPublicKeyInfo: Buffer;
  /** The one URI SAN: the SPIFFE ID. */
  readonly uri: string;
  /** Extra DNS / IP SANs, only for serving certificates the control plane makes for itself. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Builds and signs one leaf certificate; returns it as PEM. */
export async function signLeaf(issuer: LeafIssuer, req: LeafRequest): Promise<string> {
  const san = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    oidNode('2.5.29.17'),
    // The subject is empty, so RFC 5280 §4.2.1.6 requires the SAN extension to be critical.
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BOOLEAN, false, '\xff'),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false, asn1.toDer(generalNames([req.uri], req.dnsNames, req.ipAddresses)).getBytes()),
  ]);
  const tbs = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, '\x02')]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.INTEGER, false, serialNumber().toString('binary')),
    algorithmIdentifier(issuer.algorithm),
    fromDer(issuer.issuerName),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [timeNode(req.notBefore), timeNode(req.notAfter)]),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, []),
    fromDer(req.subjectPublicKeyInfo),
    asn1.create(asn1.Class.CONTEXT_SPECIFIC, 3, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [...issuer.fixedExtensions, san]),
    ]),
  ]);
  const tbsDer = toDer(tbs);
  const signature = await sign(issuer.algorithm.hash, tbsDer, issuer.key);
  const cert = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithmIdentifier(issuer.algorithm),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\x00${signature.toString('binary')}`),
  ]);
  return derToPem(toDer(cert), 'CERTIFICATE');
}

function oidNode(oid: string): Asn1 {
  return asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(oid).getBytes());
}

/** 128 random bits, positive, with a non-zero first byte so the DER INTEGER is minimal. */
export function serialNumber(): Buffer {
  const serial = crypto.randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x40;
  return serial;
}

// RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
const Y2050 = Date.UTC(2050, 0, 1);
export function timeNode(date: Date): Asn1 {
  // Whole seconds: X.509 times carry no fractions.
  const d = new Date(Math.floor(date.getTime() / 1000) * 1000);
  return d.getTime() < Y2050
    ? asn1.create(asn1.Class.UNIVERSAL, asn1.Type.UTCTIME, false, asn1.dateToUtcTime(d))
    : asn1.create(asn1.Class.UNIVERSAL, asn1.Type.GENERALIZEDTIME, false, asn1.dateToGeneralizedTime(d));
}
