// The node proxy's outbound decision as a table (no sockets): a Service VIP names its cluster
// (a waypoint's when the Service uses one), a mesh pod's own IP is reached the way its endpoints
// say, anything else passes through, and the per-pod listeners are never mistaken for Services.
import { describe, expect, it } from 'vitest';
import type { Cluster, EndpointAssignment, FilterChain, Listener } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import { decideAmbientOutbound } from './outbound.js';
import { localPods } from './workloads.js';

const tcpChain = (cluster: string): FilterChain => ({ name: 'tcp', destinationPorts: [], serverNames: [], filter: { kind: 'tcp', statPrefix: cluster, cluster, rbac: [] } });
const vip = (host: string, port: number, cluster: string): Listener => ({ name: `${host}_${port}`, address: { host, port }, filterChains: [tcpChain(cluster)] });

const podListener: Listener = {
  name: 'ambient|default|reviews-v1',
  address: { host: '10.1.1.5', port: 15008 },
  filterChains: [{ ...tcpChain('inbound|9080||'), destinationPorts: [9080] }],
  workload: { name: 'reviews-v1', namespace: 'default', serviceAccount: 'reviews', identity: 'spiffe://cluster.local/ns/default/sa/reviews' },
};

const cluster = (name: string): Cluster => ({ name, discovery: 'EDS', edsServiceName: name } as unknown as Cluster);
const assignment = (name: string, endpoints: EndpointAssignment['endpoints']): EndpointAssignment => ({ clusterName: name, endpoints } as EndpointAssignment);

const config = {
  listeners: new Map<string, Listener>([
    ['10.96.0.10_9080', vip('10.96.0.10', 9080, 'outbound|9080||reviews.default.svc.cluster.local')],
    ['10.96.0.20_9080', vip('10.96.0.20', 9080, 'waypoint|waypoint|default')],
    [podListener.name, podListener],
  ]),
  clusters: new Map([
    ['outbound|9080||reviews.default.svc.cluster.local', cluster('outbound|9080||reviews.default.svc.cluster.local')],
    ['outbound|9080||legacy.default.svc.cluster.local', cluster('outbound|9080||legacy.default.svc.cluster.local')],
  ]),
  endpoints: new Map([
    [
      'outbound|9080||reviews.default.svc.cluster.local',
      assignment('outbound|9080||reviews.default.svc.cluster.local', [
        { host: '10.1.1.5', port: 15008, weight: 1, healthy: true, identity: 'spiffe://cluster.local/ns/default/sa/reviews', targetPort: 9080, tunnel: 'hbone' },
      ]),
    ],
    [
      'outbound|9080||legacy.default.svc.cluster.local',
      assignment('outbound|9080||legacy.default.svc.cluster.local', [
        { host: '10.1.2.7', port: 15006, weight: 1, healthy: true, identity: 'spiffe://cluster.local/ns/default/sa/legacy', targetPort: 9080 },
      ]),
    ],
  ]),
  routes: new Map(),
  secrets: new Map(),
  versions: new Map(),
  generation: 1,
} as unknown as ProxyConfig;

const dst = (address: string, port: number) => ({ address, port, family: 4 as const });

describe('decideAmbientOutbound', () => {
  it.each([
    ['a Service VIP: its cluster', dst('10.96.0.10', 9080), { kind: 'service', cluster: 'outbound|9080||reviews.default.svc.cluster.local' }],
    ['a Service that uses a waypoint: the waypoint cluster', dst('10.96.0.20', 9080), { kind: 'service', cluster: 'waypoint|waypoint|default' }],
    ['an ambient pod by IP: HBONE to its 15008, the app port kept', dst('10.1.1.5', 9080), { kind: 'pod', host: '10.1.1.5', port: 9080, identity: 'spiffe://cluster.local/ns/default/sa/reviews', hbonePort: 15008 }],
    // The per-pod listener sits on <pod ip>:15008 too: it must not read as a Service VIP.
    ["an ambient pod's HBONE port by IP: still the pod", dst('10.1.1.5', 15008), { kind: 'pod', host: '10.1.1.5', port: 15008, identity: 'spiffe://cluster.local/ns/default/sa/reviews', hbonePort: 15008 }],
    ['a sidecar pod by IP: no HBONE port', dst('10.1.2.7', 9080), { kind: 'pod', host: '10.1.2.7', port: 9080, identity: 'spiffe://cluster.local/ns/default/sa/legacy' }],
    ['outside the mesh: pass-through', dst('192.0.2.1', 443), { kind: 'passthrough' }],
    ['not redirected: refused', undefined, { kind: 'refuse', reason: 'no original destination (not a redirected connection)' }],
  ])('%s', (_name, d, expected) => {
    expect(decideAmbientOutbound(config, d)).toEqual(expected);
  });
});

describe('localPods', () => {
  it('reads the per-pod listeners, and only them', () => {
    expect(localPods(config)).toEqual([
      { key: 'default/reviews-v1', name: 'reviews-v1', namespace: 'default', ip: '10.1.1.5', identity: 'spiffe://cluster.local/ns/default/sa/reviews', listener: 'ambient|default|reviews-v1' },
    ]);
  });
});
