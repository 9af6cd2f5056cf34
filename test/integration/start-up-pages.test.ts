// The node executable's start-up pages (native/src/pages.c, core/start-up-pages.ts): released,
// they leave the process's RSS, and the process goes on working on the pages it still uses, which
// fault back in. A real `weft proxy` (dist/cli, as `npm run build` leaves it) releases them once
// ready and keeps serving; with --release-start-up-pages false, or without the native addon, it
// keeps them and says why.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa, testIdentity, workloadCert } from '../../certs/testing.js';
import { eventually } from '../support/eventually.js';
import { startTestMesh, waitReady, type TestMesh } from '../support/mesh.js';
import { CLI, call, controlledBackend, ok, serviceYaml, weft, workloadYaml, type ControlledBackend, type WeftProcess } from './resilience-support.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ADDON = path.join(ROOT, 'native', 'build', 'Release', 'weft_capture.node');
const MiB = 1024 * 1024;

/** A process's RssFile (/proc/<pid>/status), in bytes. */
function rssFile(pid: number): number {
  const m = /^RssFile:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`/proc/${pid}/status has no RssFile line`);
  return Number(m[1]) * 1024;
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  if (!existsSync(ADDON)) throw new Error(`${ADDON} is missing: \`npm ci\` builds it (or npm run build:native; needs python3, make, g++)`);
});

describe('releasing the start-up pages of the node executable', () => {
  it('drops them from RSS, and the process then runs on what it faults back in', async () => {
    // A child node: release, then start a TLS server, make a handshake and an HTTP exchange
    // (code and built-in modules on pages that were just dropped), and report.
    const script = `
      import { releaseStartUpPages, rssFileBytes } from ${JSON.stringify(path.join(ROOT, 'dist/core/start-up-pages.js'))};
      const released = releaseStartUpPages();
      const https = await import('node:https');
      const answer = await new Promise((resolve, reject) => {
        const server = https.createServer({ key: KEY, cert: CERT }, (req, res) => res.end('pong ' + req.url));
        server.listen(0, '127.0.0.1', () => {
          https.get({ host: '127.0.0.1', port: server.address().port, path: '/after-release', rejectUnauthorized: false }, (res) => {
            let body = '';
            res.on('data', (c) => (body += c));
            res.on('end', () => { server.close(); resolve(body); });
          }).on('error', reject);
        });
      });
      console.log(JSON.stringify({ released, answer, after: rssFileBytes() }));
    `;
    const ca = await testCa();
    const cert = await workloadCert(ca, testIdentity('default', 'app'));
    const [KEY, CERT] = [cert.keyPem, cert.chainPem.join('')];
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', `const KEY = ${JSON.stringify(KEY)}, CERT = ${JSON.stringify(CERT)};${script}`], { timeout: 20_000 });
    const r = JSON.parse(stdout) as { released: { mappings: number; residentBytes: number; rssFileBefore: number; rssFileAfter: number }; answer: string; after: number };
    expect(r.released.mappings).toBeGreaterThanOrEqual(1);
    expect(r.released.residentBytes).toBeGreaterThan(10 * MiB);
    // A bare node maps ~35 MiB of its binary; released, ~10 remain (libraries, and what the
    // release itself runs on).
    expect(r.released.rssFileBefore - r.released.rssFileAfter).toBeGreaterThan(10 * MiB);
    expect(r.answer).toBe('pong /after-release');
    expect(r.after).toBeLessThan(r.released.rssFileBefore);
  });
});

describe('weft proxy and its start-up pages', () => {
  let mesh: TestMesh;
  let backend: ControlledBackend;
  const processes: WeftProcess[] = [];

  beforeAll(async () => {
    backend = await controlledBackend('app');
    backend.behaviour = (_req, res) => ok(res, 'app');
    mesh = await startTestMesh({
      'services.yaml': serviceYaml('app'),
      'workloads.yaml': [workloadYaml('app', 'app', backend.port), workloadYaml('client', 'client')].join('---\n'),
    });
    await waitReady(await mesh.sidecar('app.default')); // the app's own sidecar, in this process
  }, 60_000);

  afterAll(async () => {
    for (const p of processes) p.kill('SIGKILL');
    await mesh?.close();
    await backend?.close();
  });

  /** `weft proxy` for client.default with `extra` flags, logging at info; resolves once it has
   *  carried a request to the app. */
  async function cliProxy(extra: string[], env: NodeJS.ProcessEnv = {}): Promise<{ p: WeftProcess; outbound: string }> {
    const p = weft([
      'proxy',
      '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`,
      '--workload', 'client.default',
      '--token-file', path.join(mesh.stateDir, 'tokens', 'default', 'client.token'),
      '--bind-address', '127.0.0.1',
      '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0',
      ...extra,
    ], { WEFT_LOG_LEVEL: 'info', ...env });
    processes.push(p);
    const line = await p.line(/^weft-proxy-listening /);
    const outbound = `http://127.0.0.1:${(JSON.parse(line.slice('weft-proxy-listening '.length)) as { outbound: number }).outbound}`;
    await eventually(async () => expect((await call(outbound, 'app')).status).toBe(200), { timeoutMs: 20_000, message: 'a request through the proxy' });
    return { p, outbound };
  }

  it('releases them once ready, serves on, and holds less file-backed memory than one that keeps them', async () => {
    const releasing = await cliProxy([]);
    const keeping = await cliProxy(['--release-start-up-pages', 'false']);
    const released = await releasing.p.line(/released the node executable's start-up pages/);
    expect(released).toMatch(/mappings=\d+ resident_mib=\d/);
    for (const proxy of [releasing, keeping]) {
      for (let i = 0; i < 50; i++) expect((await call(proxy.outbound, 'app')).status).toBe(200);
    }
    // The same proxy, the same traffic: the one that released maps ~20 MiB less of the binary.
    expect(rssFile(keeping.p.child.pid!) - rssFile(releasing.p.child.pid!)).toBeGreaterThan(10 * MiB);
    expect(keeping.p.output.some((l) => /start-up pages/.test(l))).toBe(false);
  });

  it('without the native addon it keeps them, says why, and serves', async () => {
    const proxy = await cliProxy([], { WEFT_NATIVE_ADDON: path.join(ROOT, 'no-such-addon.node') });
    const kept = await proxy.p.line(/kept the node executable's start-up pages/);
    expect(kept).toContain('no-such-addon.node');
    expect((await call(proxy.outbound, 'app')).status).toBe(200);
  });
});
