// Weighted random choice (LbPolicy RANDOM).
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer } from './base.js';

export class RandomBalancer extends BaseBalancer {
  pick(avoid?: ReadonlySet<string>): Endpoint | undefined {
    if (this.endpoints.length <= 1) return this.endpoints[0];
    return this.endpoints[this.draw(avoid)];
  }
}
