// Consistent hashing on a ring (Envoy RING_HASH, Ketama-style): every endpoint owns points on a
// 32-bit ring in proportion to its weight; a request goes to the first point at or after its
// hash. Removing an endpoint moves only the keys that were on it.
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer, weightOf } from './base.js';
import type { ClusterState } from './cluster-state.js';
import { hash32 } from './hash.js';

export interface RingSize {
  readonly minRingSize: number;
  readonly maxRingSize: number;
}

export const DEFAULT_RING: RingSize = { minRingSize: 1024, maxRingSize: 1 << 16 };

export class RingHashBalancer extends BaseBalancer {
  /** Ring point hashes, ascending. */
  private readonly points: Uint32Array;
  /** The endpoint index owning each point. */
  private readonly owners: Int32Array;

  constructor(endpoints: readonly Endpoint[], state?: ClusterState, random?: () => number, size: RingSize = DEFAULT_RING) {
    super(endpoints, state, random);
    const ring = buildRing(endpoints, this.keys, size);
    this.points = ring.points;
    this.owners = ring.owners;
  }

  pick(avoid?: ReadonlySet<string>, hash?: number): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n <= 1) return this.endpoints[0];
    if (hash === undefined) return this.endpoints[this.draw(avoid)];
    // First point at or after the hash, wrapping around.
    let lo = 0;
    let hi = this.points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    let at = lo === this.points.length ? 0 : lo;
    // A retry walks on to the next endpoint along the ring (bounded by the ring's length).
    for (let i = 0; i < this.points.length && this.avoided(this.owners[at]!, avoid); i++) at = (at + 1) % this.points.length;
    return this.endpoints[this.owners[at]!];
  }
}

/**
 * Points per endpoint ∝ weight: minRingSize / 8 points per unit of weight (128 by default),
 * fewer only when the ring would pass maxRingSize. An endpoint's points do not depend on how
 * many others there are, so keys on endpoints that stay never move when one joins or leaves.
 */
export function buildRing(endpoints: readonly Endpoint[], keys: readonly string[], size: RingSize): { points: Uint32Array; owners: Int32Array } {
  const total = endpoints.reduce((s, e) => s + weightOf(e), 0);
  const perWeight = Math.max(1, Math.min(Math.ceil(size.minRingSize / 8), Math.floor(size.maxRingSize / Math.max(1, total))));
  const entries: { hash: number; owner: number }[] = [];
  endpoints.forEach((e, owner) => {
    const count = perWeight * weightOf(e);
    for (let i = 0; i < count; i++) entries.push({ hash: hash32(`${keys[owner]}_${i}`), owner });
  });
  // Ties (vanishingly rare) broken by owner so every proxy builds the same ring.
  entries.sort((a, b) => a.hash - b.hash || a.owner - b.owner);
  return { points: Uint32Array.from(entries, (e) => e.hash), owners: Int32Array.from(entries, (e) => e.owner) };
}
