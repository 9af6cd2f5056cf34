// ADS server protocol semantics over a real gRPC connection on loopback: versions, nonces,
// ACK/NACK, subscriptions by name, pushes on snapshot change, and delta streams.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { toStruct, unpack } from '../../api/codec.js';
import { adsService, type DeltaDiscoveryResponse, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { createLogger } from '../../core/log.js';
import { eventually } from '../../test/support/eventually.js';
import { MemorySnapshotCache } from '../snapshot/cache.js';
import { buildSnapshot, type ResourceSet } from '../snapshot/snapshot.js';
import { XdsServer, type ProxyInfo } from './server.js';

const log = createLogger('test');
log.info = () => {};
log.warn = () => {};

function cluster(name: string, timeoutSec = 1) {
  return { name, type: 'EDS', eds_cluster_config: { service_name: name, eds_config: { ads: {} } }, connect_timeout: { seconds: timeoutSec } };
}
function cla(name: string, port: number) {
  return {
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
  };
}
function set(clusters: Record<string, number>): ResourceSet {
  return {
    [TypeUrl.Cluster]: new Map(Object.keys(clusters).map((n) => [n, cluster(n)])),
    [TypeUrl.ClusterLoadAssignment]: new Map(Object.entries(clusters).map(([n, p]) => [n, cla(n, p)])),
  };
}

/** A queue of responses read from a stream, taken one at a time. */
function reader<T>(stream: grpc.ClientDuplexStream<never, T>) {
  const queue: T[] = [];
  stream.on('data', (m: T) => queue.push(m));
  return {
    next: () => eventually(() => {
      const m = queue.shift();
      if (!m) throw new Error('no response yet');
      return m;
    }, { timeoutMs: 5000 }),
    get pending() {
      return queue.length;
    },
  };
}

describe('ADS server', () => {
  let server: grpc.Server;
  let client: grpc.Client;
  let cache: MemorySnapshotCache;
  let xds: XdsServer;
  const connected: string[] = [];
  const nacks: string[] = [];
  let refuse = false;

  beforeEach(async () => {
    cache = new MemorySnapshotCache();
    connected.length = 0;
    nacks.length = 0;
    refuse = false;
    xds = new XdsServer(
      cache,
      {
        authenticate: async (node, md) => {
          if (refuse || md.get('authorization')[0] !== 'Bearer good') throw new Error('bad token for ' + node.id);
          return { id: node.id!, workload: node.id!, namespace: 'default', metadata: {} } satisfies ProxyInfo;
        },
        connected: (p) => {
          connected.push(p.id);
          cache.set(p.id, buildSnapshot(set({ a: 1001, b: 1002 })));
        },
        disconnected: () => {},
        nacked: (_p, _t, m) => nacks.push(m),
      },
      log,
    );
    server = new grpc.Server();
    server.addService(adsService, xds.handlers());
    const port = await new Promise<number>((res, rej) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
    );
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'ADS');
    client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  afterEach(async () => {
    client.close();
    await new Promise<void>((r) => server.tryShutdown(() => r()));
  });

  function open(token = 'good') {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const s = client.makeBidiStreamRequest(
      adsService.StreamAggregatedResources.path,
      adsService.StreamAggregatedResources.requestSerialize,
      adsService.StreamAggregatedResources.responseDeserialize,
      md,
    ) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    // Tests end streams with cancel(); the resulting CANCELLED error is expected.
    s.on('error', (e: grpc.ServiceError) => e.code === grpc.status.CANCELLED || undefined);
    return s;
  }
  const node = { id: 'client.default', metadata: toStruct({ WORKLOAD: 'client.default' }) };

  it('sends a wildcard type, then nothing more after an ACK of the same version', async () => {
    const s = open();
    const r = reader(s);
    s.write({ node, type_url: TypeUrl.Cluster, resource_names: [] });
    const first = await r.next();
    expect(first.type_url).toBe(TypeUrl.Cluster);
    expect(first.resources.map((a) => unpack(a).name).sort()).toEqual(['a', 'b']);
    expect(first.nonce).not.toBe('');
    s.write({ type_url: TypeUrl.Cluster, version_info: first.version_info, response_nonce: first.nonce });
    await eventually(() => {
      const st = xds.syncStates()[0]!.types.get(TypeUrl.Cluster)!;
      expect(st.ackedVersion).toBe(first.version_info);
    });
    expect(connected).toEqual(['client.default']);
    expect(r.pending).toBe(0);
    s.cancel();
  });

  it('answers a by-name type with only the names asked for', async () => {
    const s = open();
    const r = reader(s);
    s.write({ node, type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['b'] });
    const res = await r.next();
    expect(res.resources.map((a) => unpack(a).cluster_name)).toEqual(['b']);
    s.cancel();
  });

  it('pushes a new version when the snapshot changes, and records a NACK without resending it', async () => {
    const s = open();
    const r = reader(s);
    s.write({ node, type_url: TypeUrl.Cluster, resource_names: [] });
    const v1 = await r.next();
    s.write({ type_url: TypeUrl.Cluster, version_info: v1.version_info, response_nonce: v1.nonce });
    cache.set('client.default', buildSnapshot(set({ a: 1001, b: 1002, c: 1003 })));
    const v2 = await r.next();
    expect(v2.version_info).not.toBe(v1.version_info);
    expect(v2.resources).toHaveLength(3);
    s.write({
      type_url: TypeUrl.Cluster,
      version_info: v1.version_info,
      response_nonce: v2.nonce,
      error_detail: { code: 3, message: 'clusters[2]: bad' },
    });
    await eventually(() => expect(nacks).toEqual(['clusters[2]: bad']));
    const st = xds.syncStates()[0]!.types.get(TypeUrl.Cluster)!;
    expect(st.ackedVersion).toBeUndefined();
    expect(st.nack?.version).toBe(v2.version_info);
    expect(r.pending).toBe(0);
    s.cancel();
  });

  it('ignores a request carrying a stale nonce', async () => {
    const s = open();
    const r = reader(s);
    s.write({ node, type_url: TypeUrl.Cluster, resource_names: [] });
    const v1 = await r.next();
    cache.set('client.default', buildSnapshot(set({ a: 1 })));
    const v2 = await r.next();
    // An ACK of v1 arriving after v2 was sent must not count as an ACK of v2.
    s.write({ type_url: TypeUrl.Cluster, version_info: v1.version_info, response_nonce: v1.nonce });
    s.write({ type_url: TypeUrl.Cluster, version_info: v2.version_info, response_nonce: v2.nonce });
    await eventually(() => expect(xds.syncStates()[0]!.types.get(TypeUrl.Cluster)!.ackedVersion).toBe(v2.version_info));
    s.cancel();
  });

  it('refuses a stream whose token does not authenticate', async () => {
    const s = open('bad');
    const err = await new Promise<grpc.ServiceError>((res) => {
      s.once('error', res);
      s.write({ node, type_url: TypeUrl.Cluster });
    });
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toContain('bad token for client.default');
    expect(connected).toEqual([]);
  });

  it('serves delta streams: initial set, then only changes and removals', async () => {
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer good');
    const s = client.makeBidiStreamRequest(
      adsService.DeltaAggregatedResources.path,
      adsService.DeltaAggregatedResources.requestSerialize,
      adsService.DeltaAggregatedResources.responseDeserialize,
      md,
    ) as grpc.ClientDuplexStream<object, DeltaDiscoveryResponse>;
    s.on('error', () => {});
    const r = reader(s);
    s.write({ node, type_url: TypeUrl.Cluster });
    const first = await r.next();
    expect(first.resources.map((x) => x.name).sort()).toEqual(['a', 'b']);
    s.write({ type_url: TypeUrl.Cluster, response_nonce: first.nonce });
    const next = buildSnapshot(set({ a: 1001, c: 1003 }));
    cache.set('client.default', next);
    const delta = await r.next();
    expect(delta.resources.map((x) => x.name)).toEqual(['c']);
    expect(delta.removed_resources).toEqual(['b']);
    s.cancel();
  });
});
