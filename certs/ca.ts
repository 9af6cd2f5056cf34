// The certificate authority: holds the signing certificate and key (self-signed root made on
// first start, or a plugged-in intermediate), issues workload certificates for SPIFFE IDs, and
// owns the trust bundle, which may hold several roots so that a root can be rotated.
import crypto, { type KeyObject, type X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { ErrorCode, WeftError } from '../core/errors.js';
import { createLogger, type Logger } from '../core/log.js';
import { Watch, type Unsubscribe } from '../core/watch.js';
import { certificateParts, signatureAlgorithmFor } from './asn1.js';
import { TrustBundle } from './bundle.js';
import {
  keyTooOpen,
  readPlugged,
  readSelfSigned,
  selfSignedDir,
  writeSelfSigned,
  type SigningMaterial,
  type StoredCa,
} from './ca-store.js';
import { prepareLeafIssuer, signLeaf, type LeafIssuer } from './leaf.js';
import { certTime, parseCertificate, splitPemCertificates } from './pem.js';
import { generateRsaKeyPair } from './keys.js';
import { createSelfSignedRoot } from './root.js';
import { parseSpiffeId, spiffeId, trustDomainProblem } from './spiffe.js';

export const DEFAULT_TTL_SECONDS = 24 * 3600;
/** Istio's default MAX_WORKLOAD_CERT_TTL. */
export const DEFAULT_MAX_TTL_SECONDS = 90 * 24 * 3600;
// Leaves start a minute in the past so that a peer whose clock is slightly behind the CA's
// does not reject a certificate that was issued "in its future".
export const BACKDATE_SECONDS = 60;

export interface CertificateAuthorityOptions {
  readonly trustDomain: string;
  /** Weft's own CA lives in <stateDir>/ca: created on first start, reloaded afterwards. */
  readonly stateDir?: string;
  /** A plugged-in CA in Istio's cacerts layout; wins over stateDir. */
  readonly pluggedDir?: string;
  /** Create a root when stateDir holds none (default true); false makes a missing CA an error. */
  readonly create?: boolean;
  readonly defaultTtlSeconds?: number;
  /** Requests above this are clamped to it. */
  readonly maxTtlSeconds?: number;
  /** Clock for issuing (epoch ms); tests use it to make certificates already expired. */
  readonly now?: () => number;
  readonly log?: Logger;
}

export interface IssueRequest {
  /**
   * The key to certify: a public KeyObject, SPKI PEM, or a ParsedCsr (whose SubjectPublicKeyInfo
   * was validated by parseCsr and is copied as-is, sparing a costly re-encoding per certificate).
   */
  readonly publicKey: KeyObject | string | { readonly subjectPublicKeyInfo: Buffer };
  /** The SPIFFE ID to certify: the caller's *proven* identity, never one a CSR merely asks for. */
  readonly identity: string;
  /** Requested lifetime; missing or <= 0 means the default; above the maximum is clamped. */
  readonly ttlSeconds?: number;
  /** DNS / IP SANs for the control plane's own serving certificates; never taken from a CSR. */
  readonly dnsNames?: readonly string[];
  readonly ipAddresses?: readonly string[];
}

/** What CertificateAuthority.reload() found. */
export interface CaReload {
  /** The trust bundle changed (and is in use now). */
  readonly rootsChanged: boolean;
  /** A new signer was put to use at once (the old one's root had been removed). */
  readonly activated: boolean;
  /** A new signer, waiting for activate() until its root has reached the peers. */
  readonly pending?: { readonly rootFingerprint: string; activate(): void };
}

/** A certificate together with its private key, for a server the control plane runs itself. */
export interface ServingCertificate {
  /** PKCS#8 PEM. Secret. */
  readonly keyPem: string;
  /** Leaf first, root last. */
  readonly chainPem: readonly string[];
  readonly identity: string;
  /** Epoch ms. */
  readonly notAfter: number;
}

/** The control plane's own SPIFFE ID, in its serving certificates (ports 15012, 15017). */
export const CONTROL_PLANE_IDENTITY = { namespace: 'weft-system', serviceAccount: 'weft-control-plane' } as const;
const SERVING_TTL_SECONDS = 365 * 24 * 3600;

type Source = 'self-signed' | 'plugged' | 'memory';

interface Signer {
  readonly material: SigningMaterial;
  readonly cert: X509Certificate;
  readonly issuer: LeafIssuer;
  /** A leaf never outlives any certificate above it. */
  readonly notAfter: number;
  /** The signing certificate up to its root, appended to every leaf. */
  readonly chainTail: readonly string[];
}

export class CertificateAuthority {
  private signer!: Signer;
  private readonly bundleWatch = new Watch<TrustBundle>(TrustBundle.fromPem([]));
  private readonly now: () => number;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;

  private constructor(
    readonly trustDomain: string,
    readonly source: Source,
    private readonly opts: CertificateAuthorityOptions,
    private readonly log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    this.defaultTtlSeconds = opts.defaultTtlSeconds ?? DEFAULT_TTL_SECONDS;
    this.maxTtlSeconds = opts.maxTtlSeconds ?? DEFAULT_MAX_TTL_SECONDS;
    if (!(this.maxTtlSeconds > 0) || !(this.defaultTtlSeconds > 0)) {
      throw new WeftError(ErrorCode.CONFIG_INVALID, 'CA TTLs must be positive numbers of seconds');
    }
  }

  /**
   * Opens the CA for a process: the plugged-in one if `pluggedDir` is set, else the one in
   * `stateDir` (created on first start), else an in-memory root (tests, benchmarks).
   * Called once by the control plane's composition root and by `weft ca`.
   */
  static async loadOrCreate(opts: CertificateAuthorityOptions): Promise<CertificateAuthority> {
    const problem = trustDomainProblem(opts.trustDomain);
    if (problem) throw new WeftError(ErrorCode.CONFIG_INVALID, `invalid trust domain: ${problem}`);
    const log = opts.log ?? createLogger('ca');
    const source: Source = opts.pluggedDir ? 'plugged' : opts.stateDir ? 'self-signed' : 'memory';
    const ca = new CertificateAuthority(opts.trustDomain, source, opts, log);
    let stored: StoredCa | undefined;
    if (opts.pluggedDir) {
      stored = await readPlugged(opts.pluggedDir);
      log.info('using plugged-in CA', { dir: opts.pluggedDir });
    } else if (opts.stateDir) {
      stored = await readSelfSigned(opts.stateDir);
      if (stored && (await keyTooOpen(opts.stateDir))) {
        log.warn('CA key file is readable by other users; it should be mode 0600', { dir: selfSignedDir(opts.stateDir) });
      }
      if (!stored && opts.create === false) {
        throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `no CA in ${selfSignedDir(opts.stateDir)}`, {
          hint: 'run `weft ca init` or start the control plane once to create it',
        });
      }
    }
    if (!stored) {
      const root = await createSelfSignedRoot({ trustDomain: opts.trustDomain, now: ca.now() });
      stored = { signer: { ...root, chainPem: [root.certPem] }, roots: [root.certPem] };
      if (opts.stateDir) {
        await writeSelfSigned(opts.stateDir, stored);
        log.info('created a new root CA', { dir: selfSignedDir(opts.stateDir) });
      }
    }
    ca.bundleWatch.set(TrustBundle.fromPem(stored.roots));
    ca.install(stored.signer);
    return ca;
  }

  /**
   * Issues a workload certificate. Returns the chain as PEM, leaf first, root last. The leaf has
   * an empty subject, exactly one URI SAN (the SPIFFE ID), is not a CA, and may be used for
   * both TLS server and client authentication. Throws WeftError(USAGE) for an identity outside
   * this trust domain and CERT_INVALID when the CA itself is expired.
   */
  async issue(req: IssueRequest): Promise<string[]> {
    const id = parseSpiffeId(req.identity);
    if (id.trustDomain !== this.trustDomain) {
      throw new WeftError(ErrorCode.USAGE, `identity ${req.identity} is outside this CA's trust domain ${this.trustDomain}`);
    }
    if (this.now() >= this.signer.notAfter) {
      throw new WeftError(ErrorCode.CERT_INVALID, `the CA certificate chain expired at ${new Date(this.signer.notAfter).toISOString()}`, {
        hint: 'plug in or rotate to a new CA',
      });
    }
    return this.sign(req, this.clampTtl(req.ttlSeconds));
  }

  private async sign(req: IssueRequest, ttl: number): Promise<string[]> {
    const signer = this.signer;
    const now = this.now();
    const leaf = await signLeaf(signer.issuer, {
      subjectPublicKeyInfo: spkiOf(req.publicKey),
      uri: req.identity,
      ...(req.dnsNames ? { dnsNames: req.dnsNames } : {}),
      ...(req.ipAddresses ? { ipAddresses: req.ipAddresses } : {}),
      notBefore: new Date(now - BACKDATE_SECONDS * 1000),
      notAfter: new Date(Math.min(now + ttl * 1000, signer.notAfter)),
    });
    return [leaf, ...signer.chainTail];
  }

  /**
   * A key and certificate for one of the control plane's own servers (TLS xDS, webhook): the
   * control plane's SPIFFE ID plus `names` as DNS or IP SANs. Lives a year (capped by the CA),
   * regardless of the workload maximum; the caller reissues before `notAfter`.
   */
  async servingCertificate(names: readonly string[], opts: { ttlSeconds?: number } = {}): Promise<ServingCertificate> {
    const identity = spiffeId(this.trustDomain, CONTROL_PLANE_IDENTITY.namespace, CONTROL_PLANE_IDENTITY.serviceAccount);
    const unique = [...new Set(names.filter((n) => n.length > 0))];
    const keys = await generateRsaKeyPair();
    const chainPem = await this.sign(
      {
        publicKey: keys.publicKey,
        identity,
        dnsNames: unique.filter((n) => isIP(n) === 0),
        ipAddresses: unique.filter((n) => isIP(n) !== 0),
      },
      opts.ttlSeconds ?? SERVING_TTL_SECONDS,
    );
    const leaf = parseCertificate(chainPem[0] ?? '', 'serving certificate');
    return { keyPem: keys.privateKeyPem, chainPem, identity, notAfter: certTime(leaf.validTo) };
  }

  /** The lifetime a request for `requested` seconds gets. */
  clampTtl(requested: number | undefined): number {
    const wanted = requested === undefined || !Number.isFinite(requested) || requested <= 0 ? this.defaultTtlSeconds : Math.floor(requested);
    return Math.min(wanted, this.maxTtlSeconds);
  }

  /** The trusted roots as PEM, one certificate per element. */
  roots(): string[] {
    return this.bundleWatch.get().pems();
  }

  /** The same roots: what the control plane sends proxies as the SDS secret ROOTCA. */
  trustBundle(): string[] {
    return this.roots();
  }

  /** The roots as a verifier (TrustBundle.verifyChain). */
  bundle(): TrustBundle {
    return this.bundleWatch.get();
  }

  /** Called with the new roots whenever the bundle changes (rotation). */
  subscribeRoots(listener: (roots: string[]) => void): Unsubscribe {
    return this.bundleWatch.subscribe((b) => listener(b.pems()));
  }

  /** The certificate that signs leaves now. */
  signingCertificate(): X509Certificate {
    return this.signer.cert;
  }

  /**
   * Trusts another root (step 1 of a rotation: distribute it before anything is signed under
   * it). Must be a CA certificate. Persisted for Weft's own CA.
   */
  async addRoot(pem: string): Promise<void> {
    const certs = splitPemCertificates(pem);
    if (certs.length === 0) throw new WeftError(ErrorCode.CERT_INVALID, 'addRoot: no PEM certificate given');
    for (const [i, c] of certs.entries()) {
      if (!parseCertificate(c, `root #${i + 1}`).ca) {
        throw new WeftError(ErrorCode.CERT_INVALID, `root #${i + 1} is not a CA certificate (basicConstraints CA:TRUE missing)`);
      }
    }
    await this.setRoots([...this.roots(), ...certs]);
  }

  /**
   * Stops trusting a root (last step of a rotation, once every workload has renewed). Accepts
   * the PEM, its SHA-256 fingerprint, or an unambiguous prefix of it (8+ hex digits). Refuses the
   * root the current signer chains to.
   */
  async removeRoot(pemOrFingerprint: string): Promise<void> {
    const norm = (fp: string) => fp.replace(/:/g, '').toUpperCase();
    const print = norm(
      pemOrFingerprint.includes('BEGIN CERTIFICATE')
        ? parseCertificate(pemOrFingerprint, 'root to remove').fingerprint256
        : pemOrFingerprint,
    );
    const current = this.bundleWatch.get();
    // A full fingerprint, or an unambiguous prefix of at least 8 hex digits (as people copy them).
    const candidates = current.roots.filter((r) => (print.length >= 8 ? norm(r.fingerprint256).startsWith(print) : false));
    if (candidates.length > 1) throw new WeftError(ErrorCode.USAGE, `fingerprint ${pemOrFingerprint} matches ${candidates.length} roots; give more of it`);
    const target = candidates[0];
    const isIt = (r: X509Certificate) => target !== undefined && r.fingerprint256 === target.fingerprint256;
    if (!target) {
      throw new WeftError(ErrorCode.USAGE, `root ${pemOrFingerprint.slice(0, 80)} is not in the trust bundle`, {
        hint: '`weft ca show` lists the roots with their fingerprints',
      });
    }
    if (isIt(current.verifyChain(this.signer.material.chainPem, this.now()).root)) {
      throw new WeftError(ErrorCode.USAGE, 'that root is the one the CA signs under; rotate to another root first');
    }
    await this.setRoots(current.roots.filter((r) => !isIt(r)).map((r) => r.toString()));
  }

  /**
   * Rotates Weft's own root: creates a new root, adds it to the bundle, and signs under it from
   * now on. The old root stays trusted until removeRoot(old). Returns the new root's PEM.
   */
  async rotateRoot(): Promise<string> {
    if (this.source === 'plugged') {
      throw new WeftError(ErrorCode.USAGE, 'a plugged-in CA is rotated by replacing its files, not by Weft');
    }
    const root = await createSelfSignedRoot({ trustDomain: this.trustDomain, now: this.now() });
    await this.useSigner({ ...root, chainPem: [root.certPem] }, [...this.roots(), root.certPem]);
    this.log.info('rotated to a new root CA', { fingerprint: parseCertificate(root.certPem, 'new root').fingerprint256 });
    return root.certPem;
  }

  /**
   * Signs under `material` from now on (its chain must verify against the bundle, extended by
   * `roots` if given). For switching to a new plugged-in intermediate or root.
   */
  async useSigner(material: SigningMaterial, roots?: readonly string[]): Promise<void> {
    const previous = { signer: this.signer, bundle: this.bundleWatch.get() };
    const bundle = roots ? TrustBundle.fromPem(roots) : previous.bundle;
    const signer = this.prepare(material, bundle);
    this.signer = signer;
    try {
      if (roots) await this.setRoots(roots);
      else await this.persist();
    } catch (err) {
      this.signer = previous.signer;
      throw err;
    }
  }

  /**
   * Reads the CA files again, after another process (`weft ca rotate-root`, `remove-root`, or an
   * operator replacing a plugged-in CA's files) changed them. Checks everything before changing
   * anything: files caught half-written throw CERT_INVALID and leave the CA as it was (call again
   * on the next change). New roots are trusted at once. A new signer is not used yet: it is
   * returned as `pending`, to be activated once the new roots have reached every peer, so that no
   * certificate is issued under a root a peer cannot verify yet. When the signer in use no
   * longer chains to the new bundle (its root was removed), the new one is activated at once.
   */
  async reload(): Promise<CaReload> {
    if (this.source === 'memory') return { rootsChanged: false, activated: false };
    const stored = this.source === 'plugged' ? await readPlugged(this.opts.pluggedDir as string) : await readSelfSigned(this.opts.stateDir as string);
    if (!stored) throw new WeftError(ErrorCode.CONFIG_UNREADABLE, 'the CA files are gone; keeping the CA in memory');
    const bundle = TrustBundle.fromPem(stored.roots);
    const current = this.bundleWatch.get();
    const rootsChanged = bundle.pems().join('') !== current.pems().join('');
    const signerChanged = parseCertificate(stored.signer.certPem, 'ca-cert.pem').fingerprint256 !== this.signer.cert.fingerprint256;
    const next = signerChanged ? this.prepare(stored.signer, bundle) : undefined;
    const signerAtReload = this.signer;
    let currentStillValid = true;
    try {
      bundle.verifyChain(this.signer.material.chainPem, this.now());
    } catch {
      currentStillValid = false;
    }
    if (!next && !currentStillValid) {
      throw new WeftError(ErrorCode.CERT_INVALID, 'the trust bundle on disk no longer holds the root the CA signs under, and the signer did not change');
    }
    if (rootsChanged) this.bundleWatch.set(bundle);
    if (!next) return { rootsChanged, activated: false };
    const rootOf = (s: Signer) => bundle.verifyChain(s.material.chainPem, this.now()).root.fingerprint256;
    const activate = () => {
      this.signer = next;
      this.log.info('the CA now signs under a new certificate', { subject: next.cert.subject.replace(/\n/g, ', '), root: rootOf(next) });
    };
    if (!currentStillValid) {
      activate();
      return { rootsChanged, activated: true };
    }
    let done = false;
    return {
      rootsChanged,
      activated: false,
      pending: {
        rootFingerprint: rootOf(next),
        activate: () => {
          // A later reload may have superseded this one; never go back to an older signer.
          if (done || this.signer !== signerAtReload) return;
          done = true;
          activate();
        },
      },
    };
  }

  private install(material: SigningMaterial): void {
    this.signer = this.prepare(material, this.bundleWatch.get());
  }

  /** Checks signing material and precomputes what issuing needs. Throws CERT_INVALID. */
  private prepare(material: SigningMaterial, bundle: TrustBundle): Signer {
    const cert = parseCertificate(material.certPem, 'the CA certificate (ca-cert.pem)');
    let key: KeyObject;
    try {
      key = crypto.createPrivateKey(material.keyPem);
    } catch (err) {
      throw new WeftError(ErrorCode.CERT_INVALID, 'the CA key (ca-key.pem) is not a readable private key', { cause: err });
    }
    if (!cert.checkPrivateKey(key)) {
      throw new WeftError(ErrorCode.CERT_INVALID, 'the CA key (ca-key.pem) does not belong to the CA certificate (ca-cert.pem)');
    }
    if (!cert.ca) {
      throw new WeftError(ErrorCode.CERT_INVALID, `the CA certificate "${cert.subject}" is not a CA (basicConstraints CA:TRUE missing)`);
    }
    const chain = material.chainPem.map((p, i) => parseCertificate(p, `CA chain certificate #${i + 1}`));
    try {
      bundle.verifyChain(chain, this.now());
    } catch (err) {
      throw new WeftError(ErrorCode.CERT_INVALID, `the CA certificate does not chain to the trust bundle: ${(err as Error).message}`, {
        cause: err,
        hint: 'check that root-cert.pem holds the root that cert-chain.pem ends at',
      });
    }
    const parts = certificateParts(cert.raw);
    return {
      material,
      cert,
      issuer: prepareLeafIssuer({
        key,
        algorithm: signatureAlgorithmFor(key),
        issuerName: parts.subject,
        issuerKeyId: parts.subjectKeyId,
      }),
      notAfter: Math.min(...chain.map((c) => certTime(c.validTo))),
      chainTail: material.chainPem,
    };
  }

  private async setRoots(roots: readonly string[]): Promise<void> {
    const next = TrustBundle.fromPem(roots);
    const previous = this.bundleWatch.get();
    this.bundleWatch.set(next);
    try {
      await this.persist();
    } catch (err) {
      this.bundleWatch.set(previous);
      throw err;
    }
  }

  private async persist(): Promise<void> {
    if (this.source !== 'self-signed' || !this.opts.stateDir) return;
    await writeSelfSigned(this.opts.stateDir, { signer: this.signer.material, roots: this.roots() });
  }
}

function spkiOf(key: IssueRequest['publicKey']): Buffer {
  if (typeof key === 'string') return crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
  if ('subjectPublicKeyInfo' in key) return key.subjectPublicKeyInfo;
  return key.export({ type: 'spki', format: 'der' });
}
