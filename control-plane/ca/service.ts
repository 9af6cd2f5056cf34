// The CA's gRPC face: istio.v1.auth.IstioCertificateService/CreateCertificate. Authenticates the
// caller's bearer token, checks the CSR, and issues a certificate for the identity the caller
// proved (never for one the CSR merely asks for) — or, to a node proxy asking with Istio's
// `ImpersonatedIdentity`, for an ambient workload running on that node (node authorization).
// Errors become gRPC statuses in one place.
import * as grpc from '@grpc/grpc-js';
import { fromStruct } from '../../api/codec.js';
import type { IstioCertificateRequest, IstioCertificateResponse } from '../../api/services.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { parseCsr } from '../../certs/csr.js';
import { formatSpiffeId, parseSpiffeIdResult, spiffeId } from '../../certs/spiffe.js';
import { ErrorCode, WeftError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { workloadKey, type Model } from '../model/index.js';
import type { Authenticator, CallerIdentity } from './authenticator.js';

/** A workload holding some identity, as node authorization needs to see it. */
export interface IdentityWorkload {
  /** `namespace/name`, for messages. */
  readonly key: string;
  /** The node it runs on (spec.nodeName), if it names one. */
  readonly node: string | undefined;
  /** Enrolled in ambient mode (so its node's proxy carries it), with no sidecar of its own. */
  readonly ambient: boolean;
}

/**
 * The workloads running as `namespace`/`serviceAccount`, from the live model. Called once per
 * impersonation request; must not block.
 */
export type WorkloadsWithIdentity = (namespace: string, serviceAccount: string) => readonly IdentityWorkload[];

/** The query over the current model; `hasSidecar(name.namespace)` says who runs a sidecar (never ambient). */
export function modelWorkloadsWithIdentity(model: () => Model, hasSidecar: (workloadKey: string) => boolean): WorkloadsWithIdentity {
  return (namespace, serviceAccount) => {
    const m = model();
    return m.workloadsWithIdentity(namespace, serviceAccount).map((w) => ({
      key: `${w.metadata.namespace}/${w.metadata.name}`,
      node: w.spec.nodeName,
      ambient: m.dataplaneMode(w, hasSidecar(workloadKey(w))) === 'ambient',
    }));
  };
}

export interface CaServiceOptions {
  readonly ca: Pick<CertificateAuthority, 'issue' | 'clampTtl'>;
  readonly authenticator: Authenticator;
  readonly trustDomain: string;
  readonly log: Logger;
  /** No certificate lives longer than this, whatever was asked (the CA also has its own maximum). */
  readonly maxTtlSeconds?: number;
  /** Called after each certificate is issued (metrics). */
  readonly onIssued?: (identity: string) => void;
  /** Node authorization: who holds an identity and where. Absent: impersonation is refused. */
  readonly workloadsWithIdentity?: WorkloadsWithIdentity;
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
    const requested = metadata.ImpersonatedIdentity;
    // Unset, null and "" all mean "my own identity" (clients differ in how they leave it out).
    const impersonating = requested !== undefined && requested !== null && requested !== '';
    const identity = impersonating ? impersonatedIdentity(opts, caller, requested) : ownIdentity(opts.trustDomain, caller);
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
        node: caller.node,
        peer,
      });
      throw new Refusal(
        grpc.status.PERMISSION_DENIED,
        impersonating
          ? `the CSR asks for ${foreign.join(', ')} but the request's ImpersonatedIdentity is ${identity}`
          : `the CSR asks for ${foreign.join(', ')} but the caller's credential proves ${identity}`,
      );
    }
    const ttlSeconds = Math.min(opts.ca.clampTtl(ttlOf(call.request.validity_duration)), opts.maxTtlSeconds ?? Infinity);
    const chain = await opts.ca.issue({ publicKey: csr, identity, ttlSeconds });
    issued++;
    opts.onIssued?.(identity);
    opts.log.debug('issued a workload certificate', { identity, workload: caller.workload, ...(impersonating ? { node: caller.node } : {}), ttlSeconds });
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

function ownIdentity(trustDomain: string, caller: CallerIdentity): string {
  if (caller.nodeProxy && caller.serviceAccount === '') {
    throw new Refusal(
      grpc.status.PERMISSION_DENIED,
      `a node proxy's token (node ${caller.node ?? '?'}) proves no identity of its own: ask for a pod's with ImpersonatedIdentity`,
    );
  }
  try {
    return spiffeId(trustDomain, caller.namespace, caller.serviceAccount);
  } catch (err) {
    throw new Refusal(grpc.status.FAILED_PRECONDITION, `the caller's service account cannot be certified: ${errorMessage(err)}`);
  }
}

/**
 * Node authorization: the identity a node proxy may have for one of its pods. Only a node proxy
 * may ask, and only for an identity some ambient workload on its own node runs as; every
 * refusal says which node, which identity and why.
 */
function impersonatedIdentity(opts: CaServiceOptions, caller: CallerIdentity, requested: unknown): string {
  if (typeof requested !== 'string') {
    throw new Refusal(grpc.status.INVALID_ARGUMENT, `ImpersonatedIdentity must be a SPIFFE ID string, got ${JSON.stringify(requested)}`);
  }
  const parsed = parseSpiffeIdResult(requested);
  if (!parsed.ok) throw new Refusal(grpc.status.INVALID_ARGUMENT, `ImpersonatedIdentity: ${parsed.problem}`);
  const identity = formatSpiffeId(parsed.id);
  if (!caller.nodeProxy || caller.node === undefined) {
    const who = caller.workload ? `workload ${caller.workload}` : `ServiceAccount ${caller.namespace}/${caller.serviceAccount}`;
    throw new Refusal(grpc.status.PERMISSION_DENIED, `only a node proxy may ask for another identity (ImpersonatedIdentity ${identity}); the caller is ${who}`);
  }
  const node = caller.node;
  const deny = (why: string): never => {
    opts.log.warn('refused a node proxy an identity', { node, identity, reason: why });
    throw new Refusal(grpc.status.PERMISSION_DENIED, `node ${node} may not have ${identity}: ${why}`);
  };
  if (parsed.id.trustDomain !== opts.trustDomain) return deny(`it is not in this mesh's trust domain "${opts.trustDomain}"`);
  const query = opts.workloadsWithIdentity;
  if (!query) return deny('this control plane does not authorize node proxies (it has no view of the workloads)');
  const holders = query(parsed.id.namespace, parsed.id.serviceAccount);
  if (holders.some((w) => w.ambient && w.node === node)) return identity;
  const elsewhere = holders.filter((w) => w.ambient);
  if (elsewhere.length > 0) {
    const where = elsewhere.map((w) => `${w.key} on ${w.node ?? 'no node'}`).join(', ');
    return deny(`no ambient workload with that identity runs on ${node}; it runs on ${[...new Set(elsewhere.map((w) => w.node ?? 'no node'))].join(', ')} (${where})`);
  }
  if (holders.length > 0) {
    return deny(`no ambient workload with that identity runs on ${node}: ${holders.map((w) => w.key).join(', ')} ${holders.length === 1 ? 'is' : 'are'} not in ambient mode`);
  }
  return deny('no workload has that identity');
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
