// The authorization seam of the inbound listener. The identity engineer implements it from the
// chain's RBAC rules (AuthorizationPolicy); until then every request is allowed.
import type { FilterChain } from '../../api/domain.js';
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
}

/**
 * Called once per inbound request (and per Upgrade/CONNECT), after the filter chain is chosen
 * and before routing. Synchronous and cheap: it runs on every request. `chain.filter.rbac`
 * holds the chain's rules.
 */
export type AuthorizeHook = (facts: RequestFacts, peer: PeerInfo, chain: FilterChain) => AuthzDecision;

export const allowAll: AuthorizeHook = () => ({ allow: true, reason: 'no authorization configured' });
