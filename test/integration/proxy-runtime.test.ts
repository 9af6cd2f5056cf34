// How a `weft proxy` process runs, beyond what it proxies. Unused pages (native/src/pages.c,
// core/binary-pages.ts): released, the node binary's and its libraries' leave the process's RSS,
// and so do malloc's free ones, and the process goes on working on the pages it still uses, which
// fault back in; released again, what it touched since leaves too. A real `weft proxy` (dist/cli,
// as `npm run build` leaves it) releases them once ready and keeps serving; with
// --release-binary-pages false, or without the native addon, it keeps them and says why. Its
// young collections run on its main thread alone, unless node is told otherwise.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa, testIdentity, workloadCert } from '../../certs/testing.js';
import { residentBytes, type ReleasedPages } from '../../core/binary-pages.js';
import { addonPath } from '../../core/native-addon.js';
import { eventually } from '../support/eventually.js';
import { startTestMesh, waitReady, type TestMesh } from '../support/mesh.js';
import { CLI, call, controlledBackend, ok, serviceYaml, weft, workloadYaml, type ControlledBackend, type WeftProcess } from './resilience-support.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MiB = 1024 * 1024;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  // The addon the proxies load (core/native-addon.ts finds it the same way).
  const addon = addonPath();
  if (!addon || !existsSync(addon)) throw new Error('native/build/Release/weft_capture.node is missing: `npm ci` builds it (or npm run build:native; needs python3, make, g++)');
});

/** Runs `body` (an ES module's text, with `dist` bound to the built core/binary-pages.js and
 *  KEY / CERT to a workload key and certificate) in a child node; its stdout, parsed as JSON. */
async function inChild<T>(body: string): Promise<T> {
  const ca = await testCa();
  const cert = await workloadCert(ca, testIdentity('default', 'app'));
  const prelude = `const dist = await import(${JSON.stringify(path.join(ROOT, 'dist/core/binary-pages.js'))});
    const KEY = ${JSON.stringify(cert.keyPem)}, CERT = ${JSON.stringify(cert.chainPem.join(''))};
    const { readFileSync } = await import('node:fs');
    // What the shared libraries' read-only mappings hold resident, from /proc/self/smaps.
    const librariesRss = () => {
      let kib = 0, library = false;
      for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
        const head = /^[0-9a-f]+-[0-9a-f]+ (\\S+) \\S+ \\S+ \\S+\\s*(.*)$/.exec(line);
        if (head) { library = /^r-.p$/.test(head[1]) && /\\.so(\\.|$)/.test(head[2]); continue; }
        const rss = /^Rss:\\s+(\\d+) kB/.exec(line);
        if (rss && library) kib += Number(rss[1]);
      }
      return kib * 1024;
    };
    const https = await import('node:https');
    // A TLS server, a handshake and an HTTP exchange: code and built-in modules the child had not run.
    const exchange = (path) => new Promise((resolve, reject) => {
      const server = https.createServer({ key: KEY, cert: CERT }, (req, res) => res.end('pong ' + req.url));
      server.listen(0, '127.0.0.1', () => {
        https.get({ host: '127.0.0.1', port: server.address().port, path, rejectUnauthorized: false }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => { server.close(); resolve(body); });
        }).on('error', reject);
      });
    });
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--input-type=module', '-e', prelude + body], { timeout: 20_000 });
  return JSON.parse(stdout) as T;
}

describe('releasing unused pages', () => {
  it("drops the binary's and its libraries' from RSS, and the process then runs on what it faults back in", async () => {
    const r = await inChild<{ released: ReleasedPages; answer: string; after: number; librariesBefore: number; librariesAfter: number }>(`
      const librariesBefore = librariesRss();
      const released = await dist.releaseUnusedPages();
      const librariesAfter = librariesRss();
      const answer = await exchange('/after-release');
      console.log(JSON.stringify({ released, answer, after: dist.residentBytes('RssFile'), librariesBefore, librariesAfter }));
    `);
    // The executable's mappings and those of libc, libstdc++, libm, the loader, the addon.
    expect(r.released.mappings).toBeGreaterThanOrEqual(10);
    expect(r.released.residentBytes).toBeGreaterThan(10 * MiB);
    // A bare node maps ~35 MiB of its binary and ~3.5 of its libraries; released, ~8 and ~1.5
    // remain: what the release itself, and the code around it, run on.
    expect(r.released.rssFileBefore - r.released.rssFileAfter).toBeGreaterThan(10 * MiB);
    expect(r.librariesBefore - r.librariesAfter).toBeGreaterThan(1 * MiB);
    expect(r.answer).toBe('pong /after-release');
    expect(r.after).toBeLessThan(r.released.rssFileBefore);
  });

  it("hands malloc's free pages back to the kernel", async () => {
    // 64 MiB of 8 KiB ArrayBuffers (malloc'd, below its mmap threshold), one in 16 kept: the rest,
    // freed, sits between live chunks, where malloc's own trimming (the top of the heap) never
    // reaches. malloc_trim returns its whole pages.
    const r = await inChild<{ released: ReleasedPages; kept: number }>(`
      const kept = [];
      let all = [];
      for (let i = 0; i < 8192; i++) {
        const b = Buffer.allocUnsafeSlow(8192).fill(1);
        all.push(b);
        if (i % 16 === 0) kept.push(b);
      }
      all = undefined;
      globalThis.gc();
      const released = await dist.releaseUnusedPages();
      console.log(JSON.stringify({ released, kept: kept.length }));
    `);
    expect(r.kept).toBe(512);
    expect(r.released.heapTrimmed).toBe(true);
    expect(r.released.rssAnonBefore - r.released.rssAnonAfter).toBeGreaterThan(30 * MiB);
  });

  it('kept trimmed, a process lets go again of what it touched since the last release', async () => {
    // Released every 100 ms: after the first release the child runs code it had not (TLS), which
    // maps pages back; a later release takes what it no longer runs off again.
    const r = await inChild<{ afterFirst: number; afterWork: number; later: number; logged: string[] }>(`
      const logged = [];
      const log = { info: (m) => logged.push(m), debug: (m) => logged.push(m), warn() {}, error() {}, child() { return log; } };
      const trimmer = dist.trimUnusedPages(log, 100);
      const until = async (ok) => { for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10)); };
      await until(() => logged.length >= 1);
      const afterFirst = dist.residentBytes('RssFile');
      await exchange('/work');
      const afterWork = dist.residentBytes('RssFile');
      const seen = logged.length;
      await until(() => logged.length >= seen + 2);
      trimmer.stop();
      console.log(JSON.stringify({ afterFirst, afterWork, later: dist.residentBytes('RssFile'), logged }));
    `);
    expect(r.logged[0]).toMatch(/^released unused pages of the node binary, its libraries and malloc; again every 0.1 s$/);
    expect(r.logged.length).toBeGreaterThanOrEqual(3);
    expect(r.afterWork - r.afterFirst).toBeGreaterThan(5 * MiB);
    expect(r.afterWork - r.later).toBeGreaterThan(5 * MiB);
  });
});

describe('the weft proxy process', () => {
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
  async function cliProxy(extra: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<{ p: WeftProcess; outbound: string }> {
    const p = weft([
      'proxy',
      '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`,
      '--workload', 'client.default',
      '--token-file', path.join(mesh.stateDir, 'tokens', 'default', 'client.token'),
      '--bind-address', '127.0.0.1',
      '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0',
      ...extra,
    ], { WEFT_LOG_LEVEL: 'info', ...env }, nodeArgs);
    processes.push(p);
    const line = await p.line(/^weft-proxy-listening /);
    const outbound = `http://127.0.0.1:${(JSON.parse(line.slice('weft-proxy-listening '.length)) as { outbound: number }).outbound}`;
    await eventually(async () => expect((await call(outbound, 'app')).status).toBe(200), { timeoutMs: 20_000, message: 'a request through the proxy' });
    return { p, outbound };
  }

  it('releases them once ready, serves on, and holds less file-backed memory than one that keeps them', async () => {
    const releasing = await cliProxy([]);
    const keeping = await cliProxy(['--release-binary-pages', 'false']);
    const released = await releasing.p.line(/released unused pages of the node binary, its libraries and malloc; again every 60 s/);
    expect(released).toMatch(/mappings=\d+ resident_mib=\d.* rss_anon_mib=/);
    for (const proxy of [releasing, keeping]) {
      for (let i = 0; i < 50; i++) expect((await call(proxy.outbound, 'app')).status).toBe(200);
    }
    // The same proxy, the same traffic: the one that released maps ~20 MiB less of the binary.
    expect(residentBytes('RssFile', keeping.p.child.pid!) - residentBytes('RssFile', releasing.p.child.pid!)).toBeGreaterThan(10 * MiB);
    expect(keeping.p.output.some((l) => /unused pages/.test(l))).toBe(false);
  });

  it('without the native addon it keeps them, says why, and serves', async () => {
    const proxy = await cliProxy([], { WEFT_NATIVE_ADDON: path.join(ROOT, 'no-such-addon.node') });
    const kept = await proxy.p.line(/keeping unused pages/);
    expect(kept).toContain('no-such-addon.node');
    expect((await call(proxy.outbound, 'app')).status).toBe(200);
  });
  it('collects its young generation on the main thread alone, unless node is told otherwise', async () => {
    // --trace-gc-nvp prints one line per collection; a scavenge's helper tasks show as
    // background.scavenge.parallel time. The proxy's start and a few hundred requests make plenty.
    const scavenges = async (nodeArgs: string[]) => {
      const proxy = await cliProxy([], {}, ['--trace-gc-nvp', ...nodeArgs]);
      for (let i = 0; i < 300; i++) expect((await call(proxy.outbound, 'app')).status).toBe(200);
      // From the proxy's start on (the CLI's own start-up, before the command runs, is node's).
      const started = proxy.p.output.findIndex((l) => l.startsWith('weft-proxy-listening '));
      const lines = proxy.p.output.slice(started).filter((l) => /\bgc=s\b/.test(l));
      return lines.map((l) => Number(/background\.scavenge\.parallel=([\d.]+)/.exec(l)?.[1] ?? NaN));
    };
    const own = await scavenges([]);
    expect(own.length).toBeGreaterThanOrEqual(5);
    expect(own.every((ms) => ms === 0)).toBe(true);
    // The control: told to, node's helpers join in (and the line format is what was parsed).
    const helped = await scavenges(['--parallel-scavenge']);
    expect(helped.length).toBeGreaterThanOrEqual(5);
    expect(helped.filter((ms) => ms > 0).length).toBeGreaterThan(0);
  });

  it('sleeps when idle: its event loop wakes a few times a second, not a hundred', async () => {
    // Every time the main thread waits in epoll and is woken is a voluntary context switch
    // (/proc/<pid>/task/<pid>/status). A timer of 10 ms (prom-client's default sampling of the
    // event-loop lag) alone makes 100 a second; the proxy's own timers (pool sweeps, the Date
    // header, the xDS stream's keepalive) make a few.
    const proxy = await cliProxy([]);
    const pid = proxy.p.child.pid!;
    const switches = () => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1]);
    const before = switches();
    const startedAt = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const perSecond = (switches() - before) / ((Date.now() - startedAt) / 1000);
    expect(perSecond).toBeGreaterThan(0);
    expect(perSecond).toBeLessThan(50);
  });
});
