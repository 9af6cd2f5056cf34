// Builders for cross-component tests: a control plane on a temp config dir, sidecars for its
// WorkloadEntries, and backends that report which version answered — all on 127.0.0.1, port 0,
// through the same composition roots the CLI uses.
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { controlPlaneConfig, type ControlPlaneConfig } from '../../control-plane/config.js';
import { startControlPlane, type ControlPlane } from '../../control-plane/main.js';
import { configureLogging } from '../../core/log.js';
import { proxyConfig, type ProxyConfigOptions } from '../../proxy/config.js';
import { startProxy, type RunningProxy } from '../../proxy/main.js';
import { eventually } from './eventually.js';

configureLogging({ level: (process.env.WEFT_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'error' });

export interface TestMesh {
  readonly dir: string;
  readonly configDir: string;
  readonly stateDir: string;
  readonly cp: ControlPlane;
  /** Writes (or replaces) a config file; the control plane picks it up live. */
  write(file: string, yaml: string): void;
  sidecar(workload: string, opts?: Partial<ProxyConfigOptions>): Promise<TestSidecar>;
  close(): Promise<void>;
}

export interface TestSidecar {
  readonly proxy: RunningProxy;
  readonly outbound: string;
  readonly admin: string;
  stop(): Promise<void>;
}

export async function startTestMesh(files: Record<string, string>, cfg: Partial<ControlPlaneConfig> = {}): Promise<TestMesh> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-test-'));
  const configDir = path.join(dir, 'config');
  const stateDir = path.join(dir, 'state');
  mkdirSync(configDir);
  const write = (file: string, yaml: string) => writeFileSync(path.join(configDir, file), yaml);
  for (const [f, y] of Object.entries(files)) write(f, y);
  const cp = await startControlPlane(
    controlPlaneConfig({ configDir, stateDir, xdsPort: 0, xdsTlsPort: -1, monitorPort: 0, debounceMs: 50, ...cfg }),
  );
  const sidecars: TestSidecar[] = [];
  return {
    dir,
    configDir,
    stateDir,
    cp,
    write,
    async sidecar(workload, opts = {}) {
      const [name, ns] = workload.split('.') as [string, string];
      const sc = await startTestSidecar(`127.0.0.1:${cp.xdsAddress.port}`, workload, path.join(stateDir, 'tokens', ns, `${name}.token`), opts);
      sidecars.push(sc);
      return sc;
    },
    async close() {
      await Promise.all(sidecars.map((s) => s.stop()));
      await cp.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startTestSidecar(xds: string, workload: string, tokenFile: string, opts: Partial<ProxyConfigOptions> = {}): Promise<TestSidecar> {
  const proxy = await startProxy(
    proxyConfig({
      xds,
      workload,
      tokenFile,
      bindAddress: '127.0.0.1',
      outboundPort: 0,
      inboundPort: 0,
      adminPort: 0,
      statsPort: 0,
      healthPort: 0,
      drainSeconds: 1,
      ...opts,
    }),
  );
  let stopped = false;
  return {
    proxy,
    outbound: `http://127.0.0.1:${proxy.ports.outbound}`,
    admin: `http://127.0.0.1:${proxy.ports.admin}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await proxy.stop();
    },
  };
}

export async function waitReady(...sidecars: TestSidecar[]): Promise<void> {
  await Promise.all(
    sidecars.map((s) =>
      eventually(async () => {
        const res = await fetch(`${s.admin}/ready`);
        const body = await res.text();
        if (res.status !== 200) throw new Error(body);
      }, { timeoutMs: 15_000, message: 'sidecar ready' }),
    ),
  );
}

/** An HTTP backend that answers `{version}` and counts requests. */
export interface TestBackend {
  readonly port: number;
  readonly version: string;
  count: number;
  close(): Promise<void>;
}

export async function startBackend(version: string, port = 0, handler?: http.RequestListener): Promise<TestBackend> {
  const state = { count: 0 };
  const server = http.createServer((req, res) => {
    state.count++;
    if (handler) return handler(req, res);
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-version': version });
      res.end(JSON.stringify({ version, path: req.url, host: req.headers.host, headers: req.headers }));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    version,
    get count() {
      return state.count;
    },
    set count(v) {
      state.count = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** One plain HTTP/1.1 GET on its own connection (no proxy, no pooling): status and body. */
export function plainGet(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

/** One request through a sidecar's outbound listener as an HTTP_PROXY client sends it. */
export function viaProxy(proxyUrl: string, target: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const proxy = new URL(proxyUrl);
  const url = new URL(target);
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: proxy.hostname,
        port: proxy.port,
        method: init.method ?? 'GET',
        path: url.href,
        headers: { host: url.host, ...init.headers },
        agent: keepAlive,
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
    req.end(init.body);
  });
}

/** One origin-form request to a sidecar's outbound listener with the given Host header. */
export function originForm(proxyUrl: string, host: string, pathAndQuery = '/') {
  const proxy = new URL(proxyUrl);
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port, path: pathAndQuery, headers: { host }, agent: keepAlive }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 32 });

/** The canary config of the tests: reviews → reviews-v1 / reviews-v2 by weight. */
/**
 * The mesh most identity and policy tests use: Service `server` (port 80) on a meshed workload
 * `server` whose app listens on `backendPort`, and a meshed `client` workload with no ports.
 */
export function serverClientYaml(backendPort: number, opts: { client?: boolean } = {}): string {
  return `apiVersion: v1
kind: Service
metadata: { name: server, namespace: default }
spec: { selector: { app: server }, ports: [{ name: http, port: 80, targetPort: http }] }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: server, namespace: default, labels: { app: server } }
spec: { address: 127.0.0.1, ports: { http: ${backendPort} }, serviceAccount: server }
${opts.client === false ? '' : `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { address: 127.0.0.1, serviceAccount: client }
`}`;
}

/** Service `echo` (port 80) without a sidecar: an EndpointSlice to `backendPort` on loopback;
 *  and a meshed `client` workload with no ports, whose sidecar calls it. */
export function echoClientYaml(backendPort: number): string {
  return `apiVersion: v1
kind: Service
metadata: { name: echo, namespace: default }
spec:
  ports: [{ name: http, port: 80 }]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: echo-1, namespace: default, labels: { kubernetes.io/service-name: echo } }
addressType: IPv4
endpoints: [{ addresses: [127.0.0.1] }]
ports: [{ name: http, port: ${backendPort}, protocol: TCP }]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { address: 127.0.0.1, serviceAccount: client }
`;
}

export function canaryConfig(v1Port: number, v2Port: number, w1: number, w2: number): Record<string, string> {
  return {
    'services.yaml': ['reviews', 'reviews-v1', 'reviews-v2']
      .map(
        (name) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  selector: { app: reviews${name === 'reviews' ? '' : `, version: ${name.slice(8)}`} }
  ports: [{ name: http, port: 9080, targetPort: http }]
`,
      )
      .join('---\n'),
    'workloads.yaml': `apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, namespace: default, labels: { app: reviews, version: v1 } }
spec: { address: 127.0.0.1, ports: { http: ${v1Port} }, serviceAccount: reviews }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: default, labels: { app: reviews, version: v2 } }
spec: { address: 127.0.0.1, ports: { http: ${v2Port} }, serviceAccount: reviews }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, namespace: default, labels: { app: client } }
spec: { address: 127.0.0.1, serviceAccount: client }
`,
    'route.yaml': canaryRoute(w1, w2),
  };
}

export function canaryRoute(w1: number, w2: number): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: ${w1} }
        - { name: reviews-v2, port: 9080, weight: ${w2} }
`;
}
