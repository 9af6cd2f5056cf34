// Paces pushes across all streams: at most a budget of response bytes is being written at any
// time, so a change for a thousand proxies never holds a thousand encoded responses in memory at
// once. Streams over the budget wait their turn in order, and then send whatever is newest then
// (state of the world: a proxy that waited skips the versions it never needed).
export class PushPacer {
  private inFlight = 0;
  /** Flushes waiting for budget, in order; a stream waits at most once. */
  private readonly waiting = new Set<() => void>();

  constructor(private readonly budgetBytes: number) {}

  /** Runs `flush` now if the budget allows (and nobody waits before it), else when it does. */
  schedule(flush: () => void): void {
    if (this.waiting.size === 0 && this.inFlight < this.budgetBytes) flush();
    else this.waiting.add(flush);
  }

  /** Forgets a waiting flush (its stream closed). */
  cancel(flush: () => void): void {
    this.waiting.delete(flush);
  }

  /**
   * A write of `bytes` started. Returns its release, to call once it completed or its stream
   * closed (calling it again does nothing).
   */
  started(bytes: number): () => void {
    this.inFlight += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= bytes;
      this.drain();
    };
  }

  /** Bytes being written now (for tests and debugging). */
  get bytesInFlight(): number {
    return this.inFlight;
  }

  private drain(): void {
    for (const flush of this.waiting) {
      if (this.inFlight >= this.budgetBytes) return;
      this.waiting.delete(flush);
      flush();
    }
  }
}
