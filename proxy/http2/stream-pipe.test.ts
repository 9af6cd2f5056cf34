// StreamPipe (stream.ts): body bytes between two streams and the credit that goes back to their
// sender: at once when the other stream took them, at its onWritable when it was full, dropped
// and credited when it can take no more. The streams are stand-ins that record what happens.
import { describe, expect, it } from 'vitest';
import { StreamPipe, type H2Stream } from './stream.js';

class FakeStream {
  written: string[] = [];
  credited = 0;
  full = false;
  closed = false;
  localEnded = false;
  constructor(readonly name: string) {}
  writeFrom(buf: Buffer, start: number, end: number): boolean {
    this.written.push(buf.toString('latin1', start, end));
    return !this.full;
  }
  consumed(n: number): void {
    this.credited += n;
  }
}

const pair = () => {
  const a = new FakeStream('client');
  const b = new FakeStream('upstream');
  return { a, b, pipe: new StreamPipe(a as unknown as H2Stream, b as unknown as H2Stream) };
};
const as = (s: FakeStream) => s as unknown as H2Stream;

describe('StreamPipe', () => {
  it('relays both ways and credits the sender at once when the other side took the bytes', () => {
    const { a, b, pipe } = pair();
    pipe.relay(as(a), Buffer.from('xxhello'), 2, 7);
    pipe.relay(as(b), Buffer.from('world'), 0, 5);
    expect([b.written, a.written]).toEqual([['hello'], ['world']]);
    expect([a.credited, b.credited]).toEqual([5, 5]);
  });

  it('holds the credit while the other side is full, and gives it back at its onWritable', () => {
    const { a, b, pipe } = pair();
    b.full = true;
    pipe.relay(as(a), Buffer.from('abc'), 0, 3);
    pipe.relay(as(a), Buffer.from('de'), 0, 2);
    expect(a.credited).toBe(0);
    pipe.writable(as(a)); // the other direction drained: nothing of a's is released
    expect(a.credited).toBe(0);
    pipe.writable(as(b));
    expect(a.credited).toBe(5);
    pipe.writable(as(b)); // once
    expect(a.credited).toBe(5);
  });

  it('credits and drops what the other side can no longer take (gone, ended, not there yet)', () => {
    const { a, b, pipe } = pair();
    b.localEnded = true;
    pipe.relay(as(a), Buffer.from('abc'), 0, 3);
    b.localEnded = false;
    b.closed = true;
    pipe.relay(as(a), Buffer.from('de'), 0, 2);
    expect([b.written, a.credited]).toEqual([[], 5]);
    const half = new StreamPipe(as(a), undefined);
    half.relay(as(a), Buffer.from('f'), 0, 1);
    expect(a.credited).toBe(6);
  });
});
