// Ambient mode through the whole local-mode control plane (real files, real gRPC): node tokens
// written beside the workload tokens, a node proxy's ADS stream (`ambient~<node>`) served its
// node's pods and L4 VIP listeners and following config edits, a wrong node refused, and the CA
// issuing a pod's identity to its own node's proxy only.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toStruct, unpack, type Plain } from '../api/codec.js';
import { adsService, caService, type DiscoveryRequest, type DiscoveryResponse, type IstioCertificateResponse } from '../api/services.js';
import { TypeUrl } from '../api/types.js';
import { buildCsr } from '../certs/csr.js';
import { generateWorkloadKeyPair } from '../certs/keys.js';
import { configureLogging } from '../core/log.js';
import { eventually } from '../test/support/eventually.js';
import { controlPlaneConfig } from './config.js';
import { startControlPlane, type ControlPlane } from './main.js';

configureLogging({ level: 'error' });

const config = (cartNode: string) => `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { weft.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Service
metadata: { name: cart, namespace: shop, labels: { weft.dev/use-waypoint: wp } }
spec: { clusterIP: 10.96.0.10, selector: { app: cart }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: cart-1, namespace: shop, labels: { app: cart } }
spec: { address: 10.1.0.5, nodeName: ${cartNode}, serviceAccount: cart }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: pay-1, namespace: shop, labels: { app: pay } }
spec: { address: 10.1.0.6, nodeName: node-b, serviceAccount: pay, ports: { http: 8080 } }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: wp-1, namespace: shop, labels: { gateway.networking.k8s.io/gateway-name: wp } }
spec: { address: 10.1.0.9, nodeName: node-b, serviceAccount: wp }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: odd, namespace: shop, labels: { weft.dev/dataplane-mode: maybe } }
spec: { address: 10.1.0.10, serviceAccount: odd }
`;

/** A node proxy's ADS stream, as `weft proxy --mode ambient` opens one; ACKs everything. */
class NodeAds {
  readonly latest = new Map<string, Map<string, Plain>>();
  error: grpc.ServiceError | undefined;
  private readonly client: grpc.Client;
  private readonly stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;

  constructor(target: string, nodeName: string, token: string, id = `ambient~${nodeName}`) {
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'ADS');
    this.client = new Ctor(target, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const m = adsService.StreamAggregatedResources;
    this.stream = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    this.stream.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) this.error = e;
    });
    this.stream.on('data', (res: DiscoveryResponse) => {
      this.latest.set(res.type_url, new Map(res.resources.map((any) => unpack(any)).map((r) => [String(r.name ?? r.cluster_name), r])));
      this.stream.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: this.names(res.type_url) });
    });
    this.stream.write({ node: { id, metadata: toStruct({ MODE: 'ambient', NODE_NAME: nodeName }) }, type_url: TypeUrl.Listener, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.Cluster, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: ['waypoint|wp|shop'] });
  }

  private names(typeUrl: string): string[] {
    return typeUrl === TypeUrl.ClusterLoadAssignment ? ['waypoint|wp|shop'] : [];
  }

  namesOf(typeUrl: TypeUrl): string[] {
    return [...(this.latest.get(typeUrl)?.keys() ?? [])];
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

let dir: string;
let cp: ControlPlane;
let ca: grpc.Client;
const streams: NodeAds[] = [];

const stateDir = () => path.join(dir, 'state');
const nodeToken = (node: string) => readFileSync(path.join(stateDir(), 'tokens', 'nodes', `${node}.token`), 'utf8').trim();

function createCertificate(token: string, impersonate: string): Promise<IstioCertificateResponse> {
  return generateWorkloadKeyPair().then((keys) => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const m = caService.CreateCertificate;
    const req = { csr: buildCsr({ privateKey: keys.privateKey }), validity_duration: 3600, metadata: toStruct({ ImpersonatedIdentity: impersonate }) };
    return new Promise((resolve, reject) =>
      ca.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, md, (err, res) => (err || !res ? reject(err) : resolve(res))),
    );
  });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'weft-ambient-'));
  const configDir = path.join(dir, 'config');
  mkdirSync(configDir);
  writeFileSync(path.join(configDir, 'mesh.yaml'), config('node-a'));
  cp = await startControlPlane(controlPlaneConfig({ configDir, stateDir: stateDir(), xdsPort: 0, xdsTlsPort: -1, monitorPort: 0, debounceMs: 30 }));
  ca = new grpc.Client(`127.0.0.1:${cp.xdsAddress.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  for (const s of streams) s.close();
  ca?.close();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('ambient mode in the local control plane', () => {
  it('writes a private token per node the workloads name, beside the workload tokens', () => {
    for (const node of ['node-a', 'node-b']) {
      const file = path.join(stateDir(), 'tokens', 'nodes', `${node}.token`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(nodeToken(node)).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
    expect(statSync(path.join(stateDir(), 'tokens', 'shop', 'cart-1.token')).isFile()).toBe(true);
  });

  it("serves a node proxy its node's pods and L4 VIP listeners, and follows edits", async () => {
    const ads = new NodeAds(`127.0.0.1:${cp.xdsAddress.port}`, 'node-a', nodeToken('node-a'));
    streams.push(ads);
    await eventually(() => expect(ads.namesOf(TypeUrl.Listener)).toEqual(['10.96.0.10_80', 'ambient|shop|cart-1']));
    const vip = ads.latest.get(TypeUrl.Listener)?.get('10.96.0.10_80');
    const tcp = ((vip?.filter_chains as Plain[])[0]?.filters as Plain[])[0]?.typed_config as Plain;
    expect(tcp.cluster).toBe('waypoint|wp|shop');
    await eventually(() => expect(ads.namesOf(TypeUrl.Cluster)).toContain('waypoint|wp|shop'));
    await eventually(() => expect(ads.namesOf(TypeUrl.ClusterLoadAssignment)).toEqual(['waypoint|wp|shop']));

    // cart-1 moves to node-b: node-a's proxy no longer carries it.
    writeFileSync(path.join(dir, 'config', 'mesh.yaml'), config('node-b'));
    await eventually(() => expect(ads.namesOf(TypeUrl.Listener)).toEqual(['10.96.0.10_80']));
    writeFileSync(path.join(dir, 'config', 'mesh.yaml'), config('node-a'));
    await eventually(() => expect(ads.namesOf(TypeUrl.Listener)).toEqual(['10.96.0.10_80', 'ambient|shop|cart-1']));
    expect(ads.error).toBeUndefined();
  });

  it("refuses a node token claiming another node's stream", async () => {
    const ads = new NodeAds(`127.0.0.1:${cp.xdsAddress.port}`, 'node-b', nodeToken('node-a'));
    streams.push(ads);
    await eventually(() => expect(ads.error?.code).toBe(grpc.status.UNAUTHENTICATED));
    expect(ads.error?.details).toContain('node id "ambient~node-b" does not match the node its token belongs to (want "ambient~node-a")');
  });

  it("issues a pod's identity to its node's proxy only", async () => {
    const cart = 'spiffe://cluster.local/ns/shop/sa/cart';
    const res = await createCertificate(nodeToken('node-a'), cart);
    expect(res.cert_chain.length).toBeGreaterThan(1);
    const err = (await createCertificate(nodeToken('node-b'), cart).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(`node node-b may not have ${cart}: no ambient workload with that identity runs on node-b; it runs on node-a (shop/cart-1 on node-a)`);
  });

  it('reports an unknown dataplane mode on /debug/status, naming object, field and value', async () => {
    const status = (await (await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/status`)).json()) as { problems: { object?: string; field: string; message: string }[] };
    expect(status.problems).toContainEqual({
      object: 'WorkloadEntry shop/odd',
      field: 'metadata.labels["weft.dev/dataplane-mode"]',
      message: 'must be "ambient" or "none", got "maybe"; the label is ignored',
    });
  });
});
