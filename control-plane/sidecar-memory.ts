// Local mode's endpoints come from connected sidecars, so a restarted control plane would
// first see none and push empty endpoint sets to the proxies that reconnect first. This keeps
// the last known sidecars (workload → its inbound and HBONE ports) in the state dir: after a
// restart they count as connected for a grace period, the rebuilt snapshots equal the ones served before
// (content-hashed versions, so reconnecting proxies see no change), and a sidecar that has
// not come back when the grace period ends is dropped. Saves are debounced and asynchronous
// (a thousand sidecars connecting make one write, off the event loop); shutting down saves at once.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/log.js';
import { sidecarPortsOf, type SidecarPorts } from './translate/index.js';

/** Proxies reconnect with a backoff of at most ~10 s; give them twice that. */
export const RESYNC_GRACE_MS = 20_000;

const FILE = 'sidecars.json';
/** How long changes gather before one save. */
export const SAVE_DEBOUNCE_MS = 1_000;

export interface SidecarMemoryOptions {
  readonly stateDir: string;
  readonly graceMs?: number;
  readonly log: Logger;
  readonly now?: () => number;
  readonly saveDebounceMs?: number;
}

export class SidecarMemory {
  private readonly live = new Map<string, SidecarPorts>();
  private readonly remembered = new Map<string, SidecarPorts>();
  private readonly graceEnds: number;
  private frozen = false;
  private saveTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;
  private dirty = false;
  /** Each write has its own temporary file: a shutdown's write may overtake a running one. */
  private writes = 0;

  constructor(private readonly opts: SidecarMemoryOptions) {
    const now = opts.now ?? Date.now;
    this.graceEnds = now() + (opts.graceMs ?? RESYNC_GRACE_MS);
    try {
      const saved = JSON.parse(readFileSync(path.join(opts.stateDir, FILE), 'utf8')) as Record<string, unknown>;
      for (const [workload, entry] of Object.entries(saved)) {
        const ports = savedPorts(entry);
        if (ports) this.remembered.set(workload, ports);
      }
      if (this.remembered.size > 0) opts.log.info('expecting sidecars from before the restart', { sidecars: this.remembered.size, graceMs: opts.graceMs ?? RESYNC_GRACE_MS });
    } catch {
      // First start, or an unreadable file: nothing to remember.
    }
  }

  /** When remembered sidecars stop counting (the caller rebuilds then), or undefined if none. */
  get graceDeadline(): number | undefined {
    return this.remembered.size > 0 ? this.graceEnds : undefined;
  }

  /** The ports of a connected sidecar, or of one remembered and still within grace. */
  ports(workload: string, now = (this.opts.now ?? Date.now)()): SidecarPorts | undefined {
    return this.live.get(workload) ?? (now < this.graceEnds ? this.remembered.get(workload) : undefined);
  }

  connected(workload: string, ports: SidecarPorts | undefined): void {
    this.remembered.delete(workload);
    if (ports === undefined) this.live.delete(workload);
    else this.live.set(workload, ports);
    this.save();
  }

  disconnected(workload: string): void {
    this.live.delete(workload);
    this.save();
  }

  /** Writes any unsaved change now (before a planned restart; tests). */
  async flush(): Promise<void> {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    while (this.saving) await this.saving;
    if (this.dirty && !this.frozen) await this.write();
  }

  /** The control plane is shutting down: its streams closing is not the sidecars leaving. */
  freeze(): void {
    if (this.saveTimer) clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    // The last word, written at once: an asynchronous write may still be on its way, and this
    // one replaces whatever it wrote.
    if (this.dirty && !this.frozen) this.writeNow();
    this.frozen = true;
  }

  private save(): void {
    if (this.frozen) return;
    this.dirty = true;
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      if (this.saving) this.save();
      else void this.write();
    }, this.opts.saveDebounceMs ?? SAVE_DEBOUNCE_MS);
    this.saveTimer.unref();
  }

  private write(): Promise<void> {
    const file = path.join(this.opts.stateDir, FILE);
    const content = this.content();
    this.saving = (async () => {
      try {
        await mkdir(this.opts.stateDir, { recursive: true });
        if (this.frozen) return;
        const tmp = `${file}.${++this.writes}.tmp`;
        await writeFile(tmp, content, { mode: 0o600 });
        if (this.frozen) await unlink(tmp);
        else await rename(tmp, file);
      } catch (err) {
        this.failed(err);
      } finally {
        this.saving = undefined;
      }
    })();
    return this.saving;
  }

  private writeNow(): void {
    const file = path.join(this.opts.stateDir, FILE);
    try {
      mkdirSync(this.opts.stateDir, { recursive: true });
      const tmp = `${file}.${++this.writes}.tmp`;
      writeFileSync(tmp, this.content(), { mode: 0o600 });
      renameSync(tmp, file);
    } catch (err) {
      this.failed(err);
    }
  }

  /** What to save; taken when the write starts, so later changes mark the memory dirty again. */
  private content(): string {
    this.dirty = false;
    return JSON.stringify(Object.fromEntries(this.live));
  }

  private failed(err: unknown): void {
    this.dirty = true;
    this.opts.log.warn('could not save the connected sidecars; a restart will re-learn them', { error: (err as Error).message });
  }
}

/** One saved sidecar: `{inboundPort, hbonePort?}`, or a bare inbound port (what versions before
 *  HBONE into sidecars saved). Anything else is skipped: that sidecar is re-learned when it
 *  reconnects. */
function savedPorts(entry: unknown): SidecarPorts | undefined {
  if (typeof entry === 'number') return sidecarPortsOf(entry, undefined);
  if (typeof entry !== 'object' || entry === null) return undefined;
  const { inboundPort, hbonePort } = entry as Record<string, unknown>;
  return sidecarPortsOf(inboundPort, hbonePort);
}
