// Builders for the resilience tests: Services with `weft.dev/*` traffic-policy annotations and
// their WorkloadEntries, backends that count and misbehave on demand, the `weft` CLI as a real
// child process, and a bounded steady-load generator. All on 127.0.0.1.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBackend, type TestBackend } from '../support/mesh.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

/** A Service `name` on port 9080 selecting `app: name`, with annotations. */
export function serviceYaml(name: string, annotations: Record<string, string> = {}): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
  annotations: ${JSON.stringify(annotations)}
spec:
  selector: { app: ${name} }
  ports: [{ name: http, port: 9080, targetPort: http }]
`;
}

/** A WorkloadEntry `workload` labelled `app: app`, its app on `port` (0: no app port). */
export function workloadYaml(workload: string, app: string, port = 0): string {
  return `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${workload}, namespace: default, labels: { app: ${app} } }
spec: { address: 127.0.0.1, ${port ? `ports: { http: ${port} }, ` : ''}serviceAccount: ${app} }
`;
}

/** An HTTPRoute on Service `name` that retries 503 up to `attempts` times. */
export function retryRouteYaml(name: string, attempts: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}-retry, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: ${name}, port: 9080 }]
  rules:
    - retry: { codes: [503], attempts: ${attempts}, backoff: 10ms }
      backendRefs: [{ name: ${name}, port: 9080 }]
`;
}

/** A backend whose behaviour can change during the test; counts every request it sees. */
export interface ControlledBackend extends TestBackend {
  behaviour: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}

export async function controlledBackend(version: string): Promise<ControlledBackend> {
  const holder: { behaviour: ControlledBackend['behaviour'] } = { behaviour: (_req, res) => ok(res, version) };
  const b = await startBackend(version, 0, (req, res) => {
    req.resume();
    holder.behaviour(req, res);
  });
  Object.defineProperty(b, 'behaviour', {
    get: () => holder.behaviour,
    set: (fn: ControlledBackend['behaviour']) => (holder.behaviour = fn),
  });
  return b as ControlledBackend;
}

export function ok(res: http.ServerResponse, version: string, delayMs = 0): void {
  const send = () => {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'text/plain', 'x-version': version });
    res.end(version);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
}

export function fail(res: http.ServerResponse, status: number, delayMs = 0): void {
  const send = () => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`failing with ${status}`);
  };
  if (delayMs > 0) setTimeout(send, delayMs);
  else send();
}

/** One request through a sidecar's outbound listener (origin-form, Host = the Service). */
export function call(
  outbound: string,
  host: string,
  opts: { path?: string; method?: string; headers?: Record<string, string>; agent?: http.Agent; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const u = new URL(outbound);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: u.hostname,
        port: u.port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: { host, ...opts.headers },
        agent: opts.agent ?? defaultAgent,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

const defaultAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** The `weft` CLI as a child process, with its output lines. */
export interface WeftProcess {
  readonly child: ChildProcess;
  readonly output: string[];
  /** Resolves with the first output line matching `re`. */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** `node NODE_ARGS weft ARGS` from dist/, logging warnings and errors unless `env` says otherwise. */
export function weft(args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): WeftProcess {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_LOG_LEVEL: 'warn', ...env } });
  const output: string[] = [];
  const waiters: Array<() => void> = [];
  const onData = (chunk: Buffer) => {
    output.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    for (const w of waiters.splice(0)) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    output,
    exited,
    line(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${output.join('\n')}`)), timeoutMs);
        const check = () => {
          const hit = output.find((l) => re.test(l));
          if (hit !== undefined) {
            clearTimeout(timer);
            resolve(hit);
          } else waiters.push(check);
        };
        check();
      });
    },
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** Results of a steady load. */
export interface LoadResult {
  sent: number;
  ok: number;
  failures: string[];
}

/**
 * `rps` requests per second for `seconds` (bounded in count and time), each awaited
 * independently; resolves when every request has finished.
 */
export async function steadyLoad(send: () => Promise<{ status: number; body: string }>, rps: number, seconds: number): Promise<LoadResult> {
  const result: LoadResult = { sent: 0, ok: 0, failures: [] };
  const total = Math.round(rps * seconds);
  const started = Date.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total && Date.now() - started < seconds * 1000 + 5_000; i++) {
    const due = started + (i * 1000) / rps;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    result.sent++;
    pending.push(
      send().then(
        (r) => {
          if (r.status === 200) result.ok++;
          else result.failures.push(`${((Date.now() - started) / 1000).toFixed(1)}s: ${r.status} ${r.body.trim()}`);
        },
        (err: unknown) => void result.failures.push(`${((Date.now() - started) / 1000).toFixed(1)}s: ${(err as Error).message}`),
      ),
    );
  }
  await Promise.all(pending);
  return result;
}
