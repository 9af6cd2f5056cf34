// `weft proxy --concurrency 2` as a real process: two worker processes share the sidecar's
// listeners and both serve; the supervisor answers for the sidecar as one (readiness, the summed
// Prometheus series, /workers); a worker killed with SIGKILL is replaced while traffic goes on;
// SIGTERM drains every worker and the whole sidecar exits. With mTLS, a peer's session resumes
// at either worker.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { CertificateAuthority } from '../../certs/ca.js';
import { workloadCert } from '../../certs/testing.js';
import { createLogger } from '../../core/log.js';
import { MeshTls } from '../../proxy/transport/tls.js';
import { echoClientYaml, serverClientYaml, startTestMesh, type TestMesh } from '../support/mesh.js';
import { samples, scrape, total } from '../support/prometheus.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = process.env.WEFT_TEST_CLI ?? path.join(ROOT, 'dist/cli/main.js');

interface Worker {
  worker: number;
  pid: number;
  running: boolean;
  restarts: number;
  requests: number;
}

/** One request on its own connection (so the supervisor hands each to the next worker). */
/** Client-side TCP connections to these loopback ports in ESTABLISHED state (/proc/net/tcp). */
function establishedTo(ports: readonly number[]): number {
  const wanted = new Set(ports.map((p) => `0100007F:${p.toString(16).toUpperCase().padStart(4, '0')}`));
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[3] === '01' && wanted.has(f[2] ?? '')).length;
}

function get(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, headers: { host: 'echo', connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timed out')));
  });
}

interface Backend {
  readonly port: number;
  close(): void;
}

/** The app: answers every request 200 "ok", on loopback. */
async function okBackend(): Promise<Backend> {
  const server = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface Supervisor {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number; health: number };
}

/** `weft proxy --concurrency 2` for `workload` (name.default) in `mesh`, once its supervisor is ready. */
async function startSupervisor(mesh: TestMesh, name: string): Promise<Supervisor> {
  const child = spawn(process.execPath, [CLI, 'proxy', '--concurrency', '2', '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`, '--workload', `${name}.default`,
    '--token-file', path.join(mesh.stateDir, 'tokens', 'default', `${name}.token`), '--bind-address', '127.0.0.1',
    '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--drain-seconds', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const ports = await eventually(() => {
    const m = /^weft-proxy-listening (\{.*\})$/m.exec(stdout);
    if (!m) throw new Error(`no listening line yet; stderr: ${stderr.slice(-800)}`);
    return JSON.parse(m[1]!) as Supervisor['ports'];
  }, { timeoutMs: 30_000, message: 'supervisor listening' });
  await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.health}/healthz/ready`)).status).toBe(200), { timeoutMs: 20_000 });
  return { child, exited, ports };
}

async function stopSupervisor(s: Supervisor | undefined): Promise<void> {
  if (s && s.child.exitCode === null) {
    s.child.kill('SIGKILL');
    await s.exited;
  }
}

describe('a sidecar on two worker processes', () => {
  let backend: Backend | undefined;
  let mesh: TestMesh;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let ports: Supervisor['ports'];
  let supervisor: Supervisor | undefined;
  const workers = async () => (await (await fetch(`http://127.0.0.1:${ports.admin}/workers`)).json()) as Worker[];

  beforeAll(async () => {
    backend = await okBackend();
    mesh = await startTestMesh({ 'echo.yaml': echoClientYaml(backend.port) }, { mtls: false });
    supervisor = await startSupervisor(mesh, 'client');
    ({ child, exited, ports } = supervisor);
  });

  afterAll(async () => {
    await stopSupervisor(supervisor);
    await mesh?.close();
    backend?.close();
  });

  it('both workers serve the shared listener, and the supervisor sums their series', async () => {
    const w = await workers();
    expect(w).toHaveLength(2);
    expect(new Set(w.map((x) => x.pid)).size).toBe(2);
    const codes = await Promise.all(Array.from({ length: 100 }, () => get(ports.outbound)));
    expect(codes.every((c) => c === 200)).toBe(true);
    const after = await workers();
    expect(after.every((x) => x.requests > 0)).toBe(true);
    expect(after.reduce((a, x) => a + x.requests, 0)).toBe(100);
    const { families } = await scrape(`http://127.0.0.1:${ports.stats}/stats/prometheus`);
    const total = samples(families, 'istio_requests_total', {}).reduce((a, s) => a + Number(s.value), 0);
    expect(total).toBe(100);
    // Admin passes other requests to a worker; ?worker picks one.
    const dump = (await (await fetch(`http://127.0.0.1:${ports.admin}/config_dump?worker=1`)).json()) as { workload: string };
    expect(dump.workload).toBe('client.default');
  });

  it('a worker that dies is replaced, and the sidecar keeps serving', async () => {
    const [victim] = await workers();
    process.kill(victim!.pid, 'SIGKILL');
    await eventually(async () => {
      const w = await workers();
      expect(w[0]!.running).toBe(true);
      expect(w[0]!.pid).not.toBe(victim!.pid);
      expect(w[0]!.restarts).toBe(1);
    }, { timeoutMs: 20_000, intervalMs: 200 });
    await eventually(async () => expect((await fetch(`http://127.0.0.1:${ports.admin}/ready`)).status).toBe(200), { timeoutMs: 20_000 });
    const codes = await Promise.all(Array.from({ length: 20 }, () => get(ports.outbound)));
    expect(codes.every((c) => c === 200)).toBe(true);
  });

  it('keeps answering for its workers while one dies: asking a dead worker is no crash', async () => {
    // The supervisor asks each worker over IPC (/workers, /ready); a worker that has died but
    // whose exit is not handled yet has a closed channel. Make that window wide: the supervisor
    // is stopped while the worker dies and questions queue up, then resumes with all of them.
    const [victim] = await workers();
    process.kill(child.pid!, 'SIGSTOP');
    let questions: Promise<number>[] = [];
    try {
      process.kill(victim!.pid, 'SIGKILL');
      // Dead: a zombie until its stopped parent reaps it.
      await eventually(() => expect(readFileSync(`/proc/${victim!.pid}/stat`, 'utf8').split(') ')[1]![0]).toBe('Z'), { timeoutMs: 5_000 });
      const urls = [`http://127.0.0.1:${ports.admin}/workers`, `http://127.0.0.1:${ports.health}/healthz/ready`];
      questions = Array.from({ length: 8 }, (_, i) => fetch(urls[i % 2]!).then((r) => r.status, () => -1));
      // Every question is connected (the kernel completes the handshake; the stopped supervisor
      // has not accepted them yet).
      await eventually(() => expect(establishedTo([ports.admin, ports.health])).toBeGreaterThanOrEqual(questions.length), { timeoutMs: 5_000 });
    } finally {
      process.kill(child.pid!, 'SIGCONT');
    }
    expect((await Promise.all(questions)).every((s) => s === 200 || s === 503)).toBe(true);
    await eventually(async () => {
      const w = await workers();
      expect(w[0]!.pid).not.toBe(victim!.pid);
      expect(w[0]!.running).toBe(true);
    }, { timeoutMs: 20_000, intervalMs: 200 });
    expect(child.exitCode).toBeNull();
  });

  it('SIGTERM drains every worker and the sidecar exits 0', async () => {
    const pids = (await workers()).map((w) => w.pid);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe('an mTLS sidecar on two worker processes', () => {
  let backend: Backend | undefined;
  let mesh: TestMesh;
  let supervisor: Supervisor | undefined;

  beforeAll(async () => {
    backend = await okBackend();
    mesh = await startTestMesh({ 'mesh.yaml': serverClientYaml(backend.port) });
    supervisor = await startSupervisor(mesh, 'server');
  });

  afterAll(async () => {
    await stopSupervisor(supervisor);
    await mesh?.close();
    backend?.close();
  });

  it("resumes a peer's TLS session at either worker: they seal tickets with the same keys", async () => {
    // A peer sidecar as the mesh makes one: a certificate from the mesh's CA, its trust bundle.
    const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: mesh.stateDir, create: false, log: createLogger('test') });
    const cert = await workloadCert(ca, 'spiffe://cluster.local/ns/default/sa/client');
    const peer = new MeshTls({ current: () => cert, trustBundle: () => mesh.cp.trustBundle(), subscribe: () => () => undefined });
    const appPort = backend!.port;
    const resumed: boolean[] = [];
    // One request per connection: the supervisor hands each connection to the next worker.
    for (let i = 0; i < 4; i++) {
      const socket = await peer.connect({ host: '127.0.0.1', port: supervisor!.ports.inbound, expectedIdentity: 'spiffe://cluster.local/ns/default/sa/server', targetPort: appPort, alpn: ['http/1.1'] });
      resumed.push(socket.isSessionReused());
      socket.setEncoding('latin1');
      let response = '';
      socket.on('data', (d: string) => (response += d));
      // The ticket comes with the response; the next connection offers it.
      const ticket = new Promise((resolve) => socket.once('session', resolve));
      socket.write('GET / HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n');
      await new Promise((resolve, reject) => {
        socket.once('close', resolve);
        socket.once('error', reject);
      });
      expect(response).toMatch(/^HTTP\/1\.1 200 /);
      if (!resumed[i]) await ticket;
    }
    peer.close();
    expect(resumed).toEqual([false, true, true, true]);
    const { families } = await scrape(`http://127.0.0.1:${supervisor!.ports.stats}/stats/prometheus`);
    expect(total(families, 'weft_tls_handshakes_total', { side: 'server', resumed: 'false' })).toBe(1);
    expect(total(families, 'weft_tls_handshakes_total', { side: 'server', resumed: 'true' })).toBe(3);
  });
});

describe('a sidecar whose workers cannot start', () => {
  it('fails its start-up instead of waiting for them', async () => {
    const taken = http.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const busy = (taken.address() as AddressInfo).port;
    const mesh = await startTestMesh({ 'echo.yaml': echoClientYaml(busy) }, { mtls: false });
    try {
      const child = spawn(process.execPath, [CLI, 'proxy', '--concurrency', '2', '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`, '--workload', 'client.default',
        '--token-file', path.join(mesh.stateDir, 'tokens', 'default', 'client.token'), '--bind-address', '127.0.0.1',
        '--outbound-port', String(busy), '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/exited with code \d+ before it was listening/);
    } finally {
      await mesh.close();
      taken.close();
    }
  });
});
