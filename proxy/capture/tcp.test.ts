// The TCP relay's close: an ended side that still holds bytes gets time to flush them, and no
// longer than it needs (a timer left running would keep the whole dead connection alive).
import { Duplex } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { NOTHING_READ, relay, TcpStreams } from './tcp.js';

const ticks = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => process.nextTick(r));
};

/** A side whose writes complete only when the test says so. */
function slowSide(): { side: Duplex; flush: () => void } {
  const pending: Array<() => void> = [];
  const side = new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      pending.push(cb);
    },
  });
  return { side, flush: () => pending.splice(0).forEach((cb) => cb()) };
}

afterEach(() => {
  vi.useRealTimers();
});

/**
 * A relay whose client sent its last bytes and FIN, then closed while the upstream (a slow side)
 * still held them unwritten: the case where the relay's close waits for a flush. Fake timers.
 */
async function closedWhileFlushing(): Promise<{ side: Duplex; flush: () => void }> {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
  const client = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
  const upstream = slowSide();
  relay(client, upstream.side, NOTHING_READ);
  client.push('last bytes');
  client.push(null);
  await ticks();
  expect(upstream.side.writableEnded).toBe(true);
  expect(upstream.side.writableFinished).toBe(false);
  client.destroy();
  await ticks();
  return upstream;
}

describe('relay', () => {
  it('lets an ended side flush after the other closes, then closes it and drops its timer', async () => {
    const upstream = await closedWhileFlushing();
    expect(upstream.side.destroyed).toBe(false);
    expect(vi.getTimerCount()).toBe(1);
    upstream.flush();
    await ticks();
    expect(upstream.side.destroyed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('gives a side that never flushes five seconds', async () => {
    const upstream = await closedWhileFlushing();
    vi.advanceTimersByTime(4_999);
    expect(upstream.side.destroyed).toBe(false);
    vi.advanceTimersByTime(1);
    expect(upstream.side.destroyed).toBe(true);
  });
});

describe('TcpStreams', () => {
  it('tracks open relays until they close, and drain cuts what is left', async () => {
    const streams = new TcpStreams();
    const a = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    const b = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    streams.add(a);
    streams.add(b);
    expect(streams.size).toBe(2);
    a.destroy();
    await ticks();
    expect(streams.size).toBe(1);
    await streams.drain(0);
    expect(b.destroyed).toBe(true);
    expect(streams.size).toBe(0);
    const late = new Duplex({ read() {}, write: (_c, _e, cb) => cb() });
    streams.add(late);
    expect(late.destroyed).toBe(true);
  });
});
