// `weft up DIR`: the whole local mesh in one terminal — the control plane in this process, a
// sidecar process per WorkloadEntry, each workload's command with HTTP_PROXY pointing at its
// sidecar, and a live view of traffic. Ctrl-C stops everything in order, leaving no process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync, createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlPlaneConfig } from '../control-plane/config.js';
import { startControlPlane, type ControlPlane } from '../control-plane/main.js';
import { workloadKey, type Model } from '../control-plane/model/index.js';
import { configureLogging, createLogger } from '../core/log.js';
import { STATS_PREFIX, type DemoStats } from './demo/client.js';
import { renderView, type ViewState, type WorkloadView } from './up-view.js';

export interface UpOptions {
  readonly configDir: string;
  readonly stateDir: string;
  /** Full-screen live view (TTY) or one status line per second. */
  readonly view: boolean;
  /** Where child output is kept; defaults to <stateDir>/../up.log. */
  readonly logFile?: string;
  /** Resolves when the caller wants to stop; defaults to SIGINT/SIGTERM. */
  readonly until?: Promise<unknown>;
  readonly write?: (s: string) => void;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface Running {
  readonly key: string;
  proxy?: ChildProcess;
  app?: ChildProcess;
  ports?: { outbound: number; inbound: number; admin: number; stats: number; health: number };
  ready: boolean;
  stats?: DemoStats;
  lastLine?: string;
}

export async function runUp(opts: UpOptions): Promise<void> {
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  const stateDir = path.resolve(opts.stateDir);
  mkdirSync(stateDir, { recursive: true });
  const logFile = opts.logFile ?? path.join(path.dirname(stateDir), 'up.log');
  const logStream = createWriteStream(logFile, { flags: 'a' });
  // The control plane logs into the file too: the terminal belongs to the live view.
  configureLogging({ write: (line) => logStream.write(`control-plane | ${line}\n`) });
  const log = createLogger('up');

  const cp: ControlPlane = await startControlPlane(
    controlPlaneConfig({ configDir: opts.configDir, stateDir, xdsPort: 0, xdsTlsPort: 0, monitorPort: 0 }),
  );
  const rootFile = path.join(stateDir, 'root-cert.pem');
  writeFileSync(rootFile, cp.trustBundle().join(''));
  const xdsTarget = `127.0.0.1:${cp.xdsTlsAddress!.port}`;

  const running = new Map<string, Running>();
  const children = new Set<ChildProcess>();

  const track = (child: ChildProcess, label: string, onLine?: (line: string) => void) => {
    children.add(child);
    const relay = (stream: NodeJS.ReadableStream | null) => {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          logStream.write(`${label} | ${line}\n`);
          onLine?.(line);
        }
      });
    };
    relay(child.stdout);
    relay(child.stderr);
    child.on('exit', (code, signal) => {
      children.delete(child);
      logStream.write(`${label} | exited (${signal ?? code})\n`);
    });
  };

  const start = (model: Model, key: string) => {
    const we = model.workloadByKey(key);
    if (!we) return;
    const r: Running = { key, ready: false };
    running.set(key, r);
    const proxy = spawn(
      process.execPath,
      [
        MAIN, 'proxy',
        '--xds', xdsTarget,
        '--xds-root-cert', rootFile,
        '--workload', key,
        '--token-file', path.join(stateDir, 'tokens', we.metadata.namespace, `${we.metadata.name}.token`),
        '--bind-address', we.spec.address || '127.0.0.1',
        '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    r.proxy = proxy;
    track(proxy, `${key} sidecar`, (line) => {
      if (!line.startsWith('weft-proxy-listening ')) return;
      r.ports = JSON.parse(line.slice('weft-proxy-listening '.length)) as Running['ports'];
      if (!we.spec.command || we.spec.command.length === 0) return;
      const command = we.spec.command;
      // Like Istio's holdApplicationUntilProxyStarts: the app starts once its sidecar has its
      // certificate and a complete config, so its first requests do not fail.
      void untilReady(`http://127.0.0.1:${r.ports!.admin}/ready`, 60_000).then((ready) => {
        if (!running.has(key) || r.app) return;
        if (!ready) log.warn('sidecar not ready after 60 s; starting the workload anyway', { workload: key });
        const [cmd = '', ...args] = command;
        // `weft ...` in a WorkloadEntry command means this very CLI, wherever it is installed.
        const argv = cmd === 'weft' ? [process.execPath, MAIN, ...args] : [cmd, ...args];
        const app = spawn(argv[0]!, argv.slice(1), {
          stdio: ['ignore', 'pipe', 'pipe'],
          env: {
            ...process.env,
            ...we.spec.env,
            HTTP_PROXY: `http://127.0.0.1:${r.ports!.outbound}`,
            WEFT_WORKLOAD: key,
          },
        });
        r.app = app;
        track(app, key, (l) => {
          if (l.startsWith(STATS_PREFIX)) r.stats = JSON.parse(l.slice(STATS_PREFIX.length)) as DemoStats;
          else r.lastLine = l;
        });
      });
    });
  };

  const stopOne = async (r: Running) => {
    running.delete(r.key);
    await Promise.all([r.app, r.proxy].map((c) => c && terminate(c)));
  };

  const reconcile = (model: Model) => {
    const desired = new Set(model.workloadEntries.map(workloadKey));
    for (const key of desired) if (!running.has(key)) start(model, key);
    for (const r of running.values()) if (!desired.has(r.key)) void stopOne(r);
  };
  reconcile(cp.model());
  cp.onModel(reconcile);

  // The live view: readiness from each sidecar's admin port, traffic from demo clients,
  // weights from the config the client sidecars actually hold.
  const refresh = async () => {
    const workloads: WorkloadView[] = [];
    for (const r of running.values()) {
      if (r.ports) r.ready = await fetchOk(`http://127.0.0.1:${r.ports.admin}/ready`);
      const weights = r.stats && r.ports ? await fetchWeights(r.ports.admin) : undefined;
      workloads.push({ key: r.key, ready: r.ready, ports: r.ports, hasApp: !!r.app, stats: r.stats, weights, lastLine: r.lastLine });
    }
    const state: ViewState = { configDir: path.resolve(opts.configDir), xds: xdsTarget, monitorPort: cp.monitorAddress.port, logFile, workloads };
    write(renderView(state, opts.view));
  };
  const ticker = setInterval(() => void refresh().catch((e: unknown) => log.warn('view refresh failed', { error: String(e) })), 1000);

  const killAll = () => {
    for (const c of children) c.kill('SIGKILL');
  };
  process.on('exit', killAll);

  await (opts.until ?? new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  }));

  clearInterval(ticker);
  if (opts.view) write('\x1b[2J\x1b[H');
  write('stopping: workloads, sidecars, control plane...\n');
  await Promise.all([...running.values()].map(stopOne));
  await cp.stop();
  process.off('exit', killAll);
  await new Promise<void>((r) => logStream.end(r));
  write('stopped.\n');
}

/** SIGTERM, then SIGKILL if it has not exited within 5 s. */
function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/** Polls `url` until it answers 200 or `timeoutMs` passes. */
async function untilReady(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fetchOk(url)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function fetchOk(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(500) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

interface DumpedBackend {
  cluster: string;
  weight: number;
}

/** `service → [{cluster, weight}]` for every weighted route in the sidecar's outbound config. */
async function fetchWeights(adminPort: number): Promise<Record<string, DumpedBackend[]> | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/config_dump`, { signal: AbortSignal.timeout(500) });
    const dump = (await res.json()) as {
      routes?: Array<{ name: string; virtualHosts: Array<{ name: string; routes: Array<{ action: { kind: string; backends?: DumpedBackend[] } }> }> }>;
    };
    const out: Record<string, DumpedBackend[]> = {};
    for (const rc of dump.routes ?? []) {
      for (const vh of rc.virtualHosts) {
        for (const route of vh.routes) {
          if (route.action.kind === 'forward' && (route.action.backends?.length ?? 0) > 1) out[vh.name] = route.action.backends!;
        }
      }
    }
    return out;
  } catch {
    return undefined;
  }
}
