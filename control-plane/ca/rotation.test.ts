// The control plane's side of a root rotation: it follows the CA files, trusts a new root at once,
// and signs under it only when every proxy has ACKed a bundle holding it (or after a deadline).
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../../api/types.js';
import { CertificateAuthority } from '../../certs/ca.js';
import { selfSignedDir } from '../../certs/ca-store.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import { eventually, tempDir, testIdentity } from '../../certs/testing.js';
import type { Snapshot } from '../snapshot/snapshot.js';
import type { ProxySyncState, TypeSyncState } from '../xds-server/sync-status.js';
import { rootsAcked, watchCaDir, type RootsProgress } from './rotation.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function proxy(id: string, sds?: TypeSyncState): ProxySyncState {
  return { id, workload: id, namespace: 'default', stream: 'sotw', connectedAt: '', peer: '', types: new Map(sds ? [[TypeUrl.Secret, sds]] : []) };
}

function snapshot(version: string, roots: string[]): Snapshot {
  const plain = { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: roots.join('') } } };
  const items = new Map([['ROOTCA', { name: 'ROOTCA', version, resource: { type_url: '', value: new Uint8Array() }, plain }]]);
  return { types: new Map([[TypeUrl.Secret, { version, items }]]) };
}

describe('rootsAcked', () => {
  const A = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
  const B = '-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n';
  const snaps: Record<string, Snapshot> = { p1: snapshot('v2', [A, B]), p2: snapshot('v2', [A, B]), old: snapshot('v1', [A]) };
  const of = (id: string) => snaps[id];

  it('is done when every proxy ACKed the snapshot version that holds the roots', () => {
    expect(rootsAcked([proxy('p1', { ackedVersion: 'v2' }), proxy('p2', { ackedVersion: 'v2' })], of, [A, B])).toEqual({ done: true, lagging: [] });
  });

  it('names proxies that have not ACKed it, or whose snapshot lacks a root; ignores those without SDS', () => {
    const r = rootsAcked([proxy('p1', { ackedVersion: 'v1' }), proxy('old', { ackedVersion: 'v1' }), proxy('proxyless')], of, [A, B]);
    expect(r).toEqual({ done: false, lagging: ['p1', 'old'] });
  });
});

describe('watchCaDir', () => {
  async function setup(maxWaitMs?: number) {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
    const warnings: string[] = [];
    const log = { ...silent, warn: (m: string) => void warnings.push(m) };
    const running = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: t.dir, log: silent });
    const operator = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: t.dir, log: silent });
    let progress: RootsProgress = { done: false, lagging: ['slow.default'] };
    const asked: number[] = [];
    const watcher = watchCaDir({
      ca: running,
      dir: selfSignedDir(t.dir),
      log,
      pollMs: 200,
      ...(maxWaitMs ? { maxWaitMs } : {}),
      rootsDistributed: (roots) => {
        asked.push(roots.length);
        return progress;
      },
    });
    cleanups.push(() => watcher.stop());
    const signsUnder = async () => {
      const keys = await generateWorkloadKeyPair();
      const leaf = new X509Certificate((await running.issue({ publicKey: keys.publicKey, identity: testIdentity('default', 'a') }))[0]!);
      return running.bundle().roots.find((r) => leaf.checkIssued(r))!.fingerprint256;
    };
    return { running, operator, warnings, asked, signsUnder, setProgress: (p: RootsProgress) => (progress = p) };
  }

  it('trusts the new root at once and signs under it once every proxy has it', async () => {
    const s = await setup();
    const oldRoot = s.running.signingCertificate().fingerprint256;
    const newRoot = new X509Certificate(await s.operator.rotateRoot()).fingerprint256;
    await eventually(() => expect(s.running.roots()).toHaveLength(2), 5_000);
    await eventually(() => expect(s.asked.length).toBeGreaterThan(2), 5_000);
    expect(s.asked.every((n) => n === 2)).toBe(true);
    expect(await s.signsUnder()).toBe(oldRoot);
    s.setProgress({ done: true, lagging: [] });
    await eventually(async () => expect(await s.signsUnder()).toBe(newRoot), 5_000);
    expect(s.warnings).toEqual([]);

    await s.operator.removeRoot(oldRoot);
    await eventually(() => expect(s.running.roots()).toHaveLength(1), 5_000);
  });

  it('signs under the new root after the deadline even if a proxy never confirms, and says so', async () => {
    const s = await setup(300);
    const newRoot = new X509Certificate(await s.operator.rotateRoot()).fingerprint256;
    await eventually(async () => expect(await s.signsUnder()).toBe(newRoot), 5_000);
    expect(s.warnings).toEqual(['some proxies did not confirm the new trust bundle in time; signing under the new root anyway']);
  });
});
