// Who is calling: turns a bearer token into the identity the caller has *proven*. The CA issues
// certificates for that identity only (or, to a node proxy, for the ambient pods on its node),
// and the xDS server serves config to that workload (or node proxy) only.
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { TokenOwner } from './tokens.js';

export interface CallerIdentity {
  readonly namespace: string;
  readonly serviceAccount: string;
  /** `name.namespace` of the workload, when the credential names one (local bootstrap tokens). */
  readonly workload?: string;
  /** The node the caller runs on, when known (Kubernetes tokens bound to a pod). */
  readonly node?: string;
  /**
   * The caller is the node proxy of `node` (ambient mode): it opens xDS as `ambient~<node>` and
   * may ask the CA for the identity of an ambient workload on that node (ImpersonatedIdentity).
   * A local node token proves no ServiceAccount of its own (namespace and serviceAccount are '').
   */
  readonly nodeProxy?: boolean;
}

/** What else is known about the call, for authenticators that need it. */
export interface AuthContext {
  /** The transport peer address, for logs. */
  readonly peer?: string;
  /** The request metadata (CA: the request's Struct metadata as a plain object). */
  readonly metadata?: Readonly<Record<string, unknown>>;
}

export interface Authenticator {
  /**
   * Called once per CA request and once per xDS stream. Resolves with the caller's identity, or
   * rejects with WeftError(AUTH_FAILED) whose message can be shown to the caller (it never
   * contains the token). Any other rejection means the authenticator itself failed.
   */
  authenticate(bearerToken: string, ctx: AuthContext): Promise<CallerIdentity>;
}

/** Maps a workload to its ServiceAccount (WorkloadEntry spec.serviceAccount, default "default"); undefined if unknown. */
export type ServiceAccountOf = (namespace: string, name: string) => string | undefined;

/** Local mode: bootstrap tokens from the TokenStore, each bound to one WorkloadEntry or one node. */
export class LocalTokenAuthenticator implements Authenticator {
  constructor(
    private readonly tokens: { lookup(token: string): TokenOwner | undefined },
    private readonly serviceAccountOf: ServiceAccountOf,
  ) {}

  async authenticate(bearerToken: string, _ctx: AuthContext = {}): Promise<CallerIdentity> {
    if (bearerToken.length === 0) throw new WeftError(ErrorCode.AUTH_FAILED, 'no bearer token presented');
    const owner = this.tokens.lookup(bearerToken);
    if (!owner) {
      throw new WeftError(ErrorCode.AUTH_FAILED, 'the bearer token is not one this control plane issued', {
        hint: 'check --token-file: it should be <state-dir>/tokens/<namespace>/<name>.token (a node proxy: <state-dir>/tokens/nodes/<node>.token) of this control plane',
      });
    }
    if (owner.node !== undefined) return { namespace: '', serviceAccount: '', node: owner.node, nodeProxy: true };
    const workload = `${owner.name}.${owner.namespace}`;
    const serviceAccount = this.serviceAccountOf(owner.namespace, owner.name);
    if (serviceAccount === undefined) {
      throw new WeftError(ErrorCode.AUTH_FAILED, `the token belongs to workload ${workload}, which is no longer configured`);
    }
    return { namespace: owner.namespace, serviceAccount, workload };
  }
}
