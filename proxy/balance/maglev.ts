// Maglev consistent hashing (Envoy MAGLEV, after Google's Maglev paper): a lookup table of a
// prime size filled by each endpoint's own permutation of the slots, in turns weighted by the
// endpoint's weight. A request goes to table[hash mod size]: O(1), and a changed endpoint set
// moves few keys.
import type { Endpoint } from '../../api/domain.js';
import { BaseBalancer, weightOf } from './base.js';
import type { ClusterState } from './cluster-state.js';
import { hash32 } from './hash.js';

/** Envoy's default table size (a prime). */
export const MAGLEV_TABLE_SIZE = 65537;

export class MaglevBalancer extends BaseBalancer {
  private readonly table: Int32Array;

  constructor(endpoints: readonly Endpoint[], state?: ClusterState, random?: () => number, tableSize = MAGLEV_TABLE_SIZE) {
    super(endpoints, state, random);
    this.table = buildTable(endpoints, this.keys, tableSize);
  }

  pick(avoid?: ReadonlySet<string>, hash?: number): Endpoint | undefined {
    const n = this.endpoints.length;
    if (n <= 1) return this.endpoints[0];
    if (hash === undefined) return this.endpoints[this.draw(avoid)];
    const size = this.table.length;
    let at = hash % size;
    for (let i = 0; i < size && this.avoided(this.table[at]!, avoid); i++) at = (at + 1) % size;
    return this.endpoints[this.table[at]!];
  }
}

/** The Maglev table: slot → endpoint index. `size` must be prime. */
export function buildTable(endpoints: readonly Endpoint[], keys: readonly string[], size: number): Int32Array {
  const table = new Int32Array(size).fill(-1);
  const n = endpoints.length;
  if (n === 0) return table;
  const offset = keys.map((k) => hash32(k, 0x9e3779b9) % size);
  const skip = keys.map((k) => (hash32(k, 0x85ebca6b) % (size - 1)) + 1);
  const weights = endpoints.map(weightOf);
  const maxWeight = Math.max(...weights);
  const next = new Int32Array(n); // how far along its permutation each endpoint is
  const claimed = new Float64Array(n);
  let filled = 0;
  // Each round an endpoint earns weight/maxWeight of a turn; the heaviest claims every round,
  // so the table fills in at most `size` rounds.
  for (let round = 1; filled < size && round <= size; round++) {
    for (let i = 0; i < n && filled < size; i++) {
      if ((round * weights[i]!) / maxWeight < claimed[i]! + 1) continue;
      let slot: number;
      do {
        slot = (offset[i]! + next[i]! * skip[i]!) % size;
        next[i]!++;
      } while (table[slot] !== -1);
      table[slot] = i;
      claimed[i]!++;
      filled++;
    }
  }
  return table;
}
