// SPIFFE IDs: built from config values, parsed from certificates, with errors naming the value.
import { describe, expect, it } from 'vitest';
import { ErrorCode, WeftError } from '../core/errors.js';
import { parseSpiffeId, spiffeId } from './spiffe.js';

describe('spiffeId', () => {
  it('builds the Istio-shaped ID and parses it back', () => {
    const id = spiffeId('cluster.local', 'default', 'reviews-v1');
    expect(id).toBe('spiffe://cluster.local/ns/default/sa/reviews-v1');
    expect(parseSpiffeId(id)).toEqual({ trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'reviews-v1' });
  });

  it.each([
    ['Cluster.Local', 'default', 'sa', /trust domain "Cluster.Local"/],
    ['', 'default', 'sa', /trust domain is empty/],
    ['td', 'Bad_NS', 'sa', /namespace "Bad_NS"/],
    ['td', 'default', 'no/slash', /service account "no\/slash"/],
  ])('refuses %s/%s/%s and names the value', (td, ns, sa, message) => {
    try {
      spiffeId(td, ns, sa);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(WeftError);
      expect((err as WeftError).code).toBe(ErrorCode.CONFIG_INVALID);
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('parseSpiffeId', () => {
  it.each([
    ['https://cluster.local/ns/a/sa/b', /does not start with spiffe:\/\//],
    ['spiffe://cluster.local', /\/ns\/<namespace>\/sa\/<service-account>/],
    ['spiffe://cluster.local/ns/a/sa/b/extra', /\/ns\/<namespace>\/sa\/<service-account>/],
    ['spiffe://cluster.local/sa/b/ns/a', /\/ns\/<namespace>\/sa\/<service-account>/],
    ['spiffe://cluster.local/ns//sa/b', /namespace ""/],
    ['spiffe://CLUSTER/ns/a/sa/b', /trust domain "CLUSTER"/],
  ])('rejects %s', (uri, message) => {
    expect(() => parseSpiffeId(uri)).toThrow(message);
    expect(() => parseSpiffeId(uri)).toThrow(JSON.stringify(uri));
  });
});
