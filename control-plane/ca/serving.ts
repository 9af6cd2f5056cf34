// The control plane's own certificate for its TLS port (15012), kept valid for as long as the
// process runs: renewed at half its lifetime, and re-issued as soon as it stops verifying
// against the trust bundle — after `weft ca remove-root` took the root it was signed under,
// proxies that trust only the new root must still be able to connect. The port keeps its
// socket; grpc-js takes the new certificate for each new connection (core/certificate-feed.ts).
import * as grpc from '@grpc/grpc-js';
import type { CertificateAuthority, ServingCertificate } from '../../certs/ca.js';
import { CertificateFeed } from '../../core/certificate-feed.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

/** Timers are capped (setTimeout holds at most ~24.8 days); the check just runs again. */
const MAX_WAIT_MS = 12 * 3600 * 1000;
/** After a failed issue, try again this soon. */
const RETRY_MS = 5_000;

export interface ServingCredentials {
  /** For `grpc.Server.bindAsync`. */
  readonly credentials: grpc.ServerCredentials;
  /** The certificate new connections are shown. */
  current(): ServingCertificate;
  stop(): void;
}

export async function startServingCredentials(ca: CertificateAuthority, names: readonly string[], log: Logger, opts: { ttlSeconds?: number } = {}): Promise<ServingCredentials> {
  const feed = new CertificateFeed();
  let cert!: ServingCertificate;
  let issuedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let issuing: Promise<void> | undefined;

  const issue = async (why: string) => {
    const next = await ca.servingCertificate(names, opts);
    if (stopped) return;
    cert = next;
    issuedAt = Date.now();
    feed.setIdentity(next.chainPem.join(''), next.keyPem);
    log.info('serving certificate issued for the TLS port', { why, notAfter: new Date(next.notAfter).toISOString(), root: ca.bundle().verifyChain(next.chainPem).root.fingerprint256 });
  };

  /** Re-issues when the bundle no longer verifies the certificate, or half its life is gone. */
  const check = () => {
    if (stopped || issuing) return;
    let why: string | undefined;
    try {
      ca.bundle().verifyChain(cert.chainPem);
    } catch (err) {
      why = `the trust bundle no longer verifies it (${errorMessage(err)})`;
    }
    const half = issuedAt + (cert.notAfter - issuedAt) / 2;
    if (!why && Date.now() >= half) why = 'half of its lifetime is over';
    if (!why) return schedule(half - Date.now());
    issuing = issue(why)
      .then(() => schedule(issuedAt + (cert.notAfter - issuedAt) / 2 - Date.now()))
      .catch((err: unknown) => {
        log.error('could not re-issue the serving certificate; trying again', { error: errorMessage(err) });
        schedule(RETRY_MS);
      })
      .finally(() => (issuing = undefined));
  };

  const schedule = (ms: number) => {
    if (stopped) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, Math.max(0, Math.min(ms, MAX_WAIT_MS)));
    timer.unref();
  };

  await issue('start-up');
  // A root rotation reaches us as a bundle change. The signer that replaces a removed root is
  // switched to right after the bundle changes, in the same reload: look on a later turn.
  const unsubscribe = ca.subscribeRoots(() => setImmediate(check));
  schedule(issuedAt + (cert.notAfter - issuedAt) / 2 - Date.now());

  return {
    // grpc-js names the parameters the other way round; the first is the serving identity, and
    // no CA: clients authenticate with their token, not a certificate.
    credentials: grpc.experimental.createCertificateProviderServerCredentials(feed, null, false),
    current: () => cert,
    stop: () => {
      stopped = true;
      unsubscribe();
      if (timer) clearTimeout(timer);
    },
  };
}
