// CSRs: what a proxy builds, the CA can parse and verify; altered or malformed ones are refused.
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import forge from 'node-forge';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../core/errors.js';
import { derChildren, fromDer, toDer } from './asn1.js';
import { buildCsr, parseCsr } from './csr.js';
import { generateWorkloadKeyPair } from './keys.js';
import { derToPem, pemToDer } from './pem.js';

const ID = 'spiffe://cluster.local/ns/default/sa/reviews';

function expectInvalid(pem: string, message: RegExp) {
  try {
    parseCsr(pem);
    expect.unreachable('parseCsr accepted it');
  } catch (err) {
    expect(isWeftError(err, ErrorCode.CERT_INVALID), String(err)).toBe(true);
    expect((err as Error).message).toMatch(message);
  }
}

describe('CSR round trip', () => {
  it.each(['ecdsa-p256', 'rsa-2048'] as const)('a %s CSR carries the key and the requested SPIFFE ID', async (kind) => {
    const keys = await generateWorkloadKeyPair(kind);
    const parsed = parseCsr(buildCsr({ privateKey: keys.privateKey, identity: ID }));
    expect(parsed.uris).toEqual([ID]);
    expect(parsed.dnsNames).toEqual([]);
    expect(parsed.publicKey.equals(keys.publicKey)).toBe(true);
    expect(parsed.subjectPublicKeyInfo.equals(keys.publicKey.export({ type: 'spki', format: 'der' }))).toBe(true);
  });

  it.each([
    ['ECDSA P-384', () => crypto.generateKeyPairSync('ec', { namedCurve: 'secp384r1' })],
    ['Ed25519', () => crypto.generateKeyPairSync('ed25519')],
  ] as const)('a %s CSR carries the key and the requested SPIFFE ID', (_kind, generate) => {
    const { privateKey, publicKey } = generate();
    const parsed = parseCsr(buildCsr({ privateKey, identity: ID }));
    expect(parsed.uris).toEqual([ID]);
    expect(parsed.publicKey.equals(publicKey)).toBe(true);
  });

  it('is byte for byte the CSR node-forge assembles (RSA signatures are deterministic)', async () => {
    // The builder writes DER itself so that a proxy never loads node-forge; the reference here is
    // the same request assembled with forge's ASN.1.
    const keys = await generateWorkloadKeyPair('rsa-2048');
    const { asn1 } = forge;
    const node = (type: number, constructed: boolean, value: forge.asn1.Asn1[] | string) => asn1.create(asn1.Class.UNIVERSAL, type, constructed, value);
    const oid = (id: string) => node(asn1.Type.OID, false, asn1.oidToDer(id).getBytes());
    const uri = asn1.create(asn1.Class.CONTEXT_SPECIFIC, 6, false, ID);
    const san = node(asn1.Type.SEQUENCE, true, [oid('2.5.29.17'), node(asn1.Type.OCTETSTRING, false, asn1.toDer(node(asn1.Type.SEQUENCE, true, [uri])).getBytes())]);
    const attr = node(asn1.Type.SEQUENCE, true, [oid('1.2.840.113549.1.9.14'), node(asn1.Type.SET, true, [node(asn1.Type.SEQUENCE, true, [san])])]);
    const info = node(asn1.Type.SEQUENCE, true, [
      node(asn1.Type.INTEGER, false, '\x00'),
      node(asn1.Type.SEQUENCE, true, []),
      fromDer(keys.publicKey.export({ type: 'spki', format: 'der' })),
      asn1.create(asn1.Class.CONTEXT_SPECIFIC, 0, true, [attr]),
    ]);
    const signature = crypto.sign('sha256', toDer(info), keys.privateKey);
    const reference = toDer(
      node(asn1.Type.SEQUENCE, true, [
        info,
        node(asn1.Type.SEQUENCE, true, [oid('1.2.840.113549.1.1.11'), node(asn1.Type.NULL, false, '')]),
        node(asn1.Type.BITSTRING, false, `\x00${signature.toString('binary')}`),
      ]),
    );
    expect(pemToDer(buildCsr({ privateKey: keys.privateKey, identity: ID }), 'CERTIFICATE REQUEST', 'csr').equals(reference)).toBe(true);
  });

  it('a CSR without identity asks for no SAN', async () => {
    const keys = await generateWorkloadKeyPair();
    expect(parseCsr(buildCsr({ privateKey: keys.privateKey })).uris).toEqual([]);
  });

  it('OpenSSL accepts the CSR Weft builds, and Weft parses one OpenSSL builds', async () => {
    const keys = await generateWorkloadKeyPair('rsa-2048');
    const pem = buildCsr({ privateKey: keys.privateKey, identity: ID });
    const text = execFileSync('openssl', ['req', '-noout', '-verify', '-text'], { input: pem, stdio: 'pipe' }).toString();
    expect(text).toContain(`URI:${ID}`);

    // An ECDSA P-256 CSR, as ztunnel sends.
    const opensslCsr = execFileSync(
      'openssl',
      ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', '/dev/null',
        '-subj', '/O=cluster.local', '-addext', `subjectAltName=URI:${ID}`],
      { stdio: 'pipe' },
    ).toString();
    expect(parseCsr(opensslCsr).uris).toEqual([ID]);
  });
});

describe('CSR validation', () => {
  it('refuses a CSR whose signed part was altered', async () => {
    const keys = await generateWorkloadKeyPair();
    const der = pemToDer(buildCsr({ privateKey: keys.privateKey, identity: ID }), 'CERTIFICATE REQUEST', 'csr');
    // Change one letter of the SPIFFE ID inside the signed CertificationRequestInfo.
    const at = der.indexOf(Buffer.from('reviews'));
    der[at] = 'R'.charCodeAt(0);
    expectInvalid(derToPem(der, 'CERTIFICATE REQUEST'), /signature does not verify/);
  });

  it('refuses a CSR signed by another key than the one it carries', async () => {
    const a = await generateWorkloadKeyPair();
    const b = await generateWorkloadKeyPair();
    const derA = pemToDer(buildCsr({ privateKey: a.privateKey, identity: ID }), 'CERTIFICATE REQUEST', 'csr');
    const derB = pemToDer(buildCsr({ privateKey: b.privateKey, identity: ID }), 'CERTIFICATE REQUEST', 'csr');
    // A's request (A's key, A's identity) with B's signature.
    const [infoA] = derChildren(derA);
    const [, algB, sigB] = derChildren(derB);
    const forged = toDer(
      forge.asn1.create(forge.asn1.Class.UNIVERSAL, forge.asn1.Type.SEQUENCE, true, [
        fromDer(infoA as Buffer),
        fromDer(algB as Buffer),
        fromDer(sigB as Buffer),
      ]),
    );
    expectInvalid(derToPem(forged, 'CERTIFICATE REQUEST'), /signature does not verify/);
  });

  it.each([
    ['not PEM at all', 'hello', /not a PEM "CERTIFICATE REQUEST" block/],
    ['a certificate instead', derToPem(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'CERTIFICATE'), /not a PEM/],
    ['truncated DER', derToPem(Buffer.from([0x30, 0x82, 0x01]), 'CERTIFICATE REQUEST'), /malformed DER/],
    ['a sequence of the wrong shape', derToPem(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'CERTIFICATE REQUEST'), /expected 3 parts/],
  ])('refuses %s', (_name, pem, message) => expectInvalid(pem, message));

  it('refuses a weak RSA key, naming its size', () => {
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
    expectInvalid(buildCsr({ privateKey, identity: ID }), /RSA key of 1024 bits/);
  });
});
