// The node executable's start-up pages (native/src/pages.c): once a Weft process is up, the pages
// of the node binary it touched only to start (V8's snapshot, the code cache of the built-in
// modules, start-up code) leave its page tables. They stay in the page cache, shared with every
// other process of the same binary, and the ones the process still uses come back on their next
// access. A proxy's RSS falls by ~20 MiB and stays there under load (README "Performance").
import { readFileSync } from 'node:fs';
import { ErrorCode, WeftError } from './errors.js';
import { loadNativeAddon } from './native-addon.js';

/** What one release did: the executable's mappings dropped, what of them was resident, and the
 *  process's file-backed resident memory (RssFile) before and after, in bytes. */
export interface ReleasedPages {
  readonly mappings: number;
  readonly residentBytes: number;
  readonly rssFileBefore: number;
  readonly rssFileAfter: number;
}

interface PagesAddon {
  releaseExecutablePages(): { mappings: number; residentBytes: number };
}

/** This process's RssFile (/proc/self/status), in bytes. */
export function rssFileBytes(): number {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new WeftError(ErrorCode.INTERNAL, '/proc/self/status has no RssFile line');
  return Number(m[1]) * 1024;
}

/** Drops the node executable's clean pages from this process's page tables. Throws a WeftError
 *  naming the reason when it cannot (no native addon, not Linux). */
export function releaseStartUpPages(): ReleasedPages {
  const addon = loadNativeAddon() as Partial<PagesAddon>;
  if (typeof addon.releaseExecutablePages !== 'function') {
    throw new WeftError(ErrorCode.INTERNAL, 'the native addon predates releaseExecutablePages', { hint: 'rebuild it with `npm run build:native`' });
  }
  const rssFileBefore = rssFileBytes();
  const { mappings, residentBytes } = addon.releaseExecutablePages();
  return { mappings, residentBytes, rssFileBefore, rssFileAfter: rssFileBytes() };
}
