// Weighted random choice (LbPolicy RANDOM).
import type { Endpoint } from '../../api/domain.js';
import { InflightCounts } from './inflight.js';
import { endpointKey, type Balancer, type RequestOutcome } from './types.js';

export class RandomBalancer implements Balancer {
  private readonly cumulative: number[];
  private readonly total: number;

  constructor(
    readonly endpoints: readonly Endpoint[],
    private readonly inflight: InflightCounts = new InflightCounts(),
    private readonly random: () => number = Math.random,
  ) {
    let sum = 0;
    this.cumulative = endpoints.map((e) => (sum += Math.max(1, e.weight)));
    this.total = sum;
  }

  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    if (this.endpoints.length <= 1) return this.endpoints[0];
    let idx = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      const r = this.random() * this.total;
      idx = this.cumulative.findIndex((c) => r < c);
      if (idx < 0) idx = this.endpoints.length - 1;
      if (!avoid || !avoid.has(endpointKey(this.endpoints[idx]!))) break;
    }
    return this.endpoints[idx];
  }

  onStart(e: Endpoint): void {
    this.inflight.inc(e);
  }

  onEnd(e: Endpoint, _outcome: RequestOutcome): void {
    this.inflight.dec(e);
  }
}
