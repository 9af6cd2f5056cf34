// The waypoint's HBONE entry parts, without sockets: the in-memory connection pair its streams
// become, and per-request authorization from the Service VIP listener's RBAC.
import { describe, expect, it } from 'vitest';
import type { Listener, RbacRules } from '../api/domain.js';
import type { RequestFacts } from './route/types.js';
import type { ProxyConfig } from './state/types.js';
import { duplexPair, waypointRefusal } from './waypoint.js';

const deny: RbacRules = {
  action: 'DENY',
  policies: [{ name: 'ns[shop]-policy[private]-rule[0]', principals: [{ any: true }], permissions: [{ paths: [{ kind: 'prefix', value: '/private' }] }] }],
};
const vip: Listener = {
  name: '10.96.0.20_9080',
  address: { host: '10.96.0.20', port: 9080 },
  filterChains: [{ name: 'http', destinationPorts: [], serverNames: [], filter: { kind: 'http', statPrefix: 'x', rdsName: 'outbound', rbac: [deny] } }],
};
const config = { listeners: new Map([[vip.name, vip]]) } as unknown as ProxyConfig;
const facts = (path: string): RequestFacts => ({ authority: 'ratings:9080', method: 'GET', path, scheme: 'http', header: () => undefined });
const dst = { address: '10.96.0.20', port: 9080, family: 4 as const };

describe('duplexPair', () => {
  it('carries bytes both ways and half-closes each direction on its own', async () => {
    const [a, b] = duplexPair();
    const read = (s: NodeJS.ReadableStream) => new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (c: Buffer) => (text += c.toString()));
      s.on('end', () => resolve(text));
    });
    const atB = read(b);
    a.end('hello');
    expect(await atB).toBe('hello');
    const atA = read(a);
    b.end('back');
    expect(await atA).toBe('back');
  });

  it('destroys the other end with it', () => {
    const [a, b] = duplexPair();
    a.destroy();
    expect(b.destroyed).toBe(true);
  });
});

describe('waypointRefusal', () => {
  it('denies what the targeting policy denies, and lets the rest through', () => {
    expect(waypointRefusal(config, dst, 'spiffe://cluster.local/ns/shop/sa/client', facts('/private/1'))).toMatch(/private/);
    expect(waypointRefusal(config, dst, 'spiffe://cluster.local/ns/shop/sa/client', facts('/public'))).toBeUndefined();
  });

  it('has nothing to say about a destination that is no Service VIP', () => {
    expect(waypointRefusal(config, { ...dst, port: 1 }, undefined, facts('/private'))).toBeUndefined();
  });
});
