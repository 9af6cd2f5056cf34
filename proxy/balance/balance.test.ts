// Balancers and their registry: weighted round robin is exact and smooth, least request
// prefers idle endpoints, P2C + peak-EWMA prefers fast ones, consistent hashing keeps a key on
// one endpoint and moves few keys when the set changes, only healthy and non-ejected
// endpoints are picked, and the registry keeps a balancer while the endpoint set is unchanged.
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../api/domain.js';
import { buildConfig, cluster, endpoint } from '../http/testkit.js';
import { ClusterState } from './cluster-state.js';
import { hash32 } from './hash.js';
import { LeastRequestBalancer } from './least-request.js';
import { MaglevBalancer } from './maglev.js';
import { P2cEwmaBalancer } from './p2c-ewma.js';
import { RandomBalancer } from './random.js';
import { createBalancers } from './registry.js';
import { RingHashBalancer } from './ring-hash.js';
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
    const lr = new LeastRequestBalancer([b, c], new ClusterState(), seq([0.1, 0.9])); // draws b then c
    lr.onStart(b);
    lr.onStart(b);
    expect(lr.pick()).toBe(c);
    lr.onEnd(b, { ok: true, latencyMs: 1 });
    lr.onEnd(b, { ok: true, latencyMs: 1 });
    lr.onStart(c);
    expect(lr.pick()).toBe(b);
  });

  it('weighs capacity: weight / (in flight + 1)', () => {
    const lr = new LeastRequestBalancer([a, b], new ClusterState(), seq([0.1, 0.95])); // a (w5) then b (w1)
    lr.onStart(a);
    lr.onStart(a); // a: 5/3 > b: 1/1
    expect(lr.pick()).toBe(a);
  });
});

describe('RandomBalancer', () => {
  it('follows weights', () => {
    const r = new RandomBalancer([a, b], new ClusterState(), seq([0.0, 0.5, 0.8, 0.99]));
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

  it('answers with the same choice object while nothing changed (none made per request), a new one when the cluster or its endpoints change', () => {
    const reg = createBalancers();
    const cfg = config([b, c]);
    const first = reg.forCluster(cfg, NAME)!;
    expect(reg.forCluster(cfg, NAME)).toBe(first);
    expect(first).toEqual({ cluster: cfg.clusters.get(NAME), balancer: first.balancer });
    const other = config([b, c]); // a new snapshot: another Cluster object, equal endpoints
    const next = reg.forCluster(other, NAME)!;
    expect(next).not.toBe(first);
    expect(next.cluster).toBe(other.clusters.get(NAME));
    expect(next.balancer).toBe(first.balancer);
    expect(reg.forCluster(other, NAME)).toBe(next);
    expect(reg.forCluster(config([b]), NAME)!.balancer).not.toBe(first.balancer);
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

describe('P2cEwmaBalancer', () => {
  const fast = endpoint('10.0.1.1', 80);
  const slow = endpoint('10.0.1.2', 80);

  function trained(clock: { t: number }) {
    const state = new ClusterState({ now: () => clock.t });
    const p2c = new P2cEwmaBalancer([fast, slow], state, seq([0.1, 0.9]));
    for (let i = 0; i < 5; i++) {
      for (const [e, ms] of [[fast, 5], [slow, 200]] as const) {
        p2c.onStart(e);
        clock.t += 1;
        p2c.onEnd(e, { ok: true, latencyMs: ms, status: 200 });
      }
    }
    return p2c;
  }

  it('sends to the endpoint with the lower latency estimate', () => {
    const clock = { t: 0 };
    const p2c = trained(clock);
    for (let i = 0; i < 20; i++) expect(p2c.pick()).toBe(fast);
  });

  it('weighs requests in flight: a busy fast endpoint loses to an idle slower one', () => {
    const clock = { t: 0 };
    const p2c = trained(clock);
    // fast: ~5 ms × (50 + 1) > slow: ~200 ms × 1
    for (let i = 0; i < 50; i++) p2c.onStart(fast);
    expect(p2c.pick()).toBe(slow);
  });

  it('lets a slow endpoint decay back so it gets probed again', () => {
    const clock = { t: 0 };
    const p2c = trained(clock);
    expect(p2c.pick()).toBe(fast);
    // Two minutes later with no samples both estimates are ~0: load decides, and fast is busy.
    clock.t += 120_000;
    p2c.onStart(fast);
    expect(p2c.pick()).toBe(slow);
  });

  it('counts a fast failure as slow', () => {
    const clock = { t: 0 };
    const state = new ClusterState({ now: () => clock.t });
    const p2c = new P2cEwmaBalancer([fast, slow], state, seq([0.1, 0.9]));
    p2c.onStart(slow);
    p2c.onEnd(slow, { ok: true, latencyMs: 100, status: 200 });
    p2c.onStart(fast);
    p2c.onEnd(fast, { ok: false, latencyMs: 1 }); // connection refused in 1 ms
    expect(p2c.pick()).toBe(slow);
  });
});

describe('consistent hashing', () => {
  const eps = [endpoint('10.0.2.1', 80), endpoint('10.0.2.2', 80), endpoint('10.0.2.3', 80)];
  const keys = Array.from({ length: 3000 }, (_, i) => hash32(`user-${i}`));
  const builders = {
    RING_HASH: (e: readonly Endpoint[]) => new RingHashBalancer(e, new ClusterState(), seq([0.5])),
    MAGLEV: (e: readonly Endpoint[]) => new MaglevBalancer(e, new ClusterState(), seq([0.5])),
  };

  describe.each(Object.entries(builders))('%s', (_name, build) => {
    it('keeps a key on one endpoint, and spreads keys evenly', () => {
      const lb = build(eps);
      const counts = new Map<Endpoint, number>();
      for (const k of keys) {
        const first = lb.pick(undefined, k)!;
        expect(lb.pick(undefined, k)).toBe(first);
        counts.set(first, (counts.get(first) ?? 0) + 1);
      }
      for (const e of eps) expect(counts.get(e)! / keys.length).toBeGreaterThan(0.25);
    });

    it('moves only the keys of an endpoint that leaves', () => {
      const before = build(eps);
      const after = build([eps[0]!, eps[2]!]);
      let moved = 0;
      for (const k of keys) {
        const was = before.pick(undefined, k)!;
        const now = after.pick(undefined, k)!;
        if (was !== eps[1]) expect(now).toBe(was);
        else moved++;
      }
      expect(moved / keys.length).toBeLessThan(0.45);
    });

    it('respects weights', () => {
      const heavy = endpoint('10.0.2.9', 80, { weight: 3 });
      const lb = build([heavy, eps[0]!]);
      const onHeavy = keys.filter((k) => lb.pick(undefined, k) === heavy).length / keys.length;
      expect(onHeavy).toBeGreaterThan(0.65);
      expect(onHeavy).toBeLessThan(0.85);
    });

    it('steps to another endpoint on a retry, and picks at random without a hash', () => {
      const lb = build(eps);
      const first = lb.pick(undefined, keys[0])!;
      const retry = lb.pick(new Set([`${first.host}:${first.port}||`]), keys[0]);
      expect(retry).not.toBe(first);
      expect(lb.pick()).toBeDefined();
    });
  });
});

describe('outlier ejection through the registry', () => {
  const NAME = 'outbound|80||od';
  const od = {
    consecutive5xx: 3, enforcing5xxPercent: 100, consecutiveGatewayFailure: 0, enforcingGatewayFailurePercent: 0,
    intervalMs: 500, baseEjectionTimeMs: 1000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50, alwaysEjectOne: false,
  };
  const cfg = buildConfig({ clusters: [cluster(NAME, { outlierDetection: od })], endpoints: { [NAME]: [b, c] } });
  const fail = (reg: ReturnType<typeof createBalancers>, e: Endpoint, n: number) => {
    for (let i = 0; i < n; i++) {
      const lb = reg.forCluster(cfg, NAME)!.balancer;
      lb.onStart(e);
      lb.onEnd(e, { ok: false, latencyMs: 1, status: 503 });
    }
  };

  it('ejects after consecutive 5xx, returns the endpoint after base × times ejected', () => {
    const clock = { t: 0 };
    const reg = createBalancers({ now: () => clock.t, random: () => 0 });
    fail(reg, c, 2);
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b, c]);
    fail(reg, c, 1);
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b]);
    clock.t += 900;
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b]);
    clock.t += 200;
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b, c]);
    // Second ejection in a row (at 1100 ms): twice as long, back on the first tick after 3100.
    fail(reg, c, 3);
    clock.t = 3200;
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b]);
    clock.t = 3600;
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b, c]);
    expect(reg.endpointState(NAME)).toMatchObject({ '10.0.0.3:80||': { ejected: false, timesEjected: 2 } });
  });

  it('never ejects past max_ejection_percent, and a success resets the count', () => {
    const reg = createBalancers({ now: () => 0, random: () => 0 });
    fail(reg, c, 3);
    fail(reg, b, 3); // 2 of 2 would be 100 % > 50 %
    expect(reg.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b]);
    const reg2 = createBalancers({ now: () => 0, random: () => 0 });
    fail(reg2, b, 2);
    const lb = reg2.forCluster(cfg, NAME)!.balancer;
    lb.onStart(b);
    lb.onEnd(b, { ok: true, latencyMs: 1, status: 200 });
    fail(reg2, b, 2);
    expect(reg2.forCluster(cfg, NAME)!.balancer.endpoints).toEqual([b, c]);
  });
});
