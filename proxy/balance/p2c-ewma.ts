// Power of two choices over peak-EWMA latency (Linkerd's default balancer, Weft's default for
// HTTP): draw two endpoints (weighted), send to the cheaper one, where
// cost = latency estimate × (requests in flight + 1) / weight. A slow endpoint's estimate jumps
// up at once and decays back over ~10 s, so it keeps getting the odd probe request.
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer, weightOf } from './base.js';

/** Floor of the latency estimate, so a fully decayed estimate still orders by load. */
const MIN_ESTIMATE_MS = 0.01;

export class P2cEwmaBalancer extends BaseBalancer {
  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    if (this.endpoints.length <= 1) return this.endpoints[0];
    const [a, b] = this.drawTwo(avoid);
    if (a === b) return this.endpoints[a];
    const now = this.state.now();
    return this.endpoints[this.cost(b, now) < this.cost(a, now) ? b : a];
  }

  /** Cost of sending one more request to endpoint `i` at `now`. */
  cost(i: number, now: number): number {
    const s = this.slots[i]!;
    return (Math.max(MIN_ESTIMATE_MS, s.rtt.estimate(now)) * (s.inflight + 1)) / weightOf(this.endpoints[i]!);
  }
}
