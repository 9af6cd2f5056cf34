// SPIFFE IDs in Weft's (and Istio's) shape, spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>:
// building them from config values and parsing them back out of certificates and CSRs.
import { ErrorCode, WeftError } from '../core/errors.js';

export interface SpiffeId {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

const SCHEME = 'spiffe://';
// SPIFFE spec: trust domain is lower-case letters, digits, '.', '-', '_'.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
// Kubernetes rules: a namespace is a DNS label, a ServiceAccount name a DNS subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Why `td` is not a usable trust domain, or undefined when it is. */
export function trustDomainProblem(td: string): string | undefined {
  if (td.length === 0) return 'trust domain is empty';
  if (td.length > 255) return `trust domain ${JSON.stringify(td)} is longer than 255 characters`;
  if (!TRUST_DOMAIN.test(td)) {
    return `trust domain ${JSON.stringify(td)} may only contain lower-case letters, digits, '.', '-' and '_'`;
  }
  return undefined;
}

function namespaceProblem(ns: string): string | undefined {
  if (ns.length > 63 || !DNS_LABEL.test(ns)) {
    return `namespace ${JSON.stringify(ns)} is not a DNS label (lower-case letters, digits, '-', at most 63)`;
  }
  return undefined;
}

function serviceAccountProblem(sa: string): string | undefined {
  if (sa.length > 253 || !DNS_SUBDOMAIN.test(sa)) {
    return `service account ${JSON.stringify(sa)} is not a DNS subdomain (lower-case letters, digits, '-', '.')`;
  }
  return undefined;
}

/**
 * Builds the SPIFFE ID of a service account. Throws WeftError(CONFIG_INVALID) naming the bad
 * value: the inputs come from configuration (trust domain flag, WorkloadEntry fields).
 */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const problem = trustDomainProblem(trustDomain) ?? namespaceProblem(namespace) ?? serviceAccountProblem(serviceAccount);
  if (problem) throw new WeftError(ErrorCode.CONFIG_INVALID, `cannot build a SPIFFE ID: ${problem}`);
  return `${SCHEME}${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/** Parses a SPIFFE ID, or explains why it is not one of Weft's shape. */
export function parseSpiffeIdResult(uri: string): { ok: true; id: SpiffeId } | { ok: false; problem: string } {
  const shown = JSON.stringify(uri);
  if (!uri.startsWith(SCHEME)) return { ok: false, problem: `${shown} does not start with ${SCHEME}` };
  const rest = uri.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) return { ok: false, problem: `${shown}: ${tdProblem}` };
  const segments = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (segments.length !== 4 || segments[0] !== 'ns' || segments[2] !== 'sa') {
    return { ok: false, problem: `${shown} does not have the path /ns/<namespace>/sa/<service-account>` };
  }
  const namespace = segments[1] ?? '';
  const serviceAccount = segments[3] ?? '';
  const problem = namespaceProblem(namespace) ?? serviceAccountProblem(serviceAccount);
  if (problem) return { ok: false, problem: `${shown}: ${problem}` };
  return { ok: true, id: { trustDomain, namespace, serviceAccount } };
}

/**
 * Parses a SPIFFE ID read from a certificate or CSR. Throws WeftError(CERT_INVALID) naming the
 * value and what is wrong with it.
 */
export function parseSpiffeId(uri: string): SpiffeId {
  const r = parseSpiffeIdResult(uri);
  if (!r.ok) throw new WeftError(ErrorCode.CERT_INVALID, `invalid SPIFFE ID: ${r.problem}`);
  return r.id;
}

export function formatSpiffeId(id: SpiffeId): string {
  return spiffeId(id.trustDomain, id.namespace, id.serviceAccount);
}
