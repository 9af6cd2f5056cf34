// Kubelet probes under STRICT mTLS, end to end: a pod goes through injection, its rewritten
// probes are what the kubelet would send (a plain HTTP GET to the sidecar's health port), and the
// sidecar started with the env injection gave it runs the original probes against the app —
// while a plaintext request to the app's port, which is what the kubelet would have sent without
// the rewrite, is refused. The kubelet itself cannot run here; these requests stand in for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_PROBES_ENV, parseAppProbes } from '../../core/app-probes.js';
import { injectPod } from '../../control-plane/injector/inject.js';
import { INJECT_LABEL } from '../../control-plane/injector/names.js';
import type { Json } from '../../control-plane/injector/patch.js';
import { injectorSettings } from '../../control-plane/injector/settings.js';
import { eventually } from '../support/eventually.js';
import { plainGet, serverClientYaml, startBackend, startTestMesh, waitReady, type TestBackend, type TestMesh, type TestSidecar } from '../support/mesh.js';

type Obj = { [key: string]: Json };

/** What the kubelet sends. */
const get = (port: number, path: string) => plainGet(port, path, { 'user-agent': 'kube-probe/1.31' });

describe('app probes through the sidecar under STRICT mTLS', () => {
  let healthy = true;
  let app: TestBackend;
  let mesh: TestMesh;
  let server: TestSidecar;
  let probes: { readiness: { path: string; port: number }; liveness: { path: string; port: number } };

  beforeAll(async () => {
    app = await startBackend('app', 0, (req, res) => {
      req.resume();
      res.writeHead(req.url === '/ready' && !healthy ? 503 : 200).end();
    });
    // What the Deployment's author wrote: probes on the app's own (named) port.
    const pod: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'server-0', namespace: 'default' },
      spec: {
        containers: [{
          name: 'app',
          image: 'app:1',
          ports: [{ name: 'http', containerPort: app.port }],
          readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 2 },
          livenessProbe: { tcpSocket: { port: app.port } },
        }],
      },
    };
    const injected = injectPod(pod, { settings: injectorSettings({ nativeSidecars: true }), namespace: 'default', namespaceLabels: { [INJECT_LABEL]: 'enabled' } });
    if (injected.kind !== 'injected') throw new Error(`not injected: ${JSON.stringify(injected)}`);
    const spec = injected.pod.spec as { containers: Obj[]; initContainers: Obj[] };
    const probe = (field: string) => (spec.containers[0]![field] as { httpGet: { path: string; port: number } }).httpGet;
    probes = { readiness: probe('readinessProbe'), liveness: probe('livenessProbe') };
    const env = (spec.initContainers.find((c) => c.name === 'weft-proxy')!.env as { name: string; value?: string }[]).find((e) => e.name === APP_PROBES_ENV)!.value!;

    mesh = await startTestMesh({
      'mesh.yaml': `${serverClientYaml(app.port, { client: false })}---
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: STRICT } }
`,
    });
    server = await mesh.sidecar('server.default', { appProbes: parseAppProbes(env, APP_PROBES_ENV) });
    await waitReady(server);
  });

  afterAll(async () => {
    await mesh?.close();
    await app?.close();
  });

  it("the kubelet's original probe, plaintext to the app's port, is refused", async () => {
    await eventually(async () => {
      const dump = (await (await fetch(`${server.admin}/config_dump`)).json()) as { listeners: Array<{ name: string; filterChains: Array<{ transportProtocol?: string }> }> };
      expect(dump.listeners.find((l) => l.name === 'inbound')?.filterChains.map((c) => c.transportProtocol)).toEqual(['tls']);
    }, { timeoutMs: 10_000 });
    await expect(get(server.proxy.ports.inbound, '/ready')).rejects.toThrow(/socket hang up|ECONNRESET/);
  });

  it('the rewritten probes reach the app through the health port and follow its health', async () => {
    expect(probes.readiness.port).toBe(15021); // in a pod; here the sidecar's health port is a free one
    const health = server.proxy.ports.health;
    expect(await get(health, probes.readiness.path)).toEqual({ status: 200, body: `HTTP GET 127.0.0.1:${app.port}/ready: 200\n` });
    expect(await get(health, probes.liveness.path)).toEqual({ status: 200, body: `TCP 127.0.0.1:${app.port}: connected\n` });
    healthy = false;
    expect(await get(health, probes.readiness.path)).toEqual({ status: 503, body: `HTTP GET 127.0.0.1:${app.port}/ready: the app answered 503\n` });
    healthy = true;
    expect((await get(health, probes.readiness.path)).status).toBe(200);
    // The sidecar's own readiness is where it always was; other paths are not probes.
    expect((await get(health, '/healthz/ready')).status).toBe(200);
    expect((await get(health, '/app-health/other/readyz')).status).toBe(404);
  });
});
