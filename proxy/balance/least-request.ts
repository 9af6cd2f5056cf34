// Least request by the power of two choices: draw two endpoints (weighted), send to the one
// with fewer requests in flight. With unequal weights, compares weight / (in-flight + 1), as
// Envoy's least-request does with an active-request bias of 1.
import type { Endpoint } from '../../api/domain.js';
import { InflightCounts } from './inflight.js';
import { endpointKey, type Balancer, type RequestOutcome } from './types.js';

export class LeastRequestBalancer implements Balancer {
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
    const n = this.endpoints.length;
    if (n <= 1) return this.endpoints[0];
    const a = this.draw(avoid);
    let b = this.draw(avoid);
    for (let i = 0; b === a && i < 3; i++) b = this.draw(avoid);
    const ea = this.endpoints[a]!;
    const eb = this.endpoints[b]!;
    const sa = Math.max(1, ea.weight) / (this.inflight.get(ea) + 1);
    const sb = Math.max(1, eb.weight) / (this.inflight.get(eb) + 1);
    return sb > sa ? eb : ea;
  }

  /** A weighted random index; redrawn a few times to skip endpoints in `avoid`. */
  private draw(avoid?: ReadonlySet<string>): number {
    let idx = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      const r = this.random() * this.total;
      idx = this.cumulative.findIndex((c) => r < c);
      if (idx < 0) idx = this.endpoints.length - 1;
      if (!avoid || !avoid.has(endpointKey(this.endpoints[idx]!))) break;
    }
    return idx;
  }

  onStart(e: Endpoint): void {
    this.inflight.inc(e);
  }

  onEnd(e: Endpoint, _outcome: RequestOutcome): void {
    this.inflight.dec(e);
  }
}
