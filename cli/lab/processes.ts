// The child processes of `weft up` (sidecars, node proxies, waypoints, workloads): spawned with
// their output kept line by line in the log file, stopped in order (SIGTERM, then SIGKILL by
// pid after a grace period), and every one of them killed if this process exits first.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';

export class Children {
  private readonly live = new Set<ChildProcess>();
  private readonly onExit = () => this.killAll();

  constructor(private readonly logStream: Writable) {
    process.on('exit', this.onExit);
  }

  /** Starts argv[0] with argv[1..]; each output line goes to the log as `<label> | line` and to `onLine`. */
  spawn(label: string, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; onLine?: (line: string) => void } = {}): ChildProcess {
    const [file = '', ...args] = argv;
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    this.live.add(child);
    const relay = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          this.logStream.write(`${label} | ${line}\n`);
          opts.onLine?.(line);
        }
      });
    };
    relay(child.stdout);
    relay(child.stderr);
    child.on('error', (err) => this.logStream.write(`${label} | cannot start ${file}: ${err.message}\n`));
    child.on('exit', (code, signal) => {
      this.live.delete(child);
      this.logStream.write(`${label} | exited (${signal ?? code})\n`);
    });
    return child;
  }

  /** Pids of the processes still running. */
  pids(): number[] {
    return [...this.live].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  /** SIGKILL to every child still running, each by its own pid (the last resort on exit). */
  killAll(): void {
    for (const c of this.live) c.kill('SIGKILL');
  }

  /** Stops watching for this process's exit (after an orderly stop). */
  release(): void {
    process.off('exit', this.onExit);
  }
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export function terminate(child: ChildProcess | undefined, graceMs = 5_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Polls `check` until it is true or `timeoutMs` passes (or `cancelled()` says to give up). */
export async function untilTrue(check: () => Promise<boolean>, timeoutMs: number, cancelled: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !cancelled()) {
    if (await check().catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** GET `url`: whether it answered 200 within 500 ms. */
export async function fetchOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(500) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** The argv that runs a WorkloadEntry command: `weft ...` means this very CLI, wherever it is installed. */
export function commandArgv(command: readonly string[], cliMain: string): string[] {
  const [cmd = '', ...args] = command;
  return cmd === 'weft' ? [process.execPath, cliMain, ...args] : [cmd, ...args];
}
