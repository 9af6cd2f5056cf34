// Ambient mode on real pod networking, on both CNI layouts: two nodes, a node proxy in each
// (`weft proxy --mode ambient`, root in the node namespace as a hostNetwork DaemonSet pod would
// be), pods enrolled by label with no restart, HBONE between node proxies, a waypoint for L7, a
// sidecar pod beside them. Needs root (CI runs as root): a missing prerequisite fails the suite.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import path from 'node:path';
import { PODS, SERVICES } from './ambient-fixtures.js';
import { buildCluster, nodeName, type Cluster, type Layout } from './support/cluster.js';
import { assertPrerequisites, FIXTURES, NODE, nsh, sh, shAsync } from './support/host.js';

const LAYOUTS: Array<{ layout: Layout; prefix: string; net: number; backend: 'nft' | 'legacy' }> = [
  { layout: 'bridge', prefix: 'wambA', net: 110, backend: 'nft' },
  { layout: 'ptp', prefix: 'wambB', net: 111, backend: 'legacy' },
];

/** Packets to or from HBONE's port carrying data, in a capture file. */
function hbonePackets(file: string): number {
  return sh('tcpdump', ['-r', file, '-nn', 'tcp port 15008 and greater 120']).stdout.split('\n').filter(Boolean).length;
}

interface PodView {
  key: string;
  state: string;
  repairs: number;
  reason?: string;
}

async function podsOf(cluster: Cluster, node: 1 | 2): Promise<PodView[]> {
  const r = await cluster.nodeProxy(node).admin('/ambient/pods');
  if (r.status !== 200) throw new Error(`node proxy n${node} /ambient/pods: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as PodView[];
}

async function enrolled(cluster: Cluster, node: 1 | 2, pod: string): Promise<PodView> {
  const view = (await podsOf(cluster, node)).find((p) => p.key === `default/${pod}`);
  if (view?.state !== 'enrolled') throw new Error(`default/${pod} on n${node}: ${JSON.stringify(view)}`);
  return view;
}

describe.each(LAYOUTS)('ambient mode, $layout layout', ({ layout, prefix, net, backend }) => {
  let cluster: Cluster;

  beforeAll(async () => {
    assertPrerequisites();
    cluster = await buildCluster({ layout, prefix, net, pods: PODS, services: SERVICES, extraYaml: '', kubeProxyBackend: backend, detectTimeoutMs: 500, ambient: true });
  }, 180_000);

  afterAll(async () => {
    if (!cluster) return;
    const left = await cluster.teardown();
    expect(left).toEqual([]);
  }, 60_000);

  it('enrolls a running pod by label: its traffic starts tunnelling over 15008, with no restart', async () => {
    const client = await cluster.agent('client');
    // Outside the mesh: plaintext straight to the pod (the ambient pod is PERMISSIVE).
    const before = await client.http('http://reviews-v2:9080/', 5);
    expect(before.statuses, cluster.logs()).toEqual({ '200': 5 });

    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250, message: 'client enrolled on n1' });

    const cap = await cluster.capture(2);
    // New connections tunnel; connections from before the enrollment keep their path (as in Istio).
    const after = await client.http('http://reviews-v2:9080/', 20, { fresh: true });
    const pcap = await cap.stop();
    expect(after.statuses, cluster.logs()).toEqual({ '200': 20 });
    expect(after.versions).toEqual({ v2: 20 });
    // On the wire between the nodes: HBONE, and none of the app's bytes in the clear.
    expect(hbonePackets(cap.file)).toBeGreaterThan(0);
    expect(pcap.includes('"version":"v2"')).toBe(false);
  }, 90_000);

  it('un-enrolls a pod by label: its rules are removed and its traffic goes direct again', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    const pod = cluster.pods.get('client')!;
    // An idle keep-alive connection through the node proxy must not hold the pod's release.
    expect((await client.http('http://reviews-v2:9080/', 2, { fresh: true })).statuses).toEqual({ '200': 2 });
    expect((await client.http('http://reviews-v2:9080/', 2)).statuses).toEqual({ '200': 2 });
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'none' });
    try {
      await eventually(async () => {
        const keys = (await podsOf(cluster, 1)).map((p) => p.key);
        if (keys.includes('default/client')) throw new Error(`still carried: ${keys.join(', ')}`);
      }, { timeoutMs: 30_000, intervalMs: 250, message: 'client released by n1' });
      expect(nsh(pod.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout).not.toMatch(/WEFT_AMB/);
      expect((await cluster.nodeProxy(1).admin('/ready')).status).toBe(200);
      const cap = await cluster.capture(2);
      const r = await client.http('http://reviews-v2:9080/', 5, { fresh: true });
      await cap.stop();
      expect(r.statuses).toEqual({ '200': 5 });
      expect(hbonePackets(cap.file)).toBe(0);
    } finally {
      cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    }
  }, 90_000);

  it('takes the rules out of a pod un-enrolled while its node proxy was down', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const pod = cluster.pods.get('client')!;
    const np = cluster.nodeProxy(1);
    await np.stop();
    try {
      cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'none' });
      // While it is down the pod fails closed: its rules stay.
      expect(nsh(pod.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout).toMatch(/WEFT_AMB/);
    } finally {
      np.start();
    }
    await eventually(() => {
      if (/WEFT_AMB/.test(nsh(pod.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout)) throw new Error('rules still there');
    }, { timeoutMs: 30_000, intervalMs: 250, message: 'the restarted node proxy removed the rules of the pod that left' });
    const client = await cluster.agent('client');
    expect((await client.http('http://reviews-v2:9080/', 5, { fresh: true })).statuses).toEqual({ '200': 5 });
    await eventually(async () => {
      const r = await np.admin('/ready');
      if (r.status !== 200) throw new Error(`${r.status} ${r.body}`);
    }, { timeoutMs: 30_000, intervalMs: 250, message: 'node 1 ready again' });
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
  }, 90_000);

  it('routes across nodes through Services, and a pod addressed by IP, over HBONE', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    const r = await client.http('http://reviews:9080/', 100);
    expect(r.statuses, cluster.logs()).toEqual({ '200': 100 });
    // Both versions answer: one on each node.
    expect(Object.keys(r.versions).sort()).toEqual(['v1', 'v2']);
    const direct = await client.http(`http://${cluster.pods.get('ratings')!.ip}:9080/`, 5);
    expect(direct.statuses).toEqual({ '200': 5 });
  }, 60_000);

  it('denies by principal at L4 (AuthorizationPolicy on the destination pod)', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    cluster.config(
      'deny.yaml',
      `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-client, namespace: default }
spec: { selector: { matchLabels: { app: ratings } }, action: DENY, rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }] }
`,
    );
    try {
      await eventually(async () => {
        const r = await client.http('http://ratings:9080/', 3, { fresh: true });
        if (r.errorCount !== 3) throw new Error(`not denied yet: ${JSON.stringify(r)}`);
      }, { timeoutMs: 20_000, intervalMs: 250, message: 'client denied by principal' });
      // Others still get through: reviews is not covered by the policy.
      expect((await client.http('http://reviews-v2:9080/', 3)).statuses).toEqual({ '200': 3 });
    } finally {
      cluster.config('deny.yaml', undefined);
    }
    await eventually(async () => {
      const r = await client.http('http://ratings:9080/', 3, { fresh: true });
      if (r.statuses['200'] !== 3) throw new Error(JSON.stringify(r));
    }, { timeoutMs: 20_000, intervalMs: 250, message: 'allowed again after the policy is removed' });
  }, 90_000);

  it("lets the kubelet's probes reach an ambient pod under STRICT mTLS, and no other plaintext", async () => {
    const ratings = cluster.pods.get('ratings')!; // on n2
    // A plaintext GET from a node's own namespace, as the kubelet's HTTP probe is: the status,
    // or the error.
    const fromNode = (node: 1 | 2): string =>
      nsh(cluster.nodes[node - 1]!, NODE, [
        '-e',
        `require('http').get(process.argv[1], { timeout: 3000 }, (r) => { console.log(r.statusCode); process.exit(0); })
          .on('timeout', () => { console.log('timeout'); process.exit(0); }).on('error', (e) => { console.log(e.code || e.message); process.exit(0); });`,
        `http://${ratings.ip}:9080/`,
      ]).stdout.trim();
    expect(fromNode(2)).toBe('200');
    cluster.config(
      'strict.yaml',
      `apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: ratings-strict, namespace: default }
spec: { selector: { matchLabels: { app: ratings } }, mtls: { mode: STRICT } }
`,
    );
    try {
      // Another node's host is not ratings' kubelet: its plaintext is refused once STRICT applies.
      await eventually(() => {
        const r = fromNode(1);
        if (r === '200') throw new Error('n1 still gets through in plaintext');
      }, { timeoutMs: 20_000, intervalMs: 250, message: 'STRICT applied to ratings' });
      // Its own node's TCP is SNATed to the probe address, which the pod lets past the redirect.
      expect(fromNode(2), cluster.logs()).toBe('200');
      const saved = ['legacy', 'nft'].map((b) => nsh(cluster.nodes[1], `iptables-${b}-save`, ['-t', 'nat']).stdout).join('\n');
      expect(saved).toContain(`-A WEFT_AMB_PROBES -d ${ratings.ip}/32 -p tcp -m owner --socket-exists -m tcp ! --dport 15008 -j SNAT --to-source 169.254.7.127`);
      expect(nsh(ratings.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout).toContain('-A WEFT_AMB_PREROUTING -s 169.254.7.127/32 -p tcp -j RETURN');
    } finally {
      cluster.config('strict.yaml', undefined);
    }
  }, 60_000);

  it('talks mTLS between sidecar and ambient workloads, both ways', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    // ambient → sidecar
    const toSidecar = await client.http('http://legacy:9080/', 10);
    expect(toSidecar.statuses, cluster.logs()).toEqual({ '200': 10 });
    // sidecar → ambient: the legacy pod's own app calls reviews-v1 (on the other node); its
    // sidecar tunnels to reviews-v1's HBONE listener, nothing arrives in plaintext.
    const counters = async () => ((await podsOf(cluster, 1)).find((p) => p.key === 'default/reviews-v1') as PodView & { connections: { inboundHbone: number; inboundPlain: number } }).connections;
    const before = await counters();
    const legacy = await cluster.agent('legacy');
    const toAmbient = await legacy.http('http://reviews-v1:9080/', 10, { fresh: true });
    expect(toAmbient.statuses, cluster.logs()).toEqual({ '200': 10 });
    expect(toAmbient.versions).toEqual({ v1: 10 });
    const after = await counters();
    expect(after.inboundHbone).toBeGreaterThan(before.inboundHbone);
    expect(after.inboundPlain).toBe(before.inboundPlain);
  }, 60_000);

  it('splits canary traffic through a waypoint and authorizes there (requests at L7, streams to an L4 port at L4), for ambient and sidecar clients alike', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    cluster.config(
      'waypoint.yaml',
      `apiVersion: v1
kind: Namespace
metadata: { name: default, labels: { weft.dev/use-waypoint: waypoint } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: reviews, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews, port: 9080 }]
  rules:
    - backendRefs:
        - { name: reviews-v1, port: 9080, weight: 80 }
        - { name: reviews-v2, port: 9080, weight: 20 }
`,
    );
    try {
      // Node proxies split at L4 by endpoint (50/50 here): an 80/20 split is the waypoint's L7 routing.
      await eventually(async () => {
        const r = await client.http('http://reviews:9080/', 200, { fresh: true });
        if (r.statuses['200'] !== 200) throw new Error(JSON.stringify(r));
        const v1 = r.versions.v1 ?? 0;
        // 80 % ± 4σ (σ = sqrt(200·0.8·0.2) ≈ 5.7): far from the 50 % of a plain L4 split.
        if (v1 < 137 || v1 > 183) throw new Error(`v1 ${v1}/200: not the 80/20 split yet`);
      }, { timeoutMs: 30_000, intervalMs: 500, message: '80/20 split through the waypoint' });
      // L7 authorization at the waypoint: a policy that targets the Service, by path and caller.
      cluster.config(
        'waypoint-authz.yaml',
        `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: private, namespace: default }
spec:
  targetRefs: [{ kind: Service, group: "", name: reviews }]
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client, cluster.local/ns/default/sa/legacy] } }], to: [{ operation: { paths: ["/private*"] } }] }]
`,
      );
      await eventually(async () => {
        const r = await client.http('http://reviews:9080/private/1', 5, { fresh: true });
        if (r.statuses['403'] !== 5) throw new Error(JSON.stringify(r));
      }, { timeoutMs: 20_000, intervalMs: 250, message: 'the waypoint denies /private to the client' });
      expect((await client.http('http://reviews:9080/public', 5, { fresh: true })).statuses).toEqual({ '200': 5 });
      // A sidecar sends the Service's traffic to its waypoint too (it used to go straight to the
      // pods, past this policy): the waypoint splits it and denies it the same way.
      const legacy = await cluster.agent('legacy');
      await eventually(async () => {
        const r = await legacy.http('http://reviews:9080/private/1', 5, { fresh: true });
        if (r.statuses['403'] !== 5) throw new Error(JSON.stringify(r));
      }, { timeoutMs: 20_000, intervalMs: 250, message: "the waypoint denies /private to the legacy pod's sidecar" });
      const split = await legacy.http('http://reviews:9080/public', 200, { fresh: true });
      expect(split.statuses).toEqual({ '200': 200 });
      expect(split.versions.v1).toBeGreaterThanOrEqual(137);
      expect(split.versions.v1).toBeLessThanOrEqual(183);
      // A port relayed as bytes: the waypoint authorizes each stream, with what a stream has (a
      // rule on paths denies its callers every stream). The sidecar's streams reach it too.
      expect((await client.tcp('db', 7000, ['before'])).replies).toEqual([expect.stringMatching(/^before peer=/)]);
      expect((await client.tcp('db', 7001, ['before'])).replies).toEqual([expect.stringMatching(/^before peer=/)]);
      cluster.config(
        'db-authz.yaml',
        `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: db-private, namespace: default }
spec:
  targetRefs: [{ kind: Service, group: "", name: db }]
  action: DENY
  rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }], to: [{ operation: { paths: ["/private*"] } }] }]
`,
      );
      await eventually(async () => expect((await client.tcp('db', 7000, ['denied?'])).replies).toEqual([]), {
        timeoutMs: 20_000,
        intervalMs: 250,
        message: "the waypoint refuses the client's stream to the db port",
      });
      // The port of unknown protocol: refused once its bytes are found not to be HTTP.
      expect((await client.tcp('db', 7001, ['denied?'])).replies).toEqual([]);
      expect((await legacy.tcp('db', 7000, ['legacy'])).replies).toEqual([expect.stringMatching(/^legacy peer=/)]);
    } finally {
      cluster.config('waypoint.yaml', undefined);
      cluster.config('waypoint-authz.yaml', undefined);
      cluster.config('db-authz.yaml', undefined);
    }
  }, 90_000);

  it('repairs drift: flushed rules come back, and a restarted node proxy takes its pods back', async () => {
    cluster.setPodLabels('client', { 'weft.dev/dataplane-mode': 'ambient' });
    await eventually(() => enrolled(cluster, 1, 'client'), { timeoutMs: 30_000, intervalMs: 250 });
    const client = await cluster.agent('client');
    const pod = cluster.pods.get('reviews-v1')!;
    const repairsBefore = (await enrolled(cluster, 1, 'reviews-v1')).repairs;
    // Someone flushes the pod's nat table (as a careless init script would).
    nsh(pod.ns, `iptables-${backend}`, ['-t', 'nat', '-F']);
    await eventually(async () => {
      const v = await enrolled(cluster, 1, 'reviews-v1');
      if (v.repairs <= repairsBefore) throw new Error(`no repair yet: ${JSON.stringify(v)}`);
    }, { timeoutMs: 20_000, intervalMs: 250, message: 'the agent repaired the flushed rules' });
    expect(nsh(pod.ns, `iptables-${backend}-save`, ['-t', 'nat']).stdout).toMatch(/REDIRECT --to-ports 15006/);

    // Restart node 1's proxy with traffic flowing: requests fail while it is away (fail closed),
    // then every pod is enrolled again and traffic recovers without any pod restart.
    const load = (async () => {
      const results: number[] = [];
      for (let i = 0; i < 40; i++) results.push((await client.http('http://reviews-v2:9080/', 5)).statuses['200'] ?? 0);
      return results;
    })();
    await cluster.nodeProxy(1).restart();
    await eventually(async () => {
      for (const name of ['client', 'reviews-v1']) await enrolled(cluster, 1, name);
    }, { timeoutMs: 40_000, intervalMs: 250, message: 'node 1 pods enrolled again after the restart' });
    await load;
    await eventually(async () => {
      const r = await client.http('http://reviews:9080/', 20);
      if (r.statuses['200'] !== 20) throw new Error(JSON.stringify(r));
    }, { timeoutMs: 20_000, intervalMs: 250, message: 'traffic recovered after the node proxy restart' });
  }, 150_000);

  it('refuses a node proxy an identity of a pod on another node', async () => {
    const ask = async (node: 1 | 2, identity: string) => {
      const r = await shAsync('ip', [
        'netns', 'exec', cluster.nodes[node - 1]!, NODE, path.join(FIXTURES, 'ca-request.js'), `${cluster.nodeIps[0]}:15012`,
        path.join(cluster.stateDir, 'ca', 'root-cert.pem'), path.join(cluster.stateDir, 'tokens', 'nodes', `${nodeName(node)}.token`), identity,
      ]);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { issued: boolean; error?: string };
    };
    // reviews-v1 (service account reviews) runs on n1 only... but reviews-v2 shares the account
    // on n2, so ask for ratings (n2 only) from n1, and for client (n1 only) from n2.
    const refused = await ask(1, 'spiffe://cluster.local/ns/default/sa/ratings');
    expect(refused.issued).toBe(false);
    expect(refused.error).toMatch(/n1/);
    expect((await ask(2, 'spiffe://cluster.local/ns/default/sa/ratings')).issued).toBe(true);
    // n2 holds none of n1's pods either.
    expect((await podsOf(cluster, 2)).map((p) => p.key)).not.toContain('default/reviews-v1');
  }, 30_000);
});
