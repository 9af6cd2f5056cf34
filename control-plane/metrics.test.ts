// Control-plane metrics logic: pushes counted per changed type, convergence measured from a
// change until every proxy ACKed (or left), NACKing proxies counted at scrape time.
import { afterEach, describe, expect, it } from 'vitest';
import { TypeUrl } from '../api/types.js';
import { eventually } from '../test/support/eventually.js';
import { ConvergenceTracker, countPushes, createControlPlaneMetrics, type SyncView } from './metrics.js';

type Types = Map<TypeUrl, { sentVersion?: string; ackedVersion?: string; nack?: { version: string } }>;

describe('control-plane metrics', () => {
  const trackers: ConvergenceTracker[] = [];
  afterEach(() => trackers.splice(0).forEach((t) => t.stop()));

  it('counts a push per type whose version changed', async () => {
    const m = createControlPlaneMetrics();
    const snap = (v: Record<string, string>) => ({ types: new Map(Object.entries(v).map(([t, version]) => [t as TypeUrl, { version }])) });
    const first = countPushes(m.pushes, snap({ [TypeUrl.Listener]: 'l1', [TypeUrl.Cluster]: 'c1' }), undefined);
    expect([...first.values()]).toEqual(['l1', 'c1']);
    countPushes(m.pushes, snap({ [TypeUrl.Listener]: 'l1', [TypeUrl.Cluster]: 'c2' }), snap({ [TypeUrl.Listener]: 'l1', [TypeUrl.Cluster]: 'c1' }));
    const text = await m.registry.metrics();
    expect(text).toContain('pilot_xds_pushes{type="lds"} 1');
    expect(text).toContain('pilot_xds_pushes{type="cds"} 2');
  });

  it('counts proxies rejecting their latest push, per type', async () => {
    const m = createControlPlaneMetrics();
    const proxies: SyncView[] = [
      { id: 'a', types: new Map([[TypeUrl.RouteConfiguration, { sentVersion: 'v2', nack: { version: 'v2' } }]]) },
      { id: 'b', types: new Map([[TypeUrl.RouteConfiguration, { sentVersion: 'v3', ackedVersion: 'v3', nack: { version: 'v2' } }]]) },
    ];
    m.watchSync(() => proxies);
    const text = await m.registry.metrics();
    expect(text).toContain('pilot_xds_rds_reject 1');
    expect(text).toContain('pilot_xds_cds_reject 0');
  });

  it('measures convergence from the change until the last proxy ACKs', async () => {
    let now = 1000;
    const observed: number[] = [];
    const a: Types = new Map([[TypeUrl.Listener, { sentVersion: 'l2', ackedVersion: 'l1' }]]);
    const b: Types = new Map([[TypeUrl.Listener, { sentVersion: 'l2', ackedVersion: 'l1' }]]);
    let proxies: SyncView[] = [{ id: 'a', types: a }, { id: 'b', types: b }];
    const t = new ConvergenceTracker((s) => observed.push(s), () => proxies, { pollMs: 5, now: () => now });
    trackers.push(t);
    t.published(new Map([['a', new Map([[TypeUrl.Listener, 'l2']])]])); // no change pending: ignored
    t.changed();
    now = 1100;
    t.changed(); // a second change before the first converged keeps the first start
    t.published(new Map([['a', new Map([[TypeUrl.Listener, 'l2']])], ['b', new Map([[TypeUrl.Listener, 'l2']])]]));
    a.get(TypeUrl.Listener)!.ackedVersion = 'l2';
    await new Promise((r) => setTimeout(r, 30));
    expect(observed).toEqual([]);
    now = 1750;
    proxies = [{ id: 'a', types: a }]; // b left: nothing to wait for
    await eventually(() => expect(observed).toEqual([0.75]));
  });

  it('gives up on a change some proxy never ACKs', async () => {
    let now = 0;
    const observed: number[] = [];
    const a: Types = new Map([[TypeUrl.Listener, { sentVersion: 'l2', nack: { version: 'l2' } }]]);
    const t = new ConvergenceTracker((s) => observed.push(s), () => [{ id: 'a', types: a }], { pollMs: 5, timeoutMs: 100, now: () => now });
    trackers.push(t);
    t.changed();
    t.published(new Map([['a', new Map([[TypeUrl.Listener, 'l2']])]]));
    now = 200;
    await new Promise((r) => setTimeout(r, 30));
    t.changed();
    now = 260;
    a.set(TypeUrl.Listener, { sentVersion: 'l3', ackedVersion: 'l3' });
    t.published(new Map([['a', new Map([[TypeUrl.Listener, 'l3']])]]));
    await eventually(() => expect(observed).toEqual([0.06]));
  });
});
