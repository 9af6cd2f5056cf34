// Builders for the Kubernetes tests: the STAND-IN API server (test/k8s/apiserver.ts; no real
// Kubernetes runs here) behind real TLS with a kubeconfig file, a control plane in --kubernetes
// mode pointed at it, pods as the injector makes them, and a raw ADS client that sees what a
// proxy in such a pod would be sent.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { fromStruct, toStruct, unpack, type Plain } from '../../api/codec.js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { CertificateAuthority } from '../../certs/ca.js';
import { controlPlaneConfig, type KubernetesSettings } from '../../control-plane/config.js';
import { injectPod } from '../../control-plane/injector/inject.js';
import type { Json } from '../../control-plane/injector/patch.js';
import { injectorSettings } from '../../control-plane/injector/settings.js';
import { startControlPlane, type ControlPlane } from '../../control-plane/main.js';
import { configureLogging } from '../../core/log.js';
import { StandInApiServer } from './apiserver.js';

configureLogging({ level: (process.env.WEFT_TEST_LOG_LEVEL as 'debug' | undefined) ?? 'error' });

export interface StandInCluster {
  readonly api: StandInApiServer;
  readonly dir: string;
  readonly kubeconfig: string;
  close(): Promise<void>;
}

/** The stand-in API server on 127.0.0.1 with its own TLS root, and a kubeconfig file for it. */
export async function startStandInCluster(opts: { minor?: string; bookmarkIntervalMs?: number } = {}): Promise<StandInCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-k8s-'));
  const apiCa = await CertificateAuthority.loadOrCreate({ trustDomain: 'stand-in.apiserver' });
  const serving = await apiCa.servingCertificate(['127.0.0.1', 'localhost']);
  const api = await StandInApiServer.start({
    tls: { keyPem: serving.keyPem, chainPem: serving.chainPem, caPem: apiCa.trustBundle().join('') },
    version: { major: '1', minor: opts.minor ?? '30' },
    bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 300,
  });
  const kubeconfig = path.join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfigYaml(), { mode: 0o600 });
  return {
    api,
    dir,
    kubeconfig,
    async close() {
      await api.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A control plane in Kubernetes mode against the stand-in, on free loopback ports. */
export async function startKubeControlPlane(cluster: StandInCluster, name: string, k: Partial<KubernetesSettings> = {}): Promise<ControlPlane> {
  return startControlPlane(
    controlPlaneConfig({
      configDir: '',
      stateDir: path.join(cluster.dir, name),
      xdsPort: 0,
      xdsTlsPort: -1,
      monitorPort: 0,
      debounceMs: 30,
      kubernetes: { kubeconfig: cluster.kubeconfig, webhookPort: 0, leaseDurationSeconds: 2, leaseRetryMs: 200, ...k },
    }),
  );
}

type JsonObject = { [key: string]: Json };

/** A running pod as the kubelet reports it: injected by Weft's injector, with an IP, proxy ready. */
export function meshedPod(opts: {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  serviceAccount: string;
  ip: string;
  ports?: Record<string, number>;
  proxyReady?: boolean;
}): JsonObject {
  const pod: JsonObject = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: opts.name, namespace: opts.namespace, labels: opts.labels },
    spec: {
      serviceAccountName: opts.serviceAccount,
      containers: [
        {
          name: 'app',
          image: 'app:1',
          ports: Object.entries(opts.ports ?? {}).map(([name, containerPort]) => ({ name, containerPort, protocol: 'TCP' })),
        },
      ],
    },
  };
  const injected = injectPod(pod, { settings: injectorSettings(), namespace: opts.namespace, namespaceLabels: undefined });
  if (injected.kind !== 'injected') throw new Error(`test pod not injected: ${JSON.stringify(injected)}`);
  return {
    ...injected.pod,
    status: {
      phase: 'Running',
      podIP: opts.ip,
      initContainerStatuses: [
        { name: 'weft-init', ready: false, state: { terminated: { exitCode: 0 } } },
        { name: 'weft-proxy', ready: opts.proxyReady ?? true, started: true },
      ],
      containerStatuses: [{ name: 'app', ready: true }],
    },
  };
}

/**
 * A raw ADS (state-of-the-world) client, as a proxy in a pod would open one: node id
 * `pod.namespace`, its ServiceAccount token as bearer. Subscribes to LDS, CDS (wildcards), RDS
 * `outbound` and EDS for every EDS cluster; ACKs everything; keeps the latest of each type.
 */
export class RawAdsClient {
  private readonly client: grpc.Client;
  private readonly stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly latest = new Map<string, Map<string, Plain>>();
  private edsNames: string[] = [];
  error: grpc.ServiceError | undefined;

  constructor(target: string, nodeId: string, token: string) {
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'ADS');
    this.client = new Ctor(target, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    const m = adsService.StreamAggregatedResources;
    this.stream = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize, md) as grpc.ClientDuplexStream<
      DiscoveryRequest,
      DiscoveryResponse
    >;
    this.stream.on('error', (e: grpc.ServiceError) => {
      if (e.code !== grpc.status.CANCELLED) this.error = e;
    });
    this.stream.on('data', (res: DiscoveryResponse) => this.onResponse(res));
    const [name = '', namespace = ''] = nodeId.split('.');
    const node = { id: nodeId, metadata: toStruct({ WORKLOAD: nodeId, NAMESPACE: namespace, NAME: name, INBOUND_PORT: 15006, MODE: 'sidecar' }) };
    this.stream.write({ node, type_url: TypeUrl.Listener, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.Cluster, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.RouteConfiguration, resource_names: ['outbound'] });
    this.stream.write({ type_url: TypeUrl.VirtualHost, resource_names: [] });
  }

  resources(typeUrl: string): Map<string, Plain> {
    return this.latest.get(typeUrl) ?? new Map();
  }

  private onResponse(res: DiscoveryResponse): void {
    const items = new Map<string, Plain>();
    for (const any of res.resources) {
      const r = unpack(any);
      items.set(String(r.name ?? r.cluster_name), r);
    }
    this.latest.set(res.type_url, items);
    let names = this.edsNames;
    if (res.type_url === TypeUrl.Cluster) {
      names = [...items.values()].filter((c) => c.type === 'EDS').map((c) => String(c.name)).sort();
    }
    const subscribed = res.type_url === TypeUrl.RouteConfiguration ? ['outbound'] : res.type_url === TypeUrl.ClusterLoadAssignment ? this.edsNames : [];
    this.stream.write({ type_url: res.type_url, version_info: res.version_info, response_nonce: res.nonce, resource_names: subscribed });
    if (JSON.stringify(names) !== JSON.stringify(this.edsNames)) {
      this.edsNames = names;
      this.stream.write({ type_url: TypeUrl.ClusterLoadAssignment, resource_names: names });
    }
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

/** The endpoints (`address:port` with their SPIFFE identity) of one cluster, from EDS. */
export function endpointsOf(ads: RawAdsClient, cluster: string): { address: string; identity: unknown }[] {
  const cla = ads.resources(TypeUrl.ClusterLoadAssignment).get(cluster) as { endpoints?: { lb_endpoints?: Plain[] }[] } | undefined;
  return (cla?.endpoints ?? []).flatMap((l) =>
    (l.lb_endpoints ?? []).map((e) => {
      const sa = (e.endpoint as { address: { socket_address: { address: string; port_value: number } } }).address.socket_address;
      const weft = (e.metadata as { filter_metadata?: { weft?: unknown } } | undefined)?.filter_metadata?.weft;
      return { address: `${sa.address}:${sa.port_value}`, identity: weft === undefined ? undefined : fromStruct(weft).identity };
    }),
  );
}
