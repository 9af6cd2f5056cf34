// The original destination of a captured connection: getsockopt(SO_ORIGINAL_DST) through the
// native addon in native/ (core/native-addon.ts), with an operator-facing error when it is missing.
import type net from 'node:net';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { loadNativeAddon } from '../../core/native-addon.js';

/** Where the client meant to go before iptables redirected it to the proxy. */
export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

interface Addon {
  originalDst(fd: number): OriginalDestination | undefined;
}

const load = (): Addon => loadNativeAddon() as unknown as Addon;

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
