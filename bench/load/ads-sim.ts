// N simulated sidecars in one process, for the control-plane benchmark: each is a raw grpc-js
// client on its own connection speaking state-of-the-world ADS as a Weft sidecar does (node id,
// metadata with INBOUND_PORT, bootstrap token; LDS/CDS wildcard, RDS `outbound`, EDS for every
// cluster, SDS `ROOTCA`), ACKing every response at once. It measures how long all of them take
// to sync, then edits the route file K times and measures, per proxy, the time from the edit to
// its ACK of the new RouteConfiguration. Every phase is bounded; prints one BENCH_RESULT line.
// Usage: node dist/bench/load/ads-sim.js --xds H:P --state-dir D --config-dir D --proxies N
//          [--edits 3] [--connect-timeout 60] [--converge-timeout 30] [--settle 2]
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '../../api/codec.js';
import { messageType } from '../../api/protos.js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { proxyName, ROUTE_FILE, routeYaml } from '../lib/cp-config.js';
import { BENCH_NS } from '../lib/mesh.js';
import { summarise } from '../lib/stats.js';
import { emitResult, flags, num, str } from './args.js';

const f = flags();
const xds = str(f, 'xds');
const stateDir = str(f, 'state-dir');
const configDir = str(f, 'config-dir');
const proxies = num(f, 'proxies', 100);
const edits = num(f, 'edits', 3);
const connectTimeoutMs = num(f, 'connect-timeout', 60) * 1000;
const convergeTimeoutMs = num(f, 'converge-timeout', 30) * 1000;
const settleMs = num(f, 'settle', 2) * 1000;

const SYNC_TYPES = [TypeUrl.Listener, TypeUrl.Cluster, TypeUrl.RouteConfiguration, TypeUrl.ClusterLoadAssignment, TypeUrl.Secret] as const;
const log = (msg: string) => process.stderr.write(`ads-sim: ${msg}\n`);

/** EDS names from a CDS response; decoded once per distinct response shape (all proxies get the same). */
const clusterNamesCache = new Map<string, string[]>();
function edsNames(res: DiscoveryResponse): string[] {
  const key = `${res.resources.length}:${res.resources.reduce((a, r) => a + r.value.length, 0)}`;
  let names = clusterNamesCache.get(key);
  if (!names) {
    const type = messageType('envoy.config.cluster.v3.Cluster');
    names = [];
    for (const r of res.resources) {
      const c = type.decode(r.value) as unknown as { name: string; type?: number; eds_cluster_config?: { service_name?: string } };
      if (c.eds_cluster_config) names.push(c.eds_cluster_config.service_name || c.name);
    }
    clusterNamesCache.set(key, names);
  }
  return names;
}

let lastResponseAt = performance.now();
let responses = 0;
/** Size of the last RouteConfiguration response (sum of its resources), bytes. */
let rdsBytes = 0;

class SimProxy {
  readonly id: string;
  readonly client: grpc.Client;
  private call: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private readonly names = new Map<string, string[]>();
  /** Last version received (and ACKed) per type. */
  readonly versions = new Map<string, string>();
  syncedAt: number | undefined;
  /** Set by the edit phase: called with the time an RDS version other than `baseline` arrives. */
  watch: { baseline: string; onNew: (at: number) => void } | undefined;
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

  start(): void {
    const token = readFileSync(path.join(stateDir, 'tokens', BENCH_NS, `${proxyName(this.index)}.token`), 'utf8').trim();
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const m = adsService.StreamAggregatedResources;
    const call = this.client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(m.path, m.requestSerialize, m.responseDeserialize, md);
    this.call = call;
    call.on('data', (res: DiscoveryResponse) => this.onResponse(res));
    call.on('error', (err: Error) => (this.error = err.message));
    call.on('end', () => (this.error ??= 'stream ended'));
    const node = {
      id: this.id,
      metadata: toStruct({ WORKLOAD: this.id, NAMESPACE: BENCH_NS, NAME: proxyName(this.index), INBOUND_PORT: 20000 + this.index, MODE: 'sidecar' }),
      user_agent_name: 'weft-bench-sim',
    };
    this.subscribe(TypeUrl.Listener, [], node);
    this.subscribe(TypeUrl.Cluster, []);
    this.subscribe(TypeUrl.RouteConfiguration, ['outbound']);
    this.subscribe(TypeUrl.Secret, ['ROOTCA']);
  }

  private subscribe(typeUrl: string, names: string[], node?: DiscoveryRequest['node']): void {
    this.names.set(typeUrl, names);
    this.call?.write({ type_url: typeUrl, resource_names: names, ...(node ? { node } : {}) });
  }

  private onResponse(res: DiscoveryResponse): void {
    const now = performance.now();
    lastResponseAt = now;
    responses++;
    this.versions.set(res.type_url, res.version_info);
    // ACK at once: same version, same names, the response's nonce.
    this.call?.write({ version_info: res.version_info, type_url: res.type_url, response_nonce: res.nonce, resource_names: this.names.get(res.type_url) ?? [] });
    if (res.type_url === TypeUrl.Cluster) {
      const eds = edsNames(res);
      const had = this.names.get(TypeUrl.ClusterLoadAssignment);
      if (!had || had.length !== eds.length) this.subscribe(TypeUrl.ClusterLoadAssignment, eds);
    }
    if (this.syncedAt === undefined && SYNC_TYPES.every((t) => this.versions.has(t))) this.syncedAt = now;
    if (res.type_url === TypeUrl.RouteConfiguration) rdsBytes = res.resources.reduce((a, r) => a + r.value.length, 0);
    if (res.type_url === TypeUrl.RouteConfiguration && this.watch && res.version_info !== this.watch.baseline) {
      const w = this.watch;
      this.watch = undefined;
      w.onNew(now);
    }
  }

  close(): void {
    this.call?.cancel();
    this.client.close();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const sims = Array.from({ length: proxies }, (_, i) => new SimProxy(i));
  // Phase 1: everyone connects at once (a control-plane restart), until all hold a full config.
  const t0 = performance.now();
  for (const s of sims) s.start();
  for (let i = 0; i < 100_000; i++) {
    const synced = sims.filter((s) => s.syncedAt !== undefined).length;
    if (synced === proxies || performance.now() - t0 > connectTimeoutMs) break;
    if (i % 20 === 0) log(`${synced}/${proxies} synced after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await sleep(250);
  }
  const syncTimes = sims.filter((s) => s.syncedAt !== undefined).map((s) => s.syncedAt! - t0);
  const connect = { synced: syncTimes.length, ms: syncTimes.length ? summarise(syncTimes) : undefined };
  log(`connect phase: ${connect.synced}/${proxies} synced`);

  // Phase 2: quiet (no response for `settleMs`), bounded.
  const settleEnd = performance.now() + 30_000;
  for (let i = 0; i < 1000 && performance.now() < settleEnd && performance.now() - lastResponseAt < settleMs; i++) await sleep(100);

  // Phase 3: edits, each timed from the file write to every proxy's ACK of the new routes. Only
  // once everyone synced: during a connect storm the numbers would measure the storm.
  const results: { converged: number; ms: ReturnType<typeof summarise> | undefined; timedOut: number; simBusy: number }[] = [];
  const runEdits = connect.synced === proxies ? edits : 0;
  if (runEdits === 0 && edits > 0) log(`skipping the route edits: only ${connect.synced}/${proxies} proxies synced within the bound`);
  for (let e = 1; e <= runEdits; e++) {
    const live = sims.filter((s) => s.syncedAt !== undefined && s.error === undefined);
    const times: number[] = [];
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
          baseline: s.versions.get(TypeUrl.RouteConfiguration) ?? '',
          onNew: (at) => {
            times.push(at - start);
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
    results.push({ converged: times.length, ms: times.length ? summarise(times) : undefined, timedOut: live.length - times.length, simBusy });
    log(`edit ${e}: ${times.length}/${live.length} converged, p99 ${results.at(-1)?.ms?.p99.toFixed(1) ?? '-'} ms, simulator ${(100 * simBusy).toFixed(0)} % busy`);
    // Let the control plane go quiet again before the next edit.
    const quietEnd = performance.now() + 30_000;
    await sleep(settleMs);
    for (let i = 0; i < 1000 && performance.now() < quietEnd && performance.now() - lastResponseAt < settleMs; i++) await sleep(100);
  }
  const errors = sims.filter((s) => s.error !== undefined).map((s) => s.error!);
  for (const s of sims) s.close();
  emitResult({ proxies, connect, edits: results, responses, rdsBytes, streamErrors: errors.length, firstError: errors[0] });
  setTimeout(() => process.exit(0), 100).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`ads-sim: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
