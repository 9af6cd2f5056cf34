// The proxy's workload identity: generates its own key (which never leaves this process and is
// never logged), asks the CA to certify it, holds the current certificate in a Watch, and renews
// at half its lifetime (with jitter), retrying with backoff. The trust bundle comes from outside
// (SDS ROOTCA); until it does, the root at the end of the CA's answer is used.
import { X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as grpc from '@grpc/grpc-js';
import { TrustBundle, spiffeIdOf } from '../../certs/bundle.js';
import { buildCsr } from '../../certs/csr-build.js';
import { generateWorkloadKeyPair, type KeyKind } from '../../certs/keys.js';
import { certTime } from '../../certs/pem.js';
import { renewalTime, scheduleAt, type RenewalPolicy, type Scheduled } from '../../certs/renewal.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';
import { createLogger, type Logger } from '../../core/log.js';
import { Watch, type Unsubscribe } from '../../core/watch.js';
import { CaClient } from './ca-client.js';

export interface WorkloadCertificate {
  /** PKCS#8 PEM. Secret: only for building TLS contexts in this process. */
  readonly keyPem: string;
  /** Leaf first, root last, as the CA returned it. */
  readonly chainPem: readonly string[];
  /** The SPIFFE ID the certificate proves. */
  readonly identity: string;
  /** Epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
}

export interface IdentityManagerOptions {
  /** host:port of the CA: the control plane's xDS address. */
  readonly caAddress: string;
  /** Plaintext unless given (use TLS credentials with the mesh root for port 15012). */
  readonly credentials?: grpc.ChannelCredentials;
  /** Shortcut for TLS credentials trusting this PEM root (port 15012); ignored if `credentials` is set. */
  readonly caRootPem?: string;
  readonly channelOptions?: grpc.ChannelOptions;
  /** The bootstrap token, read again for every request (so a rotated token file is picked up). */
  readonly token?: () => string | Promise<string>;
  /** Alternative to `token`: a file holding it. */
  readonly tokenFile?: string;
  /** The SPIFFE ID we expect, if known: put in the CSR and required of the answer. */
  readonly expectedIdentity?: string;
  /** Requested lifetime; the CA's default (24 h) when omitted. */
  readonly ttlSeconds?: number;
  /** ECDSA P-256 by default. */
  readonly keyKind?: KeyKind;
  readonly requestTimeoutMs?: number;
  /** Retry delays after a failed request; 1 s doubling to 30 s by default. */
  readonly backoff?: BackoffOptions;
  readonly renewal?: RenewalPolicy;
  /** Struct metadata sent with each request. */
  readonly metadata?: Record<string, unknown>;
  /** A CA client to share (a node proxy holds one identity per pod over one channel); default:
   *  one of its own from caAddress/credentials. */
  readonly caClient?: CaClient;
  readonly now?: () => number;
  readonly log?: Logger;
}

export class IdentityManager {
  /** The current certificate; undefined until the first one arrives. */
  readonly certificate = new Watch<WorkloadCertificate | undefined>(undefined);
  private readonly bundle = new Watch<readonly string[]>([]);
  private bundleFromOutside = false;
  private readonly client: CaClient;
  private readonly log: Logger;
  private readonly now: () => number;
  private task: Scheduled | undefined;
  private expiry: Scheduled | undefined;
  private started = false;
  private stopped = false;
  private error: string | undefined;
  private readonly first: Promise<WorkloadCertificate>;
  private settleFirst!: { resolve: (c: WorkloadCertificate) => void; reject: (e: Error) => void };

  constructor(private readonly opts: IdentityManagerOptions) {
    if (!opts.token && !opts.tokenFile) throw new WeftError(ErrorCode.USAGE, 'IdentityManager needs a token or a token file');
    this.log = opts.log ?? createLogger('identity');
    this.now = opts.now ?? Date.now;
    this.client = opts.caClient ?? new CaClient({
      address: opts.caAddress,
      ...(opts.credentials || opts.caRootPem
        ? { credentials: opts.credentials ?? grpc.credentials.createSsl(Buffer.from(opts.caRootPem as string)) }
        : {}),
      ...(opts.channelOptions ? { channelOptions: opts.channelOptions } : {}),
      ...(opts.requestTimeoutMs ? { timeoutMs: opts.requestTimeoutMs } : {}),
    });
    this.first = new Promise((resolve, reject) => (this.settleFirst = { resolve, reject }));
    this.first.catch(() => undefined); // stop() before the first certificate must not be an unhandled rejection
  }

  /** Starts fetching the first certificate (at once) and renewing it. Idempotent. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.schedule(this.now());
  }

  /** Resolves with the first certificate; rejects only if stopped before one arrived. */
  ready(): Promise<WorkloadCertificate> {
    return this.first;
  }

  current(): WorkloadCertificate | undefined {
    return this.certificate.get();
  }

  /** PEM roots to verify peers with. */
  trustBundle(): readonly string[] {
    return this.bundle.get();
  }

  /** Sets the trust bundle (from SDS ROOTCA); from then on CA answers no longer change it. */
  setTrustBundle(pemRoots: readonly string[]): void {
    this.bundleFromOutside = true;
    const roots = TrustBundle.fromPem(pemRoots).pems();
    if (sameList(roots, this.bundle.get())) return;
    this.bundle.set(roots);
  }

  /** Called after every change of the certificate or of the trust bundle. */
  subscribe(listener: () => void): Unsubscribe {
    const a = this.certificate.subscribe(() => listener());
    const b = this.bundle.subscribe(() => listener());
    return () => {
      a();
      b();
    };
  }

  /** Why the last request failed, while it has not since succeeded (for /ready and logs). */
  lastError(): string | undefined {
    return this.error;
  }

  /** Stops renewing and closes the CA channel (unless it was shared with us). The current
   *  certificate stays usable. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.task?.cancel();
    this.expiry?.cancel();
    if (!this.opts.caClient) this.client.close();
    this.settleFirst.reject(new WeftError(ErrorCode.INTERNAL, 'identity manager stopped before a certificate arrived'));
  }

  private schedule(at: number): void {
    this.task = scheduleAt(at, () => this.renew(), {
      ...(this.opts.backoff ? { backoff: this.opts.backoff } : {}),
      now: this.now,
      onError: (err, retryIn) => {
        this.error = errorMessage(err);
        this.log.warn('could not get a workload certificate; retrying', { error: this.error, retryInMs: retryIn });
      },
    });
  }

  /** One attempt: new key, CSR, CA call, checks; then the next renewal is scheduled. */
  private async renew(): Promise<void> {
    const keys = await generateWorkloadKeyPair(this.opts.keyKind);
    const csr = buildCsr({ privateKey: keys.privateKey, ...(this.opts.expectedIdentity ? { identity: this.opts.expectedIdentity } : {}) });
    const chain = await this.client.createCertificate({
      csr,
      token: await this.readToken(),
      ...(this.opts.ttlSeconds ? { ttlSeconds: this.opts.ttlSeconds } : {}),
      ...(this.opts.metadata ? { metadata: this.opts.metadata } : {}),
    });
    const received = this.now();
    const cert: WorkloadCertificate = { ...this.check(chain, keys.publicKey, received), keyPem: keys.privateKeyPem };
    if (this.stopped) return;
    this.error = undefined;
    const caRoot = [chain[chain.length - 1] as string];
    if (!this.bundleFromOutside && !sameList(caRoot, this.bundle.get())) this.bundle.set(caRoot);
    this.certificate.set(cert);
    this.settleFirst.resolve(cert);
    this.expireAt(cert);
    const renewAt = renewalTime({ from: received, to: cert.notAfter }, this.opts.renewal);
    this.log.info('obtained a workload certificate', {
      identity: cert.identity,
      notAfter: new Date(cert.notAfter).toISOString(),
      renewAt: new Date(renewAt).toISOString(),
    });
    this.schedule(renewAt);
  }

  /**
   * If renewal keeps failing until `cert` expires, drop it: presenting an expired certificate
   * only earns refusals from peers, while "no certificate" makes the proxy report not ready.
   */
  private expireAt(cert: WorkloadCertificate): void {
    this.expiry?.cancel();
    this.expiry = scheduleAt(cert.notAfter, async () => {
      if (this.certificate.get() !== cert || this.stopped) return;
      this.log.error('the workload certificate expired and could not be renewed', { identity: cert.identity, error: this.error });
      this.certificate.set(undefined);
    });
  }

  /** The CA's answer must certify our key, carry one SPIFFE ID, and verify to its own root. */
  private check(chain: readonly string[], publicKey: KeyObject, now: number): Omit<WorkloadCertificate, 'keyPem'> {
    const bad = (why: string) => new WeftError(ErrorCode.CERT_INVALID, `the CA at ${this.opts.caAddress} returned an unusable certificate: ${why}`);
    if (chain.length === 0) throw bad('an empty chain');
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(chain[0] as string);
    } catch {
      throw bad('the leaf does not parse');
    }
    if (!leaf.publicKey.equals(publicKey)) throw bad('it does not certify the key we sent');
    const identity = spiffeIdOf(leaf);
    if (!identity) throw bad('it carries no single SPIFFE ID');
    if (this.opts.expectedIdentity && identity !== this.opts.expectedIdentity) {
      throw bad(`it is for ${identity}, not the expected ${this.opts.expectedIdentity}`);
    }
    let root: X509Certificate;
    try {
      root = TrustBundle.fromPem(chain[chain.length - 1] as string).verifyChain(chain, now).root;
    } catch (err) {
      throw bad(errorMessage(err));
    }
    if (this.bundleFromOutside && !TrustBundle.fromPem(this.bundle.get()).has(root)) {
      this.log.warn('the CA signs under a root that is not in our trust bundle yet; peers may refuse us until it arrives', { identity });
    }
    return { chainPem: [...chain], identity, notBefore: certTime(leaf.validFrom), notAfter: certTime(leaf.validTo) };
  }

  private async readToken(): Promise<string> {
    const token = this.opts.token ? await this.opts.token() : (await readFile(this.opts.tokenFile as string, 'utf8')).trim();
    if (!token) throw new WeftError(ErrorCode.AUTH_FAILED, `the token${this.opts.tokenFile ? ` in ${this.opts.tokenFile}` : ''} is empty`);
    return token;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
