// Probe rewriting at injection, table-driven: which probes move to the sidecar's health port and
// what the proxy is told to run instead; exec probes, other hosts, unresolvable named ports and
// the opt-out annotation leave a probe as it was.
import { describe, expect, it } from 'vitest';
import { APP_PROBES_ENV, parseAppProbes } from '../../core/app-probes.js';
import { injectPod } from './inject.js';
import { INJECT_LABEL } from './names.js';
import type { Json } from './patch.js';
import { rewriteAppProbes } from './probes.js';
import { injectorSettings } from './settings.js';

type Obj = { [key: string]: Json };

const app = (probes: Obj): Obj => ({ name: 'web', image: 'web:1', ports: [{ name: 'http', containerPort: 8080 }, { name: 'rpc', containerPort: 9090 }], ...probes });
const toSidecar = (path: string, timing: Obj = {}): Obj => ({ httpGet: { path, port: 15021, scheme: 'HTTP' }, ...timing });

describe('rewriteAppProbes', () => {
  const cases: { name: string; probes: Obj; rewritten: Obj; proxy: Obj }[] = [
    {
      name: 'HTTP on a named port, with headers and timing kept',
      probes: { readinessProbe: { httpGet: { path: '/ready', port: 'http', httpHeaders: [{ name: 'X-Probe', value: '1' }] }, periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 3 } },
      rewritten: { readinessProbe: toSidecar('/app-health/web/readyz', { periodSeconds: 5, failureThreshold: 2, timeoutSeconds: 3 }) },
      proxy: { '/app-health/web/readyz': { httpGet: { port: 8080, path: '/ready', scheme: 'HTTP', httpHeaders: [{ name: 'X-Probe', value: '1' }] }, timeoutSeconds: 3 } },
    },
    {
      name: 'HTTPS on a numeric port given as a string, no path',
      probes: { livenessProbe: { httpGet: { port: '8443', scheme: 'HTTPS' } } },
      rewritten: { livenessProbe: toSidecar('/app-health/web/livez') },
      proxy: { '/app-health/web/livez': { httpGet: { port: 8443, path: '/', scheme: 'HTTPS', httpHeaders: [] }, timeoutSeconds: 1 } },
    },
    {
      name: 'TCP and gRPC',
      probes: { livenessProbe: { tcpSocket: { port: 8080 } }, startupProbe: { grpc: { port: 9090, service: 'web' }, failureThreshold: 30 } },
      rewritten: { livenessProbe: toSidecar('/app-health/web/livez'), startupProbe: toSidecar('/app-health/web/startupz', { failureThreshold: 30 }) },
      proxy: { '/app-health/web/livez': { tcpSocket: { port: 8080 }, timeoutSeconds: 1 }, '/app-health/web/startupz': { grpc: { port: 9090, service: 'web' }, timeoutSeconds: 1 } },
    },
    {
      name: 'exec, another host, and a named port the container does not declare stay as they are',
      probes: {
        livenessProbe: { exec: { command: ['true'] } },
        readinessProbe: { httpGet: { host: 'example.internal', path: '/', port: 80 } },
        startupProbe: { tcpSocket: { port: 'metrics' } },
      },
      rewritten: {
        livenessProbe: { exec: { command: ['true'] } },
        readinessProbe: { httpGet: { host: 'example.internal', path: '/', port: 80 } },
        startupProbe: { tcpSocket: { port: 'metrics' } },
      },
      proxy: {},
    },
  ];
  it.each(cases)('$name', ({ probes, rewritten, proxy }) => {
    const input = [app(probes)];
    const before = structuredClone(input);
    const r = rewriteAppProbes(input);
    expect(r.containers).toEqual([app(rewritten)]);
    expect(r.probes).toEqual(proxy);
    expect(input).toEqual(before); // the input is not modified
    // What injection hands the proxy is what the proxy accepts.
    expect([...parseAppProbes(JSON.stringify(r.probes), 'test').keys()].sort()).toEqual(Object.keys(proxy).sort());
  });

  it('keeps each container apart', () => {
    const r = rewriteAppProbes([app({ readinessProbe: { tcpSocket: { port: 8080 } } }), { name: 'cache', image: 'redis', readinessProbe: { tcpSocket: { port: 6379 } } }]);
    expect(Object.keys(r.probes).sort()).toEqual(['/app-health/cache/readyz', '/app-health/web/readyz']);
  });
});

describe('injection rewrites probes unless the pod says not to', () => {
  const settings = injectorSettings({ nativeSidecars: true });
  const pod = (annotations: Record<string, string> = {}): Obj => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web-0', annotations },
    spec: { containers: [app({ readinessProbe: { httpGet: { path: '/ready', port: 'http' } } })] },
  });
  const inject = (p: Obj) => injectPod(p, { settings, namespace: 'shop', namespaceLabels: { [INJECT_LABEL]: 'enabled' } });
  const proxyEnv = (p: Obj) => {
    const spec = p.spec as { initContainers: Obj[] };
    const proxy = spec.initContainers.find((c) => c.name === 'weft-proxy') as { env: { name: string; value?: string }[] };
    return proxy.env.find((e) => e.name === APP_PROBES_ENV)?.value;
  };

  it('by default: the app probes the sidecar, and the sidecar knows the original', () => {
    const r = inject(pod());
    if (r.kind !== 'injected') throw new Error(r.kind);
    const containers = (r.pod.spec as { containers: Obj[] }).containers;
    expect(containers[0]?.readinessProbe).toEqual(toSidecar('/app-health/web/readyz'));
    expect(JSON.parse(proxyEnv(r.pod) ?? '{}')).toEqual({ '/app-health/web/readyz': { httpGet: { port: 8080, path: '/ready', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 1 } });
  });

  it('weft.dev/rewrite-app-probes: "false" leaves them alone', () => {
    const r = inject(pod({ 'weft.dev/rewrite-app-probes': 'false' }));
    if (r.kind !== 'injected') throw new Error(r.kind);
    expect((r.pod.spec as { containers: Obj[] }).containers[0]?.readinessProbe).toEqual({ httpGet: { path: '/ready', port: 'http' } });
    expect(proxyEnv(r.pod)).toBeUndefined();
  });

  it('any other value is refused, naming the annotation and the value', () => {
    const r = inject(pod({ 'weft.dev/rewrite-app-probes': 'no' }));
    expect(r).toEqual({ kind: 'rejected', message: 'annotation weft.dev/rewrite-app-probes="no": must be "true" or "false"' });
  });
});
