// The ADS client against Weft's real XdsServer over gRPC on loopback, once per protocol (delta,
// the default, and state of the world): initial sync, NACK with the field path and recovery,
// and a control-plane restart during which the last config stays. Wire details of delta are in
// delta.test.ts.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { RouteConfig } from '../../api/domain.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import { TypeUrl } from '../../api/types.js';
import { eventually } from '../../test/support/eventually.js';
import { AdsClient } from './ads-client.js';
import { quietLogger, startTestClient, startTestXds, world, type TestClient, type TestXds } from './xds-fixture.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ALL = [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret, TypeUrl.VirtualHost];
const clusterOf = (rc: unknown) => {
  const a = (rc as RouteConfig | undefined)?.virtualHosts[0]?.routes.at(-1)?.action;
  return a?.kind === 'forward' ? a.backends[0]?.cluster : undefined;
};

describe.each(['delta', 'sotw'] as const)('ADS client (%s)', (protocol) => {
  async function setUp(): Promise<{ xds: TestXds; c: TestClient }> {
    const xds = await startTestXds(world());
    cleanups.push(() => xds.close());
    const c = startTestClient(xds.target, protocol);
    cleanups.push(() => c.ads.stop());
    // Every type answered, VHDS (empty here) included: the state knows it is in sync.
    await eventually(() => expect(new Set(c.accepted.map((a) => a.type))).toEqual(new Set(ALL)));
    await eventually(() => expect(xds.server().awaitingAck()).toEqual([]));
    return { xds, c };
  }

  it('syncs every type over its protocol and reports each type on /config_dump', async () => {
    const { xds, c } = await setUp();
    expect(xds.server().syncStates()[0]?.stream).toBe(protocol);
    expect(c.ads.protocol).toBe(protocol);
    expect([...c.held(TypeUrl.ClusterLoadAssignment).keys()].sort()).toEqual(['c1', 'c2']);
    expect([...c.held(TypeUrl.Secret).keys()]).toEqual(['ROOTCA']);
    expect(c.ads.connected).toBe(true);
    const status = c.ads.statusByType();
    expect(Object.keys(status).sort()).toEqual(['CDS', 'EDS', 'LDS', 'RDS', 'SDS', 'VHDS']);
    for (const t of ALL) {
      const s = xds.server().syncStates()[0]!.types.get(t)!;
      expect(s.ackedVersion, t).toBe(s.sentVersion);
    }
    expect(status.RDS).toMatchObject({ names: ['outbound'], version: xds.server().syncStates()[0]!.types.get(TypeUrl.RouteConfiguration)!.sentVersion });
  });

  it('applies an update with the unchanged resources kept as the same objects', async () => {
    const { xds, c } = await setUp();
    const before = c.held(TypeUrl.ClusterLoadAssignment);
    xds.set(world({ ports: { c1: 1001, c2: 2002 } }));
    await eventually(() => expect(c.held(TypeUrl.ClusterLoadAssignment).get('c2')).toMatchObject({ endpoints: [{ port: 2002 }] }));
    expect([...c.held(TypeUrl.ClusterLoadAssignment).keys()].sort()).toEqual(['c1', 'c2']);
    // The state's per-object caches (compiled route tables, balancers) survive unrelated pushes.
    expect(c.held(TypeUrl.ClusterLoadAssignment).get('c1')).toBe(before.get('c1'));
  });

  it('NACKs an invalid update with its field path, keeps the last good config, and recovers', async () => {
    const { xds, c } = await setUp();
    const good = c.held(TypeUrl.RouteConfiguration).get('outbound');
    xds.set(world({ routeTo: 'c2', badRegex: true }));
    await eventually(() => expect(xds.nacks.join('\n')).toContain('RDS outbound: virtual_hosts[0].routes[0].match.safe_regex.regex'));
    expect(c.ads.statusByType().RDS?.lastNack?.message).toContain('(unclosed');
    expect(c.held(TypeUrl.RouteConfiguration).get('outbound')).toBe(good);
    expect(xds.server().syncStates()[0]!.types.get(TypeUrl.RouteConfiguration)!.nack).toBeDefined();

    xds.set(world({ routeTo: 'c2' }));
    await eventually(() => expect(clusterOf(c.held(TypeUrl.RouteConfiguration).get('outbound'))).toBe('c2'));
    expect(c.ads.statusByType().RDS?.lastNack).toBeUndefined();
  });

  it('keeps its config while the control plane is away and takes what changed when it is back', async () => {
    const { xds, c } = await setUp();
    const listeners = c.held(TypeUrl.Listener);
    await xds.restart(world({ routeTo: 'c2', pem: 'root-2' }));
    // Until the new server answers, nothing is taken away.
    expect(c.held(TypeUrl.Listener)).toBe(listeners);
    await eventually(() => expect(clusterOf(c.held(TypeUrl.RouteConfiguration).get('outbound'))).toBe('c2'), { timeoutMs: 15_000 });
    await eventually(() => expect(c.held(TypeUrl.Secret).get('ROOTCA')).toMatchObject({ trustedCa: 'root-2' }));
    expect([...c.held(TypeUrl.Listener).keys()]).toEqual(['outbound']);
    expect([...c.held(TypeUrl.ClusterLoadAssignment).keys()].sort()).toEqual(['c1', 'c2']);
    await eventually(() => expect(xds.server().awaitingAck()).toEqual([]));
  });
});

describe('AdsClient options', () => {
  it('speaks delta unless told otherwise', async () => {
    const xds = await startTestXds(world());
    cleanups.push(() => xds.close());
    const c = startTestClient(xds.target);
    cleanups.push(() => c.ads.stop());
    expect(c.ads.protocol).toBe('delta');
    await eventually(() => expect(xds.server().syncStates()[0]?.stream).toBe('delta'));
  });

  it('refuses an unknown protocol by name', () => {
    expect(
      () =>
        new AdsClient({
          target: '127.0.0.1:1',
          credentials: grpc.credentials.createInsecure(),
          node: { id: 'x.y', metadata: {} },
          token: () => undefined,
          types: RESOURCE_TYPES,
          onAccepted: () => {},
          log: quietLogger('test'),
          protocol: 'incremental' as 'delta',
        }),
    ).toThrow(/xDS protocol: delta or sotw, got "incremental"/);
  });
});
