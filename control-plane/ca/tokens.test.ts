// Bootstrap tokens on disk (private files, stable across restarts) and the authenticator that
// maps a token to its workload's ServiceAccount.
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../certs/testing.js';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { LocalTokenAuthenticator } from './authenticator.js';
import { TokenStore } from './tokens.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});
async function stateDir(): Promise<string> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

describe('TokenStore', () => {
  it('creates a private random token per workload, and returns the same one afterwards', async () => {
    const dir = await stateDir();
    const store = new TokenStore(dir);
    const token = store.ensure('default', 'reviews-v1');
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 bytes, base64url
    const file = path.join(dir, 'tokens', 'default', 'reviews-v1.token');
    expect((await readFile(file, 'utf8')).trim()).toBe(token);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(path.join(dir, 'tokens'))).mode & 0o777).toBe(0o700);
    expect((await stat(path.join(dir, 'tokens', 'default'))).mode & 0o777).toBe(0o700);

    expect(store.ensure('default', 'reviews-v1')).toBe(token);
    expect(store.ensure('default', 'ratings')).not.toBe(token);
    // A restarted control plane reads the same token from disk.
    expect(new TokenStore(dir).ensure('default', 'reviews-v1')).toBe(token);
  });

  it('looks tokens up to their workload, and nothing else', async () => {
    const store = new TokenStore(await stateDir());
    const a = store.ensure('default', 'a');
    const b = store.ensure('prod', 'b');
    expect(store.lookup(a)).toEqual({ namespace: 'default', name: 'a' });
    expect(store.lookup(b)).toEqual({ namespace: 'prod', name: 'b' });
    expect(store.lookup(`${a}x`)).toBeUndefined();
    expect(store.lookup(a.slice(0, -1))).toBeUndefined();
    expect(store.lookup('')).toBeUndefined();
  });

  it('forgets a removed workload, and follows a token replaced on disk', async () => {
    const dir = await stateDir();
    const store = new TokenStore(dir);
    const a = store.ensure('default', 'a');
    store.remove('default', 'a');
    expect(store.lookup(a)).toBeUndefined();
    await expect(stat(path.join(dir, 'tokens', 'default', 'a.token'))).rejects.toThrow(/ENOENT/);

    const b = store.ensure('default', 'b');
    await writeFile(path.join(dir, 'tokens', 'default', 'b.token'), 'rotated-by-hand-0123456789\n');
    expect(store.ensure('default', 'b')).toBe('rotated-by-hand-0123456789');
    expect(store.lookup(b)).toBeUndefined();
    expect(store.lookup('rotated-by-hand-0123456789')).toEqual({ namespace: 'default', name: 'b' });
  });

  it('refuses names that are not Kubernetes names (no path tricks)', async () => {
    const store = new TokenStore(await stateDir());
    expect(() => store.ensure('..', 'x')).toThrow(/not a valid Kubernetes name/);
    expect(() => store.ensure('default', '../../etc/passwd')).toThrow(/not a valid Kubernetes name/);
    expect(() => store.ensureNode('../default/x')).toThrow(/not a valid Kubernetes node name/);
  });

  it('makes a private token per node at tokens/nodes/<node>.token, looked up to that node only', async () => {
    const dir = await stateDir();
    const store = new TokenStore(dir);
    const a = store.ensureNode('node-a');
    const file = path.join(dir, 'tokens', 'nodes', 'node-a.token');
    expect((await readFile(file, 'utf8')).trim()).toBe(a);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(store.ensureNode('node-a')).toBe(a);
    const w = store.ensure('default', 'node-a');
    expect(store.lookup(a)).toEqual({ node: 'node-a' });
    expect(store.lookup(w)).toEqual({ namespace: 'default', name: 'node-a' });
    expect(new TokenStore(dir).ensureNode('node-a')).toBe(a);
    store.removeNode('node-a');
    expect(store.lookup(a)).toBeUndefined();
    expect(store.lookup(w)).toEqual({ namespace: 'default', name: 'node-a' });
  });

  it('keeps the namespace "nodes" for node tokens: a workload there could otherwise hold a node\'s', async () => {
    const store = new TokenStore(await stateDir());
    expect(() => store.ensure('nodes', 'node-a')).toThrow(/namespace "nodes" is reserved/);
  });
});

describe('LocalTokenAuthenticator', () => {
  it("proves the token's workload and its ServiceAccount", async () => {
    const store = new TokenStore(await stateDir());
    const token = store.ensure('default', 'reviews-v1');
    const auth = new LocalTokenAuthenticator(store, (ns, name) => (ns === 'default' && name === 'reviews-v1' ? 'reviews' : undefined));
    expect(await auth.authenticate(token, {})).toEqual({ namespace: 'default', serviceAccount: 'reviews', workload: 'reviews-v1.default' });
  });

  it('proves a node proxy from a node token: its node, no ServiceAccount of its own', async () => {
    const store = new TokenStore(await stateDir());
    const token = store.ensureNode('node-a');
    const auth = new LocalTokenAuthenticator(store, () => undefined);
    expect(await auth.authenticate(token, {})).toEqual({ namespace: '', serviceAccount: '', node: 'node-a', nodeProxy: true });
  });

  it('refuses unknown tokens and tokens of workloads no longer configured, without echoing the token', async () => {
    const store = new TokenStore(await stateDir());
    const token = store.ensure('default', 'gone');
    const auth = new LocalTokenAuthenticator(store, () => undefined);
    for (const [given, message] of [
      ['', /no bearer token/],
      ['nope', /not one this control plane issued/],
      [token, /workload gone.default, which is no longer configured/],
    ] as const) {
      const err = await auth.authenticate(given, {}).catch((e: unknown) => e);
      expect(isWeftError(err, ErrorCode.AUTH_FAILED)).toBe(true);
      expect((err as Error).message).toMatch(message);
      if (given) expect((err as Error).message).not.toContain(given);
    }
  });
});
