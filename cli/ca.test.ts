// `weft ca init` / `show` / `rotate-root` / `remove-root`: create once, describe what is on disk,
// refuse to show nothing, rotate with the old root kept until it is removed by fingerprint.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../certs/ca.js';
import { tempDir } from '../certs/testing.js';
import { caInit, caRemoveRoot, caRotateRoot, caShow } from './ca.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('weft ca', () => {
  it('init creates the CA once; show describes the root and the bundle', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    const created = await caInit({ stateDir: t.dir, trustDomain: 'mesh.example' });
    expect(created).toMatch(/^Created a new root CA for trust domain mesh.example in /);
    const root = new X509Certificate(await readFile(path.join(t.dir, 'ca', 'ca-cert.pem'), 'utf8'));
    expect(created).toContain(`fingerprint:  SHA256 ${root.fingerprint256}`);
    expect(created).toMatch(/key file: .*ca-key.pem \(mode 0600\)/);

    const again = await caInit({ stateDir: t.dir, trustDomain: 'mesh.example' });
    expect(again).toMatch(/^A CA already exists in .*; nothing was changed\./);
    expect(again).toContain(root.fingerprint256);

    const ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'mesh.example', stateDir: t.dir });
    await ca.rotateRoot();
    const shown = await caShow({ stateDir: t.dir });
    expect(shown).toContain('Trust bundle: 2 root(s)');
    expect(shown.match(/\(signing\)/g)).toHaveLength(1);
    expect(shown).toMatch(/not after: +20\d\d-.*\(\d+ days left\)/);
  });

  it('rotate-root adds a signing root and says how to remove the old one; remove-root removes it', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await caInit({ stateDir: t.dir, trustDomain: 'mesh.example' });
    const old = new X509Certificate(await readFile(path.join(t.dir, 'ca', 'ca-cert.pem'), 'utf8'));
    const said = await caRotateRoot({ stateDir: t.dir });
    const next = new X509Certificate(await readFile(path.join(t.dir, 'ca', 'ca-cert.pem'), 'utf8'));
    expect(next.fingerprint256).not.toBe(old.fingerprint256);
    expect(next.subject).toContain('O=mesh.example');
    expect(said).toContain(`new root: `);
    expect(said).toContain(`weft ca remove-root --state-dir ${t.dir} ${old.fingerprint256}`);
    expect(await caShow({ stateDir: t.dir })).toContain('Trust bundle: 2 root(s)');

    await expect(caRemoveRoot({ stateDir: t.dir, fingerprint: next.fingerprint256 })).rejects.toThrow(/signs under/);
    const removed = await caRemoveRoot({ stateDir: t.dir, fingerprint: old.fingerprint256.slice(0, 11) });
    expect(removed).toContain(`Removed root `);
    expect(removed).toContain(old.fingerprint256);
    expect(await caShow({ stateDir: t.dir })).toContain('Trust bundle: 1 root(s)');
  });

  it('show without a CA says how to make one', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await expect(caShow({ stateDir: t.dir })).rejects.toThrow(/no CA in .*ca/);
  });
});
