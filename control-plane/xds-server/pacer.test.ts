// The push pacer: pushes run at once while the budget allows, wait in order once it is spent,
// run as writes complete, and a stream waits at most once however often it is scheduled.
import { describe, expect, it } from 'vitest';
import { PushPacer } from './pacer.js';

describe('PushPacer', () => {
  it('runs pushes at once within the budget, then in order as writes complete', () => {
    const pacer = new PushPacer(100);
    const ran: string[] = [];
    const releases: Array<() => void> = [];
    const push = (name: string, bytes: number) => () => {
      ran.push(name);
      releases.push(pacer.started(bytes));
    };
    const a = push('a', 60);
    const b = push('b', 60);
    const c = push('c', 10);
    pacer.schedule(a);
    pacer.schedule(b); // 60 < 100: still within the budget
    pacer.schedule(c); // 120 in flight: waits
    pacer.schedule(c); // already waiting: not twice
    expect(ran).toEqual(['a', 'b']);
    expect(pacer.bytesInFlight).toBe(120);

    releases[0]!();
    expect(ran).toEqual(['a', 'b', 'c']);
    releases[0]!(); // a second release of the same write changes nothing
    expect(pacer.bytesInFlight).toBe(70);
    releases[1]!();
    releases[2]!();
    expect(pacer.bytesInFlight).toBe(0);
  });

  it('runs the pushes that waited before a newcomer', () => {
    const pacer = new PushPacer(10);
    const ran: string[] = [];
    let release = () => {};
    pacer.schedule(() => {
      ran.push('first');
      release = pacer.started(10);
    });
    pacer.schedule(() => ran.push('waiting'));
    release();
    pacer.schedule(() => ran.push('newcomer'));
    expect(ran).toEqual(['first', 'waiting', 'newcomer']);
  });

  it('forgets a cancelled push', () => {
    const pacer = new PushPacer(1);
    const release = pacer.started(1);
    const ran: string[] = [];
    const gone = () => ran.push('gone');
    pacer.schedule(gone);
    pacer.cancel(gone);
    release();
    expect(ran).toEqual([]);
  });
});
