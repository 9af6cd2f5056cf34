// `weft proxy --concurrency N`: one sidecar on N cores. A Node process runs JavaScript on one
// core, so the sidecar becomes a supervisor and N worker processes (node:cluster). Each worker is
// a whole proxy (its own xDS stream, certificate and pools) serving the listeners they share:
// the supervisor holds the listening sockets and hands each new connection to the next worker.
// The supervisor answers for the sidecar as one: readiness (every worker ready), one
// Prometheus exposition (the workers' series summed), the app's probes, drain (all workers),
// and replaces a worker that dies. Workers keep their admin and stats on loopback ports of their
// own; the supervisor's admin port passes other requests to one of them (`?worker=I` picks).
// They seal TLS session tickets with keys drawn from one secret the supervisor makes at
// start-up, so a peer resumes its session at whichever worker it reaches next.
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { AggregatorRegistry } from 'prom-client';
import { readinessAnswer, serveEndpoints, type EndpointServer, type Handler } from '../core/http-server.js';
import type { Logger } from '../core/log.js';
import type { ProxyConfigOptions } from './config.js';
import { appProbeRoutes } from './health/app-probes.js';
import type { RunningProxy } from './main.js';

/** Set in a worker's environment: its index. */
export const WORKER_ENV = 'WEFT_PROXY_WORKER';
/** Set in a worker's environment: the supervisor's session-ticket secret (hex), which the worker
 *  takes out of its environment as it reads it (workerConfig). Never logged. */
const TICKET_SECRET_ENV = 'WEFT_PROXY_TICKET_SECRET';

type ToWorker = { weft: 'ask'; id: number; what: 'ready' | 'metrics' };
type FromWorker =
  | { weft: 'listening'; ports: RunningProxy['ports'] }
  | { weft: 'answer'; id: number; body: unknown };

const isFromWorker = (m: unknown): m is FromWorker => typeof m === 'object' && m !== null && typeof (m as { weft?: unknown }).weft === 'string';

/** Whether this process is a worker of a `--concurrency` sidecar. */
export function isProxyWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/**
 * A worker's settings: its admin, stats and health ports are its own, on loopback (the
 * supervisor serves the sidecar's); outbound, inbound and HBONE are shared through the
 * supervisor, and so are the keys of its session tickets.
 */
export function workerConfig(cfg: ProxyConfigOptions): ProxyConfigOptions {
  const hex = process.env[TICKET_SECRET_ENV];
  delete process.env[TICKET_SECRET_ENV];
  const ticketSecret = hex !== undefined && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : undefined;
  return { ...cfg, adminPort: 0, statsPort: 0, healthPort: 0, endpointsAddress: '127.0.0.1', ...(ticketSecret ? { ticketSecret } : {}) };
}

/** In a worker: tells the supervisor where it listens, and answers its questions. */
export function serveSupervisor(proxy: RunningProxy): void {
  const send = (m: FromWorker) => process.send?.(m);
  process.on('message', (m: ToWorker) => {
    if (m?.weft !== 'ask') return;
    const answer = m.what === 'ready' ? Promise.resolve(proxy.readiness()) : proxy.metricsJson();
    void answer.then((body) => send({ weft: 'answer', id: m.id, body }));
  });
  // The supervisor is gone (killed, crashed): no one hands this worker connections any more.
  process.once('disconnect', () => void proxy.stop());
  send({ weft: 'listening', ports: proxy.ports });
}

interface Slot {
  readonly index: number;
  worker: Worker;
  ports: RunningProxy['ports'] | undefined;
  restarts: number;
}

export interface ProxyWorkers {
  /** The sidecar's ports: the shared listeners, and the supervisor's admin, stats and health. */
  readonly ports: RunningProxy['ports'];
  /** Drains every worker (each finishes its requests within --drain-seconds), then stops. */
  stop(): Promise<void>;
  /** Resolves once stopped, whoever asked (a signal, or POST /drain). */
  stopped(): Promise<void>;
}

const ASK_TIMEOUT_MS = 2_000;
const RESTART_BACKOFF_MS = { initial: 500, max: 30_000 };

export async function startProxyWorkers(cfg: ProxyConfigOptions, count: number, log: Logger): Promise<ProxyWorkers> {
  const slots: Slot[] = [];
  /** The supervisor's admin, stats and health servers. */
  const servers: EndpointServer[] = [];
  const pending = new Map<number, (body: unknown) => void>();
  let nextAsk = 1;
  let stopping = false;
  let resolveStopped!: () => void;
  const stoppedPromise = new Promise<void>((r) => (resolveStopped = r));

  // Every worker, replacements included, gets the same one: see TICKET_SECRET_ENV.
  const ticketSecret = randomBytes(32).toString('hex');
  // A worker reads the same command line; the env var makes it a worker.
  cluster.setupPrimary({ exec: process.argv[1], args: process.argv.slice(2) });

  /** Asks a worker over IPC; undefined when it does not answer (in time, or at all). */
  const ask = (slot: Slot, what: ToWorker['what']): Promise<unknown> =>
    new Promise((resolve) => {
      const id = nextAsk++;
      // Once: the worker's answer, the timeout, or a failed send — whichever comes first.
      const answer = (body: unknown) => {
        if (!pending.delete(id)) return;
        clearTimeout(timer);
        resolve(body);
      };
      const timer = setTimeout(answer, ASK_TIMEOUT_MS, undefined);
      pending.set(id, answer);
      // A worker that has just died, its exit not handled yet, has a closed channel: without a
      // callback, send() would emit that as an 'error' on the Worker and end the supervisor.
      if (!slot.worker.isConnected()) return answer(undefined);
      slot.worker.send({ weft: 'ask', id, what } satisfies ToWorker, undefined, (err) => err && answer(undefined));
    });

  let listening: (() => void) | undefined;
  /** Starts the slot's worker (again, after one died). */
  const run = (s: Slot): void => {
    const worker = cluster.fork({ [WORKER_ENV]: String(s.index), [TICKET_SECRET_ENV]: ticketSecret });
    s.worker = worker;
    s.ports = undefined;
    worker.on('message', (m: unknown) => {
      if (!isFromWorker(m)) return;
      if (m.weft === 'listening') {
        s.ports = m.ports;
        log.info('worker listening', { worker: s.index, pid: worker.process.pid });
        listening?.();
      } else pending.get(m.id)?.(m.body);
    });
    // Whatever else goes wrong on its IPC channel ends with its 'exit'; it must not end us.
    worker.on('error', (err) => log.debug('worker channel error', { worker: s.index, error: err.message }));
    worker.on('exit', (code, signal) => {
      s.ports = undefined;
      if (stopping) return;
      const wait = Math.min(RESTART_BACKOFF_MS.initial * 2 ** s.restarts, RESTART_BACKOFF_MS.max);
      log.error('worker exited; starting another', { worker: s.index, pid: worker.process.pid, code, signal, inMs: wait });
      s.restarts++;
      setTimeout(() => {
        if (!stopping) run(s);
      }, wait).unref();
    });
  };

  for (let index = 0; index < count; index++) slots.push({ index, worker: undefined as unknown as Worker, ports: undefined, restarts: 0 });
  slots.forEach(run);
  await new Promise<void>((resolve, reject) => {
    // A worker that cannot start (bad flags, an unreadable token) fails the sidecar's start-up.
    const failed = (w: Worker, code: number) => {
      stopping = true;
      for (const s of slots) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
      reject(new Error(`worker ${w.process.pid} exited with code ${code} before it was listening; its log says why`));
    };
    cluster.once('exit', failed);
    listening = () => {
      if (!slots.every((s) => s.ports)) return;
      cluster.off('exit', failed);
      listening = undefined;
      resolve();
    };
  });

  const live = () => slots.filter((s) => s.ports);
  const readiness = async () => {
    const reasons: string[] = [];
    if (stopping) reasons.push('draining');
    const answers = await Promise.all(slots.map(async (s) => [s, s.ports ? await ask(s, 'ready') : undefined] as const));
    for (const [s, a] of answers) {
      const r = a as { ready: boolean; reasons: string[] } | undefined;
      if (!r) reasons.push(`worker ${s.index}: not running`);
      else if (!r.ready) reasons.push(`worker ${s.index}: ${r.reasons.join(', ')}`);
    }
    return { ready: reasons.length === 0, reasons };
  };
  const healthz: Handler = async () => readinessAnswer(await readiness());

  /** Passes a request on to a worker's admin port (its body: none; admin answers are small). */
  const toWorker: Handler = async (url) => {
    const wanted = url.searchParams.get('worker');
    const slot = wanted === null ? live()[0] : slots[Number(wanted)];
    if (!slot?.ports) return { status: 503, body: `worker ${wanted ?? ''} is not running\n` };
    url.searchParams.delete('worker');
    const res = await getJson(slot.ports.admin, `${url.pathname}${url.search}`);
    return { status: res.status, body: res.body, contentType: res.contentType };
  };

  const stop = async () => {
    if (stopping) return stoppedPromise;
    stopping = true;
    log.info('draining every worker');
    const exits = slots.map((s) => (s.worker.isDead() ? Promise.resolve() : new Promise<void>((r) => s.worker.once('exit', () => r()))));
    for (const s of slots) if (!s.worker.isDead()) s.worker.process.kill('SIGTERM');
    // Each drains within --drain-seconds; one that hangs is killed after that and a margin.
    const force = setTimeout(() => {
      for (const s of slots) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
    }, (cfg.drainSeconds + 10) * 1000);
    await Promise.all(exits);
    clearTimeout(force);
    await Promise.all(servers.map((s) => s.close()));
    resolveStopped();
  };
  const drain: Handler = (_url, req) => {
    if (req.method !== 'POST') return { status: 405, body: `use POST ${_url.pathname}\n` };
    void stop();
    return { status: 202, body: 'draining\n' };
  };

  const first = slots[0]!.ports!;
  const admin = await serveEndpoints('127.0.0.1', cfg.adminPort, {
    '/ready': healthz,
    '/workers': async () => ({
      status: 200,
      body: await Promise.all(slots.map(async (s) => ({ worker: s.index, pid: s.worker.process.pid, running: !!s.ports, restarts: s.restarts, ports: s.ports, requests: s.ports ? requestsOf(await ask(s, 'metrics')) : 0 }))),
    }),
    '/drain': drain,
    '/quitquitquit': drain,
    '/config_dump': toWorker,
    '/clusters': toWorker,
    '/stats': toWorker,
  });
  servers.push(admin);
  const prometheus: Handler = async () => {
    const all = (await Promise.all(live().map((s) => ask(s, 'metrics')))).filter((m): m is object[] => Array.isArray(m));
    const registry = AggregatorRegistry.aggregate(all);
    return { status: 200, body: await registry.metrics(), contentType: registry.contentType };
  };
  const address = cfg.endpointsAddress ?? cfg.bindAddress;
  servers.push(await serveEndpoints(address, cfg.statsPort, { '/stats/prometheus': prometheus, '/healthz/ready': healthz }));
  servers.push(await serveEndpoints(address, cfg.healthPort, { '/healthz/ready': healthz, ...appProbeRoutes(cfg.appProbes) }));
  log.info('sidecar running on workers', { workers: count, outbound: first.outbound, inbound: first.inbound, admin: `127.0.0.1:${admin.address.port}` });

  return {
    ports: { ...first, admin: admin.address.port, stats: servers[1]!.address.port, health: servers[2]!.address.port },
    stop,
    stopped: () => stoppedPromise,
  };
}

/** istio_requests_total summed, from one worker's metrics JSON. */
function requestsOf(metrics: unknown): number {
  if (!Array.isArray(metrics)) return 0;
  const family = metrics.find((m: { name?: string }) => m?.name === 'istio_requests_total') as { values?: { value: number }[] } | undefined;
  return (family?.values ?? []).reduce((a, v) => a + v.value, 0);
}

function getJson(port: number, path: string): Promise<{ status: number; body: unknown; contentType: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const contentType = String(res.headers['content-type'] ?? 'text/plain');
        resolve({ status: res.statusCode ?? 502, body: contentType.includes('json') ? JSON.parse(text) : text, contentType });
      });
    });
    req.on('error', reject);
    req.setTimeout(ASK_TIMEOUT_MS, () => req.destroy(new Error(`worker admin did not answer within ${ASK_TIMEOUT_MS} ms`)));
  });
}
