// Injection decisions and results, table-driven: who is injected (opt-in by namespace or pod,
// opt-out, revisions, system namespaces), what an injected pod holds, and which annotations
// are refused with a message naming the annotation and its value.
import { describe, expect, it } from 'vitest';
import { injectPod, type InjectionContext } from './inject.js';
import { INJECT_LABEL, REVISION_LABEL, STATUS_ANNOTATION } from './names.js';
import type { Json } from './patch.js';
import { injectorSettings } from './settings.js';

type Pod = { [key: string]: Json };

function pod(meta: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}, spec: Pod = {}): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'reviews-v1-7d9f8-', labels: { app: 'reviews', ...meta.labels }, ...(meta.annotations ? { annotations: meta.annotations } : {}) },
    spec: { serviceAccountName: 'reviews', containers: [{ name: 'reviews', image: 'reviews:1', ports: [{ name: 'http', containerPort: 9080 }] }], ...spec },
  };
}

const settings = injectorSettings({ nativeSidecars: true });
const ctx = (over: Partial<InjectionContext> = {}): InjectionContext => ({
  settings,
  namespace: 'shop',
  namespaceLabels: { [INJECT_LABEL]: 'enabled' },
  ...over,
});

function spec(p: Pod): { containers: Pod[]; initContainers: Pod[]; volumes: Pod[] } {
  return p.spec as never;
}

describe('who is injected', () => {
  const cases: { name: string; pod: Pod; ctx: InjectionContext; expect: 'injected' | 'skipped' | 'rejected'; why?: RegExp }[] = [
    { name: 'namespace labelled weft.dev/inject=enabled', pod: pod(), ctx: ctx(), expect: 'injected' },
    { name: 'pod labelled weft.dev/inject=true in a plain namespace', pod: pod({ labels: { [INJECT_LABEL]: 'true' } }), ctx: ctx({ namespaceLabels: {} }), expect: 'injected' },
    { name: 'nothing opted in', pod: pod(), ctx: ctx({ namespaceLabels: {} }), expect: 'skipped', why: /opted in/ },
    { name: 'pod annotation weft.dev/inject: "false" opts out', pod: pod({ annotations: { 'weft.dev/inject': 'false' } }), ctx: ctx(), expect: 'skipped', why: /opted out/ },
    { name: 'kube-system, whatever its labels', pod: pod({ labels: { [INJECT_LABEL]: 'true' } }), ctx: ctx({ namespace: 'kube-system' }), expect: 'skipped', why: /never injected/ },
    { name: "the control plane's own namespace", pod: pod(), ctx: ctx({ namespace: 'weft-system' }), expect: 'skipped', why: /never injected/ },
    { name: 'a pod of another revision', pod: pod({ labels: { [REVISION_LABEL]: 'canary' } }), ctx: ctx(), expect: 'skipped', why: /revision "canary"/ },
    { name: 'a namespace of another revision', pod: pod(), ctx: ctx({ namespaceLabels: { [REVISION_LABEL]: 'canary' } }), expect: 'skipped', why: /revision "canary"/ },
    {
      name: 'a namespace of this revision (the rev label opts in by itself)',
      pod: pod(),
      ctx: ctx({ settings: injectorSettings({ revision: 'canary' }), namespaceLabels: { [REVISION_LABEL]: 'canary' } }),
      expect: 'injected',
    },
    { name: 'unknown namespace labels: the caller vouches (webhook selector, weft inject)', pod: pod(), ctx: ctx({ namespaceLabels: undefined }), expect: 'injected' },
    { name: 'host network pods', pod: pod({}, { hostNetwork: true }), ctx: ctx(), expect: 'skipped', why: /host network/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = injectPod(c.pod, c.ctx);
      expect(r.kind).toBe(c.expect);
      if (c.why && r.kind === 'skipped') expect(r.reason).toMatch(c.why);
    });
  }
});

describe('an injected pod', () => {
  it('as a native sidecar: weft-init, then weft-proxy with restartPolicy Always, then the app', () => {
    const r = injectPod(pod({}, { initContainers: [{ name: 'migrate', image: 'm' }] }), ctx());
    expect(r.kind).toBe('injected');
    const p = (r as { pod: Pod }).pod;
    const s = spec(p);
    expect(s.initContainers.map((c) => c.name)).toEqual(['weft-init', 'weft-proxy', 'migrate']);
    expect(s.containers.map((c) => c.name)).toEqual(['reviews']);
    const proxy = s.initContainers[1]!;
    expect(proxy.restartPolicy).toBe('Always');
    expect(proxy.lifecycle).toBeUndefined();
    expect(proxy.startupProbe).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15021 } });
    expect(proxy.readinessProbe).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15021 } });
    expect(proxy.securityContext).toMatchObject({ runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    const init = s.initContainers[0]!;
    expect(init.securityContext).toMatchObject({ runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] } });
    expect((init.args as string[]).slice(0, 2)).toEqual(['iptables', 'apply']);
    expect(s.volumes.map((v) => v.name)).toEqual(['weft-token', 'weft-ca-root-cert', 'weft-podinfo', 'weft-tmp']);
    expect(JSON.stringify(s.volumes[0])).toContain('"audience":"weft-ca"');
    const meta = p.metadata as { labels: Record<string, string>; annotations: Record<string, string> };
    expect(meta.labels[REVISION_LABEL]).toBe('default');
    expect(JSON.parse(meta.annotations[STATUS_ANNOTATION]!)).toMatchObject({ revision: 'default', nativeSidecar: true, initContainers: ['weft-init', 'weft-proxy'] });
    expect(meta.annotations['kubectl.kubernetes.io/default-container']).toBe('reviews');
  });

  it('as a regular container: the proxy first, with a postStart hook that waits for readiness', () => {
    const r = injectPod(pod({}, { initContainers: [{ name: 'migrate', image: 'm' }] }), ctx({ settings: injectorSettings({ nativeSidecars: false }) }));
    const s = spec((r as { pod: Pod }).pod);
    expect(s.initContainers.map((c) => c.name)).toEqual(['migrate', 'weft-init']);
    expect(s.containers.map((c) => c.name)).toEqual(['weft-proxy', 'reviews']);
    expect(s.containers[0]!.restartPolicy).toBeUndefined();
    expect(JSON.stringify(s.containers[0]!.lifecycle)).toContain('/healthz/ready');
  });

  it('takes per-pod overrides from annotations', () => {
    const r = injectPod(
      pod({
        annotations: {
          'weft.dev/exclude-inbound-ports': '9090, 9091',
          'weft.dev/exclude-outbound-ports': '5432',
          'weft.dev/exclude-outbound-cidrs': '10.0.0.0/8,fd00::/8',
          'weft.dev/proxy-cpu': '250m',
          'weft.dev/proxy-memory': '256Mi',
          'weft.dev/log-level': 'debug',
          'weft.dev/proxy-concurrency': '2',
        },
      }),
      ctx(),
    );
    const s = spec((r as { pod: Pod }).pod);
    const args = s.initContainers[0]!.args as string[];
    const flag = (f: string) => args[args.indexOf(f) + 1];
    expect(flag('--exclude-inbound-ports')).toBe('9090,9091');
    expect(flag('--exclude-outbound-ports')).toBe('5432');
    expect(flag('--exclude-outbound-cidrs')).toBe('10.0.0.0/8,fd00::/8');
    const proxy = s.initContainers[1]!;
    expect(proxy.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '256Mi' } });
    expect(proxy.env).toContainEqual({ name: 'WEFT_LOG_LEVEL', value: 'debug' });
    const proxyArgs = proxy.args as string[];
    expect(proxyArgs[proxyArgs.indexOf('--concurrency') + 1]).toBe('2');
  });

  it('injecting an injected pod changes nothing', () => {
    const once = injectPod(pod(), ctx());
    const twice = injectPod((once as { pod: Pod }).pod, ctx());
    expect(twice).toEqual({ kind: 'skipped', reason: 'the pod already has a Weft sidecar' });
  });

  it('does not modify the pod it was given', () => {
    const p = pod();
    const copy = structuredClone(p);
    injectPod(p, ctx());
    expect(p).toEqual(copy);
  });
});

describe('invalid annotations reject the pod, naming the annotation and value', () => {
  const cases: [string, string, RegExp][] = [
    ['weft.dev/exclude-inbound-ports', '80,http', /weft\.dev\/exclude-inbound-ports="80,http": "http" is not a port number/],
    ['weft.dev/exclude-outbound-ports', '70000', /"70000" is not a port number/],
    ['weft.dev/exclude-outbound-cidrs', '10.0.0.0/33', /"10\.0\.0\.0\/33" is not a CIDR/],
    ['weft.dev/proxy-cpu', 'lots', /weft\.dev\/proxy-cpu="lots": must be a positive Kubernetes quantity/],
    ['weft.dev/proxy-memory', '-1Gi', /proxy-memory="-1Gi"/],
    ['weft.dev/log-level', 'verbose', /log-level="verbose": must be one of debug, info, warn, error/],
    ['weft.dev/inject', 'maybe', /weft\.dev\/inject="maybe": must be "true" or "false"/],
    ['weft.dev/proxy-concurrency', '0', /proxy-concurrency="0": must be a whole number of worker processes from 1 to 64/],
    ['weft.dev/proxy-concurrency', 'two', /proxy-concurrency="two": must be a whole number/],
    ['weft.dev/exclude-inbound-port', '80', /exclude-inbound-port="80": is not an annotation Weft reads/],
  ];
  for (const [annotation, value, message] of cases) {
    it(`${annotation}: ${value}`, () => {
      const r = injectPod(pod({ annotations: { [annotation]: value } }), ctx());
      expect(r.kind).toBe('rejected');
      expect((r as { message: string }).message).toMatch(message);
    });
  }
});
