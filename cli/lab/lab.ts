// A network lab for demos and benchmarks: one "node" network namespace holding a Linux bridge,
// and pods as network namespaces plugged into it (veth, an address from the pod range, default
// route via the bridge, loopback up, an /etc/netns/<ns>/hosts naming Services). Built with
// plain iproute2 commands. Nothing is created in the root network namespace — no interface,
// route, rule or sysctl — only prefixed namespaces and /etc/netns entries, which teardown()
// removes (and removeLabLeftovers() after a crash).
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { assignAddresses, podRange, type PodRange } from './addresses.js';

export interface LabPodSpec {
  /** Lower-case letters, digits, `.` and `-`; the namespace is `<prefix>-<name>`. */
  readonly name: string;
  /** Its address in the pod range; the lowest free one when absent. */
  readonly ip?: string;
}

/** One line of the pods' hosts file: names (Services, in every form) for an address (a ClusterIP). */
export interface HostsEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

export interface LabOptions {
  /** Every namespace, /etc/netns entry and lock file is named `<prefix>-...`. */
  readonly prefix: string;
  /** The pods' IPv4 range (e.g. `10.244.0.0/24`); the node's bridge takes its first address. */
  readonly podCidr: string;
  readonly pods?: readonly LabPodSpec[];
  readonly hosts?: readonly HostsEntry[];
}

export interface LabPod {
  readonly name: string;
  /** The network namespace's name (`ip netns exec <ns>`). */
  readonly ns: string;
  /** A path that opens the namespace (for nsenter and the native addon). */
  readonly nsPath: string;
  readonly ip: string;
}

export interface Lab {
  readonly prefix: string;
  readonly range: PodRange;
  /** The node's namespace (the bridge lives there). */
  readonly nodeNs: string;
  readonly pods: ReadonlyMap<string, LabPod>;
  /** The pod named `name`; throws naming the pods there are. */
  pod(name: string): LabPod;
  /** Adds pods (namespaces, veths, addresses, hosts files); on failure removes what it made of them. */
  addPods(specs: readonly LabPodSpec[]): Promise<LabPod[]>;
  /** Removes a pod: kills what still runs in it, deletes its namespace and hosts file. */
  removePod(name: string): Promise<void>;
  /** Rewrites every pod's hosts file (new pods get these entries too). */
  setHosts(entries: readonly HostsEntry[]): void;
  /** argv running `argv` inside pod `name` (`ip netns exec`, which execs: the pid is the program's). */
  exec(name: string, argv: readonly string[]): string[];
  /** Removes everything; resolves with what could not be removed (empty when clean). */
  teardown(): Promise<string[]>;
  /** The same, synchronously, for a process `exit` handler (a no-op once torn down). */
  teardownSync(): void;
}

const PREFIX_RE = /^[a-z][a-z0-9-]{0,23}$/;
const POD_NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
const NODE = 'node';
const BRIDGE = 'br0';
const ETC_NETNS = '/etc/netns';
const COMMAND_TIMEOUT_MS = 20_000;
/** Pods set up side by side (each is a handful of short `ip` runs). */
const PARALLEL = 6;

function onPath(program: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Throws unless the lab can be built here: root (namespaces and veths need CAP_SYS_ADMIN and
 * CAP_NET_ADMIN), `ip` (iproute2), and `iptables` + `nsenter` (the node proxy installs each
 * pod's redirect rules with them). `extra` names further programs the caller needs.
 */
export function assertLabPrerequisites(extra: readonly string[] = []): void {
  if (process.getuid?.() !== 0) {
    throw new WeftError(ErrorCode.PERMISSION_DENIED, 'the network lab needs root: it creates network namespaces, veth pairs and a bridge (CAP_SYS_ADMIN and CAP_NET_ADMIN)', {
      hint: 'run it as root, e.g. with sudo',
    });
  }
  const missing = ['ip', 'iptables', 'nsenter', ...extra].filter((p) => !onPath(p));
  if (missing.length > 0) {
    throw new WeftError(ErrorCode.USAGE, `the network lab needs ${missing.join(', ')}, not found on PATH`, {
      hint: 'install the Debian packages iproute2, iptables and util-linux',
    });
  }
}

/** Runs a command to completion; rejects with a WeftError naming it and its stderr. */
function run(file: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) {
        const why = stderr.trim() || (err.killed ? `no answer within ${COMMAND_TIMEOUT_MS} ms` : err.message);
        reject(new WeftError(ErrorCode.INTERNAL, `lab: \`${file} ${args.join(' ')}\` failed: ${why}`));
      } else resolve(stdout);
    });
    // A command that reads no input may exit before its stdin is written: not an error.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

/** Network namespaces whose name starts with `<prefix>-`. */
export async function labNamespaces(prefix: string): Promise<string[]> {
  const out = await run('ip', ['netns', 'list']).catch(() => '');
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(`${prefix}-`));
}

function lockFile(prefix: string): string {
  return path.join(os.tmpdir(), `${prefix}-lab.pid`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Kills what runs in namespace `ns` (only ours can: the name carries our prefix), by pid. */
async function killIn(ns: string): Promise<void> {
  const pids = (await run('ip', ['netns', 'pids', ns]).catch(() => '')).split(/\s+/).filter(Boolean).map(Number);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Removes a lab that a crashed run left under `prefix`: its namespaces (after killing what
 * runs in them), /etc/netns entries and lock file. Deleting a namespace deletes its veths,
 * bridge, routes and rules with it. Resolves with what it removed.
 */
export async function removeLabLeftovers(prefix: string): Promise<string[]> {
  if (!PREFIX_RE.test(prefix)) throw new WeftError(ErrorCode.USAGE, `lab prefix ${JSON.stringify(prefix)}: lower-case letters, digits and -, starting with a letter`);
  const removed: string[] = [];
  const namespaces = await labNamespaces(prefix);
  // Pods before the node: a pod's veth goes with its namespace, the bridge last.
  for (const ns of namespaces.sort((a, b) => Number(a === `${prefix}-${NODE}`) - Number(b === `${prefix}-${NODE}`))) {
    await killIn(ns);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    removed.push(`namespace ${ns}`);
  }
  if (existsSync(ETC_NETNS)) {
    for (const d of readdirSync(ETC_NETNS).filter((d) => d.startsWith(`${prefix}-`))) {
      rmSync(path.join(ETC_NETNS, d), { recursive: true, force: true });
      removed.push(path.join(ETC_NETNS, d));
    }
    removeEtcNetnsIfEmpty();
  }
  if (existsSync(lockFile(prefix))) {
    rmSync(lockFile(prefix), { force: true });
    removed.push(lockFile(prefix));
  }
  return removed;
}

function removeEtcNetnsIfEmpty(): void {
  try {
    if (existsSync(ETC_NETNS) && readdirSync(ETC_NETNS).length === 0) rmdirSync(ETC_NETNS);
  } catch {
    // another lab or test put its files there meanwhile: the directory is theirs now
  }
}

/** What a lab under `prefix` still holds (namespaces, /etc/netns entries, lock file). */
export async function labLeftovers(prefix: string): Promise<string[]> {
  return [
    ...(await labNamespaces(prefix)).map((n) => `namespace ${n}`),
    ...(existsSync(ETC_NETNS) ? readdirSync(ETC_NETNS).filter((d) => d.startsWith(`${prefix}-`)).map((d) => path.join(ETC_NETNS, d)) : []),
    ...(existsSync(lockFile(prefix)) ? [lockFile(prefix)] : []),
  ];
}

function hostsText(pod: { name: string; ip: string }, entries: readonly HostsEntry[]): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost', `${pod.ip} ${pod.name}`];
  for (const e of entries) if (e.names.length > 0) lines.push(`${e.ip} ${e.names.join(' ')}`);
  return lines.join('\n') + '\n';
}

/** Runs `fn` over `items`, at most `limit` at a time; rejects with the first failure once all settled. */
async function inBatches<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
  return results;
}

/**
 * Builds the node namespace and bridge, then the pods. Refuses when a lab under the same prefix
 * is in use by a live process; removes one a crashed run left. On failure removes what it built.
 */
export async function buildLab(o: LabOptions): Promise<Lab> {
  assertLabPrerequisites();
  if (!PREFIX_RE.test(o.prefix)) {
    throw new WeftError(ErrorCode.USAGE, `lab prefix ${JSON.stringify(o.prefix)}: up to 24 lower-case letters, digits and -, starting with a letter`);
  }
  const range = podRange(o.podCidr);
  const lock = lockFile(o.prefix);
  if (existsSync(lock)) {
    const owner = Number(readFileSync(lock, 'utf8').trim());
    if (Number.isInteger(owner) && owner > 0 && alive(owner)) {
      throw new WeftError(ErrorCode.USAGE, `a lab named ${o.prefix} is in use by process ${owner} (lock ${lock})`, {
        hint: `stop that \`weft up\` or benchmark first; if process ${owner} is no lab's (its pid was reused), delete ${lock}`,
      });
    }
  }
  await removeLabLeftovers(o.prefix);
  writeFileSync(lock, `${process.pid}\n`);

  const nodeNs = `${o.prefix}-${NODE}`;
  const pods = new Map<string, LabPod>();
  let hosts: readonly HostsEntry[] = o.hosts ?? [];
  let vethIndex = 0;
  let tornDown: Promise<string[]> | undefined;

  const writeHosts = (pod: LabPod) => {
    const dir = path.join(ETC_NETNS, pod.ns);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'hosts'), hostsText(pod, hosts));
  };

  const addPod = async (spec: LabPodSpec, ip: string): Promise<LabPod> => {
    const ns = `${o.prefix}-${spec.name}`;
    const veth = `veth${vethIndex++}`;
    const pod: LabPod = { name: spec.name, ns, nsPath: `/run/netns/${ns}`, ip };
    await run('ip', ['netns', 'add', ns]);
    pods.set(spec.name, pod);
    // The veth is made in the node's namespace with its peer moved straight into the pod's:
    // neither end ever exists in the root namespace.
    await run('ip', ['-n', nodeNs, '-batch', '-'], `link add ${veth} type veth peer name eth0 netns ${ns}\nlink set ${veth} master ${BRIDGE} up\n`);
    await run(
      'ip',
      ['-n', ns, '-batch', '-'],
      `link set lo up\naddr add ${ip}/${range.prefixLength} dev eth0\nlink set eth0 up\nroute add default via ${range.gateway} dev eth0\n`,
    );
    writeHosts(pod);
    return pod;
  };

  const removePod = async (name: string) => {
    const pod = pods.get(name);
    if (!pod) return;
    pods.delete(name);
    await killIn(pod.ns);
    await run('ip', ['netns', 'del', pod.ns]).catch(() => undefined);
    rmSync(path.join(ETC_NETNS, pod.ns), { recursive: true, force: true });
  };

  const addPods = async (specs: readonly LabPodSpec[]): Promise<LabPod[]> => {
    for (const s of specs) {
      if (!POD_NAME_RE.test(s.name) || s.name === NODE) {
        throw new WeftError(ErrorCode.USAGE, `lab pod name ${JSON.stringify(s.name)}: lower-case letters, digits, . and - (and not "${NODE}", the node's namespace)`);
      }
      if (pods.has(s.name)) throw new WeftError(ErrorCode.USAGE, `lab pod ${s.name} exists already`);
    }
    const ips = assignAddresses(range, specs, [...pods.values()].map((p) => p.ip));
    try {
      return await inBatches(specs, PARALLEL, (s) => addPod(s, ips.get(s.name)!));
    } catch (err) {
      await Promise.all(specs.map((s) => removePod(s.name)));
      throw err;
    }
  };

  const teardownSync = () => {
    if (tornDown) return;
    tornDown = Promise.resolve([]);
    for (const ns of [...[...pods.values()].map((p) => p.ns), nodeNs]) {
      const pids = (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '').split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
      rmSync(path.join(ETC_NETNS, ns), { recursive: true, force: true });
    }
    pods.clear();
    removeEtcNetnsIfEmpty();
    rmSync(lock, { force: true });
  };

  const teardown = () =>
    (tornDown ??= (async () => {
      const problems: string[] = [];
      for (const name of [...pods.keys()]) await removePod(name).catch((e: Error) => problems.push(e.message));
      await killIn(nodeNs);
      await run('ip', ['netns', 'del', nodeNs]).catch(() => undefined);
      removeEtcNetnsIfEmpty();
      rmSync(lock, { force: true });
      return [...(await labLeftovers(o.prefix)), ...problems];
    })());

  try {
    await run('ip', ['netns', 'add', nodeNs]);
    await run('ip', ['-n', nodeNs, '-batch', '-'], `link set lo up\nlink add ${BRIDGE} type bridge\naddr add ${range.gateway}/${range.prefixLength} dev ${BRIDGE}\nlink set ${BRIDGE} up\n`);
    await addPods(o.pods ?? []);
  } catch (err) {
    await teardown();
    throw err;
  }

  const podOf = (name: string): LabPod => {
    const p = pods.get(name);
    if (!p) throw new WeftError(ErrorCode.USAGE, `no pod ${name} in lab ${o.prefix} (pods: ${[...pods.keys()].join(', ') || 'none'})`);
    return p;
  };

  return {
    prefix: o.prefix,
    range,
    nodeNs,
    pods,
    pod: podOf,
    addPods,
    removePod,
    setHosts(entries) {
      hosts = entries;
      for (const p of pods.values()) writeHosts(p);
    },
    exec(name, argv) {
      return ['ip', 'netns', 'exec', podOf(name).ns, ...argv];
    },
    teardown,
    teardownSync,
  };
}
