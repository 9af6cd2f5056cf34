// Kubernetes ServiceAccount tokens as CA / xDS credentials: each bearer token is checked with a
// TokenReview (authentication.k8s.io/v1) for Weft's audience, and the ServiceAccount it proves
// becomes the caller's identity (spiffe://<td>/ns/<ns>/sa/<sa>). A token bound to a pod also
// names that pod: its workload is `<pod>.<namespace>`, the id its proxy must use for xDS. The
// node proxies' ServiceAccount is special: its token proves a node proxy, of the node the
// token's pod runs on (bound tokens carry it), and nothing without that node.
import crypto from 'node:crypto';
import { AuthenticationV1Api, type KubeConfig, type V1TokenReview } from '@kubernetes/client-node';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { AuthContext, Authenticator, CallerIdentity } from './authenticator.js';

/** What a TokenReview answers (status), as far as Weft reads it. */
export interface TokenReviewResult {
  readonly authenticated?: boolean;
  readonly error?: string;
  readonly audiences?: readonly string[];
  readonly user?: {
    readonly username?: string;
    readonly extra?: Readonly<Record<string, readonly string[]>>;
  };
}

/** Sends one TokenReview for `token` and `audiences`; rejects only when the API call itself failed. */
export type TokenReviewer = (token: string, audiences: readonly string[]) => Promise<TokenReviewResult>;

export const POD_NAME_EXTRA = 'authentication.kubernetes.io/pod-name';
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';
/** The ServiceAccount the ambient node proxies (the DaemonSet) run as, unless configured otherwise. */
export const DEFAULT_NODE_SERVICE_ACCOUNT = 'weft-system/weft-node';
const SERVICE_ACCOUNT_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/** The real thing: POST /apis/authentication.k8s.io/v1/tokenreviews with client-node. */
export function kubernetesTokenReviewer(kc: KubeConfig): TokenReviewer {
  const api = kc.makeApiClient(AuthenticationV1Api);
  return async (token, audiences) => {
    const body = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...audiences] } } as V1TokenReview;
    const review = await api.createTokenReview({ body });
    return (review.status ?? {}) as TokenReviewResult;
  };
}

export interface TokenReviewAuthenticatorOptions {
  readonly review: TokenReviewer;
  /** The audience tokens must be minted for (the injector projects tokens with it). */
  readonly audience: string;
  /** Successful reviews are remembered this long (by token digest), sparing the API server. Default 10 s. */
  readonly cacheMs?: number;
  /** `namespace/name` of the node proxies' ServiceAccount. Default weft-system/weft-node. */
  readonly nodeServiceAccount?: string;
  readonly now?: () => number;
}

export class TokenReviewAuthenticator implements Authenticator {
  private readonly cache = new Map<string, { identity: CallerIdentity; until: number }>();
  private readonly now: () => number;

  constructor(private readonly opts: TokenReviewAuthenticatorOptions) {
    this.now = opts.now ?? Date.now;
  }

  async authenticate(bearerToken: string, _ctx: AuthContext = {}): Promise<CallerIdentity> {
    if (bearerToken.length === 0) throw new WeftError(ErrorCode.AUTH_FAILED, 'no bearer token presented');
    const key = crypto.createHash('sha256').update(bearerToken).digest('hex');
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.identity;
    this.cache.delete(key);

    let result: TokenReviewResult;
    try {
      result = await this.opts.review(bearerToken, [this.opts.audience]);
    } catch (err) {
      // The API server could not be asked: the authenticator failed, not the caller.
      throw new WeftError(ErrorCode.INTERNAL, `TokenReview failed: ${(err as Error).message}`, { cause: err });
    }
    if (result.authenticated !== true) {
      throw new WeftError(ErrorCode.AUTH_FAILED, `the Kubernetes API did not accept the token: ${sanitize(result.error) || 'not authenticated'}`, {
        hint: `the proxy should present a projected ServiceAccount token with audience "${this.opts.audience}"`,
      });
    }
    // The API server already checks audiences; check again so a misbehaving one cannot widen them.
    if (!(result.audiences ?? []).includes(this.opts.audience)) {
      throw new WeftError(ErrorCode.AUTH_FAILED, `the token is not meant for audience "${this.opts.audience}" (it is for ${JSON.stringify(result.audiences ?? [])})`);
    }
    const username = result.user?.username ?? '';
    const m = SERVICE_ACCOUNT_USER.exec(username);
    if (!m) throw new WeftError(ErrorCode.AUTH_FAILED, `the token belongs to "${username}", not to a ServiceAccount`);
    const namespace = m[1] as string;
    const serviceAccount = m[3] as string;
    const pod = result.user?.extra?.[POD_NAME_EXTRA]?.[0];
    const node = result.user?.extra?.[NODE_NAME_EXTRA]?.[0];
    const nodeAccount = this.opts.nodeServiceAccount ?? DEFAULT_NODE_SERVICE_ACCOUNT;
    let identity: CallerIdentity;
    if (`${namespace}/${serviceAccount}` === nodeAccount) {
      // Which node it serves is all that makes a node proxy's token useful: without it, refuse.
      if (!node) {
        throw new WeftError(ErrorCode.AUTH_FAILED, `the token of the node proxies' ServiceAccount ${nodeAccount} names no node (the TokenReview has no "${NODE_NAME_EXTRA}")`, {
          hint: 'a node proxy must present a projected token bound to its pod (Kubernetes 1.30+ adds the node name)',
        });
      }
      identity = { namespace, serviceAccount, node, nodeProxy: true };
    } else {
      identity = { namespace, serviceAccount, ...(pod ? { workload: `${pod}.${namespace}` } : {}), ...(node ? { node } : {}) };
    }
    this.cache.set(key, { identity, until: this.now() + (this.opts.cacheMs ?? 10_000) });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    return identity;
  }
}

/** The API's error text, without anything that could echo the token back. */
function sanitize(error: string | undefined): string {
  return (error ?? '').replace(/[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}(\.[A-Za-z0-9_-]+)?/g, '[token]').slice(0, 300);
}
