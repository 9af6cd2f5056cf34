// A connection's open streams by id: an open-addressing table (linear probing, backward-shift
// deletion) instead of a Map. A Map whose keys come and go on every request is rehashed over and
// over, and V8 links each retired backing store to its successor (for live iterators) without
// clearing its entries. Once one retired store is promoted to the old generation, every later
// one is reachable from it until the next full collection: each scavenge copies and then
// promotes the streams, exchanges and header fields of every request that passed through the
// connection (measured: 20–40 % of an h2c sidecar's young generation surviving, against ~0 %
// with this table). Here a slot is cleared when its stream leaves and the arrays are replaced
// only when the table grows.

/** Smallest capacity (a power of two); stream ids step by 2, so 64 slots hold 64 consecutive streams. */
const MIN_CAPACITY = 64;

export class StreamTable<T> {
  private ids: Int32Array;
  private entries: (T | undefined)[];
  private mask: number;
  private count = 0;

  constructor(capacity = MIN_CAPACITY) {
    let c = MIN_CAPACITY;
    while (c < capacity) c *= 2;
    this.ids = new Int32Array(c);
    this.entries = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Consecutive ids of one peer (odd, or even) land in consecutive slots. */
  private slot(id: number): number {
    return (id >>> 1) & this.mask;
  }

  get(id: number): T | undefined {
    const keys = this.ids;
    for (let i = this.slot(id); ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === id) return this.entries[i];
      if (k === 0) return undefined;
    }
  }

  /** `id` > 0 (stream 0 is the connection's and never stored). */
  set(id: number, value: T): void {
    if ((this.count + 1) * 2 > this.ids.length) this.grow();
    const keys = this.ids;
    for (let i = this.slot(id); ; i = (i + 1) & this.mask) {
      const k = keys[i]!;
      if (k === id) {
        this.entries[i] = value;
        return;
      }
      if (k === 0) {
        keys[i] = id;
        this.entries[i] = value;
        this.count++;
        return;
      }
    }
  }

  delete(id: number): boolean {
    const keys = this.ids;
    const entries = this.entries;
    const mask = this.mask;
    let i = this.slot(id);
    for (;;) {
      const k = keys[i]!;
      if (k === 0) return false;
      if (k === id) break;
      i = (i + 1) & mask;
    }
    // Backward shift: move later entries of the same probe run into the hole, so lookups never
    // need tombstones.
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const home = this.slot(keys[j]!);
      // Entry j may move to `hole` when its home is not within (hole, j] (cyclically).
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        keys[hole] = keys[j]!;
        entries[hole] = entries[j];
        hole = j;
      }
    }
    keys[hole] = 0;
    entries[hole] = undefined;
    this.count--;
    return true;
  }

  /** The values, in no particular order, as an array (safe to change the table while walking it). */
  values(): T[] {
    const out: T[] = [];
    const keys = this.ids;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) out.push(this.entries[i]!);
    return out;
  }

  private grow(): void {
    const oldKeys = this.ids;
    const oldValues = this.entries;
    const c = oldKeys.length * 2;
    this.ids = new Int32Array(c);
    this.entries = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) if (oldKeys[i] !== 0) this.set(oldKeys[i]!, oldValues[i]!);
  }
}
