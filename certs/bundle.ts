// Trust bundles (one or more PEM roots) and chain verification with node:crypto's X509Certificate:
// leaf -> intermediates -> one of the roots, each within its validity period.
import type { X509Certificate } from 'node:crypto';
import { ErrorCode, WeftError } from '../core/errors.js';
import { certTime, parseCertificate, splitPemCertificates } from './pem.js';

const MAX_DEPTH = 8;

export interface VerifiedChain {
  readonly leaf: X509Certificate;
  /** The leaf's SPIFFE ID, if it has exactly one. */
  readonly identity: string | undefined;
  /** The bundle root the chain ends at. */
  readonly root: X509Certificate;
}

export class TrustBundle {
  private constructor(
    private readonly pemRoots: readonly string[],
    readonly roots: readonly X509Certificate[],
  ) {}

  /** A bundle from PEM texts; each text may hold several certificates. Throws CERT_INVALID. */
  static fromPem(pems: string | readonly string[]): TrustBundle {
    const texts = typeof pems === 'string' ? [pems] : pems;
    const split = texts.flatMap((t) => splitPemCertificates(t));
    const certs = split.map((pem, i) => parseCertificate(pem, `trust bundle root #${i + 1}`));
    // Same root twice (e.g. from two sources) counts once.
    const seen = new Set<string>();
    const keep = certs.map((c) => !seen.has(c.fingerprint256) && !!seen.add(c.fingerprint256));
    return new TrustBundle(
      split.filter((_, i) => keep[i]),
      certs.filter((_, i) => keep[i]),
    );
  }

  /** The roots as PEM, one certificate per element. */
  pems(): string[] {
    return [...this.pemRoots];
  }

  get size(): number {
    return this.roots.length;
  }

  has(cert: X509Certificate): boolean {
    return this.roots.some((r) => r.fingerprint256 === cert.fingerprint256);
  }

  /**
   * Verifies `chain` (leaf first; intermediates in any order; a trailing root is allowed) up to
   * one of this bundle's roots at time `now`. Throws WeftError(CERT_INVALID) saying which
   * certificate failed and why.
   */
  verifyChain(chain: readonly string[] | readonly X509Certificate[], now: number = Date.now()): VerifiedChain {
    const certs = chain.map((c, i) => (typeof c === 'string' ? parseCertificate(c, `chain certificate #${i + 1}`) : c));
    const leaf = certs[0];
    if (!leaf) throw new WeftError(ErrorCode.CERT_INVALID, 'certificate chain is empty');
    if (this.roots.length === 0) throw new WeftError(ErrorCode.CERT_INVALID, 'trust bundle is empty');
    const path: X509Certificate[] = [leaf];
    let current = leaf;
    checkValidity(current, now);
    for (let depth = 0; depth < MAX_DEPTH; depth++) {
      const root = this.roots.find((r) => issuedBy(current, r));
      if (root) {
        checkValidity(root, now);
        return { leaf, identity: spiffeIdOf(leaf), root };
      }
      const next = certs.find((c) => !path.includes(c) && c.ca && issuedBy(current, c));
      if (!next) {
        const hint = 'the peer may belong to another mesh, or the trust bundle lacks a newly rotated root';
        if (issuedBy(current, current)) {
          throw new WeftError(
            ErrorCode.CERT_INVALID,
            `${describe(leaf)} chains to root "${oneLine(current.subject)}", which is not in the trust bundle ` +
              `(${this.roots.length} root(s))`,
            { hint },
          );
        }
        throw new WeftError(
          ErrorCode.CERT_INVALID,
          `${describe(current)} was not issued by any of the ${this.roots.length} root(s) in the trust bundle ` +
            `(its issuer is "${oneLine(current.issuer)}")`,
          { hint },
        );
      }
      checkValidity(next, now);
      path.push(next);
      current = next;
    }
    throw new WeftError(ErrorCode.CERT_INVALID, `certificate chain is longer than ${MAX_DEPTH}`);
  }
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

function checkValidity(cert: X509Certificate, now: number): void {
  const from = certTime(cert.validFrom);
  const to = certTime(cert.validTo);
  if (now < from) throw new WeftError(ErrorCode.CERT_INVALID, `${describe(cert)} is not valid before ${cert.validFrom}`);
  if (now > to) throw new WeftError(ErrorCode.CERT_INVALID, `${describe(cert)} expired at ${cert.validTo}`);
}

function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

/** How a certificate is named in messages: its SPIFFE ID, else its subject. */
export function describe(cert: X509Certificate): string {
  const id = spiffeIdOf(cert);
  if (id) return `certificate ${id}`;
  const subject = oneLine(cert.subject);
  return subject ? `certificate "${subject}"` : `certificate with serial ${cert.serialNumber}`;
}

/**
 * Entries of Node's subjectAltName text ("URI:spiffe://..., DNS:a.b"). Node JSON-quotes values
 * containing separators, so a quoted value is decoded rather than split.
 */
export function parseSubjectAltName(text: string | undefined): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  if (!text) return out;
  const entry = /([A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let m = entry.exec(text); m && m[0] !== ''; m = entry.exec(text)) {
    const raw = m[2] ?? '';
    out.push({ type: m[1] ?? '', value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw });
  }
  return out;
}

/** All URI SANs of a certificate (or of Node's subjectAltName text). */
export function uriSans(cert: X509Certificate | { subjectaltname?: string }): string[] {
  const text = 'subjectAltName' in cert ? cert.subjectAltName : cert.subjectaltname;
  return parseSubjectAltName(text)
    .filter((e) => e.type === 'URI')
    .map((e) => e.value);
}

/**
 * The SPIFFE ID of a certificate: its one spiffe:// URI SAN. Undefined when it has none or
 * several (an X.509-SVID carries exactly one).
 */
export function spiffeIdOf(cert: X509Certificate | { subjectaltname?: string }): string | undefined {
  const ids = uriSans(cert).filter((u) => u.startsWith('spiffe://'));
  return ids.length === 1 ? ids[0] : undefined;
}
