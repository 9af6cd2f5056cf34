// Weighted round robin, "smooth" variant (as in nginx): with weights 5,1,1 it yields
// a a b a c a a rather than a a a a a b c, so a heavy endpoint never gets a burst.
import type { Endpoint } from '../../api/domain.js';
import { InflightCounts } from './inflight.js';
import { endpointKey, type Balancer, type RequestOutcome } from './types.js';

export class RoundRobinBalancer implements Balancer {
  private readonly current: number[];
  private readonly weights: number[];
  private readonly total: number;

  constructor(
    readonly endpoints: readonly Endpoint[],
    private readonly inflight: InflightCounts = new InflightCounts(),
  ) {
    this.weights = endpoints.map((e) => Math.max(1, e.weight));
    this.total = this.weights.reduce((a, b) => a + b, 0);
    this.current = endpoints.map(() => 0);
  }

  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n === 0) return undefined;
    // Retries: step the sequence until an endpoint not tried yet comes up (at most n steps).
    let chosen = this.step();
    for (let i = 1; avoid && avoid.size > 0 && i < n && avoid.has(endpointKey(this.endpoints[chosen]!)); i++) chosen = this.step();
    return this.endpoints[chosen];
  }

  private step(): number {
    let best = 0;
    for (let i = 0; i < this.current.length; i++) {
      this.current[i]! += this.weights[i]!;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.total;
    return best;
  }

  onStart(e: Endpoint): void {
    this.inflight.inc(e);
  }

  onEnd(e: Endpoint, _outcome: RequestOutcome): void {
    this.inflight.dec(e);
  }
}
