// `weft ca init` / `weft ca show`: create once, describe what is on disk, refuse to show nothing.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../certs/ca.js';
import { tempDir } from '../certs/testing.js';
import { caInit, caShow } from './ca.js';

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

  it('show without a CA says how to make one', async () => {
    const t = await tempDir();
    cleanups.push(t.cleanup);
    await expect(caShow({ stateDir: t.dir })).rejects.toThrow(/no CA in .*ca/);
  });
});
