// Sidecars on real pod networking, on both CNI layouts (bridge + host-local; routed ptp +
// host-local): unmodified apps in pod namespaces, kube-proxy's Service DNAT in every pod, the
// capture rules of `weft iptables apply`, `weft proxy --capture` as UID 1337, the control plane
// in a node namespace. Needs root (CI runs as root): a missing prerequisite fails the suite.
import { randomBytes } from 'node:crypto';
import { readdirSync, existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpInNetns } from '../../cli/lab/netns-io.js';
import { eventually } from '../support/eventually.js';
import { buildCluster, type Cluster, type ClusterOptions, type Layout, type PodSpec, type ServiceSpec } from './support/cluster.js';
import { assertPrerequisites, namespacesWith, nsh, sh } from './support/host.js';

const DETECT_TIMEOUT_MS = 1_000;

const PODS: PodSpec[] = [
  { name: 'client', node: 1, labels: { app: 'client' }, serviceAccount: 'client', ports: {}, iptables: ['--exclude-outbound-ports', '7001'] },
  // Two app ports each, so that a plaintext client's port must come from its original destination.
  { name: 'reviews-v1', node: 1, labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'reviews', ports: { http: 9080, 'http-admin': 9081 }, app: ['http', '--version', 'v1', '--port', '9080,9081'] },
  { name: 'reviews-v2', node: 2, labels: { app: 'reviews', version: 'v2' }, serviceAccount: 'reviews', ports: { http: 9080, 'http-admin': 9081 }, app: ['http', '--version', 'v2', '--port', '9080,9081'] },
  {
    name: 'echo',
    node: 2,
    labels: { app: 'echo' },
    serviceAccount: 'echo',
    ports: { 'tcp-echo': 7000, 'tcp-direct': 7001, 'tcp-smtp': 2525, mail: 2526 },
    app: ['tcp', '--echo', '7000,7001', '--greet', '2525,2526'],
    iptables: ['--exclude-inbound-ports', '7001'],
  },
];

const SERVICES: ServiceSpec[] = [
  {
    name: 'reviews',
    clusterIP: '10.96.0.10',
    selector: { app: 'reviews' },
    ports: [
      { name: 'http', port: 9080, targetPort: 9080 },
      { name: 'web', port: 8080, targetPort: 9081 }, // no declared protocol: detected
    ],
  },
  { name: 'reviews-v1', clusterIP: '10.96.0.11', selector: { app: 'reviews', version: 'v1' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  { name: 'reviews-v2', clusterIP: '10.96.0.12', selector: { app: 'reviews', version: 'v2' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  {
    name: 'echo',
    clusterIP: '10.96.0.20',
    selector: { app: 'echo' },
    ports: [
      { name: 'tcp-echo', port: 7000, targetPort: 7000 }, // declared TCP
      { name: 'tcp-direct', port: 7001, targetPort: 7001 }, // excluded from capture on both sides
      { name: 'tcp-smtp', port: 2525, targetPort: 2525 }, // declared TCP, server-first
      { name: 'mail', port: 2526, targetPort: 2526 }, // unknown protocol, server-first
    ],
  },
];

const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: 80 }
        - { name: reviews-v2, port: 9080, weight: 20 }
`;

const LAYOUTS: Array<{ layout: Layout; prefix: string; net: number; backend: 'nft' | 'legacy' }> = [
  { layout: 'bridge', prefix: 'wcapA', net: 100, backend: 'nft' },
  { layout: 'ptp', prefix: 'wcapB', net: 101, backend: 'legacy' },
];

/** Packets to or from a mesh port in a capture: mTLS (15006) or HBONE (15008); tcpdump reading
 *  a file touches no network. */
function meshPackets(file: string): number {
  return sh('tcpdump', ['-r', file, '-nn', '(tcp port 15006 or tcp port 15008) and greater 120']).stdout.split('\n').filter(Boolean).length;
}

function rootLinks(): string[] {
  return sh('ip', ['-o', 'link', 'show']).stdout.split('\n').map((l) => l.split(':')[1]?.trim().split('@')[0] ?? '').filter(Boolean).sort();
}

describe.each(LAYOUTS)('pod networking, $layout layout (kube-proxy rules in iptables-$backend)', ({ layout, prefix, net, backend }) => {
  let cluster: Cluster;
  let linksBefore: string[];
  const opts: ClusterOptions = {
    layout,
    prefix,
    net,
    pods: PODS,
    services: SERVICES,
    extraYaml: ROUTE,
    kubeProxyBackend: backend,
    detectTimeoutMs: DETECT_TIMEOUT_MS,
  };
  const ip = (pod: string) => cluster.pods.get(pod)!.ip;

  beforeAll(async () => {
    assertPrerequisites();
    linksBefore = rootLinks();
    cluster = await buildCluster(opts);
    console.log(`[${layout}] cluster built: ${JSON.stringify(cluster.timings)}`);
  }, 120_000);

  afterAll(async () => {
    if (!cluster) return;
    const t0 = performance.now();
    const left = await cluster.teardown();
    console.log(`[${layout}] teardown: ${Math.round(performance.now() - t0)} ms`);
    expect(left, 'teardown leaves nothing behind').toEqual([]);
    expect(namespacesWith(prefix)).toEqual([]);
    expect(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => d.startsWith(prefix)) : []).toEqual([]);
    expect(rootLinks(), 'the root namespace is never touched').toEqual(linksBefore);
  }, 60_000);

  const withLogs = async (fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      (err as Error).message += `\n${cluster.logs()}`;
      throw err;
    }
  };

  it('installs capture first in the backend that holds kube-proxy\'s rules, idempotently', async () => {
    for (const pod of cluster.pods.values()) expect(pod.iptablesApply, pod.spec.name).toMatch(new RegExp(`installed \\(IPv4\\) with iptables-${backend}$`));
    const save = () => nsh(cluster.pods.get('client')!.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout.replace(/^#.*$/gm, '');
    const before = save();
    expect(before.split('\n').filter((l) => l.startsWith('-A OUTPUT'))).toEqual([
      '-A OUTPUT -p tcp -j WEFT_OUTPUT',
      '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    ]);
    const again = await cluster.weftIptables('client', ['apply', '--exclude-outbound-ports', '7001']);
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/already in place, nothing changed/);
    expect(save()).toBe(before);
  });

  it('routes an unmodified client\'s http://reviews:9080/ by the HTTPRoute: 80/20', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      await eventually(async () => {
        const r = await client.http('http://reviews:9080/', 40);
        expect(Object.keys(r.versions).sort(), JSON.stringify(r)).toEqual(['v1', 'v2']);
      }, { timeoutMs: 20_000, message: 'both versions reachable' });
      const r = await client.http('http://reviews:9080/', 300);
      console.log(`[${layout}] canary: v1 ${r.versions.v1 ?? 0}, v2 ${r.versions.v2 ?? 0} of 300; ${(r.ms / 300).toFixed(2)} ms per request through both sidecars (10 concurrent)`);
      expect(r.errorCount, r.errors.join('; ')).toBe(0);
      expect(r.statuses).toEqual({ 200: 300 });
      const v2 = (r.versions.v2 ?? 0) / 300;
      expect(v2).toBeGreaterThan(0.1);
      expect(v2).toBeLessThan(0.3);
      // Each request went through the server's sidecar: the app saw the proxy's 127.0.0.6.
      expect(Object.keys(r.peers)).toEqual(['127.0.0.6']);
      // The VIP itself (Host: 10.96.0.10:9080) names the Service too.
      const byVip = await client.http('http://10.96.0.10:9080/', 20);
      expect(byVip.statuses).toEqual({ 200: 20 });
    }));

  it('detects HTTP on a Service port of unknown protocol without waiting', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const r = await client.http('http://reviews:8080/', 20);
      expect(r.statuses).toEqual({ 200: 20 });
      expect(Object.keys(r.peers)).toEqual(['127.0.0.6']);
      // Ten new connections, each decided by its request line, not by the 1 s timeout.
      expect(r.ms).toBeLessThan(DETECT_TIMEOUT_MS);
    }));

  it('carries plain TCP (a line-echo server) through both sidecars, as HBONE streams on one mTLS connection', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      // Each captured TCP connection to a declared TCP port is a tunnel to the echo sidecar's
      // HBONE port: the second costs no TLS handshake, as the client sidecar's metrics show.
      const handshakes = async () => {
        const stats = await httpInNetns(`/run/netns/${cluster.pods.get('client')!.ns}`, 15020, '/stats/prometheus', { host: ip('client') });
        const count = (resumed: boolean) => Number(new RegExp(`^weft_tls_handshakes_total\\{side="client",resumed="${resumed}"\\} (\\d+)$`, 'm').exec(stats.body)?.[1] ?? NaN);
        return count(false) + count(true);
      };
      const before = await handshakes();
      const r = await client.tcp('echo', 7000, ['one', 'two', 'three']);
      expect(r.error).toBeUndefined();
      expect(r.replies).toEqual(['one peer=127.0.0.6', 'two peer=127.0.0.6', 'three peer=127.0.0.6']);
      const c2 = await cluster.capture(2);
      const again = await client.tcp('echo', 7000, ['four']);
      const pcap = c2.file;
      await c2.stop();
      expect(again.replies).toEqual(['four peer=127.0.0.6']);
      expect((await handshakes()) - before).toBeLessThanOrEqual(1);
      // Its bytes went to the echo pod's HBONE port (data segments: PSH set).
      const hbone = sh('tcpdump', ['-r', pcap, '-nn', 'tcp port 15008 and tcp[tcpflags] & tcp-push != 0']).stdout.split('\n').filter(Boolean);
      expect(hbone.length).toBeGreaterThan(0);
    }));

  it('puts only mTLS on the wire between pods (tcpdump in both nodes)', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const marker = `wcap-marker-${randomBytes(6).toString('hex')}`;
      const [c1, c2] = await Promise.all([cluster.capture(1), cluster.capture(2)]);
      const http = await client.http(`http://reviews:9080/${marker}`, 30);
      const tcp = await client.tcp('echo', 7000, [`${marker}-tcp`]);
      const [p1, p2] = await Promise.all([c1.stop(), c2.stop()]);
      expect(http.statuses).toEqual({ 200: 30 });
      expect(tcp.replies).toEqual([`${marker}-tcp peer=127.0.0.6`]);
      // The traffic was seen (mTLS records to and from the sidecars' 15006) ...
      expect(meshPackets(c1.file)).toBeGreaterThan(10);
      expect(meshPackets(c2.file)).toBeGreaterThan(2);
      // ... and not one plaintext byte of it: neither the requests (the marker is their path and
      // the echoed line) nor the answers (the app's JSON).
      for (const [name, pcap] of [['node 1', p1], ['node 2', p2]] as const) {
        expect(pcap.includes(marker), `${name}: plaintext marker on the wire`).toBe(false);
        expect(pcap.includes('"version":"v'), `${name}: plaintext response on the wire`).toBe(false);
      }
    }));

  it('applies AuthorizationPolicy to TCP streams too; a DENY on HTTP paths denies the whole stream', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const rules: Array<[name: string, rule: string]> = [
        // A stream could carry a request to /admin unseen: the rule's path is left out, not failed.
        ['deny-admin', '{ to: [{ operation: { paths: ["/admin*"] } }] }'],
        ['deny-client', '{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }'],
      ];
      for (const [name, rule] of rules) {
        cluster.config(
          `${name}.yaml`,
          `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: default }
spec:
  selector: { matchLabels: { app: echo } }
  action: DENY
  rules: [${rule}]
`,
        );
        await eventually(async () => expect((await client.tcp('echo', 7000, ['denied?'])).replies).toEqual([]), { timeoutMs: 15_000, message: `TCP denied by ${name}` });
        cluster.config(`${name}.yaml`, undefined);
        await eventually(async () => expect((await client.tcp('echo', 7000, ['again'])).replies).toEqual(['again peer=127.0.0.6']), {
          timeoutMs: 15_000,
          message: `TCP allowed again without ${name}`,
        });
      }
    }));

  it('does not delay a server-first protocol on a declared TCP port; bounds the delay on an unknown one', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const declared = await client.tcp('echo', 2525, ['QUIT'], true);
      expect(declared.error).toBeUndefined();
      expect(declared.greeting).toBe('220 ready');
      expect(declared.replies).toEqual(['QUIT peer=127.0.0.6']);
      expect(declared.firstByteMs).toBeLessThan(DETECT_TIMEOUT_MS / 2);
      const unknown = await client.tcp('echo', 2526, ['QUIT'], true);
      expect(unknown.greeting).toBe('220 ready');
      expect(unknown.replies).toEqual(['QUIT peer=127.0.0.6']);
      expect(unknown.firstByteMs).toBeGreaterThanOrEqual(DETECT_TIMEOUT_MS * 0.9);
      expect(unknown.firstByteMs).toBeLessThan(DETECT_TIMEOUT_MS + 1_500);
      console.log(`[${layout}] server-first greeting: declared tcp ${declared.firstByteMs?.toFixed(1)} ms, unknown protocol ${unknown.firstByteMs?.toFixed(1)} ms (detection timeout ${DETECT_TIMEOUT_MS} ms)`);
    }));

  it('lets an excluded port bypass both sidecars (kube-proxy DNAT still applies)', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const marker = `wcap-direct-${randomBytes(6).toString('hex')}`;
      const c1 = await cluster.capture(1);
      const r = await client.tcp('echo', 7001, [marker]);
      const pcap = await c1.stop();
      expect(r.replies).toEqual([`${marker} peer=${ip('client')}`]);
      // The positive control of the mTLS check: this plaintext is visible on the wire.
      expect(pcap.includes(marker)).toBe(true);
    }));

  it('passes a non-mesh destination through unchanged', () =>
    withLogs(async () => {
      const client = await cluster.agent('client');
      const r = await client.http(`http://${cluster.nodeIps[0]}:15014/ready`, 3);
      expect(r.statuses).toEqual({ 200: 3 });
    }));

  it('restores direct connectivity with weft iptables remove (idempotent)', () =>
    withLogs(async () => {
      await Promise.all(
        ['client', 'echo'].map(async (pod) => {
          const r = await cluster.weftIptables(pod, ['remove']);
          expect(r.status, r.stderr).toBe(0);
          expect(r.stdout).toMatch(new RegExp(`removed \\(${backend}/ipv4\\)`));
          expect((await cluster.weftIptables(pod, ['remove'])).stdout).toMatch(/nothing installed/);
          const nat = nsh(cluster.pods.get(pod)!.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout;
          expect(nat).not.toMatch(/WEFT_/);
          expect(nat).toMatch(/KUBE-SERVICES/);
        }),
      );
      const client = await cluster.agent('client');
      // Straight to the app through kube-proxy's DNAT: the app sees the client pod itself.
      const r = await client.tcp('echo', 7000, ['direct']);
      expect(r.replies).toEqual([`direct peer=${ip('client')}`]);
      // HTTP leaves the client in plaintext now: kube-proxy's 50/50 endpoint choice, no longer the
      // route's; the servers' sidecars take it (PERMISSIVE) on the port it was sent to.
      const h = await client.http('http://reviews:9080/', 300);
      console.log(`[${layout}] without the client's sidecar: ${(h.ms / 300).toFixed(2)} ms per request (server sidecar only)`);
      expect(h.statuses).toEqual({ 200: 300 });
      expect(Object.keys(h.versions).sort()).toEqual(['v1', 'v2']);
    }));
});
