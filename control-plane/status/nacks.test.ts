// From a proxy's NACK back to the routes it concerns, and the condition routes then carry.
import { describe, expect, it } from 'vitest';
import type { Plain } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import { buildSnapshot } from '../snapshot/snapshot.js';
import type { RouteStatus } from './index.js';
import { NackLedger, routeOfRuleName, rulesInNack, withProxyRejections } from './nacks.js';

const cluster = (name: string): Plain => ({ name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} }, service_name: name } });
const snapshot = buildSnapshot({
  [TypeUrl.RouteConfiguration]: new Map<string, Plain>([
    [
      'outbound',
      {
        name: 'outbound',
        virtual_hosts: [
          { name: 'a', domains: ['a'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: 'ca' } }] },
          {
            name: 'b',
            domains: ['b'],
            routes: [
              { name: 'shop/b-route/fast', match: { prefix: '/fast' }, route: { weighted_clusters: { clusters: [{ name: 'cb', weight: { value: 1 } }] } } },
              { name: 'shop/b-route/1', match: { prefix: '/' }, route: { cluster: 'ca' } },
              { name: 'default/other/0', match: { path: '/x' }, route: { cluster: 'cc' } },
            ],
          },
        ],
      },
    ],
  ]),
  [TypeUrl.Cluster]: new Map([['ca', cluster('ca')], ['cb', cluster('cb')], ['cc', cluster('cc')]]),
});

describe('NACK → routes', () => {
  it('follows field paths in an RDS NACK to the rules at those places', () => {
    expect(rulesInNack(TypeUrl.RouteConfiguration, 'RDS outbound: virtual_hosts[1].routes[2].match.safe_regex.regex: bad', snapshot)).toEqual(['default/other/0']);
  });

  it('takes rule names the message quotes, else every rule the rejected resource carried', () => {
    expect(rulesInNack(TypeUrl.RouteConfiguration, 'route shop/b-route/fast: unknown filter', snapshot)).toEqual(['shop/b-route/fast']);
    expect(rulesInNack(TypeUrl.RouteConfiguration, 'something went wrong', snapshot)).toEqual(['default/other/0', 'shop/b-route/1', 'shop/b-route/fast']);
  });

  it('maps a CDS NACK naming a cluster to the rules that send to it', () => {
    expect(rulesInNack(TypeUrl.Cluster, 'CDS cb: lb_policy: unsupported', snapshot)).toEqual(['shop/b-route/fast']);
    expect(rulesInNack(TypeUrl.Cluster, 'CDS ca: bad', snapshot)).toEqual(['shop/b-route/1']);
    expect(rulesInNack(TypeUrl.Listener, 'listener outbound: bad', snapshot)).toEqual([]);
  });

  it('reads routes from rule names', () => {
    expect(routeOfRuleName('shop/b-route/fast')).toBe('shop/b-route');
    expect(routeOfRuleName('default')).toBeUndefined();
  });

  it('keeps rejections while they are current and turns them into a condition', () => {
    const ledger = new NackLedger();
    const version = snapshot.types.get(TypeUrl.RouteConfiguration)!.version;
    ledger.record('c.shop', TypeUrl.RouteConfiguration, { version, message: 'virtual_hosts[1].routes[0].x: nope', at: 't' }, snapshot);
    ledger.record('d.shop', TypeUrl.RouteConfiguration, { version: 'older', message: 'virtual_hosts[1].routes[0].x: nope', at: 't' }, snapshot);
    const current = ledger.byRoute(() => true);
    expect(current.get('shop/b-route')?.map((r) => r.proxy)).toEqual(['c.shop']); // d's snapshot moved on: routes unknown
    expect(ledger.byRoute(() => false).size).toBe(0);

    const status: RouteStatus = {
      kind: 'HTTPRoute',
      namespace: 'shop',
      name: 'b-route',
      parents: [{ parentRef: { group: '', kind: 'Service', name: 'b' } as never, controllerName: 'weft.dev/control-plane', conditions: [] }],
    };
    const other: RouteStatus = { ...status, name: 'quiet' };
    const out = withProxyRejections(new Map([['HTTPRoute/shop/b-route', status], ['HTTPRoute/shop/quiet', other]]), current);
    expect(out.get('HTTPRoute/shop/b-route')!.parents[0]!.conditions).toEqual([
      { type: 'weft.dev/ProxyAccepted', status: 'False', reason: 'Rejected', message: `Rejected by 1 proxy, which keep their last accepted config: c.shop (RDS version ${version}): virtual_hosts[1].routes[0].x: nope` },
    ]);
    expect(out.get('HTTPRoute/shop/quiet')!.parents[0]!.conditions[0]).toMatchObject({ status: 'True', reason: 'Accepted' });
    ledger.forget('c.shop');
    expect(ledger.byRoute(() => true).size).toBe(0);
  });
});
