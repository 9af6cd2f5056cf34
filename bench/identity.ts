// Identity benchmark: certificates the CA signs per second over gRPC, TLS handshakes per second on
// the inbound listener (real MeshTls), and the latency mTLS adds over plaintext for one hop, both
// measured in the same run. Standalone, from the repository root: `node dist/bench/identity.js
// [seconds]` (writes bench/results/identity.json); bench/run.ts may call runIdentityBench().
// Everything runs in one process on 127.0.0.1, load generator included.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { pack } from '../api/codec.js';
import { RESOURCE_TYPES } from '../api/registry.js';
import { caService } from '../api/services.js';
import { TypeUrl } from '../api/types.js';
import { CertificateAuthority } from '../certs/ca.js';
import { buildCsr } from '../certs/csr.js';
import { generateWorkloadKeyPair } from '../certs/keys.js';
import type { Logger } from '../core/log.js';
import { createCaService } from '../control-plane/ca/service.js';
import { parseAllDocuments } from 'yaml';
import { buildModel, parseObject, type ConfigObject } from '../control-plane/model/index.js';
import { translate } from '../control-plane/translate/index.js';
import { CaClient } from '../proxy/identity/ca-client.js';
import { createInboundListener, type InboundListener } from '../proxy/inbound/index.js';
import { ProxyState } from '../proxy/state/state.js';
import { tlsTransports } from '../proxy/transport/mesh.js';
import { MeshTls, type IdentitySource } from '../proxy/transport/tls.js';

export interface BenchResult {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly note?: string;
}

const TD = 'cluster.local';
const SERVER_ID = `spiffe://${TD}/ns/bench/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/bench/sa/client`;
const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
/** Hard caps on every loop, whatever `seconds` says. */
const MAX_OPS = 2_000_000;

interface WorkloadCert {
  readonly keyPem: string;
  readonly chainPem: string[];
  readonly identity: string;
}

async function issue(ca: CertificateAuthority, identity: string): Promise<WorkloadCert> {
  const keys = await generateWorkloadKeyPair();
  return { keyPem: keys.privateKeyPem, chainPem: await ca.issue({ publicKey: keys.publicKey, identity, ttlSeconds: 3600 }), identity };
}

/** Runs `op` with `concurrency` workers until `ms` pass (or MAX_OPS); returns operations per second. */
async function rate(ms: number, concurrency: number, op: () => Promise<void>): Promise<{ perSecond: number; count: number; errors: number }> {
  let count = 0;
  let errors = 0;
  const start = performance.now();
  const deadline = start + ms;
  const worker = async () => {
    while (performance.now() < deadline && count + errors < MAX_OPS) {
      try {
        await op();
        count++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { perSecond: (count * 1000) / (performance.now() - start), count, errors };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

// ---- 1. CA: CreateCertificate over gRPC -------------------------------------------------------

async function benchCa(ca: CertificateAuthority, ms: number): Promise<BenchResult[]> {
  const handlers = createCaService({
    ca,
    authenticator: { authenticate: async () => ({ namespace: 'bench', serviceAccount: 'client' }) },
    trustDomain: TD,
    log: silent,
  });
  const server = new grpc.Server();
  server.addService(caService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  // Keys and CSRs are the workloads' cost, not the CA's: made before the clock starts.
  const csrs = await Promise.all(Array.from({ length: 32 }, async () => buildCsr({ privateKey: (await generateWorkloadKeyPair()).privateKey })));
  const client = new CaClient({ address: `127.0.0.1:${port}` });
  let i = 0;
  try {
    await client.createCertificate({ csr: csrs[0] as string, token: 'bench' }); // warm-up
    const r = await rate(ms, 16, async () => {
      const chain = await client.createCertificate({ csr: csrs[i++ % csrs.length] as string, token: 'bench', ttlSeconds: 3600 });
      if (chain.length === 0) throw new Error('empty chain');
    });
    return [
      {
        name: 'CA: certificates signed per second (gRPC CreateCertificate, ECDSA P-256 CSR, RSA-2048 root)',
        value: Math.round(r.perSecond),
        unit: 'certs/s',
        note: `${r.count} in ${(ms / 1000).toFixed(0)} s, 16 in flight, ${r.errors} errors; client in the same process`,
      },
    ];
  } finally {
    client.close();
    server.forceShutdown();
  }
}

// ---- 2 and 3: the inbound listener with real MeshTls ------------------------------------------

function source(cert: WorkloadCert, roots: string[]): IdentitySource {
  return { current: () => cert, trustBundle: () => roots, subscribe: () => () => {} };
}

/** The server sidecar's config as the control plane makes it (PERMISSIVE: TLS and plaintext chains). */
function inboundConfig(appPort: number): ProxyState {
  const objects: ConfigObject[] = [];
  for (const doc of parseAllDocuments(`apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: server, namespace: bench }
spec: { address: 127.0.0.1, ports: { http: ${appPort} }, serviceAccount: server }
`)) {
    const r = parseObject(doc.toJS());
    if (!r.ok) throw new Error(`bench config invalid: ${JSON.stringify(r.problems)}`);
    objects.push(r.object);
  }
  const model = buildModel(objects);
  const set = translate(model, { id: 'server.bench', workload: 'server', namespace: 'bench', mode: 'sidecar' }, () => undefined, { trustDomain: TD, mtls: true });
  const state = new ProxyState();
  for (const typeUrl of [TypeUrl.Cluster, TypeUrl.Listener] as const) {
    const decoded = new Map<string, unknown>();
    for (const [name, plain] of set[typeUrl]) {
      const r = RESOURCE_TYPES.get(typeUrl)!.decode(pack(typeUrl, plain));
      if (!r.ok) throw new Error(`bench config rejected: ${JSON.stringify(r.problems)}`);
      decoded.set(name, r.value);
    }
    state.apply(typeUrl, decoded, 'bench');
  }
  return state;
}

async function startApp(): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => res.end('ok\n'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function clientTlsOptions(cert: WorkloadCert, appPort: number): tls.ConnectionOptions {
  return {
    host: '127.0.0.1',
    // Built once, as a sidecar's MeshTls does: key, chain and roots are not parsed per connection.
    secureContext: tls.createSecureContext({ key: cert.keyPem, cert: cert.chainPem.slice(0, -1).join(''), ca: cert.chainPem.slice(-1), minVersion: 'TLSv1.3' }),
    servername: `${appPort}.inbound.weft.internal`,
    checkServerIdentity: () => undefined, // the SPIFFE ID, not a DNS name, identifies the server
    minVersion: 'TLSv1.3',
  };
}

/**
 * New mTLS connections per second into the inbound listener: full handshakes (no session offered)
 * against resumed ones (the session of an earlier connection offered, as MeshTls.connect does),
 * alternating one-second slices of each so that drift on a shared machine hits both alike. CPU
 * per connection counts both ends: client and listener share this process.
 */
async function benchHandshakes(port: number, opts: tls.ConnectionOptions, ms: number): Promise<BenchResult[]> {
  let session: Buffer | undefined;
  let resumedCount = 0;
  const handshake = (offer: boolean) => () =>
    new Promise<void>((resolve, reject) => {
      const s = tls.connect({ ...opts, port, ALPNProtocols: ['http/1.1'], ...(offer && session ? { session } : {}) }, () => {
        if (s.isSessionReused()) resumedCount++;
        // The ticket comes after the handshake: keep the first socket until it has one.
        if (offer && !session) s.once('session', (x: Buffer) => ((session = x), s.destroy(), resolve()));
        else {
          s.destroy();
          resolve();
        }
      });
      s.once('error', reject);
      s.setTimeout(5_000, () => s.destroy(new Error('handshake timed out')));
    });
  await handshake(false)();
  await handshake(true)();
  const kinds = { full: { count: 0, errors: 0, ms: 0, cpuUs: 0 }, resumed: { count: 0, errors: 0, ms: 0, cpuUs: 0 } };
  const slice = 1000;
  for (let i = 0; i < Math.max(2, Math.round(ms / slice)); i++) {
    const kind = i % 2 === 0 ? 'full' : 'resumed';
    const k = kinds[kind];
    const cpu0 = process.cpuUsage();
    const r = await rate(slice, 8, handshake(kind === 'resumed'));
    const cpu = process.cpuUsage(cpu0);
    k.count += r.count;
    k.errors += r.errors;
    k.ms += (r.count * 1000) / r.perSecond;
    k.cpuUs += cpu.user + cpu.system;
  }
  const perSecond = (k: typeof kinds.full) => (k.count * 1000) / k.ms;
  const note = (k: typeof kinds.full) => `${k.count} in ${(k.ms / 1000).toFixed(1)} s, 8 concurrent new connections, ${k.errors} errors; client in the same process`;
  return [
    {
      name: 'inbound listener: mTLS handshakes per second (TLS 1.3, ECDSA P-256, client certificate verified)',
      value: Math.round(perSecond(kinds.full)),
      unit: 'handshakes/s',
      note: note(kinds.full),
    },
    {
      name: 'inbound listener: resumed mTLS handshakes per second (TLS 1.3 session ticket, PSK with ECDHE)',
      value: Math.round(perSecond(kinds.resumed)),
      unit: 'handshakes/s',
      note: `${note(kinds.resumed)}; ${resumedCount} resumed`,
    },
    { name: 'resumed / full handshakes per second', value: Math.round((perSecond(kinds.resumed) / perSecond(kinds.full)) * 100) / 100, unit: 'x' },
    { name: 'CPU per full handshake, both ends', value: Math.round(kinds.full.cpuUs / kinds.full.count), unit: 'µs' },
    { name: 'CPU per resumed handshake, both ends', value: Math.round(kinds.resumed.cpuUs / kinds.resumed.count), unit: 'µs' },
  ];
}

async function benchLatency(port: number, opts: tls.ConnectionOptions, ms: number): Promise<BenchResult[]> {
  const plainAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const tlsAgent = new https.Agent({ ...opts, keepAlive: true, maxSockets: 1 });
  const get = (secure: boolean) =>
    new Promise<number>((resolve, reject) => {
      const start = performance.now();
      const req = (secure ? https : http).request(
        { host: '127.0.0.1', port, path: '/', headers: { host: 'server' }, agent: secure ? tlsAgent : plainAgent },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - start) : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end();
    });
  const plain: number[] = [];
  const secure: number[] = [];
  // Warm both connections, then alternate so that drift on a shared machine hits both alike.
  for (let i = 0; i < 50; i++) {
    await get(false);
    await get(true);
  }
  const deadline = performance.now() + ms;
  while (performance.now() < deadline && plain.length < MAX_OPS / 2) {
    plain.push(await get(false));
    secure.push(await get(true));
  }
  plainAgent.destroy();
  tlsAgent.destroy();
  plain.sort((a, b) => a - b);
  secure.sort((a, b) => a - b);
  const us = (v: number) => Math.round(v * 1000);
  const out: BenchResult[] = [];
  const note = `${plain.length} requests each, one keep-alive connection each, alternating; client → inbound listener → app`;
  for (const p of [50, 90, 99]) {
    const a = percentile(plain, p);
    const b = percentile(secure, p);
    const label = p === 50 ? 'median' : `p${p}`;
    out.push({ name: `one hop, plaintext: ${label} latency`, value: us(a), unit: 'µs', ...(p === 50 ? { note } : {}) });
    out.push({ name: `one hop, mTLS: ${label} latency`, value: us(b), unit: 'µs' });
    out.push({ name: `one hop, mTLS / plaintext: ${label} ratio`, value: Math.round((b / a) * 100) / 100, unit: 'x' });
  }
  return out;
}

/** Runs the three measurements, each for about `seconds`. */
export async function runIdentityBench(opts: { seconds: number }): Promise<BenchResult[]> {
  const ms = Math.max(1, opts.seconds) * 1000;
  const ca = await CertificateAuthority.loadOrCreate({ trustDomain: TD, log: silent });
  const results: BenchResult[] = [...(await benchCa(ca, ms))];

  const app = await startApp();
  const serverCert = await issue(ca, SERVER_ID);
  const clientCert = await issue(ca, CLIENT_ID);
  const serverTls = new MeshTls(source(serverCert, ca.trustBundle()), { log: silent });
  const state = inboundConfig(app.port);
  let listener: InboundListener | undefined;
  try {
    listener = createInboundListener({
      port: 0,
      host: '127.0.0.1',
      getConfig: () => state.config.get(),
      transport: tlsTransports(serverTls, { log: silent }).inbound,
      ownIdentity: () => SERVER_ID,
      log: silent,
    });
    const { port } = await listener.listen();
    const clientOpts = clientTlsOptions(clientCert, app.port);
    results.push(...(await benchHandshakes(port, clientOpts, ms)));
    results.push(...(await benchLatency(port, clientOpts, ms)));
  } finally {
    await listener?.close(1000);
    serverTls.close();
    await app.close();
  }
  return results;
}

export function markdownTable(results: readonly BenchResult[]): string {
  const rows = results.map((r) => `| ${r.name} | ${r.value} | ${r.unit} | ${r.note ?? ''} |`);
  return ['| measure | value | unit | note |', '|---|---:|---|---|', ...rows].join('\n');
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? process.env.WEFT_BENCH_SECONDS ?? 5);
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`seconds must be between 1 and 600, got ${process.argv[2]}`);
  const results = await runIdentityBench({ seconds });
  const dir = path.resolve('bench', 'results'); // run from the repository root, as npm scripts do
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'identity.json');
  writeFileSync(file, JSON.stringify({ when: new Date().toISOString(), node: process.version, seconds, results }, null, 2) + '\n');
  process.stdout.write(`${markdownTable(results)}\n\nwritten to ${file}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`identity bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
