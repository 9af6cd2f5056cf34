// N simulated sidecars in one process, for the control-plane benchmark: each is a raw grpc-js
// client on its own connection speaking ADS as a Weft sidecar does (node id, metadata with
// INBOUND_PORT, bootstrap token; LDS/CDS/VHDS wildcard, RDS `outbound`, EDS for every EDS
// cluster, SDS `ROOTCA`), incremental (delta, the default) or state of the world, ACKing every
// response at once. It measures how long all of them take to sync, then edits the route file K
// times and measures, per proxy, the time from the edit to its ACK of the response that carries
// the edited route (RDS `outbound`, or the VHDS virtual host of the edited Service). Resources
// are not decoded beyond what subscribing needs (clusters' EDS names, each distinct one once):
// this is measurement apparatus and its CPU must stay low. Every phase is bounded; prints one
// BENCH_RESULT line.
// Usage: node dist/bench/load/ads-sim.js --xds H:P --state-dir D --config-dir D --proxies N
//          [--protocol delta|sotw] [--edits 3] [--connect-timeout 60] [--converge-timeout 30] [--settle 2]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '../../api/codec.js';
import { messageType } from '../../api/protos.js';
import {
  adsService, type DeltaDiscoveryRequest, type DiscoveryRequest, type DiscoveryResponse, type Node,
} from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { proxyName, ROUTE_FILE, routeYaml, serviceName } from '../lib/cp-config.js';
import { BENCH_NS } from '../lib/mesh.js';
import { summarise } from '../lib/stats.js';
import { emitResult, flags, num, str } from './args.js';
import { readDelta, type DeltaWire } from './delta-wire.js';

const f = flags();
const xds = str(f, 'xds');
const stateDir = str(f, 'state-dir');
const configDir = str(f, 'config-dir');
const proxies = num(f, 'proxies', 100);
const protocol = str(f, 'protocol', 'delta');
if (protocol !== 'delta' && protocol !== 'sotw') throw new Error(`--protocol: delta or sotw, got "${protocol}"`);
const edits = num(f, 'edits', 3);
const connectTimeoutMs = num(f, 'connect-timeout', 60) * 1000;
const convergeTimeoutMs = num(f, 'converge-timeout', 30) * 1000;
const settleMs = num(f, 'settle', 2) * 1000;

// VHDS is not waited for: the server sends it before RDS (api/types.ts PUSH_ORDER), and a control
// plane that does not know VHDS never answers it.
const SYNC_TYPES = [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret] as const;
const WILDCARD = [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.VirtualHost] as const;
/** The VHDS resource of the Service the edit changes: `outbound/<fqdn>:<port>`. */
const EDITED_HOST = `outbound/${serviceName(0)}.${BENCH_NS}.svc.cluster.local:`;
const log = (msg: string) => process.stderr.write(`ads-sim: ${msg}\n`);

let clusterType: ReturnType<typeof messageType> | undefined;
/** A cluster's EDS name, or '' if it is not an EDS cluster. */
function edsNameOf(value: Uint8Array): string {
  clusterType ??= messageType('envoy.config.cluster.v3.Cluster');
  const c = clusterType.decode(value) as unknown as { name: string; eds_cluster_config?: { service_name?: string } };
  return c.eds_cluster_config ? c.eds_cluster_config.service_name || c.name : '';
}

/** SotW: EDS names from a CDS response, decoded once per distinct response shape (all proxies get the same). */
const clusterNamesCache = new Map<string, string[]>();
function edsNames(res: DiscoveryResponse): string[] {
  const key = `${res.resources.length}:${res.resources.reduce((a, r) => a + r.value.length, 0)}`;
  let names = clusterNamesCache.get(key);
  if (!names) {
    names = res.resources.map((r) => edsNameOf(r.value)).filter(Boolean);
    clusterNamesCache.set(key, names);
  }
  return names;
}

/** Delta: EDS name per cluster resource version (a content hash), decoded once for all proxies. */
const edsByVersion = new Map<string, string>();

const bytesOf = (resources: readonly { value: Uint8Array }[]) => resources.reduce((a, r) => a + r.value.length, 0);

let lastResponseAt = performance.now();
let responses = 0;
/** Size of the last `outbound` RouteConfiguration received (sum of its resources), bytes. */
let rdsBytes = 0;

/** What the edit phase waits for on one proxy. */
interface Watch {
  /** SotW: versions held when the edit was written; a new one of RDS or VHDS carries the edit. */
  readonly baseline: ReadonlyMap<string, string>;
  onNew(at: number, bytes: number): void;
}

abstract class SimProxy {
  readonly id: string;
  readonly client: grpc.Client;
  /** Last version received (and ACKed) per type. */
  readonly versions = new Map<string, string>();
  syncedAt: number | undefined;
  /** Bytes of resources received so far, and when it first held a full config. */
  bytesIn = 0;
  syncBytes: number | undefined;
  watch: Watch | undefined;
  error: string | undefined;

  constructor(readonly index: number) {
    this.id = `${proxyName(index)}.${BENCH_NS}`;
    this.client = new grpc.Client(xds, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      // As proxy/discovery/ads-client.ts: a control plane that cannot answer a ping within 10 s
      // loses the stream (counted as a stream error; a simulated proxy does not reconnect).
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
    });
  }

  protected metadata(): grpc.Metadata {
    const token = readFileSync(path.join(stateDir, 'tokens', BENCH_NS, `${proxyName(this.index)}.token`), 'utf8').trim();
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    return md;
  }

  protected node(): Node {
    return {
      id: this.id,
      metadata: toStruct({ WORKLOAD: this.id, NAMESPACE: BENCH_NS, NAME: proxyName(this.index), INBOUND_PORT: 20000 + this.index, MODE: 'sidecar' }),
      user_agent_name: 'weft-bench-sim',
    };
  }

  /** Bookkeeping common to both protocols, after the response was ACKed. */
  protected received(typeUrl: string, version: string, now: number, carriesEdit: () => number | undefined): void {
    lastResponseAt = now;
    responses++;
    this.versions.set(typeUrl, version);
    if (this.syncedAt === undefined && SYNC_TYPES.every((t) => this.versions.has(t))) {
      this.syncedAt = now;
      this.syncBytes = this.bytesIn;
    }
    if (this.watch && (typeUrl === TypeUrl.RouteConfiguration || typeUrl === TypeUrl.VirtualHost)) {
      const bytes = carriesEdit();
      if (bytes !== undefined) {
        const w = this.watch;
        this.watch = undefined;
        w.onNew(now, bytes);
      }
    }
  }

  abstract start(): void;
  abstract close(): void;
}

class SotwProxy extends SimProxy {
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private readonly names = new Map<string, string[]>();

  start(): void {
    const m = adsService.StreamAggregatedResources;
    const call = this.client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(m.path, m.requestSerialize, m.responseDeserialize, this.metadata());
    this.call = call;
    call.on('data', (res: DiscoveryResponse) => this.onResponse(res));
    call.on('error', (err: Error) => (this.error = err.message));
    call.on('end', () => (this.error ??= 'stream ended'));
    this.subscribe(TypeUrl.Listener, [], this.node());
    this.subscribe(TypeUrl.Cluster, []);
    this.subscribe(TypeUrl.VirtualHost, []);
    this.subscribe(TypeUrl.RouteConfiguration, ['outbound']);
    this.subscribe(TypeUrl.Secret, ['ROOTCA']);
  }

  private subscribe(typeUrl: string, names: string[], node?: Node): void {
    this.names.set(typeUrl, names);
    this.call?.write({ type_url: typeUrl, resource_names: names, ...(node ? { node } : {}) });
  }

  private onResponse(res: DiscoveryResponse): void {
    const now = performance.now();
    // ACK at once: same version, same names, the response's nonce.
    this.call?.write({ version_info: res.version_info, type_url: res.type_url, response_nonce: res.nonce, resource_names: this.names.get(res.type_url) ?? [] });
    if (res.type_url === TypeUrl.Cluster) {
      const eds = edsNames(res);
      const had = this.names.get(TypeUrl.ClusterLoadAssignment);
      if (!had || had.length !== eds.length) this.subscribe(TypeUrl.ClusterLoadAssignment, eds);
    }
    if (res.type_url === TypeUrl.RouteConfiguration) rdsBytes = bytesOf(res.resources);
    this.bytesIn += bytesOf(res.resources);
    this.received(res.type_url, res.version_info, now, () =>
      this.watch && res.version_info !== this.watch.baseline.get(res.type_url) ? bytesOf(res.resources) : undefined,
    );
  }

  close(): void {
    this.call?.cancel();
    this.client.close();
  }
}

/** A proxy's first CDS response holds the whole set; all proxies get the same: worked out once. */
const initialClusters = new Map<string, { clusters: ReadonlyMap<string, string>; refs: ReadonlyMap<string, number>; eds: string[] }>();

class DeltaProxy extends SimProxy {
  private call: grpc.ClientDuplexStream<DeltaDiscoveryRequest, DeltaWire> | undefined;
  /** Cluster name → its EDS name ('' for none), and how many clusters name each EDS name;
   *  shared with the other proxies until this one's clusters change. */
  private clusters: ReadonlyMap<string, string> = new Map();
  private edsRefs: ReadonlyMap<string, number> = new Map();

  start(): void {
    const m = adsService.DeltaAggregatedResources;
    const call = this.client.makeBidiStreamRequest<DeltaDiscoveryRequest, DeltaWire>(m.path, m.requestSerialize, readDelta, this.metadata());
    this.call = call;
    call.on('data', (res: DeltaWire) => this.onResponse(res));
    call.on('error', (err: Error) => (this.error = err.message));
    call.on('end', () => (this.error ??= 'stream ended'));
    WILDCARD.forEach((t, i) => call.write({ type_url: t, resource_names_subscribe: ['*'], ...(i === 0 ? { node: this.node() } : {}) }));
    call.write({ type_url: TypeUrl.RouteConfiguration, resource_names_subscribe: ['outbound'] });
    call.write({ type_url: TypeUrl.Secret, resource_names_subscribe: ['ROOTCA'] });
  }

  private onResponse(res: DeltaWire): void {
    const now = performance.now();
    this.call?.write({ type_url: res.type_url, response_nonce: res.nonce });
    if (res.type_url === TypeUrl.Cluster) this.followClusters(res);
    if (res.type_url === TypeUrl.RouteConfiguration) {
      const rc = res.resources.find((r) => r.name === 'outbound');
      if (rc) rdsBytes = rc.value.length;
    }
    this.bytesIn += bytesOf(res.resources);
    this.received(res.type_url, res.system_version_info, now, () => {
      // Only changed resources are sent: the edited route's presence is the edit arriving.
      const edited =
        res.type_url === TypeUrl.RouteConfiguration
          ? res.resources.some((r) => r.name === 'outbound')
          : res.resources.some((r) => r.name.startsWith(EDITED_HOST));
      return edited ? bytesOf(res.resources) : undefined;
    });
  }

  /** Subscribes and unsubscribes EDS names as clusters come and go. */
  private followClusters(res: DeltaWire): void {
    if (this.clusters.size === 0 && res.removed_resources.length === 0) {
      // The whole set (its version names it): shared by every proxy that starts from nothing.
      let first = initialClusters.get(res.system_version_info);
      if (!first) {
        const clusters = new Map<string, string>();
        const refs = new Map<string, number>();
        for (const r of res.resources) {
          const eds = edsNameOf(r.value);
          clusters.set(r.name, eds);
          if (eds) refs.set(eds, (refs.get(eds) ?? 0) + 1);
        }
        initialClusters.set(res.system_version_info, (first = { clusters, refs, eds: [...refs.keys()] }));
      }
      this.clusters = first.clusters;
      this.edsRefs = first.refs;
      if (first.eds.length > 0) this.call?.write({ type_url: TypeUrl.ClusterLoadAssignment, resource_names_subscribe: first.eds });
      return;
    }
    const clusters = new Map(this.clusters);
    const refs = new Map(this.edsRefs);
    const subscribe = new Set<string>();
    const unsubscribe = new Set<string>();
    const ref = (eds: string, by: 1 | -1) => {
      if (!eds) return;
      const n = (refs.get(eds) ?? 0) + by;
      if (n > 0) refs.set(eds, n);
      else refs.delete(eds);
      if (by === 1 && n === 1) subscribe.add(eds);
      if (by === -1 && n === 0) unsubscribe.add(eds);
    };
    for (const r of res.resources) {
      let eds = edsByVersion.get(r.version);
      if (eds === undefined) edsByVersion.set(r.version, (eds = edsNameOf(r.value)));
      const old = clusters.get(r.name);
      if (old === eds) continue;
      if (old !== undefined) ref(old, -1);
      clusters.set(r.name, eds);
      ref(eds, 1);
    }
    for (const n of res.removed_resources) {
      const old = clusters.get(n);
      if (old === undefined) continue;
      clusters.delete(n);
      ref(old, -1);
    }
    this.clusters = clusters;
    this.edsRefs = refs;
    // A name dropped by one cluster and taken by another in the same response stays as it was.
    const sub = [...subscribe].filter((n) => refs.has(n) && !unsubscribe.has(n));
    const unsub = [...unsubscribe].filter((n) => !refs.has(n) && !subscribe.has(n));
    if (sub.length === 0 && unsub.length === 0) return;
    this.call?.write({ type_url: TypeUrl.ClusterLoadAssignment, resource_names_subscribe: sub, resource_names_unsubscribe: unsub });
  }

  close(): void {
    this.call?.cancel();
    this.client.close();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const sims: SimProxy[] = Array.from({ length: proxies }, (_, i) => (protocol === 'delta' ? new DeltaProxy(i) : new SotwProxy(i)));
  // Phase 1: everyone connects at once (a control-plane restart), until all hold a full config.
  const t0 = performance.now();
  for (const s of sims) s.start();
  for (let i = 0; i < 100_000; i++) {
    const synced = sims.filter((s) => s.syncedAt !== undefined).length;
    if (synced === proxies || performance.now() - t0 > connectTimeoutMs) break;
    if (i % 20 === 0) log(`${synced}/${proxies} synced after ${((performance.now() - t0) / 1000).toFixed(1)} s (${protocol})`);
    await sleep(250);
  }
  const syncTimes = sims.filter((s) => s.syncedAt !== undefined).map((s) => s.syncedAt! - t0);
  const connect = { synced: syncTimes.length, ms: syncTimes.length ? summarise(syncTimes) : undefined };
  log(`connect phase: ${connect.synced}/${proxies} synced`);

  // Phase 2: quiet (no response for `settleMs`), bounded.
  const settleEnd = performance.now() + 30_000;
  for (let i = 0; i < 1000 && performance.now() < settleEnd && performance.now() - lastResponseAt < settleMs; i++) await sleep(100);

  // Phase 3: edits, each timed from the file write to every proxy's ACK of the edited route. Only
  // once everyone synced: during a connect storm the numbers would measure the storm.
  const results: { converged: number; ms: ReturnType<typeof summarise> | undefined; timedOut: number; simBusy: number; bytes: number }[] = [];
  const runEdits = connect.synced === proxies ? edits : 0;
  if (runEdits === 0 && edits > 0) log(`skipping the route edits: only ${connect.synced}/${proxies} proxies synced within the bound`);
  for (let e = 1; e <= runEdits; e++) {
    const live = sims.filter((s) => s.syncedAt !== undefined && s.error === undefined);
    const times: number[] = [];
    let bytes = NaN;
    // This process's own CPU over the edit: near 1.0 means the simulated fleet, not the control
    // plane, was the bottleneck of the measurement.
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    const all = new Promise<void>((resolve) => {
      let left = live.length;
      if (left === 0) resolve();
      const start = performance.now();
      for (const s of live) {
        s.watch = {
          baseline: new Map(s.versions),
          onNew: (at, size) => {
            times.push(at - start);
            bytes = size;
            if (--left === 0) resolve();
          },
        };
      }
      writeFileSync(path.join(configDir, ROUTE_FILE), routeYaml(e));
      log(`edit ${e}: route file written at ${new Date().toISOString()}`);
    });
    await Promise.race([all, sleep(convergeTimeoutMs)]);
    const used = process.cpuUsage(cpu0);
    const simBusy = (used.user + used.system) / 1000 / (performance.now() - wall0);
    for (const s of live) s.watch = undefined;
    results.push({ converged: times.length, ms: times.length ? summarise(times) : undefined, timedOut: live.length - times.length, simBusy, bytes });
    log(`edit ${e}: ${times.length}/${live.length} converged, p99 ${results.at(-1)?.ms?.p99.toFixed(1) ?? '-'} ms, ${bytes} bytes per proxy, simulator ${(100 * simBusy).toFixed(0)} % busy`);
    // Let the control plane go quiet again before the next edit.
    const quietEnd = performance.now() + 30_000;
    await sleep(settleMs);
    for (let i = 0; i < 1000 && performance.now() < quietEnd && performance.now() - lastResponseAt < settleMs; i++) await sleep(100);
  }
  const errors = sims.filter((s) => s.error !== undefined).map((s) => s.error!);
  for (const s of sims) s.close();
  const syncBytes = sims.map((s) => s.syncBytes).filter((b): b is number => b !== undefined).sort((a, b) => a - b);
  emitResult({ proxies, protocol, connect, edits: results, responses, rdsBytes, syncBytes: syncBytes[syncBytes.length >> 1], streamErrors: errors.length, firstError: errors[0] });
  setTimeout(() => process.exit(0), 100).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`ads-sim: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
