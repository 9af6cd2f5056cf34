// Root rotation in a cluster, against the STAND-IN API server (test/k8s/apiserver.ts; no real
// Kubernetes runs here): `weft ca rotate-root --kubernetes` and `remove-root --kubernetes` change
// the CA Secret, and both control-plane replicas follow it — the new root trusted at once, the
// old one dropped — without a restart. A change made meanwhile by someone else is not overwritten.
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caRemoveRoot, caRotateRoot, caShow, onCa, type CaTarget } from '../../cli/ca.js';
import type { ControlPlane } from '../../control-plane/main.js';
import { changeCaSecret } from '../../control-plane/sources/kubernetes/ca-secret.js';
import { loadKubeConfig } from '../../control-plane/sources/kubernetes/client.js';
import { eventually } from '../support/eventually.js';
import { startKubeControlPlane, startStandInCluster, type StandInCluster } from './harness.js';

let cluster: StandInCluster;
let a: ControlPlane;
let b: ControlPlane;
let target: CaTarget;

beforeAll(async () => {
  cluster = await startStandInCluster();
  cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
  a = await startKubeControlPlane(cluster, 'a');
  b = await startKubeControlPlane(cluster, 'b');
  target = { kubernetes: { namespace: 'weft-system', kubeconfig: cluster.kubeconfig } };
});

afterAll(async () => {
  await Promise.all([a, b].filter(Boolean).map((cp) => cp.stop()));
  await cluster?.close();
});

const fingerprints = (cp: ControlPlane) => cp.trustBundle().map((pem) => new X509Certificate(pem).fingerprint256);

describe('root rotation through the CA Secret (stand-in API server)', () => {
  it('both replicas follow rotate-root and remove-root without a restart', async () => {
    const [oldRoot] = fingerprints(a);
    expect(fingerprints(b)).toEqual([oldRoot]);

    const said = await onCa(target, (stateDir) => caRotateRoot({ stateDir, where: '--kubernetes --namespace weft-system' }));
    expect(said).toContain(`weft ca remove-root --kubernetes --namespace weft-system ${oldRoot}`);
    expect(said).toContain('written to Secret weft-system/weft-ca-secret');
    await eventually(() => {
      for (const cp of [a, b]) expect(fingerprints(cp)).toHaveLength(2);
    }, { timeoutMs: 15_000 });
    const newRoot = fingerprints(a).find((f) => f !== oldRoot)!;
    expect(fingerprints(b)).toContain(newRoot);
    expect(await onCa(target, (stateDir) => caShow({ stateDir }))).toMatch(/Trust bundle: 2 root\(s\)/);

    await onCa(target, (stateDir) => caRemoveRoot({ stateDir, fingerprint: oldRoot! }));
    await eventually(() => {
      for (const cp of [a, b]) expect(fingerprints(cp)).toEqual([newRoot]);
    }, { timeoutMs: 15_000 });
  });

  it('a Secret changed while a command runs is not overwritten', async () => {
    const kc = loadKubeConfig({ kubeconfig: cluster.kubeconfig });
    const before = JSON.stringify(cluster.api.get('v1', 'Secret', 'weft-system', 'weft-ca-secret'));
    await expect(
      changeCaSecret(kc, 'weft-system', async (stateDir) => {
        // Someone else rotates first...
        await onCa(target, (other) => caRotateRoot({ stateDir: other }));
        // ...then this command changes its own, now stale, copy.
        return caRotateRoot({ stateDir });
      }),
    ).rejects.toThrow(/changed while this command ran; nothing was written/);
    expect(JSON.stringify(cluster.api.get('v1', 'Secret', 'weft-system', 'weft-ca-secret'))).not.toBe(before);
    // The replicas follow the change that won.
    await eventually(() => {
      for (const cp of [a, b]) expect(fingerprints(cp)).toHaveLength(2);
    }, { timeoutMs: 15_000 });
  });
});
