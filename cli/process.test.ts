// The built `weft` command as processes (dist/cli/main.js, or $WEFT_TEST_CLI for another build):
// the commands other files define (loaded only when named) are there and in the help; a proxy or
// control plane comes out of start-up with V8's young generation at its first size (cli/main.ts
// holds it there until the process is ready); and a serving sidecar holds none of the modules
// kept out of its heap (node-forge, undici's index and fetch, OpenTelemetry's SDK).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../test/support/eventually.js';
import { echoClientYaml, originForm, startTestMesh, type TestMesh } from '../test/support/mesh.js';
import { freePort } from '../test/support/ports.js';
import { samples, scrape } from '../test/support/prometheus.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = process.env.WEFT_TEST_CLI ?? path.join(ROOT, 'dist/cli/main.js');
const MiB = 1024 * 1024;

describe('the weft command', () => {
  const weft = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

  it('lists every command in its help, those defined in other files too', () => {
    const help = weft('--help');
    expect(help.status).toBe(0);
    for (const c of ['control-plane', 'proxy', 'up', 'inject', 'wait-ready', 'status', 'config-dump', 'analyze', 'simulate', 'iptables', 'waypoint', 'ca', 'demo']) {
      expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    }
  });

  it("shows a command's own help", () => {
    const proxy = weft('proxy', '--help');
    expect(proxy.status).toBe(0);
    expect(proxy.stdout).toContain('--xds <host:port>');
  });

  it('runs a command defined in another file, and suggests one for a typo', () => {
    const ipt = weft('iptables', '--help');
    expect(ipt.status).toBe(0);
    expect(ipt.stdout).toContain('apply');
    const typo = weft('injct');
    expect(typo.status).not.toBe(0);
    expect(typo.stderr).toContain('Did you mean inject?');
  });
});

describe('a proxy or control-plane process', () => {
  let backend: http.Server;
  let mesh: TestMesh;
  beforeAll(async () => {
    backend = http.createServer((_req, res) => res.end('x'.repeat(512)));
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    mesh = await startTestMesh({ 'echo.yaml': echoClientYaml((backend.address() as AddressInfo).port) }, { mtls: false });
  });
  afterAll(async () => {
    await mesh?.close();
    backend?.closeAllConnections();
    backend?.close();
  });

  /** Runs `weft ARGS` until `check` is done with it; its output is kept for the error message. */
  async function withWeft(
    args: readonly string[],
    check: (out: { stdout: () => string; stderr: () => string }) => Promise<void>,
    nodeArgs: readonly string[] = [],
  ): Promise<void> {
    const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    try {
      await check({ stdout: () => stdout, stderr: () => stderr });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }

  const getOk = async (url: string) => {
    const res = await fetch(url);
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  };

  /** V8's young generation (two semi-spaces): left to itself, start-up grows it to 2 × 16 MiB. */
  async function youngGeneration(metricsUrl: string, prefix: string): Promise<number> {
    const { families } = await scrape(metricsUrl);
    const [newSpace] = samples(families, `${prefix}nodejs_heap_space_size_total_bytes`, { space: 'new' });
    return Number(newSpace?.value);
  }

  const sidecarArgs = () => [
    'proxy', '--xds', `127.0.0.1:${mesh.cp.xdsAddress.port}`, '--workload', 'client.default',
    '--token-file', path.join(mesh.stateDir, 'tokens', 'default', 'client.token'), '--bind-address', '127.0.0.1',
    '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0', '--health-port', '0', '--drain-seconds', '1',
  ];

  /** Waits for the sidecar's ports line, then for it to be ready. */
  async function readySidecar(out: { stdout: () => string; stderr: () => string }) {
    const ports = await eventually(() => {
      const m = /^weft-proxy-listening (\{.*\})$/m.exec(out.stdout());
      if (!m) throw new Error(`no listening line yet; stderr: ${out.stderr().slice(-500)}`);
      return JSON.parse(m[1]!) as { outbound: number; admin: number; stats: number };
    }, { timeoutMs: 20_000, message: 'proxy listening' });
    await eventually(() => getOk(`http://127.0.0.1:${ports.admin}/ready`), { timeoutMs: 20_000, message: 'proxy ready' });
    return ports;
  }

  it('a sidecar is ready, and serves, with the young generation it started with', async () => {
    await withWeft(sidecarArgs(), async (out) => {
      const ports = await readySidecar(out);
      expect((await originForm(`http://127.0.0.1:${ports.outbound}`, 'echo')).status).toBe(200);
      const young = await youngGeneration(`http://127.0.0.1:${ports.stats}/stats/prometheus`, 'weft_proxy_');
      expect(young).toBeGreaterThan(0);
      expect(young).toBeLessThanOrEqual(4 * MiB);
    });
  });

  it('a serving sidecar has not loaded node-forge, undici beyond its Pool, or the tracing SDK', async () => {
    // A preload inside the sidecar writes the modules it holds (CommonJS packages imported from
    // ESM land in require.cache; Node's built-ins in process.moduleLoadList) twice a second.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-modules-'));
    const listFile = path.join(dir, 'modules.json');
    const preload = path.join(dir, 'list-modules.cjs');
    writeFileSync(
      preload,
      `const fs = require('node:fs');
setInterval(() => fs.writeFileSync(${JSON.stringify(listFile)}, JSON.stringify({ cjs: Object.keys(require.cache), builtins: process.moduleLoadList })), 500).unref();\n`,
    );
    // Without the HTTP/1.1 fast path the request goes through undici's Pool, loaded on its own.
    await withWeft([...sidecarArgs(), '--http1-fast-path', 'false'], async (out) => {
      const ports = await readySidecar(out);
      expect((await originForm(`http://127.0.0.1:${ports.outbound}`, 'echo')).status).toBe(200);
      const served = Date.now();
      const loaded = await eventually(() => {
        const list = JSON.parse(readFileSync(listFile, 'utf8')) as { cjs: string[]; builtins: string[] };
        // Written after the request was served (the file is rewritten every 500 ms).
        if (Date.now() - served < 600) throw new Error('not yet rewritten since the request');
        return list;
      }, { timeoutMs: 10_000, message: 'module list written' });
      const packages = loaded.cjs.map((f) => f.replaceAll('\\', '/'));
      // The method sees what it should: the xDS client and undici's Pool are there.
      expect(packages.some((f) => f.includes('/node_modules/@grpc/grpc-js/'))).toBe(true);
      expect(packages.some((f) => f.endsWith('/node_modules/undici/lib/dispatcher/pool.js'))).toBe(true);
      // And not what was moved out: the CSR is DER written by certs/csr-build.ts; undici's
      // index (all of undici, and Node's own bundled copy with it); tracing is off here.
      expect(packages.filter((f) => f.includes('/node_modules/node-forge/'))).toEqual([]);
      expect(packages.filter((f) => f.endsWith('/node_modules/undici/index.js') || f.includes('/node_modules/undici/lib/web/'))).toEqual([]);
      expect(loaded.builtins.filter((m) => m.includes('internal/deps/undici'))).toEqual([]);
      expect(packages.filter((f) => f.includes('/node_modules/@opentelemetry/sdk-trace-base/'))).toEqual([]);
    }, ['--require', preload]);
  });

  it('a control plane is ready with the young generation it started with', async () => {
    const [xdsPort, monitorPort] = [await freePort(), await freePort()];
    const args = [
      'control-plane', '--config', mesh.configDir, '--state-dir', path.join(mesh.dir, 'cp2-state'), '--host', '127.0.0.1',
      '--xds-port', String(xdsPort), '--xds-tls-port', '-1', '--monitor-port', String(monitorPort),
    ];
    await withWeft(args, async (out) => {
      await eventually(() => getOk(`http://127.0.0.1:${monitorPort}/ready`), { timeoutMs: 20_000, message: `control plane ready (${out.stderr().slice(-300)})` });
      const young = await youngGeneration(`http://127.0.0.1:${monitorPort}/metrics`, 'weft_control_plane_');
      expect(young).toBeGreaterThan(0);
      expect(young).toBeLessThanOrEqual(4 * MiB);
    });
  });
});
