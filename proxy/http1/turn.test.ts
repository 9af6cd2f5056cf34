// Writes held to the end of the turn: a lone write goes out at once, a burst waits for the end
// of the turn and leaves in order, and nothing is lost when the socket is ended or reset.
import { Duplex } from 'node:stream';
import { setImmediate as turnEnd } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { holdUntilTurnEnd, releaseNow } from './turn.js';

// The clock turn.ts reads, set by each test: writes at the same instant are a burst.
let clock = 1_000;
vi.spyOn(performance, 'now').mockImplementation(() => clock);
afterEach(() => {
  clock += 1_000;
});

/** A socket stand-in that records what reaches its `_write`/`_writev` (what the kernel would get). */
function recorder(): { socket: Duplex; flushes: string[] } {
  const flushes: string[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      flushes.push(chunk.toString());
      cb();
    },
    writev(chunks, cb) {
      flushes.push(chunks.map((c) => (c.chunk as Buffer).toString()).join(''));
      cb();
    },
  });
  return { socket, flushes };
}

/** Lets the last write be long ago, so the next one is a lone write. */
async function quiet(): Promise<void> {
  await turnEnd();
  clock += 1_000;
}

describe('holdUntilTurnEnd', () => {
  it('sends a lone write at once, and one that follows the last after a while', async () => {
    await quiet();
    const { socket, flushes } = recorder();
    holdUntilTurnEnd(socket);
    socket.write('alone');
    expect(socket.writableCorked).toBe(0);
    clock += 0.5; // an answer to that write, half a millisecond later
    holdUntilTurnEnd(socket);
    socket.write('later');
    expect(flushes).toEqual(['alone', 'later']);
  });

  it('holds a burst to the end of the turn: each socket’s writes leave in order, as one write', async () => {
    await quiet();
    const a = recorder();
    const b = recorder();
    holdUntilTurnEnd(a.socket);
    a.socket.write('first'); // lone: out at once
    holdUntilTurnEnd(b.socket);
    b.socket.write('b1');
    holdUntilTurnEnd(a.socket);
    a.socket.write('a2');
    holdUntilTurnEnd(b.socket);
    b.socket.write('b2');
    expect(a.flushes).toEqual(['first']);
    expect(b.flushes).toEqual([]);
    await turnEnd();
    expect(a.flushes).toEqual(['first', 'a2']);
    expect(b.flushes).toEqual(['b1b2']);
    expect(a.socket.writableCorked + b.socket.writableCorked).toBe(0);
  });

  it('loses nothing held when the socket is ended, or released before a reset', async () => {
    await quiet();
    const lone = recorder();
    holdUntilTurnEnd(lone.socket);
    lone.socket.write('x');
    const ended = recorder();
    holdUntilTurnEnd(ended.socket);
    ended.socket.write('last words');
    ended.socket.end();
    expect(ended.flushes).toEqual(['last words']);
    const reset = recorder();
    holdUntilTurnEnd(reset.socket);
    reset.socket.write('before the reset');
    releaseNow(reset.socket);
    expect(reset.flushes).toEqual(['before the reset']);
    reset.socket.destroy();
    await turnEnd(); // the turn's release finds nothing left to do
    expect(ended.flushes).toEqual(['last words']);
    expect(reset.flushes).toEqual(['before the reset']);
  });

  it('leaves a socket corked by someone else to them', async () => {
    await quiet();
    const first = recorder();
    holdUntilTurnEnd(first.socket);
    first.socket.write('lone');
    const { socket, flushes } = recorder();
    socket.cork();
    holdUntilTurnEnd(socket);
    socket.write('theirs');
    expect(socket.writableCorked).toBe(1);
    socket.uncork();
    expect(flushes).toEqual(['theirs']);
  });
});
