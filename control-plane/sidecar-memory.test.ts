// Sidecars remembered across a control-plane restart: saved as they connect and leave (in one
// debounced write for a burst), served as endpoints for the grace period after a restart, not
// forgotten when the control plane itself shuts down.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    first.connected('a.default', { inboundPort: 15006, hbonePort: 15008 });
    first.connected('b.default', { inboundPort: 15007 });
    first.disconnected('b.default');
    // Shutdown closes every stream: that must not erase what we know.
    first.freeze();
    first.disconnected('a.default');

    const second = new SidecarMemory({ stateDir, log, now: () => now, graceMs: 1000 });
    expect(second.graceDeadline).toBe(1000);
    // Both ports come back: a captured sidecar stays reachable over HBONE for its L4 ports.
    expect(second.ports('a.default')).toEqual({ inboundPort: 15006, hbonePort: 15008 });
    expect(second.ports('b.default')).toBeUndefined();
    now = 1000;
    expect(second.ports('a.default')).toBeUndefined();
    second.connected('a.default', { inboundPort: 16000 });
    expect(second.ports('a.default')).toEqual({ inboundPort: 16000 });
  });

  it('reads what an older version saved (bare inbound ports) and skips entries that are not ports', () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weft-sidecars-'));
    dirs.push(stateDir);
    writeFileSync(
      path.join(stateDir, 'sidecars.json'),
      JSON.stringify({
        'old.default': 15006,
        'new.default': { inboundPort: 15006, hbonePort: 15008 },
        'bad-hbone.default': { inboundPort: 15006, hbonePort: 70000 },
        'zero.default': 0,
        'text.default': '15006',
        'nothing.default': { hbonePort: 15008 },
      }),
    );
    const memory = new SidecarMemory({ stateDir, log: createLogger('test'), now: () => 0, graceMs: 1000 });
    expect(memory.ports('old.default')).toEqual({ inboundPort: 15006 });
    expect(memory.ports('new.default')).toEqual({ inboundPort: 15006, hbonePort: 15008 });
    expect(memory.ports('bad-hbone.default')).toEqual({ inboundPort: 15006 });
    for (const w of ['zero.default', 'text.default', 'nothing.default']) expect(memory.ports(w)).toBeUndefined();
  });
});

describe('SidecarMemory saving', () => {
  it('gathers changes into one asynchronous write, and writes at once on shutdown', async () => {
    const stateDir = mkdtempSync(path.join(os.tmpdir(), 'weft-sidecars-'));
    dirs.push(stateDir);
    const log = createLogger('test');
    const file = path.join(stateDir, 'sidecars.json');
    const memory = new SidecarMemory({ stateDir, log, saveDebounceMs: 50 });
    for (let i = 0; i < 100; i++) memory.connected(`w${i}.default`, { inboundPort: 20000 + i });
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
