// Root rotation as a running CA sees it: files changed by another process (`weft ca rotate-root`,
// `remove-root`) are reloaded; new roots are trusted at once, a new signer waits for activate();
// half-written files change nothing; losing the active root forces the switch.
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority } from './ca.js';
import { CA_FILES, selfSignedDir } from './ca-store.js';
import { generateWorkloadKeyPair } from './keys.js';
import { tempDir, testIdentity } from './testing.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function twoHandles() {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const open = () => CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: t.dir, log: silent });
  const running = await open(); // the control plane's CA
  const operator = await open(); // what `weft ca ...` opens
  return { dir: t.dir, running, operator };
}

async function rootOfNewLeaf(ca: CertificateAuthority): Promise<string> {
  const keys = await generateWorkloadKeyPair();
  const chain = await ca.issue({ publicKey: keys.publicKey, identity: testIdentity('default', 'a') });
  const leaf = new X509Certificate(chain[0]!);
  return ca.bundle().roots.find((r) => leaf.checkIssued(r) && leaf.verify(r.publicKey))!.fingerprint256;
}

describe('CertificateAuthority.reload', () => {
  it('nothing changed: nothing to do', async () => {
    const { running } = await twoHandles();
    expect(await running.reload()).toEqual({ rootsChanged: false, activated: false });
  });

  it('trusts a new root at once, and signs under it only when activated', async () => {
    const { running, operator } = await twoHandles();
    const oldRoot = running.signingCertificate().fingerprint256;
    const newRoot = new X509Certificate(await operator.rotateRoot()).fingerprint256;

    const r = await running.reload();
    expect(r.rootsChanged).toBe(true);
    expect(r.activated).toBe(false);
    expect(r.pending?.rootFingerprint).toBe(newRoot);
    expect(running.bundle().roots.map((c) => c.fingerprint256)).toEqual([oldRoot, newRoot]);
    expect(await rootOfNewLeaf(running)).toBe(oldRoot);

    r.pending!.activate();
    expect(await rootOfNewLeaf(running)).toBe(newRoot);
    // Removing the old root afterwards only shrinks the bundle.
    await operator.removeRoot(oldRoot.replace(/:/g, '').slice(0, 12));
    expect(await running.reload()).toEqual({ rootsChanged: true, activated: false });
    expect(running.roots()).toHaveLength(1);
  });

  it('leaves everything as it was when the files are caught half-written', async () => {
    const { dir, running, operator } = await twoHandles();
    const before = running.roots();
    await operator.rotateRoot();
    // The new key and certificate are in place, the new bundle not yet: what a reader sees
    // between the writer's renames.
    const rootsFile = path.join(selfSignedDir(dir), CA_FILES.roots);
    const complete = await readFile(rootsFile, 'utf8');
    await writeFile(rootsFile, before.join(''));
    await expect(running.reload()).rejects.toThrow(/does not chain to the trust bundle/);
    expect(running.roots()).toEqual(before);
    // Once the writer is done, the reload goes through.
    await writeFile(rootsFile, complete);
    expect((await running.reload()).pending).toBeDefined();
    expect(running.roots()).toHaveLength(2);
  });

  it('switches at once when the root it signs under was removed before it activated', async () => {
    const { running, operator } = await twoHandles();
    const oldRoot = running.signingCertificate().fingerprint256;
    const newRoot = new X509Certificate(await operator.rotateRoot()).fingerprint256;
    const first = await running.reload();
    await operator.removeRoot(oldRoot);
    const second = await running.reload();
    expect(second).toEqual({ rootsChanged: true, activated: true });
    expect(await rootOfNewLeaf(running)).toBe(newRoot);
    // The stale pending activation is a no-op now.
    first.pending!.activate();
    expect(await rootOfNewLeaf(running)).toBe(newRoot);
  });
});

describe('CertificateAuthority.removeRoot by fingerprint', () => {
  it('takes a full fingerprint or an unambiguous prefix, and never the signing root', async () => {
    const { operator } = await twoHandles();
    const oldRoot = operator.signingCertificate().fingerprint256;
    await operator.rotateRoot();
    await expect(operator.removeRoot(operator.signingCertificate().fingerprint256)).rejects.toThrow(/signs under/);
    await expect(operator.removeRoot('ABCD')).rejects.toThrow(/not in the trust bundle/);
    await operator.removeRoot(oldRoot.toLowerCase());
    expect(operator.roots()).toHaveLength(1);
  });
});
