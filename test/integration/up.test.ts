// `weft up` through the real CLI, as `npm start` runs it: the canary example comes up, the split
// follows an edit of the HTTPRoute with no failed request, and SIGINT leaves no process behind.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { freePort } from '../support/ports.js';
import { alive, descendants } from '../support/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/cli/main.js');


describe('weft up (the npm start path)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-up-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the canary example, follows a route edit without errors, and stops cleanly on SIGINT', async () => {
    const config = path.join(dir, 'canary');
    cpSync(path.join(ROOT, 'examples/canary'), config, { recursive: true });
    // The example's fixed app ports, moved to free ones so the test never collides.
    const workloads = path.join(config, 'workloads.yaml');
    const [p1, p2] = [await freePort(), await freePort()];
    writeFileSync(workloads, readFileSync(workloads, 'utf8').replaceAll('19081', String(p1)).replaceAll('19082', String(p2)));

    const up = spawn(process.execPath, [CLI, 'up', config, '--no-view', '--state-dir', path.join(dir, 'state')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    up.stdout.setEncoding('utf8').on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
    up.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));

    try {
      await eventually(() => expect(lines.some((l) => l.includes('weights[reviews-v1:90 reviews-v2:10]') && / 0 err\/s/.test(l))).toBe(true), {
        timeoutMs: 30_000,
        message: `the canary split shows (stdout: ${lines.slice(-3).join(' | ')} stderr: ${stderr})`,
      });
      // From steady state on, through the edit, no request may fail.
      const steady = lines.findIndex((l) => l.includes('weights[reviews-v1:90 reviews-v2:10]') && / 0 err\/s/.test(l));
      const kids = descendants(up.pid!);
      expect(kids.length).toBeGreaterThanOrEqual(6); // three sidecars, three workloads

      const route = path.join(config, 'route.yaml');
      writeFileSync(route, readFileSync(route, 'utf8').replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));
      const edited = lines.length;
      await eventually(() => expect(lines.slice(edited).some((l) => l.includes('weights[reviews-v1:50 reviews-v2:50]'))).toBe(true), {
        timeoutMs: 10_000,
      });
      // Over the following seconds v2 takes far more than its old 10 % share.
      await eventually(() => {
        const after = lines.slice(edited).filter((l) => l.includes('weights[reviews-v1:50 reviews-v2:50]'));
        const sums = after.map((l) => /v1=(\d+) v2=(\d+)/.exec(l)).filter(Boolean).map((m) => [Number(m![1]), Number(m![2])] as const);
        const v1 = sums.reduce((a, [x]) => a + x, 0);
        const v2 = sums.reduce((a, [, y]) => a + y, 0);
        expect(v1 + v2).toBeGreaterThan(100);
        expect(v2 / (v1 + v2)).toBeGreaterThan(0.35);
      }, { timeoutMs: 15_000 });
      const errors = lines.slice(steady).filter((l) => !/ 0 err\/s/.test(l) && /err\/s/.test(l));
      expect(errors).toEqual([]);

      up.kill('SIGINT');
      expect(await exited).toBe(0);
      await eventually(() => expect(kids.filter(alive)).toEqual([]), { timeoutMs: 5_000, message: 'no orphan process' });
      expect(lines.at(-1)).toBe('stopped.');
    } finally {
      if (up.exitCode === null) up.kill('SIGKILL');
    }
  });
});
