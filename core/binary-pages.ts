// The node binary's pages in a long-running Weft process (native/src/pages.c). A process keeps
// every page of the node binary it has ever touched mapped, and counted in its RSS: V8's
// start-up snapshot, the code cache of the built-in modules, start-up code, the optimizing
// compiler while it warms up. Released once the process is ready and every minute after, it
// keeps mapped only what it has used since: a sidecar's RSS falls from ~71 to ~42 MiB idle, and
// by ~20 MiB under load (README "Performance"). The pages stay in the page cache, shared with
// every process of the same binary; the ones in use come back on their next access.
import { readFileSync } from 'node:fs';
import { ErrorCode, WeftError, errorMessage } from './errors.js';
import type { Logger } from './log.js';
import { loadNativeAddon } from './native-addon.js';

/** How often a process lets go of the binary's pages it has not used since the last time. */
export const BINARY_PAGES_INTERVAL_MS = 60_000;

/** What one release did: the executable's mappings released, what of them was resident, and the
 *  process's file-backed resident memory (RssFile) before and after, in bytes. */
export interface ReleasedPages {
  readonly mappings: number;
  readonly residentBytes: number;
  readonly rssFileBefore: number;
  readonly rssFileAfter: number;
}

interface PagesAddon {
  releaseExecutablePages(): Promise<{ mappings: number; residentBytes: number }>;
}

/** A process's RssFile (/proc/<pid>/status; this process's by default), in bytes. */
export function rssFileBytes(pid: number | 'self' = 'self'): number {
  const file = `/proc/${pid}/status`;
  const m = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync(file, 'utf8'));
  if (!m) throw new WeftError(ErrorCode.INTERNAL, `${file} has no RssFile line`);
  return Number(m[1]) * 1024;
}

/** Drops the node executable's clean pages from this process's page tables, off the event loop.
 *  Rejects with a WeftError naming the reason when it cannot (no native addon, not Linux). */
export async function releaseBinaryPages(): Promise<ReleasedPages> {
  const addon = loadNativeAddon() as Partial<PagesAddon>;
  if (typeof addon.releaseExecutablePages !== 'function') {
    throw new WeftError(ErrorCode.INTERNAL, 'the native addon predates releaseExecutablePages', { hint: 'rebuild it with `npm run build:native`' });
  }
  const rssFileBefore = rssFileBytes();
  const { mappings, residentBytes } = await addon.releaseExecutablePages();
  return { mappings, residentBytes, rssFileBefore, rssFileAfter: rssFileBytes() };
}

const mib = (bytes: number) => Math.round(bytes / 104857.6) / 10;

/**
 * Releases the binary's pages now and every `everyMs` after, until stopped. The first release
 * is logged at info, later ones at debug; when releasing is impossible (no addon, not Linux) that
 * is said once at info and nothing more is tried.
 */
export function trimBinaryPages(log: Logger, everyMs = BINARY_PAGES_INTERVAL_MS): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let releasing = false;
  let first = true;
  const tick = () => {
    if (releasing) return;
    releasing = true;
    releaseBinaryPages().then(
      (r) => {
        releasing = false;
        const fields = { mappings: r.mappings, resident_mib: mib(r.residentBytes), rss_file_mib: `${mib(r.rssFileBefore)} -> ${mib(r.rssFileAfter)}` };
        if (first) log.info(`released the node binary's pages; again every ${everyMs / 1000} s`, fields);
        else log.debug("released the node binary's pages", fields);
        first = false;
      },
      (err: unknown) => {
        releasing = false;
        stop();
        log.info("keeping the node binary's pages", { reason: errorMessage(err) });
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
