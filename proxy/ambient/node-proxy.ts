// The node proxy's composition root (`weft proxy --mode ambient`), top to bottom: xDS (as
// `ambient~<node>`) → config state → the node agent, which finds each enrolled pod's network
// namespace, keeps its redirect rules and asks for its listeners → one PodRuntime per pod (its
// identity from the CA, its three in-pod listeners) → admin, stats and health ports.
// Nothing starts at import time; `startNodeProxy` builds it all and `stop` drains it.
import { readFileSync } from 'node:fs';
import { Gauge } from 'prom-client';
import { RESOURCE_TYPES } from '../../api/registry.js';
import type { SecretValue } from '../../api/domain.js';
import { TypeUrl } from '../../api/types.js';
import { createLogger, type Logger } from '../../core/log.js';
import { stopOnce } from '../../core/drain.js';
import { readinessAnswer, serveEndpoints, type EndpointServer } from '../../core/http-server.js';
import { createBalancers } from '../balance/registry.js';
import { originalDst as kernelOriginalDst, assertOriginalDstAvailable } from '../capture/original-dst.js';
import { TcpStreams } from '../capture/tcp.js';
import { controlPlaneChannel, splitPem } from '../discovery/channel.js';
import { AdsClient, type XdsProtocol } from '../discovery/ads-client.js';
import { HboneClient } from '../hbone/client.js';
import { CaClient } from '../identity/ca-client.js';
import { IdentityManager } from '../identity/manager.js';
import { ProxyState } from '../state/state.js';
import { MeshMetrics, registerTlsHandshakes } from '../telemetry/metrics.js';
import { newHandshakeCounts } from '../transport/tls.js';
import { NodeAgent, type EnrolledPod, type PodListeners } from './agent.js';
import type { NodeProxyOptions } from './config.js';
import { PodRuntime } from './pod.js';
import { iptablesHostProbes } from './redirect.js';
import { localPods, type LocalPod } from './workloads.js';


export interface RunningNodeProxy {
  readonly ports: { admin: number; stats: number; health: number };
  ready(): boolean;
  /** The agent's view of every pod, for tests and `/ambient/pods`. */
  pods(): ReturnType<NodeAgent['status']>;
  stop(): Promise<void>;
  stopped(): Promise<void>;
}

export async function startNodeProxy(cfg: NodeProxyOptions & { readonly xdsProtocol?: XdsProtocol }, log: Logger = createLogger(`ambient ${cfg.node}`)): Promise<RunningNodeProxy> {
  if (!cfg.originalDst) assertOriginalDstAvailable();
  const readToken = () => readFileSync(cfg.tokenFile, 'utf8').trim();
  const controlPlane = controlPlaneChannel(cfg.xds, cfg.xdsRootCert);
  const { credentials: xdsCredentials, channelOptions } = controlPlane;

  // 1. Config: every accepted xDS update becomes a new immutable snapshot.
  const state = new ProxyState();
  const getConfig = () => state.config.get();
  let roots: string[] = [];

  // 2. The data path's shared parts: balancers, HBONE sessions, TCP relays (for drain).
  const balancers = createBalancers();
  const hbone = new HboneClient({ log: log.child('hbone') });
  const streams = new TcpStreams();
  const metrics = new MeshMetrics({ processMetrics: true });
  const handshakes = newHandshakeCounts();
  registerTlsHandshakes(metrics.registry, handshakes);

  // 3. Pods: one runtime each, made when the agent first finds the pod's namespace. Their
  // identities share one CA channel.
  const runtimes = new Map<string, PodRuntime>();
  const caClient = new CaClient({ address: cfg.xds, credentials: xdsCredentials, channelOptions });
  const newRuntime = (pod: LocalPod): PodRuntime => {
    const identity = new IdentityManager({
      caAddress: cfg.xds,
      caClient,
      token: readToken,
      // The CA issues a pod's identity to this node proxy only if the pod runs on this node.
      metadata: { ImpersonatedIdentity: pod.identity },
      expectedIdentity: pod.identity,
      ttlSeconds: cfg.certTtlSeconds,
      log: log.child(pod.key).child('identity'),
    });
    if (roots.length > 0) identity.setTrustBundle(roots);
    identity.start();
    return new PodRuntime(pod, identity, {
      getConfig,
      balancers,
      streams,
      hbone,
      originalDst: cfg.originalDst ?? kernelOriginalDst,
      ports: cfg.ports,
      connectTimeoutMs: cfg.connectTimeoutMs,
      handshakes,
      log: log.child('pod'),
    });
  };
  const listeners: PodListeners = {
    async ensure(enrolled: EnrolledPod, nsPath: string) {
      const pod = localPods(getConfig()).find((p) => p.key === enrolled.key);
      if (!pod) throw new Error(`pod ${enrolled.key} is no longer in the config`);
      let rt = runtimes.get(pod.key);
      // A pod whose identity changed (new service account) gets a new runtime.
      if (rt && rt.pod.identity !== pod.identity) {
        await rt.close(0);
        runtimes.delete(pod.key);
        rt = undefined;
      }
      if (!rt) runtimes.set(pod.key, (rt = newRuntime(pod)));
      await rt.open(nsPath);
    },
    async release(key: string) {
      const rt = runtimes.get(key);
      runtimes.delete(key);
      await rt?.close(cfg.drainSeconds * 1000);
    },
  };
  const agent = new NodeAgent({ listeners, ...(cfg.kubeletProbeRules ? { hostProbes: iptablesHostProbes() } : {}), intervalMs: cfg.reconcileIntervalMs, log: log.child('agent'), ...(cfg.stateFile ? { stateFile: cfg.stateFile } : {}) });
  state.config.subscribe((config) => {
    // Only a config that has its listeners says which pods belong here: before LDS, "no pod"
    // would take the rules out of every pod this node carried before a restart.
    if (!config.versions.has(TypeUrl.Listener)) return;
    agent.setDesired(localPods(config).map((p) => ({ key: p.key, ip: p.ip, identity: p.identity })));
  });

  new Gauge({
    name: 'weft_ambient_pods',
    help: 'Pods this node proxy should carry, by enrollment state (enrolled, pending, error, removing)',
    labelNames: ['state'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const s of agent.status()) this.inc({ state: s.state });
    },
  });
  new Gauge({
    name: 'weft_ambient_repairs',
    help: 'Drift the node agent found and repaired (rules missing or changed, listeners gone), per pod',
    labelNames: ['pod'],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const s of agent.status()) this.set({ pod: s.key }, s.repairs);
    },
  });

  // 4. xDS: a node proxy, not a workload.
  const ads = new AdsClient({
    target: cfg.xds,
    credentials: xdsCredentials,
    channelOptions,
    node: { id: `ambient~${cfg.node}`, metadata: { MODE: 'ambient', NODE_NAME: cfg.node } },
    token: readToken,
    types: RESOURCE_TYPES,
    localSecrets: new Set(['default']),
    onAccepted: (typeUrl, resources, version) => {
      if (typeUrl === TypeUrl.Secret) {
        const root = (resources.get('ROOTCA') as SecretValue | undefined)?.trustedCa;
        if (root) {
          roots = splitPem(root);
          controlPlane.trust(roots);
          for (const rt of runtimes.values()) rt.identity.setTrustBundle(roots);
        }
      }
      state.apply(typeUrl, resources, version);
    },
    log: log.child('xds'),
    protocol: cfg.xdsProtocol,
  });
  ads.start();
  agent.start();

  const readiness = () => {
    const reasons: string[] = [];
    if (!state.isComplete()) reasons.push(`config incomplete (${state.missing().join(', ') || 'waiting for listeners and clusters'})`);
    for (const s of agent.status()) if (s.state !== 'enrolled') reasons.push(`pod ${s.key} ${s.state}${s.reason ? `: ${s.reason}` : ''}`);
    for (const [key, rt] of runtimes) if (!rt.identity.current()) reasons.push(`pod ${key}: no certificate yet${rt.identity.lastError() ? ` (${rt.identity.lastError()})` : ''}`);
    if (stopper.stopping) reasons.push('draining');
    return { ready: reasons.length === 0, reasons };
  };

  // Stopping leaves every pod's redirect rules in place: while no node proxy runs, enrolled pods
  // fail closed (their connections are refused) rather than leak out unencrypted.
  const stopper = stopOnce(async () => {
    log.info('draining', { seconds: cfg.drainSeconds });
    await agent.stop();
    await Promise.all([...runtimes.values()].map((rt) => rt.close(cfg.drainSeconds * 1000)));
    runtimes.clear();
    await streams.drain(cfg.drainSeconds * 1000);
    await hbone.close();
    caClient.close();
    await ads.stop();
    controlPlane.close();
    await Promise.all([admin.close(), statsServer.close(), healthServer.close()]);
    log.info('stopped');
  });
  const stop = stopper.stop;

  const podsView = () =>
    agent.status().map((s) => {
      const rt = runtimes.get(s.key);
      const cert = rt?.identity.current();
      return { ...s, identity: rt?.pod.identity, certificate: cert ? { notAfter: new Date(cert.notAfter).toISOString() } : undefined, connections: rt?.counters };
    });
  const admin: EndpointServer = await serveEndpoints('127.0.0.1', cfg.adminPort, {
    '/ready': () => readinessAnswer(readiness()),
    '/ambient/pods': () => ({ status: 200, body: podsView() }),
    '/ambient/reconcile': async (_url, req) => {
      if (req.method !== 'POST') return { status: 405, body: 'POST to run a reconcile pass now\n' };
      await agent.reconcile();
      return { status: 200, body: podsView() };
    },
    '/hbone': () => ({ status: 200, body: hbone.describe() }),
    '/xds': () => ({ status: 200, body: ads.statusByType() }),
    '/drain': async (_url, req) => {
      if (req.method !== 'POST') return { status: 405, body: 'POST to drain\n' };
      void stop();
      return { status: 202, body: 'draining\n' };
    },
  });
  const healthz = () => readinessAnswer(readiness());
  const statsServer: EndpointServer = await serveEndpoints(cfg.bindAddress, cfg.statsPort, {
    '/stats/prometheus': async () => {
      const m = await metrics.exposition();
      return { status: 200, body: m.body, contentType: m.contentType };
    },
    '/healthz/ready': healthz,
  });
  const healthServer: EndpointServer = await serveEndpoints(cfg.bindAddress, cfg.healthPort, { '/healthz/ready': healthz });
  log.info('node proxy started', { node: cfg.node, admin: `127.0.0.1:${admin.address.port}`, xds: cfg.xds });

  return {
    ports: { admin: admin.address.port, stats: statsServer.address.port, health: healthServer.address.port },
    ready: () => readiness().ready,
    pods: () => agent.status(),
    stop,
    stopped: stopper.stopped,
  };
}
