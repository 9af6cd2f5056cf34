// Writes held to the end of the event-loop turn when they come in a burst. Under load, one turn
// of the event loop handles many events (requests and responses on many connections) and the
// fast path writes as it goes; a write to a peer that is asleep wakes it, which on a virtual
// machine costs a cross-CPU interrupt, and the peer, answering at once, often sleeps again
// before the next write reaches it. So once writes follow each other closely, each socket
// written is corked and they are all uncorked once the turn's I/O is handled (setImmediate
// runs right after the poll phase): they leave back to back and the peers wake once for many
// messages. A lone write (an idle proxy, a light load) goes out at once, with nothing added.
// Node keeps a corked socket's writes in order (later ones, node:http's after a hand-off,
// end()), so only the timing of the bytes changes, by the rest of the turn.
import type { Duplex } from 'node:stream';

/**
 * Writes closer together than this (ms) are a burst: from the second one on, every write of the
 * turn is held. Within a busy turn the writes are 2-6 µs apart (a read and some JavaScript per
 * event, measured on the bench machine); an answer to our own previous write comes back after
 * a wake-up of the peer and of this process, 20 µs or more as a rule, and is written at once.
 */
const BURST_MS = 0.01;

/** Sockets corked by holdUntilTurnEnd, uncorked at the end of the turn. */
const held: Duplex[] = [];
let releasing = false;
/** performance.now() of the last write seen (or of the last release). */
let lastWrite = -Infinity;

function releaseAll(): void {
  releasing = false;
  // A socket held again while releasing (a write from inside a flush) is released in this loop.
  for (let i = 0; i < held.length; i++) held[i]!.uncork();
  held.length = 0;
  // The next turn follows at once under load: its writes count as the same burst.
  lastWrite = performance.now();
}

/**
 * Call before each write to `socket`: a write that comes in a burst (and every later one to the
 * same socket in this turn) waits in the socket, in order, until the end of the turn; a lone
 * one is not delayed. A socket already corked (held, or by someone else) is left as it is.
 */
export function holdUntilTurnEnd(socket: Duplex): void {
  if (socket.writableCorked > 0) return;
  const now = performance.now();
  const burst = releasing || now - lastWrite < BURST_MS;
  lastWrite = now;
  if (!burst) return;
  socket.cork();
  held.push(socket);
  if (!releasing) {
    releasing = true;
    setImmediate(releaseAll);
  }
}

/** Sends what `socket` holds now (before it is destroyed, so a reset comes after the bytes
 *  written before it, as when writes were not held). */
export function releaseNow(socket: Duplex): void {
  while (socket.writableCorked > 0) socket.uncork();
}
