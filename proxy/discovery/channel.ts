// How a proxy (sidecar, waypoint or node proxy) reaches its control plane: one gRPC channel
// setup for xDS and the CA, and the roots the control plane sends as ROOTCA.
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { CertificateFeed } from '../../core/certificate-feed.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';

/** A DNS name in the control plane's serving certificate (see control-plane/main.ts). */
const CONTROL_PLANE_TLS_NAME = 'weft-control-plane';
/** How often the root file is looked at (a Kubernetes ConfigMap volume changes in place). */
const ROOT_FILE_POLL_MS = 5_000;

export interface ControlPlaneChannel {
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
  /**
   * Also trusts the mesh's roots (SDS ROOTCA, which came over the verified channel) for the
   * control plane: after a root rotation the control plane's certificate chains to the new root,
   * and a proxy whose root file has not caught up must still reconnect. No-op without TLS.
   */
  trust(roots: readonly string[]): void;
  close(): void;
}

/**
 * TLS when `rootCertFile` is given (port 15012), else plaintext (15010). TLS to an IP address
 * (local mode) verifies the name the control plane's certificate carries: SNI may not be an
 * IP address (RFC 6066). Each new connection verifies against the file's roots as they are
 * now, plus the mesh's roots given to `trust`.
 */
export function controlPlaneChannel(xds: string, rootCertFile: string | undefined): ControlPlaneChannel {
  const host = xds.slice(0, xds.lastIndexOf(':'));
  if (!rootCertFile) return { credentials: grpc.credentials.createInsecure(), channelOptions: {}, trust: () => {}, close: () => {} };
  const readRoots = () => {
    const roots = splitPem(readFileSync(rootCertFile, 'utf8'));
    if (roots.length === 0) throw new WeftError(ErrorCode.CERT_INVALID, `--xds-root-cert ${rootCertFile}: no PEM certificate in it`);
    return roots;
  };
  let fileRoots: string[];
  try {
    fileRoots = readRoots();
  } catch (err) {
    throw new WeftError(ErrorCode.CERT_INVALID, `--xds-root-cert ${rootCertFile}: ${errorMessage(err)}`);
  }
  let meshRoots: readonly string[] = [];
  const feed = new CertificateFeed();
  const update = () => feed.setCa([...new Set([...fileRoots, ...meshRoots].map((r) => r.trim()))].join('\n'));
  update();
  // A file caught half-written, or gone for a moment, keeps the roots read before.
  const reread = () => {
    try {
      fileRoots = readRoots();
      update();
    } catch {
      /* next change */
    }
  };
  watchFile(rootCertFile, { interval: ROOT_FILE_POLL_MS, persistent: false }, reread);
  return {
    credentials: grpc.experimental.createCertificateProviderChannelCredentials(feed, null),
    channelOptions: isIP(host) ? { 'grpc.ssl_target_name_override': CONTROL_PLANE_TLS_NAME, 'grpc.default_authority': CONTROL_PLANE_TLS_NAME } : {},
    trust: (roots) => {
      meshRoots = [...roots];
      update();
    },
    close: () => unwatchFile(rootCertFile, reread),
  };
}

/** The PEM certificates of a bundle (SDS ROOTCA's trusted_ca), one string each. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
