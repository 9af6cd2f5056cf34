// Sockets inside pods' network namespaces for the node proxy (ambient, in-pod redirection):
// listening and connecting *in* a pod through the native addon (native/src/netns.c), while the
// process stays in the node's namespace; and finding the namespace that holds a pod's IP.
import { closeSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { addonPath, loadNativeAddon } from '../../core/native-addon.js';

/** SO_MARK of the node proxy's sockets in a pod (1337, as Istio): the pod's redirect rules let
 *  marked packets through, so the proxy's own connections are never redirected back to it. */
export const PROXY_MARK = 0x539;

/** One address on a non-loopback interface of a namespace. */
export interface NetnsAddress {
  readonly interface: string;
  readonly address: string;
  readonly family: 4 | 6;
}

interface NetnsAddon {
  netnsListen(nsPath: string, host: string, port: number, mark: number): number;
  netnsSocket(nsPath: string, family: 4 | 6, mark: number): number;
  netnsAddresses(nsPath: string): NetnsAddress[];
}

let addon: NetnsAddon | undefined;

function native(): NetnsAddon {
  if (addon) return addon;
  const mod = loadNativeAddon();
  if (typeof mod.netnsListen !== 'function' || typeof mod.netnsSocket !== 'function' || typeof mod.netnsAddresses !== 'function') {
    throw new WeftError(ErrorCode.INTERNAL, `the native addon at ${addonPath() ?? '(unknown path)'} has no network-namespace functions (netnsListen, netnsSocket, netnsAddresses)`, {
      hint: 'it was built before ambient support: rebuild it with `npm run build:native`',
    });
  }
  return (addon = mod as unknown as NetnsAddon);
}

/** Throws the loading error now (at node proxy start) rather than when the first pod enrolls. */
export function assertNetnsAvailable(): void {
  native();
}

/** An error of the addon (Error with an errno `code`) as a WeftError naming what was attempted. */
function nativeError(err: unknown, what: string, code: ErrorCode): WeftError {
  const errno = (err as { code?: unknown }).code;
  if (errno === 'EPERM' || errno === 'EACCES') {
    return new WeftError(ErrorCode.PERMISSION_DENIED, `${what}: ${(err as Error).message}`, { cause: err });
  }
  if (err instanceof WeftError) return err;
  return new WeftError(code, `${what}: ${(err as Error).message}`, { cause: err });
}

function checkPort(port: number, allowZero: boolean): void {
  if (!Number.isInteger(port) || port < (allowZero ? 0 : 1) || port > 65535) {
    throw new WeftError(ErrorCode.USAGE, `${JSON.stringify(port)} is not a port number`);
  }
}

function checkMark(mark: number): void {
  if (!Number.isInteger(mark) || mark < 0 || mark > 0xffffffff) throw new WeftError(ErrorCode.USAGE, `SO_MARK ${JSON.stringify(mark)} is not a 32-bit unsigned integer`);
}

/**
 * Listens `server` (any net.Server, tls.Server or http server) on host:port inside the network
 * namespace at `nsPath`. `host` is an IP literal (`0.0.0.0`, `::`, the pod's IP). `mark` is the
 * socket's SO_MARK (default PROXY_MARK; 0 for none). The server keeps the namespace alive until
 * it closes.
 */
export function listenInNetns(server: net.Server, nsPath: string, host: string, port: number, mark: number = PROXY_MARK): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!net.isIP(host)) throw new WeftError(ErrorCode.USAGE, `listenInNetns: host ${JSON.stringify(host)} must be an IP address (names are resolved in the node's namespace, not the pod's)`);
    checkPort(port, true);
    checkMark(mark);
    let fd: number;
    try {
      fd = native().netnsListen(nsPath, host, port, mark);
    } catch (err) {
      throw nativeError(err, `cannot listen on ${host}:${port} in network namespace ${nsPath}`, ErrorCode.INTERNAL);
    }
    const onError = (err: Error) => {
      server.off('listening', onListening);
      // Node's listen failed after taking the fd, and closed it (the socket is a fresh TCP
      // socket, so the only failure left is listen(2) itself).
      reject(new WeftError(ErrorCode.INTERNAL, `cannot listen on ${host}:${port} in network namespace ${nsPath}: ${err.message}`, { cause: err }));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ fd });
  });
}

/**
 * A TCP connection to host:port made from inside the network namespace at `nsPath`: it leaves
 * through the pod's interface with the pod's source address, and (with `mark`, default
 * PROXY_MARK) passes the pod's own redirect rules. `host` must be an IP literal. Rejects with
 * WEFT_UPSTREAM_CONNECT / WEFT_UPSTREAM_TIMEOUT, or WEFT_PERMISSION_DENIED without
 * CAP_SYS_ADMIN / CAP_NET_ADMIN.
 *
 * Never call `connect()` again on the returned socket: a destroyed net.Socket that reconnects
 * makes a new socket in the node's namespace.
 */
export function connectInNetns(nsPath: string, host: string, port: number, opts: { timeoutMs?: number; mark?: number } = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const family = net.isIP(host);
    if (family !== 4 && family !== 6) throw new WeftError(ErrorCode.USAGE, `connectInNetns: host ${JSON.stringify(host)} must be an IP address (names are resolved in the node's namespace, not the pod's)`);
    checkPort(port, false);
    const mark = opts.mark ?? PROXY_MARK;
    checkMark(mark);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const where = `${host}:${port} from network namespace ${nsPath}`;
    let fd: number;
    try {
      fd = native().netnsSocket(nsPath, family, mark);
    } catch (err) {
      throw nativeError(err, `cannot connect to ${where}`, ErrorCode.UPSTREAM_CONNECT);
    }
    let socket: net.Socket;
    try {
      // manualStart: Node otherwise starts reading the fd at once, and reading a socket that
      // is not connected yet fails with ENOTCONN as soon as the event loop polls it.
      socket = new net.Socket({ fd, manualStart: true } as net.SocketConstructorOpts);
    } catch (err) {
      closeSync(fd);
      throw new WeftError(ErrorCode.INTERNAL, `cannot wrap the socket made in ${nsPath}: ${(err as Error).message}`, { cause: err });
    }
    const done = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('connect', onConnect);
    };
    const onError = (err: Error) => {
      done();
      socket.destroy();
      reject(new WeftError(ErrorCode.UPSTREAM_CONNECT, `cannot connect to ${where}: ${err.message}`, { cause: err }));
    };
    const onConnect = () => {
      done();
      // connect() keeps the handle it was given; make sure nothing swapped in a socket of the
      // node's namespace (that would send the pod's traffic from the node's address).
      if ((socket as unknown as { _handle?: { fd?: number } })._handle?.fd !== fd) {
        socket.destroy();
        reject(new WeftError(ErrorCode.INTERNAL, `the connection to ${where} was not made on the namespace's socket`));
        return;
      }
      resolve(socket);
    };
    const timer = setTimeout(() => {
      done();
      socket.destroy();
      reject(new WeftError(ErrorCode.UPSTREAM_TIMEOUT, `cannot connect to ${where}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('error', onError);
    socket.once('connect', onConnect);
    // An IP literal: Node connects the existing handle directly, with no lookup and no
    // happy-eyeballs attempt (which would make sockets of its own).
    socket.connect({ host, port });
  });
}

/** Every IPv4/IPv6 address on a non-loopback interface of the namespace at `nsPath`. */
export function netnsAddresses(nsPath: string): NetnsAddress[] {
  try {
    return native().netnsAddresses(nsPath);
  } catch (err) {
    throw nativeError(err, `cannot list the addresses of network namespace ${nsPath}`, ErrorCode.INTERNAL);
  }
}

// ---- Finding a pod's namespace ----------------------------------------------------------------

/** A network namespace: a path that opens it, and its identity (nsfs device:inode), which stays
 *  the same whichever path names it and changes when the pod's sandbox is re-created. */
export interface NetnsRef {
  readonly path: string;
  readonly id: string;
}

/** Where namespaces are found, and what they hold; injectable for tests. */
export interface NetnsSource {
  /** Paths that may name a namespace, preferred (stable) names first. */
  candidates(): Promise<string[]>;
  /** The namespace's identity, or undefined when the path is gone or not a namespace. */
  identify(nsPath: string): Promise<string | undefined>;
  /** Addresses on its non-loopback interfaces (throws when it cannot be entered). */
  addresses(nsPath: string): readonly string[];
  /** The identity of the caller's own namespace (the node's), never a pod's. */
  self(): Promise<string | undefined>;
}

/** Named namespaces (`ip netns`, containerd, CRI-O) first, then every process's. */
const NAMED_DIRS = ['/run/netns', '/var/run/netns'];

export const systemNetnsSource: NetnsSource = {
  async candidates() {
    const out: string[] = [];
    for (const dir of NAMED_DIRS) {
      const names = await readdir(dir).catch(() => [] as string[]);
      for (const n of names.sort()) out.push(path.join(dir, n));
    }
    const pids = await readdir('/proc').catch(() => [] as string[]);
    for (const p of pids) if (/^\d+$/.test(p)) out.push(`/proc/${p}/ns/net`);
    return out;
  },
  async identify(nsPath) {
    try {
      const s = await stat(nsPath, { bigint: true });
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  },
  addresses: (nsPath) => netnsAddresses(nsPath).map((a) => a.address),
  async self() {
    return this.identify('/proc/self/ns/net');
  },
};

/** The text form inet_ntop prints (so that `fd00:0::5` finds `fd00::5`). */
function canonicalIp(ip: string): string | undefined {
  const family = net.isIP(ip);
  if (family === 4) return ip;
  if (family === 6) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  return undefined;
}

/**
 * Finds the namespace holding an IP on a non-loopback interface by scanning every namespace
 * (works on any CNI). One scan learns every IP it sees; a cached answer is re-checked (same
 * namespace identity, still holding the IP) each time it is used. Misses within `rescanMs` of
 * the last scan do not scan again, so many pending pods cost one scan per pass.
 */
export class NetnsFinder {
  private byIp = new Map<string, NetnsRef>();
  private ambiguous = new Map<string, string[]>();
  private lastScan = -Infinity;
  private scanning: Promise<void> | undefined;

  constructor(
    private readonly source: NetnsSource = systemNetnsSource,
    private readonly opts: { rescanMs?: number; now?: () => number } = {},
  ) {}

  /** The namespace holding `ip`, or undefined. Throws (WEFT_CONFIG_INVALID) when two
   *  namespaces hold it: guessing could redirect another pod's traffic. */
  async find(ip: string): Promise<NetnsRef | undefined> {
    const want = canonicalIp(ip);
    if (!want) throw new WeftError(ErrorCode.USAGE, `${JSON.stringify(ip)} is not an IP address`);
    const cached = this.byIp.get(want);
    if (cached && (await this.stillHolds(cached, want))) return cached;
    this.byIp.delete(want);
    const now = this.opts.now?.() ?? Date.now();
    if (cached || now - this.lastScan >= (this.opts.rescanMs ?? 1000)) await this.scan();
    const many = this.ambiguous.get(want);
    if (many) {
      throw new WeftError(ErrorCode.CONFIG_INVALID, `${want} is on interfaces of ${many.length} network namespaces (${many.join(', ')}); refusing to guess which one is the pod's`, {
        hint: 'a stale pod sandbox or a hand-made namespace holds the same address',
      });
    }
    return this.byIp.get(want);
  }

  /** The identity of the namespace at `nsPath` now (undefined: gone). */
  identify(nsPath: string): Promise<string | undefined> {
    return this.source.identify(nsPath);
  }

  private async stillHolds(ref: NetnsRef, ip: string): Promise<boolean> {
    if ((await this.source.identify(ref.path)) !== ref.id) return false;
    try {
      return this.source.addresses(ref.path).some((a) => canonicalIp(a) === ip);
    } catch {
      return false;
    }
  }

  private scan(): Promise<void> {
    // Concurrent finds share one scan.
    this.scanning ??= this.doScan().finally(() => (this.scanning = undefined));
    return this.scanning;
  }

  private async doScan(): Promise<void> {
    const self = await this.source.self();
    const seen = new Set<string>();
    const byIp = new Map<string, NetnsRef>();
    const where = new Map<string, string[]>();
    for (const candidate of await this.source.candidates()) {
      const id = await this.source.identify(candidate);
      if (id === undefined || id === self || seen.has(id)) continue;
      seen.add(id);
      let addresses: readonly string[];
      try {
        addresses = this.source.addresses(candidate);
      } catch {
        continue; // gone meanwhile, or not enterable: not a namespace we can serve
      }
      for (const a of addresses) {
        const ip = canonicalIp(a);
        if (!ip) continue;
        if (!byIp.has(ip)) byIp.set(ip, { path: candidate, id });
        const list = where.get(ip) ?? [];
        if (!list.includes(candidate)) list.push(candidate);
        where.set(ip, list);
      }
    }
    this.byIp = byIp;
    this.ambiguous = new Map([...where].filter(([, paths]) => paths.length > 1));
    this.lastScan = this.opts.now?.() ?? Date.now();
  }
}

const defaultFinder = new NetnsFinder();

/** The process-wide finder behind findNetnsByIp (shares its cache). */
export function sharedNetnsFinder(): NetnsFinder {
  return defaultFinder;
}

/**
 * The network namespace (a path: /run/netns/<name>, /var/run/netns/<name> or
 * /proc/<pid>/ns/net) that holds `ip` on a non-loopback interface, found by scanning — any CNI.
 * Cached by namespace identity (inode); cache entries are re-checked when used. The caller's
 * own namespace is never returned.
 */
export async function findNetnsByIp(ip: string): Promise<string | undefined> {
  return (await defaultFinder.find(ip))?.path;
}
