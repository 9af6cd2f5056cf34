// stopOnce: the stop of a composition root runs once, however many ask, and tells everyone.
import { describe, expect, it } from 'vitest';
import { stopOnce } from './drain.js';

describe('stopOnce', () => {
  it('runs the stop once for every caller and resolves stopped() when it is done', async () => {
    let runs = 0;
    let finish!: () => void;
    const s = stopOnce(() => {
      runs++;
      return new Promise<void>((r) => (finish = r));
    });
    let stoppedSeen = false;
    void s.stopped().then(() => (stoppedSeen = true));
    expect(s.stopping).toBe(false);
    const a = s.stop();
    const b = s.stop();
    expect(s.stopping).toBe(true);
    expect(runs).toBe(1);
    await Promise.resolve();
    expect(stoppedSeen).toBe(false);
    finish();
    await Promise.all([a, b, s.stopped()]);
    expect(stoppedSeen).toBe(true);
  });
});
