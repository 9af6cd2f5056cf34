// The cluster-in-a-box harness itself: kube-proxy's rule format, and a build that fails midway
// (an app that cannot start) removing every namespace, hosts file and process it had made.
import { existsSync, readdirSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildCluster } from './support/cluster.js';
import { assertPrerequisites, namespacesWith } from './support/host.js';
import { kubeProxyRules } from './support/kube-proxy.js';

describe('kube-proxy rules', () => {
  it('write KUBE-SERVICES → KUBE-SVC → KUBE-SEP with probabilities 1/n, 1/(n-1), ... as kube-proxy does', () => {
    const rules = kubeProxyRules([
      { namespace: 'default', name: 'reviews', portName: 'http', clusterIP: '10.96.0.10', port: 9080, endpoints: [{ ip: '10.1.0.2', port: 9080 }, { ip: '10.1.0.3', port: 9080 }, { ip: '10.1.0.4', port: 9080 }] },
    ]).split('\n');
    const svc = rules.find((l) => l.startsWith('-A KUBE-SERVICES'))!;
    expect(svc).toMatch(/^-A KUBE-SERVICES -d 10\.96\.0\.10\/32 -p tcp -m comment --comment "default\/reviews:http cluster IP" -m tcp --dport 9080 -j KUBE-SVC-[A-Z2-7]{16}$/);
    const chain = svc.split(' -j ')[1]!;
    expect(rules.filter((l) => l.startsWith(`-A ${chain} `)).map((l) => /--probability (\S+)/.exec(l)?.[1] ?? 'rest')).toEqual(['0.33333333333', '0.50000000000', 'rest']);
    expect(rules.filter((l) => /-j DNAT --to-destination 10\.1\.0\.\d:9080$/.test(l))).toHaveLength(3);
  });
});

describe('a cluster whose build fails', () => {
  beforeAll(() => assertPrerequisites());

  it('removes everything it had made and says why', async () => {
    const prefix = 'wcapF';
    const err = await buildCluster({
      layout: 'bridge',
      prefix,
      net: 102,
      pods: [{ name: 'broken', node: 1, labels: { app: 'broken' }, serviceAccount: 'broken', ports: { http: 9080 }, app: ['no-such-mode'] }],
      services: [],
      extraYaml: '',
      kubeProxyBackend: 'nft',
      detectTimeoutMs: 100,
    }).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/app broken exited before printing/);
    expect(err?.message).not.toMatch(/leftovers/);
    expect(namespacesWith(prefix)).toEqual([]);
    expect(existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((d) => d.startsWith(prefix)) : []).toEqual([]);
  }, 60_000);
});
