// Leader election with a coordination.k8s.io/v1 Lease against the STAND-IN API server
// (test/k8s/apiserver.ts; no real Kubernetes runs here): one of two candidates leads, the other
// waits while the Lease is renewed, takes over when the leader releases it or stops renewing, and
// the Lease is a valid Lease object with MicroTime timestamps.
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1/Lease';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Logger } from '../../core/log.js';
import { LeaderElector } from '../../control-plane/sources/kubernetes/leader.js';
import { supportsNativeSidecars } from '../../control-plane/sources/kubernetes/cluster-info.js';
import { eventually } from '../support/eventually.js';
import { startStandInCluster, type StandInCluster } from './harness.js';

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

let cluster: StandInCluster;
const electors: LeaderElector[] = [];

beforeEach(async () => {
  cluster = await startStandInCluster();
  cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
});

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop()));
  await cluster.close();
});

function candidate(identity: string): LeaderElector {
  const e = new LeaderElector({
    kc: cluster.api.kubeConfig(),
    namespace: 'weft-system',
    name: 'weft-control-plane-default',
    identity,
    leaseDurationSeconds: 1,
    retryPeriodMs: 100,
    renewDeadlineMs: 500,
    log: quiet,
  });
  electors.push(e);
  e.start();
  return e;
}

const lease = () => cluster.api.get('coordination.k8s.io/v1', 'Lease', 'weft-system', 'weft-control-plane-default') as { spec: Record<string, unknown> } | undefined;

describe('LeaderElector (stand-in API server)', () => {
  it('elects exactly one leader and keeps it while it renews', async () => {
    const a = candidate('a');
    const b = candidate('b');
    await eventually(() => expect([a.leading.get(), b.leading.get()].filter(Boolean)).toHaveLength(1));
    const leader = a.leading.get() ? a : b;
    // Over many renewals (more than a lease duration), still the same single leader.
    const renewals = new Set<string>();
    let otherwise = 0;
    await eventually(
      () => {
        renewals.add(String(lease()?.spec.renewTime));
        if (!leader.leading.get() || [a, b].filter((e) => e.leading.get()).length !== 1) otherwise++;
        expect(renewals.size).toBeGreaterThanOrEqual(15);
      },
      { timeoutMs: 8000 },
    );
    expect(otherwise, 'polls that saw another leader, or two, or none').toBe(0);
    expect(lease()?.spec.holderIdentity).toBe(leader.identity);
    expect(() => new Lease(cluster.api.get('coordination.k8s.io/v1', 'Lease', 'weft-system', 'weft-control-plane-default') as never).validate()).not.toThrow();
    expect(lease()?.spec.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('hands over at once when the leader stops (it releases the Lease)', async () => {
    const a = candidate('a');
    await eventually(() => expect(a.leading.get()).toBe(true));
    const b = candidate('b');
    await a.stop();
    expect(a.leading.get()).toBe(false);
    await eventually(() => expect(b.leading.get()).toBe(true), { timeoutMs: 3000 });
    expect(lease()?.spec.holderIdentity).toBe('b');
    expect(lease()?.spec.leaseTransitions).toBe(1);
  });

  it('gives leadership up when it cannot renew within the renew deadline, and one leads again after', async () => {
    const a = candidate('a');
    await eventually(() => expect(a.leading.get()).toBe(true));
    const b = candidate('b');
    // The API server refuses every Lease write for a while: nobody may believe it leads.
    const restore = cluster.api.failAll('PUT', '/apis/coordination.k8s.io/v1/namespaces/weft-system/leases/', 503);
    await eventually(() => expect(a.leading.get()).toBe(false), { timeoutMs: 3000 });
    expect(b.leading.get()).toBe(false);
    restore();
    await eventually(() => expect([a.leading.get(), b.leading.get()].filter(Boolean)).toHaveLength(1), { timeoutMs: 5000 });
  });
});

describe('native sidecar detection', () => {
  it('is on from Kubernetes 1.29, including managed clusters whose minor reads "29+"', () => {
    expect(supportsNativeSidecars('1', '28')).toBe(false);
    expect(supportsNativeSidecars('1', '29')).toBe(true);
    expect(supportsNativeSidecars('1', '30+')).toBe(true);
    expect(supportsNativeSidecars('2', '0')).toBe(true);
  });
});
