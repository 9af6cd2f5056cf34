// The authorization seam of the inbound listener and its implementation: the chain's RBAC rules
// (Envoy's RBAC filter, from AuthorizationPolicy) evaluated against the peer's proven identity,
// its namespace, and the request's method, path and app port. Deciding is pure; the hook logs.
import type { FilterChain, RbacPermissionMatch, RbacPolicy, RbacPrincipalMatch, RbacRules, StringMatch } from '../../api/domain.js';
import type { Logger } from '../../core/log.js';
import { compileString } from '../route/compile.js';
import type { RequestFacts } from '../route/types.js';

export interface PeerInfo {
  /** Authenticated SPIFFE ID of the calling sidecar (mTLS), else undefined. */
  readonly identity: string | undefined;
  readonly address: string | undefined;
  readonly secure: boolean;
  /** App port the peer asked for (from SNI), if known. */
  readonly targetPort: number | undefined;
}

export interface AuthzDecision {
  readonly allow: boolean;
  /** For the log and the operator (e.g. `denied by policy ns/deny-all`); never sent to the client. */
  readonly reason: string;
  /** The Envoy RBAC policy that decided, when one did (a DENY match, or the ALLOW match). */
  readonly policy?: string;
}

/**
 * Called once per inbound request (and per Upgrade/CONNECT), after the filter chain is chosen
 * and before routing. Synchronous and cheap: it runs on every request. `chain.filter.rbac`
 * holds the chain's rules.
 */
export type AuthorizeHook = (facts: RequestFacts, peer: PeerInfo, chain: FilterChain) => AuthzDecision;

export const allowAll: AuthorizeHook = () => ({ allow: true, reason: 'no authorization configured' });

// ---- Evaluation (pure) ---------------------------------------------------------------------

/** What RBAC looks at for one request. */
export interface AuthzRequest {
  /** The peer's SPIFFE ID, when it proved one. */
  readonly identity: string | undefined;
  /** Undefined for a byte stream (TCP, an HBONE tunnel), which has no method or path. */
  readonly method: string | undefined;
  /** Path without the query string; undefined for a byte stream. */
  readonly path: string | undefined;
  /** The app port the request is for. */
  readonly port: number | undefined;
}

type Predicate = (r: AuthzRequest, ns: string | undefined) => boolean;

const compiled = new WeakMap<RbacRules, ReadonlyArray<{ readonly name: string; readonly matches: Predicate }>>();
const matchers = new WeakMap<StringMatch, (s: string) => boolean>();

function str(m: StringMatch): (s: string) => boolean {
  let f = matchers.get(m);
  if (!f) matchers.set(m, (f = compileString(m)));
  return f;
}

function principalPredicate(p: RbacPrincipalMatch): Predicate {
  if (p.any) return () => true;
  const principal = p.principal && str(p.principal);
  const namespace = p.namespace && str(p.namespace);
  // Any principal condition needs a proven identity: a plaintext peer matches none.
  return (r, ns) => r.identity !== undefined && (!principal || principal(r.identity)) && (!namespace || (ns !== undefined && namespace(ns)));
}

/**
 * A permission names HTTP attributes (methods, paths) that a byte stream does not have. Judged
 * on a stream, as Istio's sidecars and ztunnel judge TCP: in an ALLOW list such a permission
 * matches nothing (it allows less); in a DENY list its HTTP conditions are left out and the rest
 * decides (it denies more). Otherwise a DENY on `/admin` would let a TCP or HBONE stream to the
 * same port carry any request to `/admin` past it.
 */
function permissionPredicate(p: RbacPermissionMatch, action: RbacRules['action']): Predicate {
  if (p.any) return () => true;
  const methods = p.methods;
  const paths = p.paths?.map(str);
  const ports = p.ports;
  const needsHttp = methods !== undefined || paths !== undefined;
  return (r) => {
    const { method, path } = r;
    if (method === undefined || path === undefined) {
      if (needsHttp && action !== 'DENY') return false;
    } else if ((methods && !methods.includes(method)) || (paths && !paths.some((m) => m(path)))) {
      return false;
    }
    return !ports || (r.port !== undefined && ports.includes(r.port));
  };
}

function compilePolicy(policy: RbacPolicy, action: RbacRules['action']): { name: string; matches: Predicate } {
  const principals = policy.principals.map(principalPredicate);
  const permissions = policy.permissions.map((p) => permissionPredicate(p, action));
  return { name: policy.name, matches: (r, ns) => principals.some((f) => f(r, ns)) && permissions.some((f) => f(r, ns)) };
}

function policiesOf(rules: RbacRules) {
  let c = compiled.get(rules);
  if (!c) compiled.set(rules, (c = rules.policies.map((p) => compilePolicy(p, rules.action))));
  return c;
}

/** The namespace in `spiffe://<td>/ns/<ns>/sa/<sa>`, if the ID has that shape. */
export function namespaceOf(identity: string | undefined): string | undefined {
  if (!identity) return undefined;
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/[^/]+$/.exec(identity);
  return m?.[1];
}

/**
 * Envoy's RBAC over a chain's rule lists, in order (DENY lists first, as the decoder sorts them):
 * a DENY list denies when one of its policies matches; an ALLOW list denies when none does (so an
 * ALLOW list without policies denies everything). No lists: allowed.
 */
export function evaluateRbac(lists: readonly RbacRules[], req: AuthzRequest): AuthzDecision {
  if (lists.length === 0) return { allow: true, reason: 'no authorization policy applies' };
  const ns = namespaceOf(req.identity);
  let allowedBy: string | undefined;
  for (const rules of lists) {
    const hit = policiesOf(rules).find((p) => p.matches(req, ns));
    if (rules.action === 'DENY') {
      if (hit) return { allow: false, reason: `matched DENY policy ${hit.name}`, policy: hit.name };
    } else if (!hit) {
      const names = rules.policies.map((p) => p.name);
      return {
        allow: false,
        reason: names.length === 0 ? 'an ALLOW policy with no rules applies (it allows nothing)' : `matched no ALLOW policy (${names.join(', ')})`,
      };
    } else {
      allowedBy ??= hit.name;
    }
  }
  return allowedBy
    ? { allow: true, reason: `allowed by ${allowedBy}`, policy: allowedBy }
    : { allow: true, reason: 'no DENY policy matched and no ALLOW policy applies' };
}

/** The app port a request on `chain` is for: the SNI target port, else the chain's only port. */
export function requestPort(peer: PeerInfo, chain: FilterChain): number | undefined {
  return peer.targetPort ?? (chain.destinationPorts.length === 1 ? chain.destinationPorts[0] : undefined);
}

/** The AuthorizeHook the sidecar uses: RBAC from the chain's filter, denials logged at info. */
export function rbacAuthorizer(log: Logger): AuthorizeHook {
  return (facts, peer, chain) => {
    const req: AuthzRequest = {
      identity: peer.identity,
      method: facts.method,
      path: facts.path.split('?', 1)[0] ?? facts.path,
      port: requestPort(peer, chain),
    };
    const decision = evaluateRbac(chain.filter.rbac, req);
    if (!decision.allow) {
      log.info('request denied by authorization policy', {
        policy: decision.policy ?? '(none matched)',
        reason: decision.reason,
        peer: peer.identity ?? 'unauthenticated',
        client: peer.address,
        method: req.method,
        path: req.path,
        port: req.port,
        chain: chain.name,
      });
    }
    return decision;
  };
}
