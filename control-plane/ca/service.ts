// The CA's gRPC face: istio.v1.auth.IstioCertificateService/CreateCertificate. Authenticates the
// caller's bearer token, checks the CSR, and issues a certificate for the identity the caller
// proved (never for one the CSR merely asks for). Errors become gRPC statuses in one place.
import * as grpc from '@grpc/grpc-js';
import { fromStruct } from '../../api/codec.js';
import type { IstioCertificateRequest, IstioCertificateResponse } from '../../api/services.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { parseCsr } from '../../certs/csr.js';
import { spiffeId } from '../../certs/spiffe.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Authenticator, CallerIdentity } from './authenticator.js';

export interface CaServiceOptions {
  readonly ca: Pick<CertificateAuthority, 'issue' | 'clampTtl'>;
  readonly authenticator: Authenticator;
  readonly trustDomain: string;
  readonly log: Logger;
  /** No certificate lives longer than this, whatever was asked (the CA also has its own maximum). */
  readonly maxTtlSeconds?: number;
  /** Called after each certificate is issued (metrics). */
  readonly onIssued?: (identity: string) => void;
}

/**
 * Handlers for `caService` (`server.addService(caService, handlers)`), plus `issuedCount()`:
 * certificates issued since start. grpc-js only looks up the service's method names.
 */
export type CaServiceHandlers = {
  CreateCertificate: grpc.handleUnaryCall<IstioCertificateRequest, IstioCertificateResponse>;
  issuedCount: () => number;
};

/** A refusal with the gRPC status it maps to; the message is for the caller. */
class Refusal extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export function createCaService(opts: CaServiceOptions): CaServiceHandlers {
  let issued = 0;

  const handle = async (call: grpc.ServerUnaryCall<IstioCertificateRequest, IstioCertificateResponse>): Promise<string[]> => {
    const peer = call.getPeer();
    const metadata = fromStruct(call.request.metadata);
    const caller = await authenticate(opts.authenticator, call.metadata, peer, metadata);
    const identity = provenIdentity(opts.trustDomain, caller);

    if (metadata.ImpersonatedIdentity !== undefined) {
      throw new Refusal(grpc.status.PERMISSION_DENIED, 'issuing for an ImpersonatedIdentity is not supported by this CA');
    }
    let csr;
    try {
      csr = parseCsr(call.request.csr ?? '');
    } catch (err) {
      throw new Refusal(grpc.status.INVALID_ARGUMENT, errorMessage(err));
    }
    const foreign = csr.uris.filter((u) => u !== identity);
    if (foreign.length > 0) {
      opts.log.warn('refused a CSR asking for another identity than the caller proved', {
        proven: identity,
        requested: foreign.join(','),
        workload: caller.workload,
        peer,
      });
      throw new Refusal(
        grpc.status.PERMISSION_DENIED,
        `the CSR asks for ${foreign.join(', ')} but the caller's credential proves ${identity}`,
      );
    }
    const ttlSeconds = Math.min(opts.ca.clampTtl(ttlOf(call.request.validity_duration)), opts.maxTtlSeconds ?? Infinity);
    const chain = await opts.ca.issue({ publicKey: csr, identity, ttlSeconds });
    issued++;
    opts.onIssued?.(identity);
    opts.log.debug('issued a workload certificate', { identity, workload: caller.workload, ttlSeconds });
    return chain;
  };

  return {
    CreateCertificate(call, callback) {
      handle(call).then(
        (chain) => callback(null, { cert_chain: chain }),
        (err: unknown) => callback(toStatus(err, opts.log)),
      );
    },
    issuedCount: () => issued,
  };
}

async function authenticate(
  authenticator: Authenticator,
  md: grpc.Metadata,
  peer: string,
  metadata: Record<string, unknown>,
): Promise<CallerIdentity> {
  const header = md.get('authorization')[0];
  const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  if (!match?.[1]) {
    throw new Refusal(grpc.status.UNAUTHENTICATED, 'missing "authorization: Bearer <token>" metadata');
  }
  try {
    return await authenticator.authenticate(match[1], { peer, metadata });
  } catch (err) {
    if (err instanceof WeftError && err.code === ErrorCode.AUTH_FAILED) {
      throw new Refusal(grpc.status.UNAUTHENTICATED, `authentication failed: ${err.message}`);
    }
    throw err;
  }
}

function provenIdentity(trustDomain: string, caller: CallerIdentity): string {
  try {
    return spiffeId(trustDomain, caller.namespace, caller.serviceAccount);
  } catch (err) {
    throw new Refusal(grpc.status.FAILED_PRECONDITION, `the caller's service account cannot be certified: ${errorMessage(err)}`);
  }
}

/** validity_duration is an int64: a number, a Long, or absent. */
function ttlOf(v: IstioCertificateRequest['validity_duration']): number {
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'number' ? v : v.toNumber();
  return Number.isFinite(n) && n > 0 ? n : 0;
}

/** The one place where failures become gRPC statuses. Unexpected errors are logged, not leaked. */
function toStatus(err: unknown, log: Logger): Partial<grpc.StatusObject> {
  if (err instanceof Refusal) return { code: err.code, details: err.message };
  log.error('certificate request failed', { error: errorMessage(err) });
  return { code: grpc.status.INTERNAL, details: 'the CA could not issue the certificate; see the control plane log' };
}
