// Running things for the network-namespace tests: commands (in a namespace or not), long-lived
// processes whose output is kept for the failure message, the prerequisites check (root, ip,
// iptables nft + legacy, CNI plugins, tcpdump, setpriv, the built CLI and native addon), and
// removal of whatever a crashed earlier run left behind under a prefix.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = path.join(REPO, 'dist', 'cli', 'main.js');
export const FIXTURES = path.join(REPO, 'dist', 'test', 'netns', 'fixtures');
export const NODE = process.execPath;
const CNI_DIRS = ['/usr/lib/cni', '/opt/cni/bin'];

export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; throws with its output unless `allowFail`. */
export function sh(file: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; allowFail?: boolean; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(file, args, { input: opts.input, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeoutMs ?? 30_000 });
  const out = { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') };
  if (!opts.allowFail && r.status !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (${r.status ?? r.signal}): ${out.stderr.trim() || out.stdout.trim()}`);
  }
  return out;
}

/** `sh` without blocking the event loop (for commands run side by side). */
export function shAsync(file: string, args: readonly string[], opts: { input?: string; allowFail?: boolean } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (status) => {
      if (!opts.allowFail && status !== 0) reject(new Error(`${file} ${args.join(' ')} failed (${status}): ${stderr.trim() || stdout.trim()}`));
      else resolve({ status, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** The same, inside network namespace `ns`. */
export function nsh(ns: string, file: string, args: readonly string[], opts: Parameters<typeof sh>[2] = {}): RunResult {
  return sh('ip', ['netns', 'exec', ns, file, ...args], opts);
}

export function cniDir(): string | undefined {
  return CNI_DIRS.find((d) => existsSync(path.join(d, 'bridge')));
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((dir) => {
    try {
      accessSync(path.join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Everything the namespace tests need. They must run in CI (which is root): a missing piece
 * is an error naming it, never a silent skip.
 */
export function assertPrerequisites(extra: readonly string[] = []): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces, iptables and CNI plugins need it; CI runs as root)');
  for (const p of ['ip', 'iptables-nft-restore', 'iptables-nft-save', 'iptables-legacy-restore', 'iptables-legacy-save', 'tcpdump', 'setpriv', ...extra]) {
    if (!onPath(p)) missing.push(`${p} (see .ci/apt-packages)`);
  }
  const cni = cniDir();
  if (!cni) missing.push(`the reference CNI plugins (Debian package containernetworking-plugins) in ${CNI_DIRS.join(' or ')}`);
  else for (const p of ['bridge', 'ptp', 'host-local', 'loopback']) if (!existsSync(path.join(cni, p))) missing.push(`CNI plugin ${p} in ${cni}`);
  if (!existsSync(CLI)) missing.push(`${CLI} (run npm run build)`);
  if (!existsSync(path.join(FIXTURES, 'apps.js'))) missing.push(`${FIXTURES}/apps.js (run npm run build)`);
  if (!existsSync(path.join(REPO, 'native', 'build', 'Release', 'weft_capture.node'))) missing.push('native/build/Release/weft_capture.node (npm ci builds it; or npm run build:native)');
  if (missing.length > 0) throw new Error(`test/netns cannot run; missing: ${missing.join('; ')}`);
}

/** Namespaces named with `prefix`. */
export function namespacesWith(prefix: string): string[] {
  const r = sh('ip', ['netns', 'list'], { allowFail: true });
  return r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

/** Kills every process inside namespace `ns` (they can only be ours: the name is our prefix). */
export function killProcessesIn(ns: string): void {
  const r = sh('ip', ['netns', 'pids', ns], { allowFail: true });
  for (const pid of r.stdout.split(/\s+/).filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Removes namespaces, /etc/netns entries and temp dirs named with `prefix` (a crashed run's
 *  leftovers). Deleting a namespace deletes its links, bridges, routes and rules with it. */
export function removeLeftovers(prefix: string): void {
  for (const ns of namespacesWith(prefix)) {
    killProcessesIn(ns);
    sh('ip', ['netns', 'del', ns], { allowFail: true });
  }
  if (existsSync('/etc/netns')) {
    for (const d of readdirSync('/etc/netns')) if (d.startsWith(prefix)) rmSync(path.join('/etc/netns', d), { recursive: true, force: true });
  }
  for (const d of readdirSync(os.tmpdir())) if (d.startsWith(`${prefix}-`)) rmSync(path.join(os.tmpdir(), d), { recursive: true, force: true });
}

/** A long-lived child process with its output kept (the last 64 KiB) for failure messages. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  output(): string;
  /** Resolves with the first output line matching `re`, or rejects when the process exits first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

export function start(name: string, file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(file, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  const listeners = new Set<() => void>();
  const append = (chunk: Buffer) => {
    out = (out + chunk.toString('utf8')).slice(-65_536);
    for (const l of listeners) l();
  };
  child.stdout!.on('data', append);
  child.stderr!.on('data', append);
  child.on('error', (err) => append(Buffer.from(`\n[spawn error] ${err.message}\n`)));
  let exited = false;
  child.once('exit', (code, signal) => {
    exited = true;
    append(Buffer.from(`\n[exited ${signal ?? code}]\n`));
  });
  return {
    name,
    child,
    output: () => out,
    waitFor(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.split('\n').find((l) => re.test(l));
          if (m !== undefined) {
            done();
            resolve(m);
          } else if (exited) {
            done();
            reject(new Error(`${name} exited before printing ${re}:\n${out.slice(-4000)}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms:\n${out.slice(-4000)}`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    async stop() {
      if (exited || child.pid === undefined) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await gone;
      clearTimeout(t);
    },
  };
}
