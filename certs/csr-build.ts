// Building a PKCS#10 CSR for a workload key, in plain DER written here: the proxy makes one per
// certificate, and node-forge (which the CA side parses with) would stay in every sidecar's heap
// for its whole life for that (~1.8 MiB of source, code and objects). Parsing stays in csr.ts.
import crypto, { type KeyObject } from 'node:crypto';
import { ErrorCode, WeftError } from '../core/errors.js';
import { derToPem } from './pem.js';
import { parseSpiffeId } from './spiffe.js';

export interface CsrInput {
  /** The requester's private key; it signs the CSR and never leaves the caller. */
  readonly privateKey: KeyObject;
  /** The SPIFFE ID the requester expects; omit when it does not know it (the CA decides anyway). */
  readonly identity?: string;
}

const OID_EXTENSION_REQUEST = '1.2.840.113549.1.9.14';
const OID_SUBJECT_ALT_NAME = '2.5.29.17';

/** What the key signs its CSR with: the same choice as asn1.ts `signatureAlgorithmFor` (kept
 *  apart so that this file needs no node-forge); RSA identifiers carry an explicit NULL. */
function signatureAlgorithm(key: KeyObject): { oid: string; hash: 'sha256' | 'sha384' | null; nullParams: boolean } {
  switch (key.asymmetricKeyType) {
    case 'rsa':
      return { oid: '1.2.840.113549.1.1.11', hash: 'sha256', nullParams: true };
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'secp384r1'
        ? { oid: '1.2.840.10045.4.3.3', hash: 'sha384', nullParams: false }
        : { oid: '1.2.840.10045.4.3.2', hash: 'sha256', nullParams: false };
    case 'ed25519':
      return { oid: '1.3.101.112', hash: null, nullParams: false };
    default:
      throw new WeftError(ErrorCode.CERT_INVALID, `cannot build a CSR with a ${String(key.asymmetricKeyType)} key`, {
        hint: 'use an RSA, ECDSA (P-256/P-384) or Ed25519 key',
      });
  }
}

/**
 * A PEM CSR for the key pair of `privateKey` (RSA, ECDSA or Ed25519): empty subject, and an
 * extensionRequest asking for the expected identity as URI SAN. node:crypto signs it.
 */
export function buildCsr(input: CsrInput): string {
  const spki = crypto.createPublicKey(input.privateKey).export({ type: 'spki', format: 'der' });
  const attributes: Buffer[] = [];
  if (input.identity !== undefined) {
    parseSpiffeId(input.identity);
    const generalNames = seq(tlv(0x86, Buffer.from(input.identity, 'ascii'))); // [6] IMPLICIT IA5String: URI
    const san = seq(oid(OID_SUBJECT_ALT_NAME), tlv(0x04, generalNames));
    attributes.push(seq(oid(OID_EXTENSION_REQUEST), tlv(0x31, seq(san))));
  }
  const info = seq(
    tlv(0x02, Buffer.from([0])), // version 0
    seq(), // empty subject: the identity is in the SAN
    spki,
    tlv(0xa0, ...attributes), // [0] attributes
  );
  const alg = signatureAlgorithm(input.privateKey);
  const signature = crypto.sign(alg.hash, info, input.privateKey);
  const algorithm = alg.nullParams ? seq(oid(alg.oid), Buffer.from([0x05, 0x00])) : seq(oid(alg.oid));
  return derToPem(seq(info, algorithm, tlv(0x03, Buffer.from([0]), signature)), 'CERTIFICATE REQUEST');
}

/** One DER element: tag, definite length, then the contents. */
function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    length = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const seq = (...items: Buffer[]) => tlv(0x30, ...items);

/** OBJECT IDENTIFIER: the first two arcs as 40a+b, each arc base-128 with continuation bits. */
function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [];
  const push = (arc: number) => {
    const groups: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) groups.unshift((v & 0x7f) | 0x80);
    out.push(...groups);
  };
  push(40 * (arcs[0] ?? 0) + (arcs[1] ?? 0));
  for (const arc of arcs.slice(2)) push(arc);
  return tlv(0x06, Buffer.from(out));
}
