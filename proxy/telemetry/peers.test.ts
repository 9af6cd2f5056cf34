// Peer labels: Services from cluster names and Hosts, workloads from `name.namespace`.
import { describe, expect, it } from 'vitest';
import { serviceOfAuthority, serviceOfCluster, spiffeNamespace, splitWorkloadKey } from './peers.js';

describe('peer labels', () => {
  it('reads the destination Service from an outbound cluster name, as Istio does', () => {
    expect(serviceOfCluster('outbound|9080||reviews.default.svc.cluster.local')).toEqual({ service: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' });
    expect(serviceOfCluster('inbound|8080||')).toEqual({ service: 'inbound|8080||', name: 'inbound|8080||', namespace: 'unknown' });
    expect(serviceOfCluster('outbound|9080||reviews.default.svc.cluster.local')).toBe(serviceOfCluster('outbound|9080||reviews.default.svc.cluster.local'));
  });

  it('expands every name form of a Host, a short name in the client namespace', () => {
    const fq = { service: 'reviews.shop.svc.cluster.local', name: 'reviews', namespace: 'shop' };
    for (const host of ['reviews', 'reviews:9080', 'reviews.shop', 'reviews.shop.svc:9080', 'reviews.shop.svc.cluster.local']) {
      expect(serviceOfAuthority(host, 'shop'), host).toEqual(fq);
    }
    expect(serviceOfAuthority('reviews', 'other').namespace).toBe('other');
    expect(serviceOfAuthority('10.0.0.1:80', 'shop').service).toBe('unknown');
    expect(serviceOfAuthority('example.com', 'shop')).toEqual({ service: 'example.com.svc.cluster.local', name: 'example', namespace: 'com' });
  });

  it('splits workload keys and SPIFFE IDs', () => {
    expect(splitWorkloadKey('reviews-v1.default')).toEqual({ workload: 'reviews-v1', namespace: 'default' });
    expect(splitWorkloadKey(undefined)).toEqual({ workload: 'unknown', namespace: 'unknown' });
    expect(spiffeNamespace('spiffe://cluster.local/ns/shop/sa/web')).toBe('shop');
    expect(spiffeNamespace('not-a-spiffe-id')).toBeUndefined();
  });
});
