// Pushing to many proxies over real gRPC on loopback: streams subscribed alike get one shared
// response, a push through a small budget reaches every proxy with the newest version only,
// a proxy that stops reading does not hold the others up, and the streams waiting for an ACK
// are known without looking at every stream.
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { toStruct } from '../../api/codec.js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { createLogger } from '../../core/log.js';
import { eventually } from '../../test/support/eventually.js';
import { MemorySnapshotCache } from '../snapshot/cache.js';
import { buildSnapshot, type Snapshot } from '../snapshot/snapshot.js';
import { preparedAdsService } from './encode.js';
import { XdsServer, type XdsServerOptions } from './server.js';

const log = createLogger('test');
log.info = () => {};
log.warn = () => {};

/** Clusters a..: `padding` bytes of metadata each make a response as large as needed. */
function clusters(version: number, count = 3, padding = 0): Snapshot {
  const make = (n: string) => ({
    name: n,
    type: 'STATIC',
    connect_timeout: { seconds: version },
    ...(padding ? { metadata: { filter_metadata: { pad: { fields: { x: { stringValue: 'x'.repeat(padding) } } } } } } : {}),
  });
  return buildSnapshot({ [TypeUrl.Cluster]: new Map(Array.from({ length: count }, (_, i) => [`c${i}`, make(`c${i}`)])) });
}

interface Proxy {
  readonly id: string;
  readonly stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  readonly received: DiscoveryResponse[];
}

describe('pushing to many proxies', () => {
  let server: grpc.Server | undefined;
  let clients: grpc.Client[] = [];
  let streams: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>[] = [];
  let sessions: http2.ClientHttp2Session[] = [];

  afterEach(async () => {
    for (const s of streams) s.cancel();
    for (const s of sessions) s.destroy();
    sessions = [];
    for (const c of clients) c.close();
    streams = [];
    clients = [];
    await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()));
    server = undefined;
  });

  async function start(options: XdsServerOptions = {}) {
    const cache = new MemorySnapshotCache();
    const xds = new XdsServer(
      cache,
      {
        authenticate: async (node) => ({ id: node.id!, workload: node.id!, namespace: 'default', metadata: {} }),
        connected: () => {},
        disconnected: () => {},
      },
      log,
      options,
    );
    const s = new grpc.Server();
    server = s;
    s.addService(preparedAdsService, xds.handlers());
    const port = await new Promise<number>((res, rej) => s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    /** A proxy on its own connection, subscribed to every cluster; it ACKs unless told not to read. */
    const connect = (id: string, opts: { ack?: boolean } = {}): Proxy => {
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      clients.push(client);
      const m = adsService.StreamAggregatedResources;
      const stream = client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(m.path, m.requestSerialize, m.responseDeserialize, new grpc.Metadata());
      stream.on('error', () => {});
      streams.push(stream);
      const received: DiscoveryResponse[] = [];
      stream.on('data', (res: DiscoveryResponse) => {
        received.push(res);
        if (opts.ack !== false) stream.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce });
      });
      stream.write({ node: { id, metadata: toStruct({}) }, type_url: TypeUrl.Cluster });
      return { id, stream, received };
    };
    /**
     * A proxy that subscribes and then never reads: a bare HTTP/2 stream that is never
     * consumed, so flow control soon stops anything more from reaching it.
     */
    const connectDeaf = (id: string) => {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      sessions.push(session);
      const m = adsService.StreamAggregatedResources;
      const req = session.request({ ':method': 'POST', ':path': m.path, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('error', () => {});
      const message = m.requestSerialize({ node: { id, metadata: toStruct({}) }, type_url: TypeUrl.Cluster });
      const frame = Buffer.alloc(5 + message.length);
      frame.writeUInt32BE(message.length, 1);
      message.copy(frame, 5);
      req.write(frame);
      req.pause();
      return { id, req };
    };
    /** Waits until the server holds a subscription for each of `proxies`. */
    const subscribed = (proxies: Proxy[]) =>
      eventually(() => expect(xds.syncStates().filter((p) => p.types.has(TypeUrl.Cluster)).map((p) => p.id).sort()).toEqual(proxies.map((p) => p.id).sort()));
    return { cache, xds, connect, connectDeaf, subscribed };
  }

  it('sends every stream subscribed alike the same response', async () => {
    const { cache, connect, subscribed } = await start();
    const proxies = ['a', 'b', 'c'].map((id) => connect(id));
    await subscribed(proxies);
    const snapshot = clusters(1);
    for (const p of proxies) cache.set(p.id, snapshot);
    await eventually(() => expect(proxies.map((p) => p.received.length)).toEqual([1, 1, 1]));
    const [first, ...rest] = proxies.map((p) => p.received[0]!);
    for (const r of rest) {
      expect(r.version_info).toBe(first!.version_info);
      expect(r.nonce).toBe(first!.nonce);
      expect(r.resources).toEqual(first!.resources);
    }
  });

  it('reaches every proxy through a small budget, and proxies that waited get only the newest version', async () => {
    // One response in flight at a time: the others wait their turn.
    const { cache, xds, connect, subscribed } = await start({ pushBudgetBytes: 1 });
    const proxies = Array.from({ length: 20 }, (_, i) => connect(`p${i}`));
    await subscribed(proxies);
    const v1 = clusters(1);
    const v2 = clusters(2);
    for (const p of proxies) cache.set(p.id, v1);
    for (const p of proxies) cache.set(p.id, v2);
    const newest = v2.types.get(TypeUrl.Cluster)!.version;
    await eventually(() => expect(proxies.every((p) => p.received.at(-1)?.version_info === newest)).toBe(true));
    const sawV1 = proxies.filter((p) => p.received.some((r) => r.version_info === v1.types.get(TypeUrl.Cluster)!.version));
    expect(sawV1.length).toBeLessThanOrEqual(1);
    await eventually(() => expect(xds.awaitingAck()).toEqual([]));
  });

  it('does not let a proxy that stopped reading hold up the others', async () => {
    const { cache, connect, connectDeaf, subscribed } = await start({ pushBudgetBytes: 1, slowWriteMs: 300 });
    const deaf = connectDeaf('deaf');
    const other = connect('other');
    await subscribed([deaf as unknown as Proxy, other]);
    // ~2 MB: far beyond what HTTP/2 flow control lets through to a stream nobody reads.
    cache.set(deaf.id, clusters(1, 20, 100_000));
    cache.set(other.id, clusters(1));
    const started = Date.now();
    await eventually(() => expect(other.received).toHaveLength(1), { timeoutMs: 5000 });
    // It waited for the deaf proxy's write to stop counting, not for that write to finish.
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(Date.now() - started).toBeLessThan(4500);
    let got = 0;
    deaf.req.on('data', (d: Buffer) => (got += d.length));
    deaf.req.resume();
    await eventually(() => expect(got).toBeGreaterThan(2_000_000), { timeoutMs: 5000 });
  });

  it('knows which streams still wait for an ACK', async () => {
    const { cache, xds, connect, subscribed } = await start();
    const acking = connect('acking');
    const silent = connect('silent', { ack: false });
    await subscribed([acking, silent]);
    cache.set(acking.id, clusters(1));
    cache.set(silent.id, clusters(1));
    await eventually(() => expect(silent.received).toHaveLength(1));
    await eventually(() => expect(xds.awaitingAck().map((s) => s.id)).toEqual(['silent']));
  });
});
