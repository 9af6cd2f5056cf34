// `weft up DIR`: the whole local mesh in one terminal — the control plane in this process, then
// either a sidecar process per WorkloadEntry with each workload's command pointing HTTP_PROXY at
// its sidecar, or (when the workloads are ambient, as root) a network lab of pods carried by
// node proxies (cli/lab/up-ambient.ts) — and a live view of traffic. Ctrl-C stops everything in
// order, leaving no process (and, in ambient mode, no namespace).
import { type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlPlaneConfig } from '../control-plane/config.js';
import { startControlPlane, type ControlPlane } from '../control-plane/main.js';
import { workloadKey, type Model } from '../control-plane/model/index.js';
import { configureLogging, createLogger, type Logger } from '../core/log.js';
import { STATS_PREFIX, type DemoStats } from './demo/client.js';
import { Children, commandArgv, fetchOk, terminate, untilTrue } from './lab/processes.js';
import { isAmbientConfig, startAmbientMode } from './lab/up-ambient.js';
import { renderView, weightsOf, type ViewState, type Weights, type WorkloadView } from './up-view.js';

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

/** What a mode of `weft up` gets: the running control plane and the means to run processes. */
export interface UpContext {
  readonly configDir: string;
  readonly stateDir: string;
  readonly cp: ControlPlane;
  /** `127.0.0.1:<port>` of the control plane's xDS + CA over TLS. */
  readonly xdsTarget: string;
  /** PEM roots that verify it. */
  readonly rootCertFile: string;
  /** This CLI's entry point (what `weft` in a command means). */
  readonly cliMain: string;
  readonly children: Children;
  readonly log: Logger;
  /** Whether stopping has begun (long waits give up). */
  stopping(): boolean;
}

/** A running mode: what the live view shows, and an orderly stop (workloads first). */
export interface UpMode {
  view(): Promise<Pick<ViewState, 'workloads' | 'ambient'>>;
  /** Resolves with what could not be cleaned up (empty when everything is gone). */
  stop(): Promise<string[]>;
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export async function runUp(opts: UpOptions): Promise<void> {
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  // Listen for Ctrl-C from the start: a signal while pods are being built still stops in order.
  const until = opts.until ?? new Promise((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  let stopRequested = false;
  void until.then(() => (stopRequested = true));

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
  const rootCertFile = path.join(stateDir, 'root-cert.pem');
  writeFileSync(rootCertFile, cp.trustBundle().join(''));
  const xdsTarget = `127.0.0.1:${cp.xdsTlsAddress!.port}`;
  const children = new Children(logStream);
  const ctx: UpContext = { configDir: path.resolve(opts.configDir), stateDir, cp, xdsTarget, rootCertFile, cliMain: MAIN, children, log, stopping: () => stopRequested };

  let mode: UpMode;
  try {
    mode = isAmbientConfig(cp.model()) ? await startAmbientMode(ctx) : startSidecarMode(ctx);
  } catch (err) {
    children.killAll();
    await cp.stop();
    children.release();
    await new Promise<void>((r) => logStream.end(r));
    // The error goes to the terminal: the log file was only for the live view's sake.
    configureLogging({ write: (line) => process.stderr.write(line + '\n') });
    throw err;
  }

  const refresh = async () => {
    const v = await mode.view();
    const state: ViewState = { configDir: ctx.configDir, xds: xdsTarget, monitorPort: cp.monitorAddress.port, logFile, ...v };
    write(renderView(state, opts.view));
  };
  const ticker = setInterval(() => void refresh().catch((e: unknown) => log.warn('view refresh failed', { error: String(e) })), 1000);

  await until;

  clearInterval(ticker);
  if (opts.view) write('\x1b[2J\x1b[H');
  write('stopping: workloads, proxies, control plane...\n');
  // A failure while stopping still stops the rest, and reaches the terminal, not just the log.
  let failure: unknown;
  const left = await mode.stop().catch((err: unknown) => ((failure = err), []));
  await cp.stop().catch((err: unknown) => (failure ??= err));
  children.killAll();
  children.release();
  await new Promise<void>((r) => logStream.end(r));
  configureLogging({ write: (line) => process.stderr.write(line + '\n') });
  if (failure !== undefined) throw failure;
  for (const l of left) write(`left behind: ${l}\n`);
  write('stopped.\n');
}

interface Running {
  readonly key: string;
  proxy?: ChildProcess;
  app?: ChildProcess;
  ports?: { outbound: number; inbound: number; admin: number; stats: number; health: number };
  ready: boolean;
  stats?: DemoStats;
  lastLine?: string;
}

/** Sidecar mode: a sidecar process per WorkloadEntry, each workload's command behind it. */
function startSidecarMode(ctx: UpContext): UpMode {
  const { stateDir, children, log } = ctx;
  const running = new Map<string, Running>();

  const start = (model: Model, key: string) => {
    const we = model.workloadByKey(key);
    if (!we) return;
    const r: Running = { key, ready: false };
    running.set(key, r);
    r.proxy = children.spawn(
      `${key} sidecar`,
      [
        process.execPath, ctx.cliMain, 'proxy',
        '--xds', ctx.xdsTarget,
        '--xds-root-cert', ctx.rootCertFile,
        '--workload', key,
        '--token-file', path.join(stateDir, 'tokens', we.metadata.namespace, `${we.metadata.name}.token`),
        '--bind-address', we.spec.address || '127.0.0.1',
        '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0',
      ],
      {
        onLine: (line) => {
          if (!line.startsWith('weft-proxy-listening ')) return;
          r.ports = JSON.parse(line.slice('weft-proxy-listening '.length)) as Running['ports'];
          if (!we.spec.command || we.spec.command.length === 0) return;
          const command = we.spec.command;
          // Like Istio's holdApplicationUntilProxyStarts: the app starts once its sidecar has its
          // certificate and a complete config, so its first requests do not fail.
          void untilTrue(() => fetchOk(`http://127.0.0.1:${r.ports!.admin}/ready`), 60_000).then((ready) => {
            if (!running.has(key) || r.app) return;
            if (!ready) log.warn('sidecar not ready after 60 s; starting the workload anyway', { workload: key });
            r.app = children.spawn(key, commandArgv(command, ctx.cliMain), {
              env: { ...process.env, ...we.spec.env, HTTP_PROXY: `http://127.0.0.1:${r.ports!.outbound}`, WEFT_WORKLOAD: key },
              onLine: (l) => {
                if (l.startsWith(STATS_PREFIX)) r.stats = JSON.parse(l.slice(STATS_PREFIX.length)) as DemoStats;
                else r.lastLine = l;
              },
            });
          });
        },
      },
    );
  };

  const stopOne = async (r: Running) => {
    running.delete(r.key);
    await Promise.all([r.app, r.proxy].map((c) => terminate(c)));
  };

  const reconcile = (model: Model) => {
    const desired = new Set(model.workloadEntries.map(workloadKey));
    for (const key of desired) if (!running.has(key)) start(model, key);
    for (const r of running.values()) if (!desired.has(r.key)) void stopOne(r);
  };
  reconcile(ctx.cp.model());
  const unsubscribe = ctx.cp.onModel(reconcile);

  return {
    // Readiness from each sidecar's admin port, traffic from demo clients, weights from the
    // config the client sidecars actually hold.
    async view() {
      const workloads: WorkloadView[] = [];
      for (const r of running.values()) {
        if (r.ports) r.ready = await fetchOk(`http://127.0.0.1:${r.ports.admin}/ready`);
        const weights = r.stats && r.ports ? await fetchWeights(r.ports.admin) : undefined;
        workloads.push({ key: r.key, ready: r.ready, ports: r.ports, hasApp: !!r.app, stats: r.stats, weights, lastLine: r.lastLine });
      }
      return { workloads };
    },
    async stop() {
      unsubscribe();
      await Promise.all([...running.values()].map(stopOne));
      return [];
    },
  };
}

/** The weights a sidecar holds, from its /config_dump. */
async function fetchWeights(adminPort: number): Promise<Weights | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/config_dump`, { signal: AbortSignal.timeout(500) });
    return weightsOf(await res.json());
  } catch {
    return undefined;
  }
}
