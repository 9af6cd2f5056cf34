// Sidecars remembered across a control-plane restart: saved as they connect and leave (in one
// debounced write for a burst), served as endpoints for the grace period after a restart, not
// forgotten when the control plane itself shuts down.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../core/log.js';
import { eventually } from '../test/support/eventually.js';
import { SidecarMemory } from './sidecar-memory.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('SidecarMemory', () => {
  it('remembers connected sidecars for the grace period after a restart', () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weft-sidecars-'));
    dirs.push(stateDir);
    const log = createLogger('test');
    let now = 0;
    const first = new SidecarMemory({ stateDir, log, now: () => now, graceMs: 1000 });
    first.connected('a.default', 15006);
    first.connected('b.default', 15007);
    first.disconnected('b.default');
    // Shutdown closes every stream: that must not erase what we know.
    first.freeze();
    first.disconnected('a.default');

    const second = new SidecarMemory({ stateDir, log, now: () => now, graceMs: 1000 });
    expect(second.graceDeadline).toBe(1000);
    expect(second.inboundPort('a.default')).toBe(15006);
    expect(second.inboundPort('b.default')).toBeUndefined();
    now = 1000;
    expect(second.inboundPort('a.default')).toBeUndefined();
    second.connected('a.default', 16000);
    expect(second.inboundPort('a.default')).toBe(16000);
  });
});

describe('SidecarMemory saving', () => {
  it('gathers changes into one asynchronous write, and writes at once on shutdown', async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weft-sidecars-'));
    dirs.push(stateDir);
    const log = createLogger('test');
    const file = path.join(stateDir, 'sidecars.json');
    const memory = new SidecarMemory({ stateDir, log, saveDebounceMs: 50 });
    for (let i = 0; i < 100; i++) memory.connected(`w${i}.default`, 20000 + i);
    // Nothing is written while connections keep coming (the event loop is not blocked on disk).
    expect(existsSync(file)).toBe(false);
    await eventually(() => expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')) as object)).toHaveLength(100));

    memory.disconnected('w0.default');
    await memory.flush();
    expect(JSON.parse(readFileSync(file, 'utf8'))).not.toHaveProperty(['w0.default']);

    memory.disconnected('w1.default');
    memory.freeze();
    expect(JSON.parse(readFileSync(file, 'utf8'))).not.toHaveProperty(['w1.default']);
    expect(readdirSync(stateDir)).toEqual(['sidecars.json']);
  });
});
