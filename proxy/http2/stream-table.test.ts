// StreamTable against a Map as the model: random opens and closes in the patterns a connection
// sees (consecutive odd ids, long-lived streams among short ones, a burst that makes it grow).
import { describe, expect, it } from 'vitest';
import { StreamTable } from './stream-table.js';

/** A small deterministic PRNG (xorshift32), so a failure replays. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

function expectSame(table: StreamTable<string>, model: Map<number, string>, probe: readonly number[]): void {
  expect(table.size).toBe(model.size);
  for (const id of probe) expect(table.get(id)).toBe(model.get(id));
  expect(table.values().sort()).toEqual([...model.values()].sort());
}

describe('StreamTable', () => {
  it('gets, replaces and deletes what was set', () => {
    const t = new StreamTable<string>();
    t.set(1, 'a');
    t.set(3, 'b');
    expect(t.get(1)).toBe('a');
    expect(t.get(5)).toBeUndefined();
    t.set(1, 'c');
    expect(t.size).toBe(2);
    expect(t.get(1)).toBe('c');
    expect(t.delete(1)).toBe(true);
    expect(t.delete(1)).toBe(false);
    expect(t.get(1)).toBeUndefined();
    expect(t.get(3)).toBe('b');
    expect(t.size).toBe(1);
  });

  it('keeps finding entries whose probe run wraps past the end and loses one in the middle', () => {
    // Capacity 64, slot = (id >>> 1) & 63: ids 127, 255 and 383 all want slot 63, so they sit
    // in 63, 0 and 1; 129 wants slot 0 and is pushed to 2.
    const t = new StreamTable<string>();
    for (const id of [127, 255, 383, 129]) t.set(id, `s${id}`);
    expect(t.delete(255)).toBe(true);
    expect([127, 383, 129].map((id) => t.get(id))).toEqual(['s127', 's383', 's129']);
    expect(t.delete(127)).toBe(true);
    expect([383, 129].map((id) => t.get(id))).toEqual(['s383', 's129']);
    expect(t.size).toBe(2);
  });

  it('matches a Map over a connection-like workload, growing under a burst', () => {
    for (const seed of [1, 7, 42, 1234]) {
      const random = rng(seed);
      const t = new StreamTable<string>();
      const model = new Map<number, string>();
      let next = 1;
      const probe: number[] = [];
      for (let step = 0; step < 20_000; step++) {
        const open = [...model.keys()];
        // Mostly short streams; a burst of opens between steps 5,000 and 6,000 (the table grows).
        const opening = open.length === 0 || (step >= 5000 && step < 6000) || random() < 0.5;
        if (opening) {
          const id = next;
          next += 2;
          t.set(id, `s${id}`);
          model.set(id, `s${id}`);
          probe.push(id);
        } else {
          // Close the oldest most of the time; now and then a random one (a long-lived stream
          // stays while later ids wrap around the table).
          const victim = random() < 0.8 ? open[0]! : open[Math.floor(random() * open.length)]!;
          expect(t.delete(victim)).toBe(true);
          model.delete(victim);
        }
        if (step % 997 === 0) expectSame(t, model, probe.slice(-300));
      }
      expectSame(t, model, probe.slice(-2000));
    }
  });
});
