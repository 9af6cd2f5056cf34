// Tests of finding a pod's namespace by IP over a fake set of namespaces (scan, cache by
// namespace identity and re-check, ambiguity, the caller's own namespace), and of the argument
// checks of the socket helpers. Sockets in real namespaces: test/netns/ambient-agent.test.ts.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import { connectInNetns, listenInNetns, NetnsFinder, PROXY_MARK, type NetnsSource } from './netns.js';

/** Namespaces by path: identity and addresses; `scans` counts full scans. */
function fakeSource(spaces: Record<string, { id: string; addresses: string[] }>, self = 'root') {
  const counts = { scans: 0 };
  const source: NetnsSource = {
    async candidates() {
      counts.scans++;
      return Object.keys(spaces);
    },
    identify: async (p) => spaces[p]?.id,
    addresses(p) {
      const s = spaces[p];
      if (!s) throw new Error(`open ${p}: ENOENT`);
      return s.addresses;
    },
    self: async () => self,
  };
  return { source, counts, spaces };
}

describe('NetnsFinder', () => {
  it('finds the namespace holding an IP; one scan learns every pod, later finds re-check only', async () => {
    const f = fakeSource({
      '/run/netns/a': { id: '4:1', addresses: ['10.0.0.2', 'fe80::1'] },
      '/run/netns/b': { id: '4:2', addresses: ['10.0.0.3'] },
    });
    const finder = new NetnsFinder(f.source);
    expect(await finder.find('10.0.0.2')).toEqual({ path: '/run/netns/a', id: '4:1' });
    expect(await finder.find('10.0.0.3')).toEqual({ path: '/run/netns/b', id: '4:2' });
    expect(f.counts.scans).toBe(1);
  });

  it('prefers the first (named) path of a namespace and never returns the caller\'s own', async () => {
    const f = fakeSource(
      {
        '/run/netns/node': { id: 'root', addresses: ['192.168.1.10'] },
        '/run/netns/cni-1234': { id: '4:7', addresses: ['10.0.0.2'] },
        '/proc/900/ns/net': { id: '4:7', addresses: ['10.0.0.2'] },
      },
      'root',
    );
    const finder = new NetnsFinder(f.source);
    expect(await finder.find('10.0.0.2')).toEqual({ path: '/run/netns/cni-1234', id: '4:7' });
    expect(await finder.find('192.168.1.10')).toBeUndefined();
  });

  it('re-checks a cached answer: a path that names another namespace now, or lost the IP, is scanned again', async () => {
    let t = 0;
    const f = fakeSource({ '/proc/50/ns/net': { id: '4:1', addresses: ['10.0.0.2'] } });
    const finder = new NetnsFinder(f.source, { now: () => t, rescanMs: 1000 });
    expect((await finder.find('10.0.0.2'))?.path).toBe('/proc/50/ns/net');
    // pid 50 exited and the number was reused by a process in another namespace; the pod lives on in pid 60.
    f.spaces['/proc/50/ns/net'] = { id: '4:9', addresses: [] };
    f.spaces['/proc/60/ns/net'] = { id: '4:1', addresses: ['10.0.0.2'] };
    t = 10; // within rescanMs, but a stale cache entry always rescans
    expect(await finder.find('10.0.0.2')).toEqual({ path: '/proc/60/ns/net', id: '4:1' });
    expect(f.counts.scans).toBe(2);
    f.spaces['/proc/60/ns/net'] = { id: '4:1', addresses: ['10.0.0.99'] };
    t = 20;
    expect(await finder.find('10.0.0.2')).toBeUndefined();
  });

  it('does not rescan for misses within rescanMs (many pending pods: one scan per pass)', async () => {
    let t = 0;
    const f = fakeSource({ '/run/netns/a': { id: '4:1', addresses: ['10.0.0.2'] } });
    const finder = new NetnsFinder(f.source, { now: () => t, rescanMs: 1000 });
    expect(await finder.find('10.0.0.5')).toBeUndefined();
    expect(await finder.find('10.0.0.6')).toBeUndefined();
    expect(f.counts.scans).toBe(1);
    f.spaces['/run/netns/c'] = { id: '4:3', addresses: ['10.0.0.5'] };
    t = 1500;
    expect((await finder.find('10.0.0.5'))?.path).toBe('/run/netns/c');
    expect(f.counts.scans).toBe(2);
  });

  it('refuses to guess when two namespaces hold the IP', async () => {
    const f = fakeSource({
      '/run/netns/old-sandbox': { id: '4:1', addresses: ['10.0.0.2'] },
      '/run/netns/new-sandbox': { id: '4:2', addresses: ['10.0.0.2'] },
    });
    const err = await new NetnsFinder(f.source).find('10.0.0.2').catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.CONFIG_INVALID)).toBe(true);
    expect((err as Error).message).toBe('10.0.0.2 is on interfaces of 2 network namespaces (/run/netns/old-sandbox, /run/netns/new-sandbox); refusing to guess which one is the pod\'s');
  });

  it('matches IPv6 whatever its spelling, and skips namespaces it cannot enter', async () => {
    const f = fakeSource({ '/run/netns/a': { id: '4:1', addresses: ['fd00::5'] } });
    const source: NetnsSource = { ...f.source, candidates: async () => ['/run/netns/gone', '/run/netns/a'], identify: async (p) => (p === '/run/netns/gone' ? '4:8' : f.spaces[p]?.id) };
    const finder = new NetnsFinder(source);
    expect((await finder.find('FD00:0:0::5'))?.path).toBe('/run/netns/a');
    await expect(finder.find('nope')).rejects.toThrow(/"nope" is not an IP address/);
  });
});

describe('socket helpers: argument checks (before any namespace is touched)', () => {
  it('needs IP literals: names would resolve in the node, not the pod', async () => {
    await expect(connectInNetns('/run/netns/x', 'reviews.default', 80)).rejects.toThrow(/host "reviews.default" must be an IP address/);
    await expect(listenInNetns(net.createServer(), '/run/netns/x', 'localhost', 80)).rejects.toThrow(/must be an IP address/);
  });

  it('checks ports and marks', async () => {
    const err = await connectInNetns('/run/netns/x', '10.0.0.1', 0).catch((e: unknown) => e);
    expect(isWeftError(err, ErrorCode.USAGE)).toBe(true);
    await expect(connectInNetns('/run/netns/x', '10.0.0.1', 80, { mark: -1 })).rejects.toThrow(/SO_MARK -1 is not a 32-bit unsigned integer/);
    await expect(listenInNetns(net.createServer(), '/run/netns/x', '0.0.0.0', 70000)).rejects.toThrow(/70000 is not a port number/);
    expect(PROXY_MARK).toBe(1337);
  });
});
