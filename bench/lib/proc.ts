// Child processes for the benchmarks: spawned pinned to a CPU with taskset, tracked so that every
// one is stopped (by its own pid) when the run ends, and measured from /proc (CPU time, RSS, and
// PSS / private memory from smaps_rollup).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';

/** Clock ticks per second for /proc/<pid>/stat (USER_HZ; 100 on Linux, asked once). */
const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it is gone. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Child>();
let hooked = false;

/** Last resort on exit: SIGKILL whatever is still running, each by its own pid. */
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of running) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}, stopping ${running.size} child process(es)\n`);
      void stopAll().finally(() => process.exit(130));
    });
  }
}

export interface SpawnOptions {
  /** CPU list for taskset (e.g. "1"); undefined = not pinned. */
  readonly cpu?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  /** Child stderr (and stdout unless `captureStdout`) goes to this file. */
  readonly logFile?: string;
  /** Keep stdout readable by the caller (lines / JSON results) instead of logging it. */
  readonly captureStdout?: boolean;
  readonly cwd?: string;
}

/** Whether taskset can pin to `cpu` here (the machine may have fewer CPUs, or a cpuset). */
export function canPin(cpu: string): boolean {
  const r = spawnSync('taskset', ['-c', cpu, 'true']);
  return r.status === 0;
}

export function cpuCount(): number {
  return os.availableParallelism();
}

export function start(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Child {
  hookExit();
  const [file, argv] = opts.cpu !== undefined ? ['taskset', ['-c', opts.cpu, cmd, ...args]] : [cmd, [...args]];
  const proc = spawn(file, argv as string[], {
    env: { ...process.env, ...opts.env },
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const log = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  if (log) {
    proc.stderr?.pipe(log, { end: false });
    if (!opts.captureStdout) proc.stdout?.pipe(log, { end: false });
  } else {
    proc.stderr?.resume();
    if (!opts.captureStdout) proc.stdout?.resume();
  }
  const exited = new Promise<number | string>((resolve) => {
    proc.once('exit', (code, signal) => {
      running.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
  });
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    exited,
    async stop(graceMs = 3_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try {
        process.kill(proc.pid!, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(proc.pid!, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
      log?.end();
    },
  };
  running.add(child);
  return child;
}

/** Stops every process this module started, each by its own pid. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((c) => c.stop(2_000)));
}

/** Waits for a stdout line matching `re` (bounded by `timeoutMs`); resolves with the match. */
export function waitForLine(child: Child, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const out = child.proc.stdout;
  if (!out) return Promise.reject(new Error(`${child.name}: stdout is not captured`));
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: out });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error(`${child.name}: no line matching ${re} within ${timeoutMs} ms`));
    }, timeoutMs);
    rl.on('line', (line) => {
      const m = re.exec(line);
      if (!m) return;
      clearTimeout(timer);
      rl.close();
      resolve(m);
    });
    void child.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${child.name} exited (${code}) before printing ${re}`));
    });
  });
}

/** Runs a process to completion; resolves with its stdout (stderr kept for errors). */
export async function runToEnd(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { timeoutMs: number },
): Promise<{ stdout: string; stderr: string; code: number | string }> {
  const child = start(name, cmd, args, { ...opts, captureStdout: true, logFile: undefined });
  let stdout = '';
  let stderr = '';
  child.proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => void child.stop(1_000), opts.timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  return { stdout, stderr, code };
}

export interface Measured {
  readonly stdout: string;
  readonly code: number | string;
  /** CPU seconds per measured pid over the window, and the window's wall time. */
  readonly cpu: Map<number, number>;
  readonly wallSeconds: number;
  /** Busy fraction per CPU over the window. */
  readonly cores: Record<string, number>;
  /** Peak RSS (MiB) per measured pid over the window. */
  readonly rssPeak: Map<number, number>;
  /** Peak PSS and peak private anonymous memory (MiB) per measured pid (smaps_rollup). */
  readonly pssPeak: Map<number, number>;
  readonly anonPeak: Map<number, number>;
  /** Whether the child marked its window (else the whole run was measured). */
  readonly marked: boolean;
}

/**
 * Runs a load process to completion while measuring `pids` (the processes under test) over the
 * window the load process marks with `BENCH_MEASURE start|end` lines (its warm-up excluded), or
 * over the whole run when it marks nothing (C tools, whose warm-up is a separate run).
 */
export async function runMeasured(
  name: string,
  cmd: string,
  args: readonly string[],
  opts: SpawnOptions & { timeoutMs: number },
  pids: readonly number[],
): Promise<Measured> {
  let cpu: CpuMeter | undefined;
  let cores: CoreMeter | undefined;
  let rss: RssSampler | undefined;
  let result: Pick<Measured, 'cpu' | 'wallSeconds' | 'cores' | 'rssPeak' | 'pssPeak' | 'anonPeak'> | undefined;
  let marked = false;
  const begin = () => {
    cpu = new CpuMeter(pids);
    cores = new CoreMeter();
    rss = new RssSampler(pids);
  };
  const end = () => {
    if (!cpu || !cores || !rss || result) return;
    const c = cpu.stop();
    const peaks = rss.stopAll();
    result = { cpu: c.cpu, wallSeconds: c.wallSeconds, cores: cores.stop(), rssPeak: peaks.rss, pssPeak: peaks.pss, anonPeak: peaks.anon };
  };
  const child = start(name, cmd, args, { ...opts, captureStdout: true, logFile: undefined });
  begin();
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'BENCH_MEASURE start') {
        marked = true;
        rss?.stop();
        begin();
      } else if (line === 'BENCH_MEASURE end') end();
    }
  });
  child.proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => void child.stop(1_000), opts.timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  end();
  if (code !== 0) throw new Error(`${name} failed (${code}): ${stderr.trim().slice(-1000)}`);
  return { stdout, code, marked, ...result! };
}

/** The last `PREFIX {json}` line a load process printed. */
export function resultLine<T>(stdout: string, prefix = 'BENCH_RESULT '): T {
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(prefix));
  if (!line) throw new Error(`no ${prefix.trim()} line in output:\n${stdout.slice(-2000)}`);
  return JSON.parse(line.slice(prefix.length)) as T;
}

// ---- /proc measurements -----------------------------------------------------------------------

/** User + system CPU seconds used so far by `pid` (all its threads). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after the closing paren are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return (utime + stime) / CLK_TCK;
}

/** Resident set size of `pid` in MiB. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

/**
 * A process's memory as the kernel accounts it (MiB, /proc/<pid>/smaps_rollup). RSS counts every
 * resident page, the node binary's code and data files included, which every Node process on the
 * machine shares; PSS divides each shared page among the processes that map it (what one more
 * sidecar really adds); anon is the private anonymous memory (V8's heap, malloc, stacks).
 */
export interface MemoryFigures {
  readonly rss: number;
  readonly pss: number;
  readonly anon: number;
}

export function memoryOf(pid: number): MemoryFigures {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return { rss: kib('Rss'), pss: kib('Pss'), anon: kib('Anonymous') };
}

/** Samples memory of some processes until stopped (RSS every `everyMs`, smaps_rollup every
 *  fourth time: walking it costs the kernel more); keeps the peak of each figure. */
export class RssSampler {
  private readonly peaks = { rss: new Map<number, number>(), pss: new Map<number, number>(), anon: new Map<number, number>() };
  private readonly timer: NodeJS.Timeout;
  private tick = 0;

  constructor(
    private readonly pids: readonly number[],
    everyMs = 250,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  private sample(): void {
    const full = this.tick++ % 4 === 0;
    const keep = (map: Map<number, number>, pid: number, v: number) => {
      if (!(v <= (map.get(pid) ?? 0))) map.set(pid, v);
    };
    for (const pid of this.pids) {
      try {
        keep(this.peaks.rss, pid, rssMiB(pid));
        if (full) {
          const m = memoryOf(pid);
          keep(this.peaks.pss, pid, m.pss);
          keep(this.peaks.anon, pid, m.anon);
        }
      } catch {
        // the process ended; its peak so far stands
      }
    }
  }

  /** Stops sampling (one last full sample); peak RSS (MiB) per pid. */
  stop(): Map<number, number> {
    return this.stopAll().rss;
  }

  /** Stops sampling (one last full sample); peak RSS, PSS and private anonymous MiB per pid. */
  stopAll(): { rss: Map<number, number>; pss: Map<number, number>; anon: Map<number, number> } {
    clearInterval(this.timer);
    this.tick = 0;
    this.sample();
    return this.peaks;
  }
}

/**
 * Memory of idle processes right after start-up (`firstMs`) and once V8 has settled them
 * (`settledMs`: an idle Node process shrinks its heap within ~15 s); both samples per pid.
 */
export async function settledMemory(
  pids: readonly number[],
  { firstMs = 3_000, settledMs = 20_000 }: { firstMs?: number; settledMs?: number } = {},
): Promise<Map<number, { first: MemoryFigures; settled: MemoryFigures }>> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await sleep(firstMs);
  const first = new Map(pids.map((p) => [p, memoryOf(p)]));
  await sleep(settledMs - firstMs);
  return new Map(pids.map((p) => [p, { first: first.get(p)!, settled: memoryOf(p) }]));
}

/** Busy fraction of each CPU (from /proc/stat) between construction and `stop()`: shows when the
 *  load side saturated, and how much the rest of the machine was using. */
export class CoreMeter {
  private readonly before = CoreMeter.read();

  static read(): Map<string, { busy: number; total: number }> {
    const out = new Map<string, { busy: number; total: number }>();
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2]!.split(/\s+/).map(Number);
      const idle = (v[3] ?? 0) + (v[4] ?? 0);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      out.set(m[1]!, { busy: total - idle, total });
    }
    return out;
  }

  /** CPU number → busy fraction 0..1. */
  stop(): Record<string, number> {
    const after = CoreMeter.read();
    const out: Record<string, number> = {};
    for (const [cpu, a] of after) {
      const b = this.before.get(cpu);
      if (!b || a.total === b.total) continue;
      out[cpu] = (a.busy - b.busy) / (a.total - b.total);
    }
    return out;
  }
}

/** CPU seconds used by each pid between construction and `stop()`, with the wall time. */
export class CpuMeter {
  private readonly before: Map<number, number>;
  private readonly t0 = performance.now();

  constructor(private readonly pids: readonly number[]) {
    this.before = new Map(pids.map((p) => [p, cpuSeconds(p)]));
  }

  stop(): { wallSeconds: number; cpu: Map<number, number> } {
    const wallSeconds = (performance.now() - this.t0) / 1000;
    const cpu = new Map<number, number>();
    for (const p of this.pids) cpu.set(p, cpuSeconds(p) - (this.before.get(p) ?? 0));
    return { wallSeconds, cpu };
  }
}
