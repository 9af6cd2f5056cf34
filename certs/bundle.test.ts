// Trust bundles: chains verify to one of several roots through intermediates; foreign, expired
// and not-yet-valid certificates are refused with a message that names them.
import { describe, expect, it } from 'vitest';
import { TrustBundle, parseSubjectAltName, spiffeIdOf } from './bundle.js';
import { CertificateAuthority } from './ca.js';
import { parseCertificate } from './pem.js';
import { createSelfSignedRoot } from './root.js';
import { intermediateCa, testCa, testIdentity, workloadCert } from './testing.js';

const ID = testIdentity('default', 'reviews');
const DAY = 86_400_000;

describe('TrustBundle.verifyChain', () => {
  it('verifies a chain to its root and reports the SPIFFE ID', async () => {
    const ca = await testCa();
    const cert = await workloadCert(ca, ID);
    const verified = TrustBundle.fromPem(ca.roots()).verifyChain(cert.chainPem);
    expect(verified.identity).toBe(ID);
    expect(verified.root.fingerprint256).toBe(ca.signingCertificate().fingerprint256);
  });

  it('accepts a chain under any root of a multi-root bundle', async () => {
    const [a, b] = await Promise.all([testCa(), testCa()]);
    const bundle = TrustBundle.fromPem([...a.roots(), ...b.roots()]);
    expect(bundle.size).toBe(2);
    expect(bundle.verifyChain((await workloadCert(a, ID)).chainPem).identity).toBe(ID);
    expect(bundle.verifyChain((await workloadCert(b, ID)).chainPem).identity).toBe(ID);
  });

  it('refuses a chain from another CA, naming the certificate and its issuer', async () => {
    const [ours, theirs] = await Promise.all([testCa(), testCa()]);
    const foreign = await workloadCert(theirs, ID);
    const issuer = theirs.signingCertificate().subject.split('\n').join(', ');
    const bundle = TrustBundle.fromPem(ours.roots());
    expect(() => bundle.verifyChain(foreign.chainPem)).toThrow(
      `certificate ${ID} chains to root "${issuer}", which is not in the trust bundle (1 root(s))`,
    );
    expect(() => bundle.verifyChain(foreign.chainPem.slice(0, 1))).toThrow(
      `certificate ${ID} was not issued by any of the 1 root(s) in the trust bundle (its issuer is "${issuer}")`,
    );
  });

  it('refuses an expired leaf and a not-yet-valid one', async () => {
    const past = await testCa({ now: () => Date.now() - 2 * DAY });
    const expired = await workloadCert(past, ID, 3600);
    expect(() => past.bundle().verifyChain(expired.chainPem)).toThrow(new RegExp(`certificate ${ID} expired at`));

    const future = await testCa({ now: () => Date.now() + 2 * DAY });
    const early = await workloadCert(future, ID, 3600);
    expect(() => future.bundle().verifyChain(early.chainPem)).toThrow(/is not valid before/);
  });

  it('follows intermediates in any order, and fails when one is missing', async () => {
    const root = await createSelfSignedRoot({ trustDomain: 'example.org' });
    const mid = await intermediateCa(root);
    const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local' });
    await ca.useSigner({ ...mid, chainPem: [mid.certPem, root.certPem] }, [root.certPem]);
    const [leaf, intermediate] = (await workloadCert(ca, ID)).chainPem as [string, string, string];
    const bundle = TrustBundle.fromPem(root.certPem);
    expect(bundle.verifyChain([leaf, intermediate]).identity).toBe(ID);
    expect(bundle.verifyChain([leaf, root.certPem, intermediate]).identity).toBe(ID);
    expect(() => bundle.verifyChain([leaf])).toThrow(/was not issued by any of the 1 root/);
  });

  it('refuses an empty chain and an empty bundle', async () => {
    const ca = await testCa();
    expect(() => ca.bundle().verifyChain([])).toThrow('certificate chain is empty');
    expect(() => TrustBundle.fromPem([]).verifyChain(ca.roots())).toThrow('trust bundle is empty');
  });
});

describe('TrustBundle.fromPem', () => {
  it('splits concatenated PEM and drops duplicates', async () => {
    const [a, b] = await Promise.all([testCa(), testCa()]);
    const both = a.roots().join('') + b.roots().join('');
    expect(TrustBundle.fromPem([both, a.roots()[0] as string]).pems()).toEqual([...a.roots(), ...b.roots()]);
  });
});

describe('SPIFFE ID from a certificate', () => {
  it('reads the URI SAN of a certificate', async () => {
    const cert = await workloadCert(await testCa(), ID);
    expect(spiffeIdOf(parseCertificate(cert.chainPem[0] as string, 'leaf'))).toBe(ID);
  });

  it("parses Node's subjectAltName text, including quoted values", () => {
    expect(parseSubjectAltName('URI:spiffe://td/ns/a/sa/b, DNS:x.y, URI:"http://h/a,b", IP Address:127.0.0.1')).toEqual([
      { type: 'URI', value: 'spiffe://td/ns/a/sa/b' },
      { type: 'DNS', value: 'x.y' },
      { type: 'URI', value: 'http://h/a,b' },
      { type: 'IP Address', value: '127.0.0.1' },
    ]);
  });

  it('has no SPIFFE ID when a certificate carries two', () => {
    expect(spiffeIdOf({ subjectaltname: 'URI:spiffe://td/ns/a/sa/b, URI:spiffe://td/ns/a/sa/c' })).toBeUndefined();
    expect(spiffeIdOf({ subjectaltname: 'DNS:only.dns' })).toBeUndefined();
  });
});
