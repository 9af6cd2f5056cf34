// Weighted round robin, "smooth" variant (as in nginx): with weights 5,1,1 it yields
// a a b a c a a rather than a a a a a b c, so a heavy endpoint never gets a burst.
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer, weightOf } from './base.js';
import type { ClusterState } from './cluster-state.js';

export class RoundRobinBalancer extends BaseBalancer {
  private readonly current: Float64Array;
  private readonly weights: Float64Array;

  constructor(endpoints: readonly Endpoint[], state?: ClusterState) {
    super(endpoints, state);
    this.weights = Float64Array.from(endpoints, weightOf);
    this.current = new Float64Array(endpoints.length);
  }

  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    // Retries: step the sequence until an endpoint not tried yet comes up (at most n steps).
    let chosen = this.step();
    for (let i = 1; i < n && this.avoided(chosen, avoid); i++) chosen = this.step();
    return this.endpoints[chosen];
  }

  private step(): number {
    let best = 0;
    for (let i = 0; i < this.current.length; i++) {
      this.current[i]! += this.weights[i]!;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.totalWeight;
    return best;
  }
}
