// What every balancing policy shares: the endpoint keys and per-endpoint state looked up once
// at construction (so pick/onStart/onEnd allocate nothing), the in-flight and outcome
// bookkeeping, and a weighted random draw.
import type { Endpoint } from '../../api/domain.js';
import { ClusterState, type EndpointState } from './cluster-state.js';
import { endpointKey, type Balancer, type RequestOutcome } from './types.js';

export abstract class BaseBalancer implements Balancer {
  /** endpointKey of each endpoint, by index. */
  protected readonly keys: readonly string[];
  /** Shared state of each endpoint, by index. */
  protected readonly slots: readonly EndpointState[];
  /** Running sum of weights (each at least 1), by index, for weighted draws. */
  protected readonly cumulative: Float64Array;
  protected readonly totalWeight: number;
  private readonly slotOf: Map<Endpoint, EndpointState>;
  private readonly pair: [number, number] = [0, 0];

  constructor(
    readonly endpoints: readonly Endpoint[],
    protected readonly state: ClusterState = new ClusterState(),
    protected readonly random: () => number = Math.random,
  ) {
    this.keys = endpoints.map(endpointKey);
    this.slots = this.keys.map((k) => state.stateOf(k));
    this.slotOf = new Map(endpoints.map((e, i) => [e, this.slots[i]!]));
    this.cumulative = new Float64Array(endpoints.length);
    let sum = 0;
    endpoints.forEach((e, i) => (this.cumulative[i] = sum += weightOf(e)));
    this.totalWeight = sum;
  }

  abstract pick(avoid?: ReadonlySet<string>, hash?: number): Endpoint | undefined;

  onStart(e: Endpoint): void {
    this.slotFor(e).inflight++;
  }

  onEnd(e: Endpoint, outcome: RequestOutcome): void {
    const s = this.slotFor(e);
    if (s.inflight > 0) s.inflight--;
    this.state.observe(s, outcome);
  }

  private slotFor(e: Endpoint): EndpointState {
    return this.slotOf.get(e) ?? this.state.stateOf(endpointKey(e));
  }

  /** Whether endpoint `i` was already tried by this request. */
  protected avoided(i: number, avoid: ReadonlySet<string> | undefined): boolean {
    return avoid !== undefined && avoid.size > 0 && avoid.has(this.keys[i]!);
  }

  /** A weighted random index; redrawn a few times to skip endpoints in `avoid`. */
  protected draw(avoid?: ReadonlySet<string>): number {
    let idx = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      idx = this.indexAt(this.random() * this.totalWeight);
      if (!this.avoided(idx, avoid)) break;
    }
    return idx;
  }

  /** Two weighted draws, the second redrawn a few times to differ from the first. Returns the
   *  balancer's own tuple (read it at once): the hot path allocates nothing. */
  protected drawTwo(avoid?: ReadonlySet<string>): readonly [number, number] {
    const first = this.draw(avoid);
    let second = this.draw(avoid);
    for (let i = 0; second === first && i < 3; i++) second = this.draw(avoid);
    this.pair[0] = first;
    this.pair[1] = second;
    return this.pair;
  }

  /** The index whose cumulative weight range holds `r` (binary search). */
  private indexAt(r: number): number {
    let lo = 0;
    let hi = this.cumulative.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r < this.cumulative[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}

/** An endpoint's load-balancing weight (at least 1). */
export function weightOf(e: Endpoint): number {
  return Math.max(1, e.weight);
}
