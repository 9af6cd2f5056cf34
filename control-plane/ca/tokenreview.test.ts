// TokenReviewAuthenticator with a scripted reviewer: how TokenReview answers become caller
// identities or refusals, the audience check, caching, and that tokens never reach messages.
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { TokenReviewAuthenticator, type TokenReviewResult } from './tokenreview.js';

const ok = (over: Partial<TokenReviewResult> = {}): TokenReviewResult => ({
  authenticated: true,
  audiences: ['weft-ca'],
  user: {
    username: 'system:serviceaccount:bookinfo:reviews',
    extra: { 'authentication.kubernetes.io/pod-name': ['reviews-v1-abc'], 'authentication.kubernetes.io/node-name': ['node-1'] },
  },
  ...over,
});

function authenticator(answer: () => Promise<TokenReviewResult>, now = () => 0, nodeServiceAccount?: string) {
  const calls: { token: string; audiences: readonly string[] }[] = [];
  const a = new TokenReviewAuthenticator({
    audience: 'weft-ca',
    now,
    ...(nodeServiceAccount ? { nodeServiceAccount } : {}),
    review: async (token, audiences) => {
      calls.push({ token, audiences });
      return answer();
    },
  });
  return { a, calls };
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err).toBeDefined();
  return err!;
}

describe('TokenReviewAuthenticator', () => {
  it('maps a pod-bound ServiceAccount token to its namespace, account, workload and node', async () => {
    const { a, calls } = authenticator(async () => ok());
    await expect(a.authenticate('tok', {})).resolves.toEqual({ namespace: 'bookinfo', serviceAccount: 'reviews', workload: 'reviews-v1-abc.bookinfo', node: 'node-1' });
    expect(calls).toEqual([{ token: 'tok', audiences: ['weft-ca'] }]);
  });

  it('remembers a success for a while, then asks again', async () => {
    let t = 0;
    const { a, calls } = authenticator(async () => ok(), () => t);
    await a.authenticate('tok', {});
    t = 5_000;
    await a.authenticate('tok', {});
    expect(calls).toHaveLength(1);
    t = 11_000;
    await a.authenticate('tok', {});
    expect(calls).toHaveLength(2);
  });

  const refusals: [string, TokenReviewResult, RegExp][] = [
    ['not authenticated, with the API error', { error: '[invalid bearer token, token has expired]' }, /did not accept the token: \[invalid bearer token, token has expired\]/],
    ['authenticated for other audiences only', ok({ audiences: ['https://kubernetes.default.svc'] }), /not meant for audience "weft-ca"/],
    ['a user that is not a ServiceAccount', ok({ user: { username: 'alice@example.com' } }), /belongs to "alice@example.com", not to a ServiceAccount/],
  ];
  for (const [name, answer, message] of refusals) {
    it(`refuses: ${name}`, async () => {
      const { a } = authenticator(async () => answer);
      const err = await failure(a.authenticate('tok', {}));
      expect(isWeftError(err, ErrorCode.AUTH_FAILED)).toBe(true);
      expect(err.message).toMatch(message);
    });
  }

  it('never echoes a JWT-shaped token the API server quoted back', async () => {
    const jwt = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl';
    const { a } = authenticator(async () => ({ error: `token ${jwt} is invalid` }));
    const err = await failure(a.authenticate(jwt, {}));
    expect(err.message).not.toContain(jwt);
    expect(err.message).toContain('[token]');
  });

  it('an unreachable API server is the authenticator failing (INTERNAL), not the caller', async () => {
    const { a } = authenticator(async () => {
      throw new Error('connect ECONNREFUSED');
    });
    const err = await failure(a.authenticate('tok', {}));
    expect(isWeftError(err, ErrorCode.INTERNAL)).toBe(true);
  });

  it("proves a node proxy from the node proxies' ServiceAccount, of the node the token names", async () => {
    const node = (sa: string, extra: Record<string, string[]>) => ok({ user: { username: `system:serviceaccount:${sa.replace('/', ':')}`, extra } });
    const { a } = authenticator(async () => node('weft-system/weft-node', { 'authentication.kubernetes.io/pod-name': ['weft-node-x1'], 'authentication.kubernetes.io/node-name': ['node-a'] }));
    await expect(a.authenticate('tok', {})).resolves.toEqual({ namespace: 'weft-system', serviceAccount: 'weft-node', node: 'node-a', nodeProxy: true });
    // Configurable: another account is the node proxies', and weft-node then is an ordinary one.
    const { a: other } = authenticator(async () => node('mesh/ztunnel', { 'authentication.kubernetes.io/node-name': ['node-b'] }), () => 0, 'mesh/ztunnel');
    await expect(other.authenticate('tok', {})).resolves.toMatchObject({ node: 'node-b', nodeProxy: true });
  });

  it("refuses a node proxy's token that names no node, saying so", async () => {
    const { a } = authenticator(async () => ok({ user: { username: 'system:serviceaccount:weft-system:weft-node', extra: {} } }));
    const err = await failure(a.authenticate('tok', {}));
    expect(isWeftError(err, ErrorCode.AUTH_FAILED)).toBe(true);
    expect(err.message).toBe(`the token of the node proxies' ServiceAccount weft-system/weft-node names no node (the TokenReview has no "authentication.kubernetes.io/node-name")`);
  });

  it('refuses an empty token without asking', async () => {
    const { a, calls } = authenticator(async () => ok());
    expect(isWeftError(await failure(a.authenticate('', {})), ErrorCode.AUTH_FAILED)).toBe(true);
    expect(calls).toHaveLength(0);
  });
});
