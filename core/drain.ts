// Drain: counts in-flight work so a component can stop accepting and wait for what it holds.

export class Drain {
  private inflight = 0;
  private draining = false;
  private waiters: Array<() => void> = [];

  get isDraining(): boolean {
    return this.draining;
  }

  get active(): number {
    return this.inflight;
  }

  /** Marks one unit of work; call the returned function exactly once when it ends. */
  hold(): () => void {
    this.inflight++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inflight--;
      if (this.inflight === 0) for (const w of this.waiters.splice(0)) w();
    };
  }

  /** Starts draining; resolves when nothing is in flight or after `timeoutMs`, whichever first. */
  async start(timeoutMs: number): Promise<boolean> {
    this.draining = true;
    if (this.inflight === 0) return true;
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve(true);
      });
    });
  }
}

/**
 * A composition root's stop: `run` happens once however many ask (a signal, POST /drain, a
 * test); `stopped` resolves when it has finished, for whoever did not ask.
 */
export function stopOnce(run: () => Promise<void>): { stop(): Promise<void>; stopped(): Promise<void>; readonly stopping: boolean } {
  let running: Promise<void> | undefined;
  let markStopped: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (markStopped = resolve));
  return {
    stop: () => (running ??= run().then(markStopped)),
    stopped: () => stopped,
    get stopping() {
      return running !== undefined;
    },
  };
}
