// The original destination of a captured connection: getsockopt(SO_ORIGINAL_DST) through the
// native addon in native/ (built by `npm ci`), with an operator-facing error when it is missing.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, WeftError } from '../../core/errors.js';

/** Where the client meant to go before iptables redirected it to the proxy. */
export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

interface Addon {
  originalDst(fd: number): OriginalDestination | undefined;
}

const ADDON_FILE = path.join('native', 'build', 'Release', 'weft_capture.node');
/** Overrides where the addon is loaded from (packaging, tests). */
const ADDON_ENV = 'WEFT_NATIVE_ADDON';

let loaded: Addon | Error | undefined;

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

function load(): Addon {
  if (loaded === undefined) {
    const file = addonPath();
    try {
      if (!file) throw new Error(`${ADDON_FILE} not found above ${path.dirname(fileURLToPath(import.meta.url))}`);
      loaded = createRequire(import.meta.url)(file) as Addon;
    } catch (err) {
      loaded = new WeftError(ErrorCode.INTERNAL, `the original-destination addon cannot be loaded: ${(err as Error).message}`, {
        cause: err,
        hint: 'it is built by `npm ci` (script "install"); rebuild it with `npm run build:native` (needs python3, make and a C compiler)',
      });
    }
  }
  if (loaded instanceof Error) throw loaded;
  return loaded;
}

/** The addon's module object, for the other functions built into it (proxy/ambient/netns.ts);
 *  throws the same operator-facing error when it cannot be loaded. */
export function loadNativeAddon(): Record<string, unknown> {
  return load() as unknown as Record<string, unknown>;
}

/** Throws the loading error now (at proxy start in captured mode) rather than on the first connection. */
export function assertOriginalDstAvailable(): void {
  load();
}

/**
 * The destination `socket` was addressed to before a nat-table REDIRECT (IPv4 or IPv6), or
 * undefined when the kernel holds no NAT record for it (the connection was not redirected).
 * Throws when the addon is missing or the socket has no file descriptor.
 */
export function originalDst(socket: net.Socket): OriginalDestination | undefined {
  const addon = load();
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw new WeftError(ErrorCode.INTERNAL, 'originalDst: the socket has no file descriptor (closed, or not a TCP socket)');
  }
  return addon.originalDst(fd);
}
