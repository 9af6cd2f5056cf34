// The ADS client speaking incremental xDS to Weft's real XdsServer over gRPC on loopback: what
// crosses the wire (only changed resources, removals, subscribe / unsubscribe deltas, initial
// resource versions on reconnect) and what the client holds after each step.
import { afterEach, describe, expect, it } from 'vitest';
import type { RouteConfig, VirtualHost } from '../../api/domain.js';
import { TypeUrl } from '../../api/types.js';
import { eventually } from '../../test/support/eventually.js';
import {
  endpoints, listener, resourceSet, rootCa, routeConfig, cluster, startTestClient, startTestXds, vhdsRouteConfig,
  virtualHost, world, type SentResponse, type TestClient, type TestXds,
} from './xds-fixture.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setUp(initial = world()): Promise<{ xds: TestXds; c: TestClient }> {
  const xds = await startTestXds(initial);
  cleanups.push(() => xds.close());
  const c = startTestClient(xds.target);
  cleanups.push(() => c.ads.stop());
  await eventually(() => {
    for (const t of [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret]) {
      expect(c.held(t).size, `held ${t}`).toBeGreaterThan(0);
    }
  });
  await settled(xds);
  return { xds, c };
}

/** Every response the server sent has been answered (ACK or NACK). */
async function settled(xds: TestXds): Promise<void> {
  await eventually(() => expect(xds.server().awaitingAck()).toEqual([]));
}

const short = (t: string) => t.slice(t.lastIndexOf('.') + 1);
/** The responses sent since `from`, as `Type: names | -removed`. */
function since(xds: TestXds, from: number): string[] {
  return xds.sent.slice(from).map((r: SentResponse) => `${short(r.type)}: ${r.names.join(',')}${r.removed.length ? ` -${r.removed.join(',')}` : ''}`);
}

const domainsOf = (rc: unknown) => (rc as RouteConfig).virtualHosts.flatMap((v) => v.routes.map((r) => (r.action.kind === 'forward' ? r.action.backends[0]?.cluster : '')));

describe('ADS client, delta', () => {
  it('syncs every type: wildcards subscribe *, the others the names references give', async () => {
    const { xds, c } = await setUp();
    expect(xds.server().syncStates()[0]?.stream).toBe('delta');
    expect([...c.held(TypeUrl.Listener).keys()]).toEqual(['outbound']);
    expect([...c.held(TypeUrl.RouteConfiguration).keys()]).toEqual(['outbound']);
    expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['c1', 'c2']);
    expect([...c.held(TypeUrl.ClusterLoadAssignment).keys()].sort()).toEqual(['c1', 'c2']);
    expect([...c.held(TypeUrl.Secret).keys()]).toEqual(['ROOTCA']);
    expect(c.held(TypeUrl.VirtualHost).size).toBe(0);

    const subs = (t: string) => xds.deltaRequests.filter((r) => r.type_url === t).flatMap((r) => r.resource_names_subscribe ?? []).sort();
    expect(subs(TypeUrl.Listener)).toEqual(['*']);
    expect(subs(TypeUrl.Cluster)).toEqual(['*']);
    expect(subs(TypeUrl.VirtualHost)).toEqual(['*']);
    expect(subs(TypeUrl.RouteConfiguration)).toEqual(['outbound']);
    expect(subs(TypeUrl.ClusterLoadAssignment)).toEqual(['c1', 'c2']);
    // `default` is the workload's own certificate, served locally: never asked for.
    expect(subs(TypeUrl.Secret)).toEqual(['ROOTCA']);
    expect(xds.deltaRequests[0]?.node?.id).toBe('client.default');
    expect(xds.deltaRequests.slice(1).every((r) => !r.node)).toBe(true);

    const status = c.ads.statusByType();
    expect(status.EDS?.names).toEqual(['c1', 'c2']);
    expect(status.LDS?.names).toEqual(['*']);
    expect(status.CDS?.version).toBe(xds.server().syncStates()[0]?.types.get(TypeUrl.Cluster)?.ackedVersion);
  });

  it('sends only the resource that changed, and the held set stays complete', async () => {
    const { xds, c } = await setUp();
    const before = c.held(TypeUrl.ClusterLoadAssignment);
    const from = xds.sent.length;
    xds.set(world({ ports: { c1: 1001, c2: 2002 } }));
    await eventually(() => expect(since(xds, from)).toEqual(['ClusterLoadAssignment: c2']));
    await eventually(() => expect(c.held(TypeUrl.ClusterLoadAssignment).get('c2')).toMatchObject({ endpoints: [{ port: 2002 }] }));
    const after = c.held(TypeUrl.ClusterLoadAssignment);
    expect([...after.keys()].sort()).toEqual(['c1', 'c2']);
    // The resource that did not change is the very same object: the state keeps its caches.
    expect(after.get('c1')).toBe(before.get('c1'));
    await settled(xds);
    expect(since(xds, from)).toEqual(['ClusterLoadAssignment: c2']);
  });

  it('removes what the server removes, and unsubscribes the endpoints of a removed cluster', async () => {
    const { xds, c } = await setUp();
    const from = xds.sent.length;
    const requestsFrom = xds.deltaRequests.length;
    xds.set(world({ ports: { c1: 1001 } }));
    await eventually(() => expect([...c.held(TypeUrl.Cluster).keys()]).toEqual(['c1']));
    await eventually(() => expect([...c.held(TypeUrl.ClusterLoadAssignment).keys()]).toEqual(['c1']));
    await settled(xds);
    expect(since(xds, from)).toContain('Cluster:  -c2');
    const unsub = xds.deltaRequests.slice(requestsFrom).filter((r) => r.type_url === TypeUrl.ClusterLoadAssignment && (r.resource_names_unsubscribe ?? []).length > 0);
    expect(unsub.map((r) => r.resource_names_unsubscribe)).toEqual([['c2']]);
    expect(c.ads.statusByType().EDS?.names).toEqual(['c1']);
  });

  it('unsubscribes a route configuration no listener names any more, and drops it at once', async () => {
    const both = (extraRoute: string) =>
      resourceSet({
        [TypeUrl.Listener]: [listener('outbound', 'outbound'), listener('extra', 'extra')],
        [TypeUrl.RouteConfiguration]: [routeConfig('outbound', 'c1'), routeConfig('extra', extraRoute)],
        [TypeUrl.Cluster]: [cluster('c1'), cluster('c2')],
        [TypeUrl.ClusterLoadAssignment]: [endpoints('c1', 1), endpoints('c2', 2)],
        [TypeUrl.Secret]: [rootCa('root-1')],
      });
    const { xds, c } = await setUp(both('c1'));
    expect([...c.held(TypeUrl.RouteConfiguration).keys()].sort()).toEqual(['extra', 'outbound']);

    // The listener goes; its route configuration stays in the snapshot (another proxy might use it).
    const onlyOutbound = both('c1');
    onlyOutbound[TypeUrl.Listener] = new Map([...onlyOutbound[TypeUrl.Listener]!].filter(([n]) => n === 'outbound'));
    const requestsFrom = xds.deltaRequests.length;
    const sentFrom = xds.sent.length;
    const acceptedFrom = c.accepted.length;
    xds.set(onlyOutbound);
    await eventually(() => expect([...c.held(TypeUrl.RouteConfiguration).keys()]).toEqual(['outbound']));
    await settled(xds);
    // Dropped with the listener's update, before any RDS response could have said so.
    const dropped = c.accepted.slice(acceptedFrom).find((a) => a.type === TypeUrl.RouteConfiguration)!;
    expect(dropped.names).toEqual(['outbound']);
    expect(xds.sent.slice(sentFrom).filter((r) => r.type === TypeUrl.RouteConfiguration && r.seq < dropped.seq)).toEqual([]);
    const rds = xds.deltaRequests.slice(requestsFrom).filter((r) => r.type_url === TypeUrl.RouteConfiguration && !r.response_nonce);
    expect(rds.map((r) => [r.resource_names_subscribe ?? [], r.resource_names_unsubscribe ?? []])).toEqual([[[], ['extra']]]);

    // A later change of the route configuration we left is not sent to us.
    const changed = both('c2');
    changed[TypeUrl.Listener] = onlyOutbound[TypeUrl.Listener];
    const from = xds.sent.length;
    xds.set(changed);
    await settled(xds);
    expect(since(xds, from).filter((s) => s.startsWith('RouteConfiguration') && s.includes('extra') && !s.includes('-extra'))).toEqual([]);
    expect([...c.held(TypeUrl.RouteConfiguration).keys()]).toEqual(['outbound']);
  });

  it('NACKs an invalid resource with its field path, keeps the last good config, recovers on a good update', async () => {
    const { xds, c } = await setUp();
    const good = c.held(TypeUrl.RouteConfiguration).get('outbound');
    const acceptedBefore = c.accepted.length;
    xds.set(world({ routeTo: 'c2', badRegex: true }));
    await eventually(() => expect(xds.nacks.join('\n')).toContain('RDS outbound: virtual_hosts[0].routes[0].match.safe_regex.regex'));
    expect(c.ads.statusByType().RDS?.lastNack?.message).toContain('(unclosed');
    expect(c.held(TypeUrl.RouteConfiguration).get('outbound')).toBe(good);
    expect(c.accepted.slice(acceptedBefore).filter((a) => a.type === TypeUrl.RouteConfiguration)).toEqual([]);

    xds.set(world({ routeTo: 'c2' }));
    await eventually(() => expect(domainsOf(c.held(TypeUrl.RouteConfiguration).get('outbound'))).toEqual(['c2']));
    expect(c.ads.statusByType().RDS?.lastNack).toBeUndefined();
    await settled(xds);
  });

  it('reconnects to a restarted server with what it holds, and is sent only what changed meanwhile', async () => {
    const { xds, c } = await setUp();
    const held = c.held(TypeUrl.Listener);
    const acceptedBefore = c.accepted.length;
    const sentBefore = xds.sent.length;
    const requestsBefore = xds.deltaRequests.length;

    // The control plane comes back with one endpoint moved.
    await xds.restart(world({ ports: { c1: 3001, c2: 1002 } }));
    await eventually(() => expect(c.held(TypeUrl.ClusterLoadAssignment).get('c1')).toMatchObject({ endpoints: [{ port: 3001 }] }), { timeoutMs: 15_000 });
    await settled(xds);

    // The new stream's first request per type carries what the client holds.
    const first = new Map<string, Record<string, string>>();
    for (const r of xds.deltaRequests.slice(requestsBefore)) if (!first.has(r.type_url!)) first.set(r.type_url!, r.initial_resource_versions ?? {});
    expect(Object.keys(first.get(TypeUrl.Listener) ?? {})).toEqual(['outbound']);
    expect(Object.keys(first.get(TypeUrl.ClusterLoadAssignment) ?? {}).sort()).toEqual(['c1', 'c2']);
    expect(Object.keys(first.get(TypeUrl.Secret) ?? {})).toEqual(['ROOTCA']);
    expect(xds.deltaRequests[requestsBefore]?.node?.id).toBe('client.default');

    // Every type is answered (the client must learn it is in sync) but only c1 is resent.
    const resent = xds.sent.slice(sentBefore).flatMap((r) => r.names.map((n) => `${short(r.type)}/${n}`));
    expect(resent).toEqual(['ClusterLoadAssignment/c1']);
    expect(c.accepted.slice(acceptedBefore).map((a) => a.type)).toEqual([TypeUrl.ClusterLoadAssignment]);
    expect(c.held(TypeUrl.Listener)).toBe(held);
  });

  it('takes virtual hosts over VHDS as a wildcard: added, changed one at a time, removed', async () => {
    const hosts = (entries: Record<string, string>) =>
      resourceSet({
        [TypeUrl.Listener]: [listener('outbound', 'outbound')],
        [TypeUrl.RouteConfiguration]: [vhdsRouteConfig('outbound')],
        [TypeUrl.VirtualHost]: Object.entries(entries).map(([h, cl]) => virtualHost('outbound', h, cl)),
        [TypeUrl.Cluster]: [cluster('c1'), cluster('c2')],
        [TypeUrl.ClusterLoadAssignment]: [endpoints('c1', 1), endpoints('c2', 2)],
        [TypeUrl.Secret]: [rootCa('root-1')],
      });
    const { xds, c } = await setUp(hosts({ 'a:80': 'c1', 'b:80': 'c1' }));
    await eventually(() => expect([...c.held(TypeUrl.VirtualHost).keys()].sort()).toEqual(['outbound/a:80', 'outbound/b:80']));
    expect((c.held(TypeUrl.RouteConfiguration).get('outbound') as RouteConfig).vhds).toBe(true);

    const from = xds.sent.length;
    xds.set(hosts({ 'a:80': 'c1', 'b:80': 'c2' }));
    await eventually(() => expect(since(xds, from)).toEqual(['VirtualHost: outbound/b:80']));
    await eventually(() => expect((c.held(TypeUrl.VirtualHost).get('outbound/b:80') as VirtualHost).routes[0]?.action).toMatchObject({ backends: [{ cluster: 'c2' }] }));
    expect(c.held(TypeUrl.VirtualHost).size).toBe(2);
    await settled(xds);

    const from2 = xds.sent.length;
    xds.set(hosts({ 'b:80': 'c2' }));
    await eventually(() => expect([...c.held(TypeUrl.VirtualHost).keys()]).toEqual(['outbound/b:80']));
    await settled(xds);
    expect(since(xds, from2)).toEqual(['VirtualHost:  -outbound/a:80']);
  });

  it('NACKs a VHDS resource whose name inside disagrees with the name beside it', async () => {
    const { xds, c } = await setUp();
    const set = world();
    set[TypeUrl.VirtualHost] = new Map([['outbound/x:80', virtualHost('outbound', 'y:80', 'c1')]]);
    xds.set(set);
    await eventually(() => expect(xds.nacks.join('\n')).toContain('VHDS outbound/x:80: name: the resource calls itself "outbound/y:80"'));
    expect(c.held(TypeUrl.VirtualHost).size).toBe(0);
  });
});

describe('XdsServer delta, after a NACK (a server bug, reported; flip to `it` once fixed)', () => {
  // control-plane/xds-server/server.ts delta(): on a NACK the server forgets everything it thinks
  // the client holds (`held.set(typeUrl, new Map())`), so a name it had removed in the rejected
  // response is never removed again: the client kept it (a NACK keeps the last good set) and
  // holds it until it reconnects.
  it('removes again what a rejected response removed', async () => {
    const { xds, c } = await setUp();
    const bad = world({ ports: { c1: 1001 } });
    bad[TypeUrl.Cluster] = new Map([['c1', { ...cluster('c1'), transport_socket_matches: [{ name: 'm' }] }]]);
    xds.set(bad);
    await eventually(() => expect(xds.nacks.join('\n')).toContain('CDS c1: transport_socket_matches'));
    expect([...c.held(TypeUrl.Cluster).keys()].sort()).toEqual(['c1', 'c2']);

    xds.set(world({ ports: { c1: 1001 } }));
    await eventually(() => expect(c.ads.statusByType().CDS?.lastNack).toBeUndefined());
    await settled(xds);
    expect([...c.held(TypeUrl.Cluster).keys()]).toEqual(['c1']);
  });
});
