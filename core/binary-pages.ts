// The pages a long-running Weft process has stopped using (native/src/pages.c). A process keeps
// every page of the node binary, and of the shared libraries it loaded, that it has ever touched
// mapped, and counted in its RSS: V8's start-up snapshot, the code cache of the built-in modules,
// start-up code, the optimizing compiler while it warms up. Released once the process is ready
// and every minute after, it keeps mapped only what it has used since: a sidecar's RSS falls from
// ~71 to ~42 MiB idle, and by ~20 MiB under load (README "Performance"). The pages stay in the
// page cache, shared with every process of the same binary; the ones in use come back on their
// next access. Each release also hands malloc's free pages back to the kernel (malloc_trim).
import { readFileSync } from 'node:fs';
import { ErrorCode, WeftError, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { loadNativeAddon } from './native-addon.js';

/** How often a process lets go of the pages it has not used since the last time. */
export const BINARY_PAGES_INTERVAL_MS = 60_000;

/** What one release did: the mappings of the executable and its libraries released, what of
 *  them was resident, whether malloc gave memory back, and the process's file-backed (RssFile)
 *  and anonymous (RssAnon) resident memory before and after, in bytes. */
export interface ReleasedPages {
  readonly mappings: number;
  readonly residentBytes: number;
  readonly heapTrimmed: boolean;
  readonly rssFileBefore: number;
  readonly rssFileAfter: number;
  readonly rssAnonBefore: number;
  readonly rssAnonAfter: number;
}

interface PagesAddon {
  releaseUnusedPages(): Promise<{ mappings: number; residentBytes: number; heapTrimmed: boolean }>;
}

/** One part of a process's resident memory (/proc/<pid>/status; this process's by default), in
 *  bytes: `RssFile`, file-backed pages; `RssAnon`, its own. */
export function residentBytes(part: 'RssFile' | 'RssAnon', pid: number | 'self' = 'self'): number {
  const file = `/proc/${pid}/status`;
  const m = new RegExp(`^${part}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(file, 'utf8'));
  if (!m) throw new WeftError(ErrorCode.INTERNAL, `${file} has no ${part} line`);
  return Number(m[1]) * 1024;
}

/** Drops the clean pages of the node executable and its shared libraries from this process's
 *  page tables, and malloc's free pages, off the event loop. Rejects with a WeftError naming the
 *  reason when it cannot (no native addon, not Linux). */
export async function releaseUnusedPages(): Promise<ReleasedPages> {
  const addon = loadNativeAddon() as Partial<PagesAddon>;
  if (typeof addon.releaseUnusedPages !== 'function') {
    throw new WeftError(ErrorCode.INTERNAL, 'the native addon predates releaseUnusedPages', { hint: 'rebuild it with `npm run build:native`' });
  }
  const rssFileBefore = residentBytes('RssFile');
  const rssAnonBefore = residentBytes('RssAnon');
  const { mappings, residentBytes: released, heapTrimmed } = await addon.releaseUnusedPages();
  return { mappings, residentBytes: released, heapTrimmed, rssFileBefore, rssFileAfter: residentBytes('RssFile'), rssAnonBefore, rssAnonAfter: residentBytes('RssAnon') };
}

const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;

/**
 * Releases unused pages now and every `everyMs` after, until stopped. The first release
 * is logged at info, later ones at debug; when releasing is impossible (no addon, not Linux) that
 * is said once at info and nothing more is tried.
 */
export function trimUnusedPages(log: Logger, everyMs = BINARY_PAGES_INTERVAL_MS): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let releasing = false;
  let first = true;
  const tick = () => {
    if (releasing) return;
    releasing = true;
    releaseUnusedPages().then(
      (r) => {
        releasing = false;
        const fields = {
          mappings: r.mappings,
          resident_mib: mib(r.residentBytes),
          rss_file_mib: `${mib(r.rssFileBefore)} -> ${mib(r.rssFileAfter)}`,
          rss_anon_mib: `${mib(r.rssAnonBefore)} -> ${mib(r.rssAnonAfter)}`,
        };
        if (first) log.info(`released unused pages of the node binary, its libraries and malloc; again every ${everyMs / 1000} s`, fields);
        else log.debug('released unused pages', fields);
        first = false;
      },
      (err: unknown) => {
        releasing = false;
        stop();
        log.info('keeping unused pages', { reason: errorMessage(err) });
      },
    );
  };
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
  };
  timer = setInterval(tick, everyMs).unref();
  tick();
  return { stop };
}
