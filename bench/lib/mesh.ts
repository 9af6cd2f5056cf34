// Weft processes for the benchmarks, started through the real CLI (`weft control-plane`,
// `weft proxy`) so each is its own process that can be pinned and measured: a control plane on a
// generated config dir, and sidecars that wait until they hold a certificate and full config.
import { spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, LOOPBACK, waitHttp } from './net.js';
import { start, waitForLine, type Child } from './proc.js';

/** The `weft` CLI under test: dist/cli/main.js next to this file's dist/bench/lib/, unless
 *  WEFT_BENCH_CLI names another build (run.ts `--weft`, e.g. a build of a given commit). */
export const weftCli = (): string => process.env.WEFT_BENCH_CLI ?? fileURLToPath(new URL('../../cli/main.js', import.meta.url));

export const BENCH_NS = 'bench';
/** The Service every data-plane path calls, and the authority per protocol (ports 80/81/82). */
export const ECHO = { http1: { port: 80, authority: 'echo' }, h2c: { port: 81, authority: 'echo:81' }, grpc: { port: 82, authority: 'echo:82' } } as const;

export interface AppPorts {
  readonly http1: number;
  readonly h2c: number;
  readonly grpc: number;
}

const SERVICE_PORTS = `  ports:
    - { name: http, port: 80, targetPort: http }
    - { name: h2c, port: 81, targetPort: h2c }
    - { name: grpc, port: 82, targetPort: grpc }`;

/**
 * One sidecar in front of the client, none in front of the server: Service `echo` has no
 * selector and a hand-made EndpointSlice pointing at the backends, so the sidecar's outbound
 * listener forwards straight to them (plaintext; the control plane runs with --no-mtls).
 */
export function oneSidecarConfig(app: AppPorts): Record<string, string> {
  return {
    'echo.yaml': `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${BENCH_NS} }
spec:
  ports:
    - { name: http, port: 80 }
    - { name: h2c, port: 81 }
    - { name: grpc, port: 82 }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-backends, namespace: ${BENCH_NS}, labels: { kubernetes.io/service-name: echo } }
addressType: IPv4
endpoints:
  - addresses: [${LOOPBACK}]
ports:
  - { name: http, port: ${app.http1}, protocol: TCP }
  - { name: h2c, port: ${app.h2c}, protocol: TCP }
  - { name: grpc, port: ${app.grpc}, protocol: TCP }
`,
    'edge.yaml': workloadEntry('edge', { app: 'edge' }, {}, 'edge'),
  };
}

/** The real mesh hop: client sidecar → mTLS → server sidecar (inbound) → the backends. */
export function twoSidecarConfig(app: AppPorts): Record<string, string> {
  return {
    'echo.yaml': `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${BENCH_NS} }
spec:
  selector: { app: echo }
${SERVICE_PORTS}
`,
    'workloads.yaml': [
      workloadEntry('server', { app: 'echo' }, { http: app.http1, h2c: app.h2c, grpc: app.grpc }, 'echo'),
      workloadEntry('client', { app: 'client' }, {}, 'client'),
    ].join('---\n'),
  };
}

export function workloadEntry(name: string, labels: Record<string, string>, ports: Record<string, number>, serviceAccount: string, ns = BENCH_NS): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}: ${v}`).join(', ');
  const p = Object.entries(ports).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${ns}, labels: { ${l} } }
spec: { address: ${LOOPBACK}, ports: { ${p} }, serviceAccount: ${serviceAccount} }
`;
}

export interface BenchControlPlane {
  readonly child: Child;
  readonly xds: string;
  readonly monitor: string;
  readonly configDir: string;
  readonly stateDir: string;
  tokenFile(workload: string): string;
}

export async function startBenchControlPlane(opts: {
  name: string;
  dir: string;
  files: Record<string, string>;
  mtls: boolean;
  cpu: string | undefined;
  readyTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Extra flags for node itself (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  /** The `weft` CLI to run (default weftCli(); a baseline build for A/B runs). */
  cli?: string;
}): Promise<BenchControlPlane> {
  const configDir = path.join(opts.dir, `${opts.name}-config`);
  const stateDir = path.join(opts.dir, `${opts.name}-state`);
  mkdirSync(configDir, { recursive: true });
  for (const [file, yaml] of Object.entries(opts.files)) writeFileSync(path.join(configDir, file), yaml);
  const xdsPort = await freePort();
  const monitorPort = await freePort();
  const args = [
    ...(opts.nodeArgs ?? []),
    opts.cli ?? weftCli(), 'control-plane', '--config', configDir, '--state-dir', stateDir, '--host', LOOPBACK,
    '--xds-port', String(xdsPort), '--xds-tls-port', '-1', '--monitor-port', String(monitorPort),
  ];
  if (!opts.mtls) args.push('--no-mtls');
  const child = start(opts.name, process.execPath, args, { cpu: opts.cpu, logFile: path.join(opts.dir, `${opts.name}.log`), env: opts.env });
  const monitor = `http://${LOOPBACK}:${monitorPort}`;
  try {
    await waitHttp(`${monitor}/ready`, { timeoutMs: opts.readyTimeoutMs ?? 30_000 });
  } catch (err) {
    await child.stop();
    throw new Error(`${opts.name} did not become ready (see ${path.join(opts.dir, `${opts.name}.log`)}): ${(err as Error).message}`);
  }
  return {
    child,
    xds: `${LOOPBACK}:${xdsPort}`,
    monitor,
    configDir,
    stateDir,
    tokenFile: (workload) => {
      const [name, ns] = workload.split('.');
      return path.join(stateDir, 'tokens', ns ?? BENCH_NS, `${name}.token`);
    },
  };
}

/** Flags of `weft proxy` that not every build has (the CLI grows): port 0 / short drain when present. */
const optionalProxyFlags = (() => {
  const cache = new Map<string, string[]>();
  return (cli: string): string[] => {
    let flags = cache.get(cli);
    if (!flags) {
      const help = spawnSync(process.execPath, [cli, 'proxy', '--help'], { encoding: 'utf8' }).stdout ?? '';
      flags = [];
      if (help.includes('--health-port')) flags.push('--health-port', '0');
      if (help.includes('--drain-seconds')) flags.push('--drain-seconds', '1');
      cache.set(cli, flags);
    }
    return flags;
  };
})();

export interface BenchSidecar {
  readonly child: Child;
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number };
}

/** `weft proxy` for `workload` (NAME.NAMESPACE), ready (certificate + complete config) before it resolves. */
export async function startBenchSidecar(opts: {
  name: string;
  dir: string;
  cp: BenchControlPlane;
  workload: string;
  cpu: string | undefined;
  /** Extra flags for node itself (e.g. --cpu-prof). */
  nodeArgs?: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** The `weft` CLI to run (default weftCli(); a baseline build for A/B runs). */
  cli?: string;
}): Promise<BenchSidecar> {
  const cli = opts.cli ?? weftCli();
  const args = [
    ...(opts.nodeArgs ?? []),
    cli, 'proxy', '--xds', opts.cp.xds, '--workload', opts.workload, '--token-file', opts.cp.tokenFile(opts.workload),
    '--bind-address', LOOPBACK, '--outbound-port', '0', '--inbound-port', '0', '--admin-port', '0', '--stats-port', '0',
    ...optionalProxyFlags(cli),
  ];
  const child = start(opts.name, process.execPath, args, {
    cpu: opts.cpu,
    captureStdout: true,
    logFile: path.join(opts.dir, `${opts.name}.log`),
    env: opts.env,
  });
  try {
    const m = await waitForLine(child, /^weft-proxy-listening (\{.*\})$/, 30_000);
    // The rest of stdout joins the log: node's own tracing (--trace-gc-nvp, ...) writes there.
    child.proc.stdout?.pipe(createWriteStream(path.join(opts.dir, `${opts.name}.log`), { flags: 'a' }));
    const ports = JSON.parse(m[1]!) as BenchSidecar['ports'];
    await waitHttp(`http://${LOOPBACK}:${ports.admin}/ready`, { timeoutMs: 30_000 });
    return { child, ports };
  } catch (err) {
    await child.stop();
    throw new Error(`${opts.name} did not become ready (see ${path.join(opts.dir, `${opts.name}.log`)}): ${(err as Error).message}`);
  }
}
