// The waypoint's HBONE entry parts, without sockets: the in-memory connection pair its streams
// become, and per-request authorization from the Service VIP listener's RBAC.
import { describe, expect, it } from 'vitest';
import type { Listener, NetworkFilter, RbacRules } from '../api/domain.js';
import type { RequestFacts } from './route/types.js';
import type { ProxyConfig } from './state/types.js';
import { duplexPair, waypointRefusal, waypointStreamRefusal } from './waypoint.js';

const deny: RbacRules = {
  action: 'DENY',
  policies: [{ name: 'ns[shop]-policy[private]-rule[0]', principals: [{ any: true }], permissions: [{ paths: [{ kind: 'prefix', value: '/private' }] }] }],
};
/** A VIP listener of ratings (10.96.0.20) on `port`, one chain per filter. */
const vipListener = (port: number, ...filters: NetworkFilter[]): Listener => ({
  name: `10.96.0.20_${port}`,
  address: { host: '10.96.0.20', port },
  filterChains: filters.map((filter) => ({ name: filter.kind, destinationPorts: [], serverNames: [], filter })),
});
const http = (rbac: RbacRules[]): NetworkFilter => ({ kind: 'http', statPrefix: 'x', rdsName: 'outbound', rbac });
const tcp = (port: number, rbac: RbacRules[]): NetworkFilter => ({ kind: 'tcp', statPrefix: 'x', cluster: `outbound|${port}||ratings.shop.svc.cluster.local`, rbac });
/** For ratings' L4 ports: network RBAC that denies one caller. */
const denyClient: RbacRules = {
  action: 'DENY',
  policies: [{ name: 'ns[shop]-policy[no-client]-rule[0]', principals: [{ principal: { kind: 'exact', value: 'spiffe://cluster.local/ns/shop/sa/client' } }], permissions: [{ any: true }] }],
};
const vip = vipListener(9080, http([deny]));
const db = vipListener(3306, tcp(3306, [denyClient]));
/** A port of unknown protocol: an HTTP chain and a tcp_proxy chain. */
const mixed = vipListener(7001, http([]), tcp(7001, [denyClient]));
const config = { listeners: new Map([[vip.name, vip], [db.name, db], [mixed.name, mixed]]) } as unknown as ProxyConfig;
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

describe('waypointStreamRefusal', () => {
  const dbDst = { address: '10.96.0.20', port: 3306, family: 4 as const };

  it("refuses a stream to an L4 port by the chain's network RBAC, with the tunnel's identity", () => {
    expect(waypointStreamRefusal(config, dbDst, 'spiffe://cluster.local/ns/shop/sa/client')).toMatch(/no-client/);
    expect(waypointStreamRefusal(config, dbDst, 'spiffe://cluster.local/ns/shop/sa/reviews')).toBeUndefined();
  });

  it('judges a port of unknown protocol only once its bytes are found not to be HTTP', () => {
    const client = 'spiffe://cluster.local/ns/shop/sa/client';
    const mixedDst = { address: '10.96.0.20', port: 7001, family: 4 as const };
    expect(waypointStreamRefusal(config, mixedDst, client)).toBeUndefined();
    expect(waypointStreamRefusal(config, mixedDst, client, { detected: true })).toMatch(/no-client/);
  });

  it('leaves a port served as HTTP to the per-request check, and has nothing to say about other destinations', () => {
    expect(waypointStreamRefusal(config, dst, 'spiffe://cluster.local/ns/shop/sa/client')).toBeUndefined();
    expect(waypointStreamRefusal(config, { ...dbDst, port: 1 }, 'spiffe://cluster.local/ns/shop/sa/client')).toBeUndefined();
  });
});
