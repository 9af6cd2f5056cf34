// Root rotation on a running control plane: watch the CA's files, reload them when `weft ca
// rotate-root` / `remove-root` (or an operator) changes them, and switch signing to a new root
// only after every connected proxy has ACKed a trust bundle that holds it — so that no peer is
// ever shown a certificate it cannot verify yet.
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { TypeUrl } from '../../api/types.js';
import type { CertificateAuthority } from '../../certs/ca.js';
import { CA_FILES } from '../../certs/ca-store.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ProxySyncState } from '../xds-server/sync-status.js';

/** Where the roots stand among connected proxies. */
export interface RootsProgress {
  readonly done: boolean;
  /** Proxies that have not ACKed a ROOTCA holding every root yet. */
  readonly lagging: readonly string[];
}

/**
 * Whether every connected proxy that takes secrets has ACKed a ROOTCA secret holding each of
 * `roots`: its snapshot's ROOTCA must contain them and its ACKed SDS version must be that
 * snapshot's. Proxies that never subscribed to SDS (proxyless clients) do not count.
 */
export function rootsAcked(proxies: Iterable<ProxySyncState>, snapshotOf: (id: string) => Snapshot | undefined, roots: readonly string[]): RootsProgress {
  const lagging: string[] = [];
  for (const p of proxies) {
    const sds = p.types.get(TypeUrl.Secret);
    if (!sds) continue;
    const secrets = snapshotOf(p.id)?.types.get(TypeUrl.Secret);
    const trusted = JSON.stringify(secrets?.items.get('ROOTCA')?.plain ?? {});
    const holds = roots.every((r) => trusted.includes(JSON.stringify(r.trim()).slice(1, -1)));
    if (!holds || sds.ackedVersion !== secrets?.version) lagging.push(p.id);
  }
  return { done: lagging.length === 0, lagging };
}

export interface CaWatcherOptions {
  readonly ca: CertificateAuthority;
  /** The directory holding the CA files (`<state-dir>/ca`, or a plugged-in CA's). */
  readonly dir: string;
  /** Polled while a new signer waits: have the current roots reached every proxy? */
  readonly rootsDistributed: (roots: readonly string[]) => RootsProgress;
  readonly log: Logger;
  /** Give up waiting for laggards after this long and sign under the new root anyway. Default 60 s. */
  readonly maxWaitMs?: number;
  /** How often to look at the files even without a change event (fs.watch can miss some). Default 5 s. */
  readonly pollMs?: number;
}

export interface CaWatcher {
  /** Reloads now (also what a file change triggers). Never throws; problems are logged. */
  reload(): Promise<void>;
  stop(): void;
}

const DEBOUNCE_MS = 100;
const CHECK_MS = 100;

export function watchCaDir(opts: CaWatcherOptions): CaWatcher {
  const { ca, log } = opts;
  const maxWaitMs = opts.maxWaitMs ?? 60_000;
  let stopped = false;
  let debounce: NodeJS.Timeout | undefined;
  let waiting: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let lastSeen = '';

  /** Change stamp of the CA files: size and mtime of each. */
  const stamp = async () => {
    const parts = await Promise.all(
      Object.values(CA_FILES).map((f) =>
        stat(path.join(opts.dir, f)).then(
          (s) => `${f}:${s.size}:${s.mtimeMs}`,
          () => `${f}:-`,
        ),
      ),
    );
    return parts.join('|');
  };

  const waitThenActivate = (pending: { rootFingerprint: string; activate(): void }) => {
    if (waiting) clearTimeout(waiting);
    const started = Date.now();
    log.info('trusting a new root; the CA signs under it once every proxy has it', { root: pending.rootFingerprint });
    const check = () => {
      waiting = undefined;
      if (stopped) return;
      const progress = opts.rootsDistributed(ca.roots());
      const late = Date.now() - started >= maxWaitMs;
      if (progress.done || late) {
        if (!progress.done) {
          log.warn('some proxies did not confirm the new trust bundle in time; signing under the new root anyway', {
            root: pending.rootFingerprint,
            lagging: progress.lagging.join(','),
            waitedMs: Date.now() - started,
          });
        }
        pending.activate();
        return;
      }
      waiting = setTimeout(check, CHECK_MS);
    };
    check();
  };

  const reloadOnce = async () => {
    lastSeen = await stamp();
    try {
      const r = await ca.reload();
      if (r.rootsChanged) log.info('the trust bundle changed; pushing it to proxies', { roots: ca.roots().length });
      if (r.activated) log.warn('the root the CA signed under was removed; signing under the new root at once');
      if (r.pending) waitThenActivate(r.pending);
      else if (r.activated && waiting) {
        clearTimeout(waiting);
        waiting = undefined;
      }
    } catch (err) {
      // Usually files caught half-written; the next change event (or poll) tries again.
      log.debug('could not reload the CA files yet', { dir: opts.dir, error: errorMessage(err) });
      lastSeen = '';
    }
  };

  const reload = async (): Promise<void> => {
    if (stopped) return;
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await reloadOnce();
      } while (again && !stopped);
    })().finally(() => (running = undefined));
    return running;
  };

  const schedule = () => {
    if (stopped) return;
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => void reload(), DEBOUNCE_MS);
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(opts.dir, { persistent: false }, schedule);
    watcher.on('error', (err) => log.debug('CA directory watch failed; polling only', { dir: opts.dir, error: errorMessage(err) }));
  } catch (err) {
    log.debug('cannot watch the CA directory; polling only', { dir: opts.dir, error: errorMessage(err) });
  }
  void stamp().then((s) => (lastSeen = s));
  const poll = setInterval(() => {
    void stamp().then((s) => {
      if (s !== lastSeen) schedule();
    });
  }, opts.pollMs ?? 5_000);
  poll.unref();

  return {
    reload,
    stop() {
      stopped = true;
      watcher?.close();
      clearInterval(poll);
      if (debounce) clearTimeout(debounce);
      if (waiting) clearTimeout(waiting);
    },
  };
}
