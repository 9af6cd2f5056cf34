// The data-plane benchmark's processes, started once per `npm run bench`: the backends, the
// HAProxy reference proxy, and Weft's two paths (one sidecar; two sidecars with mTLS), each
// path described by the ports a client calls and the processes whose cost it measures. With a
// baseline build (`--baseline`), the same two paths again on that build, measured in the same
// runs: "the previous version" as a ratio from the same conditions.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { backendConfig, referenceProxyConfig, startHaproxy } from './haproxy.js';
import { ECHO, oneSidecarConfig, startBenchControlPlane, startBenchSidecar, twoSidecarConfig, type AppPorts } from './mesh.js';
import { freePort } from './net.js';
import { settledMemory, start, waitForLine, type Child, type MemoryFigures } from './proc.js';

export type Protocol = 'http1' | 'h2c' | 'grpc';
export type PathName = 'direct' | 'haproxy' | 'weft1' | 'weft2' | 'weft1-base' | 'weft2-base';

export const PROTOCOLS: readonly Protocol[] = ['http1', 'h2c', 'grpc'];
export const PATHS: readonly PathName[] = ['direct', 'haproxy', 'weft1', 'weft2'];
/** The baseline build's path for each Weft path. */
export const BASELINE_OF: Partial<Record<PathName, PathName>> = { weft1: 'weft1-base', weft2: 'weft2-base' };

export const PATH_LABEL: Record<PathName, string> = {
  direct: 'direct (client → server)',
  haproxy: 'HAProxy, 1 thread',
  weft1: 'Weft, 1 sidecar',
  weft2: 'Weft, 2 sidecars + mTLS',
  'weft1-base': 'baseline build, 1 sidecar',
  'weft2-base': 'baseline build, 2 sidecars + mTLS',
};

/** One way from the load generator to the server. */
export interface BenchPath {
  readonly name: PathName;
  /** Port the client connects to, per protocol. */
  readonly port: Record<Protocol, number>;
  /** Host / :authority per protocol (the Weft paths route by it; the others ignore it). */
  readonly authority: Record<Protocol, string>;
  /** The proxy processes on this path (what cost is measured on). */
  readonly proxies: readonly { readonly role: string; readonly child: Child }[];
}

export interface CpuPlan {
  /** Load generators, backends and control planes. */
  readonly load: string | undefined;
  /** The proxies under test. */
  readonly proxy: string | undefined;
}

export interface IdleMemory {
  readonly first: MemoryFigures;
  readonly settled: MemoryFigures;
}

export interface DataPlaneEnv {
  /** The baseline paths only with a baseline build. */
  readonly paths: Partial<Record<PathName, BenchPath>>;
  /** The backend process per protocol (to show it is not the bottleneck). */
  readonly backends: Record<Protocol, Child>;
  /** RSS (MiB) of each proxy idle before any traffic, once settled (20 s after start-up), by
   *  "<path>/<role>". */
  readonly idleRss: Record<string, number>;
  /** The same proxies' memory 3 s after start-up and settled, with PSS and private memory. */
  readonly idleMemory: Record<string, IdleMemory>;
  stop(): Promise<void>;
}

const GRPC_SERVER = fileURLToPath(new URL('../servers/grpc-server.js', import.meta.url));

export async function startDataPlaneEnv(dir: string, cpus: CpuPlan, log: (line: string) => void, opts: { baselineCli?: string } = {}): Promise<DataPlaneEnv> {
  const children: Child[] = [];
  const keep = <T extends Child>(c: T) => (children.push(c), c);
  try {
    // Backends on the load CPU: HAProxy answering HTTP/1.1 and h2c itself; a minimal gRPC server.
    const app: AppPorts = { http1: await freePort(), h2c: await freePort(), grpc: 0 };
    const backend = keep(await startHaproxy('backend', dir, backendConfig(app), [app.http1, app.h2c], cpus.load));
    const grpcServer = keep(start('grpc-server', process.execPath, [GRPC_SERVER, '--port', '0'], { cpu: cpus.load, captureStdout: true, logFile: path.join(dir, 'grpc-server.log') }));
    const grpcPort = Number((await waitForLine(grpcServer, /^listening (\d+)$/, 10_000))[1]);
    grpcServer.proc.stdout?.resume();
    const appPorts: AppPorts = { ...app, grpc: grpcPort };
    log(`backends: http1 :${appPorts.http1}, h2c :${appPorts.h2c} (HAProxy fixed response), grpc :${appPorts.grpc} (node:http2)`);

    // The reference proxy, on the proxy CPU.
    const ref = { http1: await freePort(), h2c: await freePort(), grpc: await freePort() };
    const haproxy = keep(
      await startHaproxy('haproxy-proxy', dir, referenceProxyConfig({ listen: ref, upstream: appPorts }), [ref.http1, ref.h2c, ref.grpc], cpus.proxy),
    );

    const authority: Record<Protocol, string> = { http1: ECHO.http1.authority, h2c: ECHO.h2c.authority, grpc: ECHO.grpc.authority };
    const same = (p: number): Record<Protocol, number> => ({ http1: p, h2c: p, grpc: p });
    // Weft: a plaintext mesh for the one-sidecar path, an mTLS mesh for the two-sidecar path.
    const weftPaths = async (cli: string | undefined, suffix: '' | '-base'): Promise<BenchPath[]> => {
      const cpPlain = keepCp(await startBenchControlPlane({ name: `cp-plain${suffix}`, dir, files: oneSidecarConfig(appPorts), mtls: false, cpu: cpus.load, ...(cli ? { cli } : {}) }));
      const cpMtls = keepCp(await startBenchControlPlane({ name: `cp-mtls${suffix}`, dir, files: twoSidecarConfig(appPorts), mtls: true, cpu: cpus.load, ...(cli ? { cli } : {}) }));
      const [edge, client, server] = await Promise.all([
        startBenchSidecar({ name: `sidecar-edge${suffix}`, dir, cp: cpPlain, workload: 'edge.bench', cpu: cpus.proxy, ...(cli ? { cli } : {}) }),
        startBenchSidecar({ name: `sidecar-client${suffix}`, dir, cp: cpMtls, workload: 'client.bench', cpu: cpus.proxy, ...(cli ? { cli } : {}) }),
        startBenchSidecar({ name: `sidecar-server${suffix}`, dir, cp: cpMtls, workload: 'server.bench', cpu: cpus.proxy, ...(cli ? { cli } : {}) }),
      ]);
      for (const s of [edge, client, server]) keep(s.child);
      log(`weft${suffix ? ' (baseline build)' : ''}: control planes ready, sidecars ready (edge :${edge.ports.outbound}, client :${client.ports.outbound} → server :${server.ports.inbound})`);
      return [
        { name: `weft1${suffix}`, port: same(edge.ports.outbound), authority, proxies: [{ role: 'sidecar', child: edge.child }] },
        {
          name: `weft2${suffix}`,
          port: same(client.ports.outbound),
          authority,
          proxies: [
            { role: 'client sidecar', child: client.child },
            { role: 'server sidecar', child: server.child },
          ],
        },
      ];
    };
    const keepCp = <T extends { child: Child }>(cp: T) => (keep(cp.child), cp);
    const weft = await weftPaths(undefined, '');
    const baseline = opts.baselineCli ? await weftPaths(opts.baselineCli, '-base') : [];
    const paths: Partial<Record<PathName, BenchPath>> = {
      direct: { name: 'direct', port: appPorts, authority, proxies: [] },
      haproxy: { name: 'haproxy', port: ref, authority, proxies: [{ role: 'haproxy', child: haproxy }] },
      ...Object.fromEntries([...weft, ...baseline].map((p) => [p.name, p])),
    };
    // Idle memory: right after start-up, and settled (V8 shrinks an idle process within ~15 s).
    const proxies = Object.values(paths).flatMap((p) => p!.proxies.map((x) => ({ key: `${p.name}/${x.role}`, pid: x.child.pid })));
    const idle = await settledMemory(proxies.map((x) => x.pid));
    const idleMemory = Object.fromEntries(proxies.map((x) => [x.key, idle.get(x.pid)!]));
    log(`idle memory, 3 s → 20 s after start-up: ${proxies.map((x) => `${x.key} RSS ${idleMemory[x.key]!.first.rss.toFixed(0)} → ${idleMemory[x.key]!.settled.rss.toFixed(0)}, PSS ${idleMemory[x.key]!.settled.pss.toFixed(0)} MiB`).join('; ')}`);
    return {
      paths,
      backends: { http1: backend, h2c: backend, grpc: grpcServer },
      idleRss: Object.fromEntries(proxies.map((x) => [x.key, idleMemory[x.key]!.settled.rss])),
      idleMemory,
      stop: async () => {
        await Promise.all(children.map((c) => c.stop()));
      },
    };
  } catch (err) {
    await Promise.all(children.map((c) => c.stop()));
    throw err;
  }
}
