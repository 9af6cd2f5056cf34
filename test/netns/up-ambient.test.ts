// The network lab (cli/lab/) and `weft up` with ambient workloads, as root (CI runs as root; a
// missing prerequisite fails, never skips): pods as namespaces on a bridge with nothing made in
// the root namespace and nothing left after teardown or a crash; then examples/ambient through
// the real CLI — the canary split applied by the waypoint, no errors, and after SIGINT no
// process, namespace or /etc/netns entry left. Not root: a clear refusal.
import { spawn } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLab, labLeftovers, removeLabLeftovers, type Lab } from '../../cli/lab/lab.js';
import { httpInNetns, relayIntoNetns } from '../../cli/lab/netns-io.js';
import { UP_LAB } from '../../cli/lab/up-ambient.js';
import { eventually } from '../support/eventually.js';
import { assertPrerequisites, CLI, NODE, REPO, sh, start } from './support/host.js';
import { alive, descendants } from '../support/processes.js';

/** The CLI under test: dist/ (built by `npm test`), or a build elsewhere (WEFT_UP_CLI). */
const UP_CLI = process.env.WEFT_UP_CLI ?? CLI;
const PREFIX = 'wlabt';

/** What the root namespace holds that a lab could have touched. */
function rootNetworkState(): string {
  return ['link', 'route', 'rule', '-6 route'].map((what) => sh('ip', ['-o', ...what.split(' '), 'show']).stdout.replace(/\s+/g, ' ').trim()).join('\n');
}

describe('the network lab', () => {
  let lab: Lab | undefined;

  beforeAll(() => {
    assertPrerequisites();
  });

  afterAll(async () => {
    await lab?.teardown();
    await removeLabLeftovers(PREFIX);
  });

  it('builds pods on a bridge, each in its own namespace, touching nothing in the root namespace', async () => {
    const before = rootNetworkState();
    lab = await buildLab({
      prefix: PREFIX,
      podCidr: '10.252.0.0/24',
      pods: [{ name: 'server', ip: '10.252.0.20' }, { name: 'client' }],
      hosts: [{ ip: '10.96.7.7', names: ['echo', 'echo.default'] }],
    });
    expect(lab.pod('client').ip).toBe('10.252.0.2');
    expect(sh('ip', ['-n', lab.pod('client').ns, 'route', 'show', 'default']).stdout).toMatch(/default via 10\.252\.0\.1 dev eth0/);
    expect(readFileSync(`/etc/netns/${lab.pod('client').ns}/hosts`, 'utf8')).toMatch(/^10\.96\.7\.7 echo echo\.default$/m);
    // `ip netns exec` shows the pod its own hosts file.
    expect(sh('ip', ['netns', 'exec', lab.pod('client').ns, 'cat', '/etc/hosts']).stdout).toMatch(/10\.96\.7\.7 echo/);

    // A server in one pod answers another pod across the bridge (from inside its namespace).
    const server = start('lab server', 'ip', lab.exec('server', [NODE, '-e', "require('http').createServer((q, s) => s.end('server pod')).listen(8080, '0.0.0.0', () => console.log('listening'))"]).slice(1));
    try {
      await server.waitFor(/^listening/);
      expect(await httpInNetns(lab.pod('client').nsPath, 8080, '/', { host: '10.252.0.20' })).toEqual({ status: 200, body: 'server pod' });
    } finally {
      await server.stop();
    }

    // A relay on a pod's loopback reaches a server of the test's own namespace.
    const outside = http.createServer((_q, s) => s.end('root namespace'));
    await new Promise<void>((r) => outside.listen(0, '127.0.0.1', r));
    const relay = await relayIntoNetns(lab.pod('client').nsPath, '127.0.0.1', 15012, { host: '127.0.0.1', port: (outside.address() as { port: number }).port });
    try {
      expect(await httpInNetns(lab.pod('client').nsPath, 15012, '/')).toEqual({ status: 200, body: 'root namespace' });
    } finally {
      await relay.close();
      outside.close();
    }

    // Pods come and go while it runs.
    const [late] = await lab.addPods([{ name: 'late' }]);
    expect(late!.ip).toBe('10.252.0.3');
    await lab.removePod('late');
    expect(existsSync(`/etc/netns/${PREFIX}-late`)).toBe(false);

    expect(rootNetworkState()).toBe(before);
  }, 60_000);

  it('refuses a second lab under a prefix in use, and names the owner', async () => {
    expect(lab).toBeDefined();
    await expect(buildLab({ prefix: PREFIX, podCidr: '10.252.0.0/24' })).rejects.toThrow(new RegExp(`a lab named ${PREFIX} is in use by process ${process.pid}`));
  });

  it('tears down to nothing, and clears what a crashed run left', async () => {
    const left = await lab!.teardown();
    lab = undefined;
    expect(left).toEqual([]);
    expect(await labLeftovers(PREFIX)).toEqual([]);

    // A "crashed" run: a lab whose owner is gone (its lock names a pid that no longer runs).
    const crashed = await buildLab({ prefix: PREFIX, podCidr: '10.252.0.0/24', pods: [{ name: 'a' }, { name: 'b' }] });
    writeFileSync(path.join(os.tmpdir(), `${PREFIX}-lab.pid`), '999999999\n');
    expect((await labLeftovers(PREFIX)).length).toBeGreaterThan(3);
    const removed = await removeLabLeftovers(PREFIX);
    expect(removed).toEqual(expect.arrayContaining([`namespace ${PREFIX}-a`, `namespace ${PREFIX}-node`, `/etc/netns/${PREFIX}-b`]));
    expect(await labLeftovers(PREFIX)).toEqual([]);
    expect(await crashed.teardown()).toEqual([]);
  }, 60_000);
});

describe('weft up with ambient workloads (examples/ambient)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-up-ambient-'));
  chmodSync(dir, 0o777);

  beforeAll(() => {
    assertPrerequisites();
  });
  afterAll(async () => {
    // Only after a failure is there anything to remove (its owner was killed).
    await removeLabLeftovers(UP_LAB.prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  const runUp = (configDir: string, stateDir: string, asUser?: number) => {
    const argv = [UP_CLI, 'up', configDir, '--no-view', '--state-dir', stateDir];
    const up = asUser === undefined
      ? spawn(NODE, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
      : spawn('setpriv', [`--reuid=${asUser}`, `--regid=${asUser}`, '--clear-groups', '--', NODE, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
    const lines: string[] = [];
    let stderr = '';
    up.stdout.setEncoding('utf8').on('data', (c: string) => lines.push(...c.split('\n').filter(Boolean)));
    up.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = new Promise<number | null>((r) => up.on('exit', (code) => r(code)));
    return { up, lines, stderr: () => stderr, exited };
  };

  it('refuses without root, saying that ambient mode needs root and why', async () => {
    const r = runUp(path.join(REPO, 'examples/ambient'), path.join(dir, 'nobody', 'state'), 65534);
    expect(await r.exited).not.toBe(0);
    expect(r.stderr()).toMatch(/ambient mode needs root: weft up builds a network namespace for each pod/);
    expect(await labLeftovers(UP_LAB.prefix)).toEqual([]);
  }, 30_000);

  it('names the file and field of an address outside the pod range', async () => {
    const config = path.join(dir, 'bad');
    cpSync(path.join(REPO, 'examples/ambient'), config, { recursive: true });
    const workloads = path.join(config, 'workloads.yaml');
    writeFileSync(workloads, readFileSync(workloads, 'utf8').replace('address: 10.244.0.12', 'address: 10.9.9.9'));
    const r = runUp(config, path.join(dir, 'bad-state', 'state'));
    expect(await r.exited).toBe(1);
    expect(r.stderr()).toMatch(/bad\/workloads\.yaml: WorkloadEntry default\/reviews-v2 spec\.address: 10\.9\.9\.9 is outside the lab's pod range 10\.244\.0\.0\/24/);
    expect(await labLeftovers(UP_LAB.prefix)).toEqual([]);
  }, 30_000);

  it('runs the canary through the waypoint (90/10, no errors), follows a route edit, and SIGINT leaves nothing behind', async () => {
    const config = path.join(dir, 'ambient');
    cpSync(path.join(REPO, 'examples/ambient'), config, { recursive: true });
    const r = runUp(config, path.join(dir, 'state'));
    const split = (l: string) => /client\.default: \d+ ok\/s \(v1=\d+ v2=\d+\) 0 err\/s weights\[reviews-v1:90 reviews-v2:10\]/.test(l);
    try {
      await eventually(() => expect(r.lines.some(split)).toBe(true), {
        timeoutMs: 90_000,
        intervalMs: 250,
        message: `the canary split shows (stdout: ${r.lines.slice(-3).join(' | ')}; stderr: ${r.stderr().slice(-2000)})`,
      });
      const steady = r.lines.findIndex(split);
      const kids = descendants(r.up.pid!);
      expect(kids.length).toBeGreaterThanOrEqual(5); // node proxy, waypoint, three workloads
      // Pods exist as namespaces, with hosts files naming the Services.
      expect(sh('ip', ['netns', 'list']).stdout).toMatch(new RegExp(`${UP_LAB.prefix}-client\\.default`));

      // About 400 requests from steady state on: the waypoint's 90/10, every one answered.
      await eventually(() => {
        const counts = r.lines.slice(steady).map((l) => /\(v1=(\d+) v2=(\d+)\)/.exec(l)).filter((m) => m !== null);
        const v1 = counts.reduce((a, m) => a + Number(m[1]), 0);
        const v2 = counts.reduce((a, m) => a + Number(m[2]), 0);
        expect(v1 + v2).toBeGreaterThan(400);
        // 10 % ± 4σ over 400+ requests (σ ≈ 1.5 %): far from an L4 50/50 and from 0.
        expect(v2 / (v1 + v2)).toBeGreaterThan(0.04);
        expect(v2 / (v1 + v2)).toBeLessThan(0.16);
      }, { timeoutMs: 30_000, intervalMs: 500 });
      // The route edited while it runs: the waypoint takes the new weights, with no failed request.
      const route = path.join(config, 'route.yaml');
      writeFileSync(route, readFileSync(route, 'utf8').replace('weight: 90', 'weight: 50').replace('weight: 10', 'weight: 50'));
      const edited = r.lines.length;
      await eventually(() => expect(r.lines.slice(edited).some((l) => l.includes('weights[reviews-v1:50 reviews-v2:50]'))).toBe(true), { timeoutMs: 15_000 });
      await eventually(() => {
        const after = r.lines.slice(edited).filter((l) => l.includes('weights[reviews-v1:50 reviews-v2:50]'));
        const counts = after.map((l) => /\(v1=(\d+) v2=(\d+)\)/.exec(l)).filter((m) => m !== null);
        const v1 = counts.reduce((a, m) => a + Number(m[1]), 0);
        const v2 = counts.reduce((a, m) => a + Number(m[2]), 0);
        expect(v1 + v2).toBeGreaterThan(100);
        expect(v2 / (v1 + v2)).toBeGreaterThan(0.35);
      }, { timeoutMs: 20_000, intervalMs: 500 });
      const traffic = r.lines.slice(steady).filter((l) => /err\/s/.test(l));
      expect(traffic.filter((l) => !/ 0 err\/s/.test(l))).toEqual([]);

      r.up.kill('SIGINT');
      expect(await r.exited).toBe(0);
      expect(r.lines.at(-1)).toBe('stopped.');
      await eventually(() => expect(kids.filter(alive)).toEqual([]), { timeoutMs: 10_000, message: 'no process left' });
      expect(await labLeftovers(UP_LAB.prefix)).toEqual([]);
      expect(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => d.startsWith(`${UP_LAB.prefix}-`)) : []).toEqual([]);
      // The node proxies ran in this machine's namespace, which is no Kubernetes node: its nat
      // table never got the kubelet-probe chain (--kubelet-probe-rules false).
      expect(sh('iptables-nft-save', ['-t', 'nat']).stdout).not.toMatch(/WEFT_AMB_PROBES/);
      // (A legacy table is read only if it exists: reading one would create it.)
      if (readFileSync('/proc/net/ip_tables_names', 'utf8').split('\n').includes('nat')) {
        expect(sh('iptables-legacy-save', ['-t', 'nat']).stdout).not.toMatch(/WEFT_AMB_PROBES/);
      }
    } finally {
      if (r.up.exitCode === null) r.up.kill('SIGKILL');
    }
  }, 150_000);
});
