// Installing and removing the capture rules in the current network namespace: find a working
// iptables backend (nft or legacy, whichever holds the namespace's rules), then one atomic
// iptables-restore per address family, verified afterwards and rolled back on any failure.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { ErrorCode, WeftError } from '../../core/errors.js';
import { captureRules, compare, parseSave, renderApply, renderRemove, type CaptureSpec, type Family } from './iptables.js';

export type BackendName = 'nft' | 'legacy';

/** One iptables backend: its save/restore programs per family. */
export interface Backend {
  readonly name: BackendName;
  readonly save: Record<Family, string>;
  readonly restore: Record<Family, string>;
}

/** Runs a program; injectable so the decision logic is testable without root. */
export type Runner = (file: string, args: readonly string[], input?: string) => { status: number | null; stdout: string; stderr: string; error?: Error };

export const spawnRunner: Runner = (file, args, input) => {
  const r = spawnSync(file, args, { input, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ...(r.error ? { error: r.error } : {}) };
};

function which(program: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(path.delimiter)) {
    if (!dir) continue;
    const file = path.join(dir, program);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The backends whose programs exist in PATH (`iptables-nft-save`, `iptables-legacy-save`, or a
 *  plain `iptables-save` identified by its `-V`). */
export function findBackends(run: Runner = spawnRunner, pathEnv?: string): Backend[] {
  const out: Backend[] = [];
  for (const name of ['nft', 'legacy'] as const) {
    const programs = {
      save4: which(`iptables-${name}-save`, pathEnv),
      restore4: which(`iptables-${name}-restore`, pathEnv),
      save6: which(`ip6tables-${name}-save`, pathEnv),
      restore6: which(`ip6tables-${name}-restore`, pathEnv),
    };
    if (programs.save4 && programs.restore4) {
      out.push({
        name,
        save: { 4: programs.save4, 6: programs.save6 ?? `ip6tables-${name}-save` },
        restore: { 4: programs.restore4, 6: programs.restore6 ?? `ip6tables-${name}-restore` },
      });
    }
  }
  if (out.length === 0) {
    const save = which('iptables-save', pathEnv);
    const restore = which('iptables-restore', pathEnv);
    if (save && restore) {
      const v = run(save, ['-V']);
      const name: BackendName = /nf_tables/.test(v.stdout + v.stderr) ? 'nft' : 'legacy';
      out.push({ name, save: { 4: save, 6: which('ip6tables-save', pathEnv) ?? 'ip6tables-save' }, restore: { 4: restore, 6: which('ip6tables-restore', pathEnv) ?? 'ip6tables-restore' } });
    }
  }
  return out;
}

/** A `Runner` that does not block the event loop: for callers inside a long-running proxy
 *  (the ambient node agent), where a synchronous iptables run would stall every connection. */
export type AsyncRunner = (file: string, args: readonly string[], input?: string) => Promise<ReturnType<Runner>>;

export const spawnAsyncRunner: AsyncRunner = (file, args, input) =>
  new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    let error: Error | undefined;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', (err) => (error = err));
    // A program that exits early stops reading; its exit status says why, not our EPIPE.
    child.stdin.on('error', () => {});
    child.on('close', (status) => resolve({ status, stdout, stderr, ...(error ? { error } : {}) }));
    child.stdin.end(input ?? '');
  });

/** A runner whose programs run in the network namespace at `nsPath` (`nsenter --net=<path>`):
 *  only the network namespace changes, so program paths and files stay the caller's. */
export function inNetns(nsPath: string, run: AsyncRunner = spawnAsyncRunner): AsyncRunner {
  return (file, args, input) => run('nsenter', [`--net=${nsPath}`, '--', file, ...args], input);
}

function privilegeProblem(stderr: string): boolean {
  return /permission denied|you must be root|operation not permitted/i.test(stderr);
}

export function failure(what: string, r: ReturnType<Runner>): WeftError {
  // What the program said comes first: a restore that fails early stops reading its input, and
  // our write then fails too (EPIPE), which is not the reason.
  const detail = r.stderr.trim() || r.error?.message || `exit status ${r.status}`;
  if (privilegeProblem(detail)) {
    return new WeftError(ErrorCode.PERMISSION_DENIED, `${what}: ${detail}`, {
      hint: 'changing iptables needs CAP_NET_ADMIN (and CAP_NET_RAW) in the pod network namespace: run as root, or give the init container those capabilities',
    });
  }
  return new WeftError(ErrorCode.INTERNAL, `${what}: ${detail}`);
}

/** What one backend holds in this namespace, for choosing it. */
export interface BackendProbe {
  readonly backend: Backend;
  readonly works: boolean;
  /** Number of rules in all tables (IPv4). */
  readonly rules: number;
  /** Our chains are installed there. */
  readonly ours: boolean;
  readonly error?: WeftError;
}

export function probe(backend: Backend, run: Runner = spawnRunner): BackendProbe {
  const r = run(backend.save[4], []);
  if (r.status !== 0) return { backend, works: false, rules: 0, ours: false, error: failure(`${backend.save[4]} failed`, r) };
  return { backend, works: true, rules: r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length, ours: /^:WEFT_/m.test(r.stdout) };
}

/**
 * The backend to use, as Istio's init does: the one holding our rules, else the one holding the
 * namespace's other rules (kube-proxy, CNI), else nft when it works, else legacy. Pure.
 */
export function chooseBackend(probes: readonly BackendProbe[], wanted: BackendName | 'auto'): BackendProbe {
  if (probes.length === 0) {
    throw new WeftError(ErrorCode.INTERNAL, 'no iptables found: looked for iptables-nft-save/-restore, iptables-legacy-save/-restore and iptables-save/-restore in PATH', {
      hint: 'install the iptables package in the init container image',
    });
  }
  if (wanted !== 'auto') {
    const p = probes.find((x) => x.backend.name === wanted);
    if (!p) throw new WeftError(ErrorCode.USAGE, `--backend ${wanted}: iptables-${wanted} is not installed (found: ${probes.map((x) => x.backend.name).join(', ')})`);
    if (!p.works) throw p.error!;
    return p;
  }
  const working = probes.filter((p) => p.works);
  if (working.length === 0) {
    const denied = probes.find((p) => p.error?.code === ErrorCode.PERMISSION_DENIED);
    throw denied?.error ?? probes[0]!.error!;
  }
  const withOurs = working.find((p) => p.ours);
  if (withOurs) return withOurs;
  const most = Math.max(...working.map((p) => p.rules));
  return working.find((p) => p.rules === most && p.backend.name === 'nft') ?? working.find((p) => p.rules === most)!;
}

export interface ApplyOptions {
  readonly spec: CaptureSpec;
  readonly backend: BackendName | 'auto';
  /** Also capture IPv6 (ip6tables). */
  readonly ipv6: boolean;
  readonly run?: Runner;
  /** PATH to search for the iptables programs. */
  readonly pathEnv?: string;
}

export interface ApplyReport {
  readonly backend: BackendName;
  /** Families whose rules were installed now (the others were already in place). */
  readonly installed: readonly Family[];
  readonly unchanged: readonly Family[];
}

function saveTable(backend: Backend, family: Family, run: Runner): string {
  const r = run(backend.save[family], ['-t', 'nat']);
  if (r.status !== 0) throw failure(`${backend.save[family]} -t nat failed`, r);
  return r.stdout;
}

function restore(backend: Backend, family: Family, input: string, run: Runner): void {
  const r = run(backend.restore[family], ['--noflush'], input);
  if (r.status !== 0) throw failure(`${backend.restore[family]} --noflush failed`, r);
}

/** Removes our rules of one family, best effort (used for rollback). */
function removeFamily(backend: Backend, family: Family, run: Runner): boolean {
  const input = renderRemove(parseSave(saveTable(backend, family, run)));
  if (input) restore(backend, family, input, run);
  return input !== undefined;
}

/**
 * Installs the capture rules. Idempotent: rules already in place exactly as wanted change
 * nothing. Refuses (nothing changed) when our chains hold other rules or another mesh's capture
 * is installed. Each family goes in with one atomic iptables-restore and is read back; any
 * failure removes what this call installed before the error is thrown.
 */
export function applyCapture(opts: ApplyOptions): ApplyReport {
  const run = opts.run ?? spawnRunner;
  const chosen = chooseBackend(findBackends(run, opts.pathEnv).map((b) => probe(b, run)), opts.backend);
  const backend = chosen.backend;
  const families: Family[] = opts.ipv6 ? [4, 6] : [4];
  const plans = families.map((family) => {
    const want = captureRules(opts.spec, family);
    const cmp = compare(parseSave(saveTable(backend, family, run)), want);
    if (cmp.kind === 'conflict') {
      throw new WeftError(
        ErrorCode.CONFIG_INVALID,
        `conflicting ${family === 4 ? 'iptables' : 'ip6tables'} nat rules in this network namespace (iptables-${backend.name}): ${cmp.problems.join('; ')}`,
        { hint: 'nothing was changed; if these are Weft rules from other settings, run `weft iptables remove` first' },
      );
    }
    return { family, want, cmp };
  });

  const installed: Family[] = [];
  try {
    for (const p of plans) {
      if (p.cmp.kind === 'applied') continue;
      installed.push(p.family);
      restore(backend, p.family, renderApply(p.want), run);
      const after = compare(parseSave(saveTable(backend, p.family, run)), p.want);
      if (after.kind !== 'applied') {
        throw new WeftError(ErrorCode.INTERNAL, `rules read back after iptables-restore differ from what was written: ${after.kind === 'conflict' ? after.problems.join('; ') : 'nothing installed'}`);
      }
    }
  } catch (err) {
    for (const f of installed) {
      try {
        removeFamily(backend, f, run);
      } catch {
        // The original error is the one to report.
      }
    }
    throw err;
  }
  return { backend: backend.name, installed, unchanged: plans.filter((p) => !installed.includes(p.family)).map((p) => p.family) };
}

export interface RemoveReport {
  readonly backends: readonly BackendName[];
  /** `backend/family` entries that held rules and were cleaned. */
  readonly removed: readonly string[];
}

/** Removes our chains and jumps from every working backend and family that holds them.
 *  Idempotent: nothing installed is not an error. `ipv6`: an ip6tables failure is an error. */
export function removeCapture(opts: { ipv6: boolean; backend: BackendName | 'auto'; run?: Runner; pathEnv?: string }): RemoveReport {
  const run = opts.run ?? spawnRunner;
  const probes = findBackends(run, opts.pathEnv).map((b) => probe(b, run));
  const targets = opts.backend === 'auto' ? probes.filter((p) => p.works) : [chooseBackend(probes, opts.backend)];
  if (targets.length === 0) chooseBackend(probes, 'auto'); // throws the reason
  const removed: string[] = [];
  for (const p of targets) {
    // IPv6 is cleaned whenever ip6tables works, so rules applied with --ipv6 never stay behind.
    for (const family of [4, 6] as const) {
      try {
        if (removeFamily(p.backend, family, run)) removed.push(`${p.backend.name}/ipv${family}`);
      } catch (err) {
        if (family === 4 || opts.ipv6) throw err;
      }
    }
  }
  return { backends: targets.map((p) => p.backend.name), removed };
}
