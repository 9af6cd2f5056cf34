// Weft's one native addon (native/: SO_ORIGINAL_DST, sockets in pods' network namespaces, the
// release of unused pages), built by `npm ci`, loaded once on first use,
// with an operator-facing error when it is missing.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, WeftError } from './errors.js';

const ADDON_FILE = path.join('native', 'build', 'Release', 'weft_capture.node');
/** Overrides where the addon is loaded from (packaging, tests). */
const ADDON_ENV = 'WEFT_NATIVE_ADDON';

let loaded: Record<string, unknown> | Error | undefined;

/** The addon file: $WEFT_NATIVE_ADDON, else native/build/Release in the package root above this
 *  file (from the sources and from dist/ alike). */
export function addonPath(): string | undefined {
  const fromEnv = process.env[ADDON_ENV];
  if (fromEnv) return fromEnv;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, ADDON_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

/** The addon's module object; throws an operator-facing error when it cannot be loaded (and
 *  the same one on every later call). */
export function loadNativeAddon(): Record<string, unknown> {
  if (loaded === undefined) {
    const file = addonPath();
    try {
      if (!file) throw new Error(`${ADDON_FILE} not found above ${path.dirname(fileURLToPath(import.meta.url))}`);
      loaded = createRequire(import.meta.url)(file) as Record<string, unknown>;
    } catch (err) {
      loaded = new WeftError(ErrorCode.INTERNAL, `Weft's native addon cannot be loaded: ${(err as Error).message}`, {
        cause: err,
        hint: 'it is built by `npm ci` (script "install"); rebuild it with `npm run build:native` (needs python3, make and a C compiler)',
      });
    }
  }
  if (loaded instanceof Error) throw loaded;
  return loaded;
}
