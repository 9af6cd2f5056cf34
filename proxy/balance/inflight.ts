// In-flight request counts per endpoint of one cluster, kept across balancer rebuilds so a new
// endpoint set does not forget the load already on the endpoints that stayed.
import type { Endpoint } from '../../api/domain.js';
import { endpointKey } from './types.js';

export class InflightCounts {
  private readonly counts = new Map<string, number>();

  get(e: Endpoint): number {
    return this.counts.get(endpointKey(e)) ?? 0;
  }

  inc(e: Endpoint): void {
    const k = endpointKey(e);
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  dec(e: Endpoint): void {
    const k = endpointKey(e);
    const n = (this.counts.get(k) ?? 0) - 1;
    if (n <= 0) this.counts.delete(k);
    else this.counts.set(k, n);
  }
}
