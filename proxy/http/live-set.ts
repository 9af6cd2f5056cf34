// The connections a listener holds, which come and go all the time: an array with swap-remove,
// each member keeping its own index. Not a Set: a Set whose members churn is rehashed over and
// over, and V8 links each retired backing store to the next without clearing it, so once one is
// promoted every later member (a connection, its socket, its request) outlives scavenges until a
// full collection (proxy/http2/stream-table.ts has the measurements). Measured here with wrk and
// `Connection: close` through one sidecar (`node --trace-gc-nvp`): 16 % of the young generation
// surviving each scavenge with Sets, 8 % with this.

/** A member: its index in the one LiveSet it may belong to (-1: in none). */
export interface Slotted {
  liveSlot: number;
}

export class LiveSet<T extends Slotted> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  add(x: T): void {
    if (x.liveSlot >= 0) return;
    x.liveSlot = this.items.length;
    this.items.push(x);
  }

  delete(x: T): boolean {
    const i = x.liveSlot;
    if (i < 0 || this.items[i] !== x) return false;
    // pop() clears the vacated slot; the last member moves into the hole.
    const last = this.items.pop()!;
    if (last !== x) {
      this.items[i] = last;
      last.liveSlot = i;
    }
    x.liveSlot = -1;
    return true;
  }

  /** The members now, as a copy (safe to add or delete while walking it). */
  values(): T[] {
    return this.items.slice();
  }
}
