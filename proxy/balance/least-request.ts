// Least request by the power of two choices: draw two endpoints (weighted), send to the one
// with fewer requests in flight. With unequal weights, compares weight / (in-flight + 1), as
// Envoy's least-request does with an active-request bias of 1.
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer, weightOf } from './base.js';

export class LeastRequestBalancer extends BaseBalancer {
  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    if (this.endpoints.length <= 1) return this.endpoints[0];
    const [a, b] = this.drawTwo(avoid);
    const sa = weightOf(this.endpoints[a]!) / (this.slots[a]!.inflight + 1);
    const sb = weightOf(this.endpoints[b]!) / (this.slots[b]!.inflight + 1);
    return this.endpoints[sb > sa ? b : a];
  }
}
