// Balancers and their registry: weighted round robin is exact and smooth, least request
// prefers idle endpoints, only healthy endpoints are picked, and the registry keeps a
// balancer while the endpoint set is unchanged.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../api/domain.js';
import { buildConfig, cluster, endpoint } from '../http/testkit.js';
import { InflightCounts } from './inflight.js';
import { LeastRequestBalancer } from './least-request.js';
import { RandomBalancer } from './random.js';
import { createBalancers } from './registry.js';
import { RoundRobinBalancer } from './round-robin.js';
import { endpointKey } from './types.js';

const a = endpoint('10.0.0.1', 80, { weight: 5 });
const b = endpoint('10.0.0.2', 80);
const c = endpoint('10.0.0.3', 80);

function names(picks: (Endpoint | undefined)[]): string {
  return picks.map((e) => (e === a ? 'a' : e === b ? 'b' : e === c ? 'c' : '?')).join('');
}

/** Deterministic [0,1) sequence. */
function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('RoundRobinBalancer', () => {
  it('spreads a heavy endpoint smoothly and hits exact weights per cycle', () => {
    const rr = new RoundRobinBalancer([a, b, c]);
    const picks = Array.from({ length: 14 }, () => rr.pick());
    expect(names(picks)).toBe('aabacaaaabacaa');
  });

  it('steps past endpoints already tried when asked to avoid them', () => {
    const rr = new RoundRobinBalancer([b, c]);
    const first = rr.pick()!;
    expect(rr.pick(new Set([endpointKey(first)]))).not.toBe(first);
    // If every endpoint was tried, it still answers.
    expect(rr.pick(new Set([endpointKey(b), endpointKey(c)]))).toBeDefined();
  });

  it('has nothing to pick from an empty set', () => {
    expect(new RoundRobinBalancer([]).pick()).toBeUndefined();
  });
});

describe('LeastRequestBalancer', () => {
  it('sends to the endpoint with fewer requests in flight of the two drawn', () => {
    const inflight = new InflightCounts();
    const lr = new LeastRequestBalancer([b, c], inflight, seq([0.1, 0.9])); // draws b then c
    lr.onStart(b);
    lr.onStart(b);
    expect(lr.pick()).toBe(c);
    lr.onEnd(b, { ok: true, latencyMs: 1 });
    lr.onEnd(b, { ok: true, latencyMs: 1 });
    lr.onStart(c);
    expect(lr.pick()).toBe(b);
  });

  it('weighs capacity: weight / (in flight + 1)', () => {
    const inflight = new InflightCounts();
    const lr = new LeastRequestBalancer([a, b], inflight, seq([0.1, 0.95])); // a (w5) then b (w1)
    inflight.inc(a);
    inflight.inc(a); // a: 5/3 > b: 1/1
    expect(lr.pick()).toBe(a);
  });
});

describe('RandomBalancer', () => {
  it('follows weights', () => {
    const r = new RandomBalancer([a, b], new InflightCounts(), seq([0.0, 0.5, 0.8, 0.99]));
    expect(names([r.pick(), r.pick(), r.pick(), r.pick()])).toBe('aaab');
  });
});

describe('balancer registry', () => {
  const NAME = 'outbound|80||svc';
  const config = (eps: Endpoint[], lbPolicy: 'ROUND_ROBIN' | 'LEAST_REQUEST' = 'ROUND_ROBIN') =>
    buildConfig({ clusters: [cluster(NAME, { lbPolicy })], endpoints: { [NAME]: eps } });

  it('keeps the balancer while endpoints are equal (even in a new snapshot), rebuilds when they change', () => {
    const reg = createBalancers();
    const one = reg.forCluster(config([b, c]), NAME)!.balancer;
    expect(reg.forCluster(config([{ ...b }, { ...c }]), NAME)!.balancer).toBe(one);
    const changed = reg.forCluster(config([b, { ...c, weight: 3 }]), NAME)!.balancer;
    expect(changed).not.toBe(one);
    expect(reg.forCluster(config([b, { ...c, weight: 3 }], 'LEAST_REQUEST'), NAME)!.balancer).toBeInstanceOf(LeastRequestBalancer);
  });

  it('offers only healthy endpoints, and nothing for a cluster that is not in the config', () => {
    const reg = createBalancers();
    const choice = reg.forCluster(config([b, { ...c, healthy: false }]), NAME)!;
    expect(choice.balancer.endpoints).toEqual([b]);
    expect(reg.forCluster(config([b]), 'outbound|80||other')).toBeUndefined();
  });

  it('reads STATIC clusters from their inline endpoints', () => {
    const reg = createBalancers();
    const cfg = buildConfig({ clusters: [cluster('inbound|8080||', { discovery: 'STATIC', staticEndpoints: [b] })] });
    expect(reg.forCluster(cfg, 'inbound|8080||')!.balancer.pick()).toBe(b);
  });

  it('keeps in-flight counts across a rebuild', () => {
    const reg = createBalancers({ random: seq([0.1, 0.9]) });
    const first = reg.forCluster(config([b, c], 'LEAST_REQUEST'), NAME)!.balancer;
    first.onStart(b);
    first.onStart(b);
    const rebuilt = reg.forCluster(config([b, c, { ...a, weight: 1 }], 'LEAST_REQUEST'), NAME)!.balancer;
    expect(rebuilt).not.toBe(first);
    // b still has 2 in flight, so the rebuilt balancer prefers the other endpoint of its draw.
    expect(rebuilt.pick()).not.toBe(b);
  });
});
