// Certificates that change while gRPC is using them: a grpc-js CertificateProvider fed by hand.
// The control plane's TLS port (15012) gets its serving certificate from one, renewed and
// re-issued after a root rotation without rebinding; a proxy verifies the control plane with
// one whose roots grow as the trust bundle does. grpc-js reads the newest value for each new
// connection (server: setSecureContext; channel: a secure context per connection).
import type { experimental } from '@grpc/grpc-js';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export class CertificateFeed implements experimental.CertificateProvider {
  private ca: { caCertificate: Buffer } | undefined;
  private identity: { certificate: Buffer; privateKey: Buffer } | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  /** The roots to verify peers with (PEM, one or more certificates). */
  setCa(pem: string): void {
    this.ca = { caCertificate: Buffer.from(pem) };
    for (const l of this.caListeners) l(this.ca);
  }

  /** This side's certificate chain (PEM) and key. */
  setIdentity(chainPem: string, keyPem: string): void {
    this.identity = { certificate: Buffer.from(chainPem), privateKey: Buffer.from(keyPem) };
    for (const l of this.identityListeners) l(this.identity);
  }

  // A listener hears the current value on a later turn, never from inside add*: grpc-js's
  // server registers its own watcher only after adding ours, so a synchronous first value
  // would be lost to it.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => {
      if (this.ca && this.caListeners.has(listener)) listener(this.ca);
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.identity && this.identityListeners.has(listener)) listener(this.identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
