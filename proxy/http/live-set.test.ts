// LiveSet: membership, swap-remove keeping every member findable, and walking a copy.
import { describe, expect, it } from 'vitest';
import { LiveSet, type Slotted } from './live-set.js';

const member = (name: string): Slotted & { name: string } => ({ name, liveSlot: -1 });

describe('LiveSet', () => {
  it('adds once, deletes from anywhere, and keeps the others', () => {
    const set = new LiveSet<ReturnType<typeof member>>();
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(member) as [ReturnType<typeof member>, ReturnType<typeof member>, ReturnType<typeof member>, ReturnType<typeof member>];
    for (const m of [a, b, c, d, a]) set.add(m);
    expect(set.size).toBe(4);
    expect(set.delete(b)).toBe(true); // d moves into b's place
    expect(set.delete(b)).toBe(false);
    expect(set.delete(d)).toBe(true);
    expect(set.values().map((m) => m.name).sort()).toEqual(['a', 'c']);
    expect([a, b, c, d].map((m) => m.liveSlot >= 0)).toEqual([true, false, true, false]);
    set.add(b);
    expect(set.values().map((m) => m.name).sort()).toEqual(['a', 'b', 'c']);
  });

  it('refuses a member of another set, and can be emptied while walking it', () => {
    const one = new LiveSet<ReturnType<typeof member>>();
    const other = new LiveSet<ReturnType<typeof member>>();
    const a = member('a');
    const b = member('b');
    one.add(a);
    one.add(b);
    expect(other.delete(a)).toBe(false);
    expect(one.size).toBe(2);
    for (const m of one.values()) one.delete(m);
    expect(one.size).toBe(0);
    expect(one.values()).toEqual([]);
  });
});
