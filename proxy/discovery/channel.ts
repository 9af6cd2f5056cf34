// How a proxy (sidecar, waypoint or node proxy) reaches its control plane: one gRPC channel
// setup for xDS and the CA, and the roots the control plane sends as ROOTCA.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';

/** A DNS name in the control plane's serving certificate (see control-plane/main.ts). */
const CONTROL_PLANE_TLS_NAME = 'weft-control-plane';

export interface ControlPlaneChannel {
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions: grpc.ChannelOptions;
}

/**
 * TLS when `rootCertFile` is given (port 15012), else plaintext (15010). TLS to an IP address
 * (local mode) verifies the name the control plane's certificate carries: SNI may not be an
 * IP address (RFC 6066).
 */
export function controlPlaneChannel(xds: string, rootCertFile: string | undefined): ControlPlaneChannel {
  const credentials = rootCertFile ? grpc.credentials.createSsl(readFileSync(rootCertFile)) : grpc.credentials.createInsecure();
  const host = xds.slice(0, xds.lastIndexOf(':'));
  const channelOptions: grpc.ChannelOptions =
    rootCertFile && isIP(host) ? { 'grpc.ssl_target_name_override': CONTROL_PLANE_TLS_NAME, 'grpc.default_authority': CONTROL_PLANE_TLS_NAME } : {};
  return { credentials, channelOptions };
}

/** The PEM certificates of a bundle (SDS ROOTCA's trusted_ca), one string each. */
export function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
