// Ambient mode in Kubernetes mode, against the STAND-IN API server (test/k8s/apiserver.ts; no
// real Kubernetes runs here): pods enrolled by their Namespace's or their own label become
// workloads on their node (injected ones stay sidecars, `none` opts out, a bad value is
// reported); the node proxy proves its node with a token bound to its pod (TokenReview's
// node-name), gets the identities of its own node's ambient pods only, and its xDS stream.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toStruct, unpack, type Plain } from '../../api/codec.js';
import { adsService, caService, type DiscoveryRequest, type DiscoveryResponse, type IstioCertificateResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { buildCsr } from '../../certs/csr.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import type { ControlPlane } from '../../control-plane/main.js';
import { eventually } from '../support/eventually.js';
import { meshedPod, startKubeControlPlane, startStandInCluster, type StandInCluster } from './harness.js';

const CART = 'spiffe://cluster.local/ns/shop/sa/cart';
const PAY = 'spiffe://cluster.local/ns/shop/sa/pay';

let cluster: StandInCluster;
let cp: ControlPlane;
let client: grpc.Client;

/** A running pod as the kubelet reports it, not injected. */
function pod(name: string, namespace: string, o: { labels?: Record<string, string>; node: string; ip: string; sa: string }) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: o.labels ?? {} },
    spec: { serviceAccountName: o.sa, nodeName: o.node, containers: [{ name: 'app', image: 'app:1', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
    status: { phase: 'Running', podIP: o.ip },
  };
}

/** A token bound to the node proxy pod `name` (weft-system/weft-node), as the kubelet projects it. */
function nodeProxyToken(name: string): string {
  const uid = String((cluster.api.get('v1', 'Pod', 'weft-system', name)?.metadata as { uid?: string } | undefined)?.uid);
  return cluster.api.issueToken({ namespace: 'weft-system', serviceAccount: 'weft-node', audiences: ['weft-ca'], pod: { name, uid } });
}

async function createCertificate(token: string, impersonate: string): Promise<IstioCertificateResponse> {
  const keys = await generateWorkloadKeyPair();
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const m = caService.CreateCertificate;
  const req = { csr: buildCsr({ privateKey: keys.privateKey }), validity_duration: 3600, metadata: toStruct({ ImpersonatedIdentity: impersonate }) };
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, md, (err, res) => (err || !res ? reject(err) : resolve(res))),
  );
}

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call should have been refused').toBeDefined();
  return err as grpc.ServiceError;
}

const workloadsOnNode = (node: string) => cp.model().ambientWorkloadsOnNode(node).map((w) => `${w.metadata.namespace}/${w.metadata.name}`);

beforeAll(async () => {
  cluster = await startStandInCluster();
  const api = cluster.api;
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'weft.dev/dataplane-mode': 'ambient' } } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'legacy' } });
  for (const sa of [['weft-system', 'weft-node'], ['shop', 'cart'], ['shop', 'pay'], ['legacy', 'lone']]) {
    api.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa[1], namespace: sa[0] } });
  }
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'cart', namespace: 'shop' },
    spec: { clusterIP: '10.96.0.10', selector: { app: 'cart' }, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }] },
  });
  api.apply(pod('cart-1', 'shop', { labels: { app: 'cart' }, node: 'node-a', ip: '10.1.0.5', sa: 'cart' }));
  api.apply(pod('pay-1', 'shop', { node: 'node-b', ip: '10.1.0.6', sa: 'pay' }));
  api.apply(pod('out-1', 'shop', { labels: { 'weft.dev/dataplane-mode': 'none' }, node: 'node-a', ip: '10.1.0.7', sa: 'cart' }));
  api.apply(pod('lone', 'legacy', { labels: { 'weft.dev/dataplane-mode': 'ambient' }, node: 'node-a', ip: '10.2.0.1', sa: 'lone' }));
  api.apply(pod('plain', 'legacy', { node: 'node-a', ip: '10.2.0.2', sa: 'lone' }));
  api.apply(pod('odd', 'legacy', { labels: { 'weft.dev/dataplane-mode': 'sometimes' }, node: 'node-a', ip: '10.2.0.3', sa: 'lone' }));
  api.apply(pod('wp-1', 'shop', { labels: { 'gateway.networking.k8s.io/gateway-name': 'wp' }, node: 'node-b', ip: '10.1.0.9', sa: 'wp' }));
  const injected = meshedPod({ name: 'sc-1', namespace: 'shop', labels: { app: 'cart' }, serviceAccount: 'cart', ip: '10.1.0.8' });
  api.apply({ ...injected, spec: { ...(injected.spec as object), nodeName: 'node-a' } });
  api.apply(pod('weft-node-a1', 'weft-system', { node: 'node-a', ip: '10.0.0.1', sa: 'weft-node' }));
  const ref = (name: string) => ({ addresses: ['10.1.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name, namespace: 'shop' } });
  api.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'cart-x1', namespace: 'shop', labels: { 'kubernetes.io/service-name': 'cart' } },
    addressType: 'IPv4',
    endpoints: [ref('cart-1'), ref('out-1'), ref('wp-1')],
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
  });
  cp = await startKubeControlPlane(cluster, 'cp', { webhookPort: -1 });
  client = new grpc.Client(`127.0.0.1:${cp.xdsAddress.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await cp?.stop();
  await cluster?.close();
});

describe('ambient pods from the Kubernetes API (stand-in API server)', () => {
  it('enrolls pods by namespace or own label, on their node; `none`, plain, injected and waypoint pods are not carried', () => {
    expect(workloadsOnNode('node-a')).toEqual(['legacy/lone', 'shop/cart-1']);
    expect(workloadsOnNode('node-b')).toEqual(['shop/pay-1']);
    const model = cp.model();
    expect(model.workloadEntry('shop', 'cart-1')?.spec).toMatchObject({ address: '10.1.0.5', nodeName: 'node-a', serviceAccount: 'cart', ports: { http: 8080 } });
    expect(model.workloadEntry('shop', 'out-1')).toBeUndefined();
    expect(model.workloadEntry('legacy', 'plain')).toBeUndefined();
    expect(model.dataplaneMode(model.workloadEntry('shop', 'sc-1')!, false)).toBe('sidecar');
    expect(model.workloadEntry('shop', 'wp-1')?.spec.nodeName).toBe('node-b');
    // Slice endpoints of an ambient pod go through its node proxy; an opted-out or waypoint pod is reached as it is.
    expect(model.endpointSlices('shop', 'cart')[0]?.endpoints.map((e) => e.targetRef?.kind)).toEqual(['WorkloadEntry', 'Pod', 'Pod']);
  });

  it('reports a pod whose dataplane-mode Weft does not know, naming the pod, field and value', async () => {
    const status = (await (await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/status`)).json()) as { problems: unknown[] };
    expect(status.problems).toContainEqual({
      object: 'Pod legacy/odd',
      field: 'metadata.labels["weft.dev/dataplane-mode"]',
      message: 'must be "ambient" or "none", got "sometimes"; the label is ignored',
    });
  });

  it("gives the node proxy (TokenReview: its pod's node) the identity of an ambient pod on its node", async () => {
    const token = nodeProxyToken('weft-node-a1');
    const res = await createCertificate(token, CART);
    expect(new X509Certificate(res.cert_chain[0]!).subjectAltName).toBe(`URI:${CART}`);
    expect(cluster.api.tokenReviews.find((r) => r.token === token)?.audiences).toEqual(['weft-ca']);
  });

  it('refuses it the identity of a pod on another node, saying where that pod runs', async () => {
    const token = nodeProxyToken('weft-node-a1');
    const other = await refused(createCertificate(token, PAY));
    expect(other.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(other.details).toBe(`node node-a may not have ${PAY}: no ambient workload with that identity runs on node-a; it runs on node-b (shop/pay-1 on node-b)`);
  });

  it("refuses a node proxy's token that names no node (not bound to a pod)", async () => {
    const unbound = cluster.api.issueToken({ namespace: 'weft-system', serviceAccount: 'weft-node', audiences: ['weft-ca'] });
    const err = await refused(createCertificate(unbound, CART));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toContain('names no node');
  });

  it("serves the node proxy's xDS stream: its node's pods", async () => {
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'ADS');
    const ads = new Ctor(`127.0.0.1:${cp.xdsAddress.port}`, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${nodeProxyToken('weft-node-a1')}`);
    const m = adsService.StreamAggregatedResources;
    const stream = ads.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    let listeners: string[] = [];
    let error: grpc.ServiceError | undefined;
    stream.on('error', (e: grpc.ServiceError) => (error = e));
    stream.on('data', (res: DiscoveryResponse) => {
      if (res.type_url === TypeUrl.Listener) listeners = res.resources.map((r) => String((unpack(r) as Plain).name));
      stream.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: [] });
    });
    stream.write({ node: { id: 'ambient~node-a', metadata: toStruct({ MODE: 'ambient', NODE_NAME: 'node-a' }) }, type_url: TypeUrl.Listener, resource_names: [] });
    try {
      await eventually(() => expect(listeners).toEqual(['10.96.0.10_80', 'ambient|legacy|lone', 'ambient|shop|cart-1']));
      expect(error).toBeUndefined();
    } finally {
      stream.cancel();
      ads.close();
    }
  });

  it('follows the Namespace label: unlabelling it leaves only pods enrolled by their own label', async () => {
    cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    await eventually(() => expect(workloadsOnNode('node-a')).toEqual(['legacy/lone']));
    expect(cp.model().workloadEntry('shop', 'cart-1')).toBeUndefined();
  });
});

describe('waypoint Gateways from the Kubernetes API (stand-in API server)', () => {
  const GW = 'gateway.networking.k8s.io/v1';
  interface WireCondition { type: string; status: string; reason: string; message: string; observedGeneration?: number; lastTransitionTime: string }
  interface GatewayShape {
    metadata: { generation: number; resourceVersion: string };
    status?: { addresses?: { type: string; value: string }[]; conditions?: WireCondition[]; listeners?: { name: string; attachedRoutes: number; conditions: WireCondition[] }[] };
  }
  const gateway = (name: string, className: string, listeners = [{ name: 'mesh', port: 15008, protocol: 'HBONE' }]) => ({
    apiVersion: GW,
    kind: 'Gateway',
    metadata: { name, namespace: 'shop' },
    spec: { gatewayClassName: className, listeners },
  });
  const get = (name: string) => cluster.api.get(GW, 'Gateway', 'shop', name) as GatewayShape | undefined;
  const conditions = (list: WireCondition[] | undefined) => (list ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`);
  const kubeDebug = async () =>
    (await (await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/kubernetes`)).json()) as { leader: boolean; statusWrites: number; statusPasses: number };

  it("writes a waypoint's status: accepted, programmed by its replicas, their addresses, its listener", async () => {
    cluster.api.apply(gateway('wp', 'weft-waypoint'));
    await eventually(() => {
      const gw = get('wp')!;
      expect(conditions(gw.status?.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed']);
      expect(gw.status?.addresses).toEqual([{ type: 'IPAddress', value: '10.1.0.9' }]);
      expect(gw.status?.listeners?.map((l) => [l.name, l.attachedRoutes, ...conditions(l.conditions)])).toEqual([
        ['mesh', 0, 'Accepted=True/Accepted', 'Programmed=True/Programmed', 'ResolvedRefs=True/ResolvedRefs'],
      ]);
      expect(gw.status?.conditions?.every((c) => c.observedGeneration === gw.metadata.generation && /Z$/.test(c.lastTransitionTime))).toBe(true);
    });
  });

  it('says a waypoint with no replica is not programmed, and how to deploy one; a replica programs it', async () => {
    cluster.api.apply(gateway('lonely', 'weft-waypoint'));
    await eventually(() => {
      const c = get('lonely')!.status?.conditions?.find((x) => x.type === 'Programmed');
      expect(c?.status).toBe('False');
      expect(c?.reason).toBe('NoResources');
      expect(c?.message).toContain('weft waypoint apply -n shop --name lonely');
    });
    cluster.api.apply(pod('lonely-1', 'shop', { labels: { 'gateway.networking.k8s.io/gateway-name': 'lonely' }, node: 'node-b', ip: '10.1.0.20', sa: 'wp' }));
    await eventually(() => {
      const gw = get('lonely')!;
      expect(conditions(gw.status?.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed']);
      expect(gw.status?.addresses).toEqual([{ type: 'IPAddress', value: '10.1.0.20' }]);
    });
  });

  it('refuses a listener a waypoint cannot serve, naming what it needs', async () => {
    cluster.api.apply(gateway('web', 'weft-waypoint', [{ name: 'http', port: 80, protocol: 'HTTP' }]));
    await eventually(() => {
      const gw = get('web')!;
      expect(conditions(gw.status?.conditions)).toEqual(['Accepted=False/ListenersNotValid', 'Programmed=False/Invalid']);
      const listener = gw.status?.listeners?.[0];
      expect(conditions(listener?.conditions)).toEqual(['Accepted=False/UnsupportedProtocol', 'Programmed=False/Invalid', 'ResolvedRefs=True/ResolvedRefs']);
      expect(listener?.conditions[0]?.message).toContain('got protocol "HTTP"');
    });
  });

  it("leaves other controllers' Gateways alone, and writes nothing when nothing it reports changed", async () => {
    cluster.api.apply(gateway('edge', 'example-ingress', [{ name: 'https', port: 443, protocol: 'HTTPS' }]));
    await eventually(async () => expect(get('wp')!.status?.conditions).toBeDefined());
    // A change Weft reads but that moves no status: a pass runs, and writes nothing. (The
    // stand-in, as the API server, sends custom resources back with their keys sorted.)
    const settled = await kubeDebug();
    expect(settled.leader).toBe(true);
    cluster.api.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'extra', namespace: 'shop' } });
    await eventually(async () => expect((await kubeDebug()).statusPasses).toBeGreaterThan(settled.statusPasses));
    expect((await kubeDebug()).statusWrites).toBe(settled.statusWrites);
    expect(get('edge')!.status).toBeUndefined();
    expect(cp.model().problems.filter((p) => String(p.object).includes('edge'))).toEqual([]);
  });
});

describe('the waypoint GatewayClass (stand-in API server)', () => {
  const GW = 'gateway.networking.k8s.io/v1';
  interface ClassShape { spec: { controllerName: string }; metadata: { generation: number }; status?: { conditions?: { type: string; status: string; reason: string; message: string; observedGeneration?: number }[] } }
  const getClass = (name: string) => cluster.api.get(GW, 'GatewayClass', undefined, name) as ClassShape | undefined;

  it('is created when missing, naming Weft as its controller, and accepted', async () => {
    await eventually(() => {
      const c = getClass('weft-waypoint');
      expect(c?.spec.controllerName).toBe('weft.dev/control-plane');
      expect(c?.status?.conditions?.map((x) => `${x.type}=${x.status}/${x.reason}`)).toEqual(['Accepted=True/Accepted']);
      expect(c?.status?.conditions?.[0]?.observedGeneration).toBe(c?.metadata.generation);
    });
    // Deleted, it comes back.
    cluster.api.remove(GW, 'GatewayClass', undefined, 'weft-waypoint');
    await eventually(() => expect(getClass('weft-waypoint')?.status?.conditions?.[0]?.status).toBe('True'));
  });

  it("refuses another class naming Weft's controller, and leaves other controllers' classes alone", async () => {
    cluster.api.apply({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'my-waypoints' }, spec: { controllerName: 'weft.dev/control-plane' } });
    cluster.api.apply({ apiVersion: GW, kind: 'GatewayClass', metadata: { name: 'nginx' }, spec: { controllerName: 'example.com/ingress' } });
    await eventually(() => {
      const c = getClass('my-waypoints')?.status?.conditions?.[0];
      expect(`${c?.type}=${c?.status}/${c?.reason}`).toBe('Accepted=False/Unsupported');
      expect(c?.message).toBe('Weft serves waypoints only, of class weft-waypoint');
    });
    expect(getClass('nginx')?.status).toBeUndefined();
  });
});
