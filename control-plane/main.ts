// The control plane's composition root: config source → model → per-proxy translation →
// consistent snapshots → ADS; the CA on the same gRPC ports; monitoring on its own port.
// Nothing here starts at import time; `startControlPlane` builds and starts it all.
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { caService } from '../api/services.js';
import { SHORT_NAME, TypeUrl } from '../api/types.js';
import { CertificateAuthority } from '../certs/ca.js';
import { selfSignedDir } from '../certs/ca-store.js';
import { errorMessage } from '../core/errors.js';
import { serveEndpoints, type EndpointServer } from '../core/http-server.js';
import { createLogger, type Logger } from '../core/log.js';
import { LocalTokenAuthenticator, type Authenticator } from './ca/authenticator.js';
import { rootsAcked, watchCaDir } from './ca/rotation.js';
import { startServingCredentials, type ServingCredentials } from './ca/serving.js';
import { createCaService, modelWorkloadsWithIdentity } from './ca/service.js';
import { TokenStore } from './ca/tokens.js';
import type { ControlPlaneConfig } from './config.js';
import { ConvergenceTracker, countPushes, createControlPlaneMetrics, typeLabel } from './metrics.js';
import { formatProblem, workloadKey, type Model } from './model/index.js';
import { MemorySnapshotCache } from './snapshot/cache.js';
import { SidecarMemory } from './sidecar-memory.js';
import { Rebuilder } from './snapshot/rebuild.js';
import { SnapshotError, type Snapshot } from './snapshot/snapshot.js';
import { FileSource } from './sources/file.js';
import type { KubernetesServices } from './sources/kubernetes/mode.js';
import { gatewayStatuses } from './status/gateways.js';
import { routeStatuses } from './status/index.js';
import { NackLedger, withProxyRejections } from './status/nacks.js';
import { sidecarPortsOf, translateShared, type ProxyNode, type SidecarPorts } from './translate/index.js';
import { identifyProxy, proxyNodeOf } from './xds-server/proxy-node.js';
import { preparedAdsService } from './xds-server/encode.js';
import { XdsServer, type ProxyInfo } from './xds-server/server.js';
import { syncz, verdict } from './xds-server/sync-status.js';

export interface ControlPlane {
  readonly xdsAddress: AddressInfo;
  readonly xdsTlsAddress: AddressInfo | undefined;
  readonly monitorAddress: AddressInfo;
  /** The sidecar-injection webhook (HTTPS), in Kubernetes mode. */
  readonly webhookAddress: AddressInfo | undefined;
  /** PEM roots proxies must trust (for the TLS xDS port and for each other). */
  trustBundle(): string[];
  /** The current config model, and changes to it (for `weft up`). */
  model(): Model;
  onModel(fn: (model: Model) => void): () => void;
  stop(): Promise<void>;
}

interface ConnectedSidecar {
  readonly info: ProxyInfo;
  readonly node: ProxyNode;
  /** Undefined for node proxies and waypoints, which are not their workload's endpoint. */
  readonly ports: SidecarPorts | undefined;
}

export async function startControlPlane(cfg: ControlPlaneConfig, log: Logger = createLogger('control-plane')): Promise<ControlPlane> {
  const metrics = createControlPlaneMetrics();

  // 0. Kubernetes mode: the API server is the config source, its Secret holds the CA, and
  // TokenReview authenticates callers (see sources/kubernetes/mode.ts). Imported only in that
  // mode: @kubernetes/client-node alone is ~25 MB of heap a local control plane does not need.
  const kubeMode = cfg.kubernetes ? await import('./sources/kubernetes/mode.js') : undefined;
  const kube = kubeMode && cfg.kubernetes ? await kubeMode.connectKubernetes(cfg, cfg.kubernetes, log) : undefined;

  // 1. Identity: the CA (created on first start) and one bootstrap token per WorkloadEntry and
  // per node a WorkloadEntry names (its node proxy's).
  const ca =
    kube?.ca ??
    (await CertificateAuthority.loadOrCreate({
      stateDir: cfg.stateDir,
      trustDomain: cfg.trustDomain,
      ...(cfg.caDir ? { pluggedDir: cfg.caDir } : {}),
      log: log.child('ca'),
    }));
  const tokens = new TokenStore(cfg.stateDir);

  // 2. Config: the watched directory (or the cluster) becomes a Model.
  const source = kube?.source ?? new FileSource(cfg.configDir, { log: log.child('config') });
  if (!kube) await source.start();
  let model: Model = source.model.get();

  // 3. Per-proxy snapshots, rebuilt (debounced) whenever the model or the set of sidecars changes.
  const cache = new MemorySnapshotCache();
  const sidecars = new Map<string, ConnectedSidecar>();
  // Local mode: sidecars known before a restart keep their endpoints while they reconnect.
  const memory = kube ? undefined : new SidecarMemory({ stateDir: cfg.stateDir, log: log.child('sidecars') });

  const rootSecret = () => ({
    name: 'ROOTCA',
    validation_context: { trusted_ca: { inline_string: ca.trustBundle().join('') } },
  });

  // Metrics of convergence (config change → every proxy ACKed) and route status from NACKs.
  // It polls only the streams still waiting for an ACK: the others are in sync.
  const convergence = new ConvergenceTracker((s) => metrics.convergence.observe(s), () => xds.awaitingAck());
  const nacks = new NackLedger();

  /** Which workloads have a sidecar, and its ports: inbound, and HBONE for a captured one
   *  (node proxies and waypoints are not sidecars). */
  const directory = (workload: string): SidecarPorts | undefined => {
    const s = sidecars.get(workload)?.ports;
    if (s) return s;
    // In a cluster a ready pod's sidecar is an endpoint even if it is connected to another replica.
    if (kubeMode && kube) return kubeMode.podSidecar(model, workload);
    return memory?.ports(workload);
  };

  // What every sidecar shares is translated once per rebuild, each proxy's own part only when
  // its inputs changed, and a rebuild for every proxy yields to the event loop between slices.
  const translateOptions = { trustDomain: cfg.trustDomain, mtls: cfg.mtls };
  const rebuilder = new Rebuilder({
    cache,
    debounceMs: cfg.debounceMs,
    model: () => model,
    translateShared: () => translateShared(model, directory, translateOptions),
    proxies: () => sidecars.keys(),
    proxy: (id) => sidecars.get(id)?.node,
    rootSecret,
    published: (_id, snapshot, previous, ms) => {
      metrics.pushTime.observe(ms / 1000);
      return countPushes(metrics.pushes, snapshot, previous);
    },
    failed: (id, err) => {
      if (err instanceof SnapshotError) metrics.inconsistent.inc();
      if (id === undefined) log.error('could not translate the config; every proxy keeps its last good config', { error: errorMessage(err) });
      else log.error('could not build config for proxy; it keeps its last good config', { proxy: id, error: errorMessage(err) });
    },
    rebuilt: (expected) => convergence.published(expected),
  });
  const scheduleRebuild = () => rebuilder.schedule();

  // Sidecars remembered from before a restart that have not come back stop counting here.
  const graceDeadline = memory?.graceDeadline;
  const graceTimer = graceDeadline === undefined ? undefined : setTimeout(scheduleRebuild, Math.max(0, graceDeadline - Date.now()) + 1);
  graceTimer?.unref();

  const tokenProblems = new Set<string>();
  const ensureTokens = (m: Model) => {
    if (kube) return; // pods and node proxies prove who they are with ServiceAccount tokens
    const ensure = (what: string, make: () => unknown) => {
      try {
        make();
        tokenProblems.delete(what);
      } catch (err) {
        if (!tokenProblems.has(what)) log.warn('cannot make a bootstrap token', { for: what, error: errorMessage(err) });
        tokenProblems.add(what);
      }
    };
    for (const we of m.workloadEntries) ensure(workloadKey(we), () => tokens.ensure(we.metadata.namespace, we.metadata.name));
    for (const node of m.nodes) ensure(`node ${node}`, () => tokens.ensureNode(node));
  };
  // Problems the model finds beyond the source's own (ambient labels) are logged here.
  let modelProblems = new Set<string>();
  const logModelProblems = (m: Model) => {
    const fromSource = new Set(source.problems().map(formatProblem));
    const now = new Set(m.problems.map(formatProblem).filter((p) => !fromSource.has(p)));
    for (const p of now) if (!modelProblems.has(p)) log.warn(`config problem: ${p}`);
    modelProblems = now;
  };
  ensureTokens(model);
  logModelProblems(model);
  source.model.subscribe((m) => {
    model = m;
    convergence.changed();
    ensureTokens(m);
    logModelProblems(m);
    metrics.configProblems.set(m.problems.length);
    // The source debounced its changes already: rebuild now.
    rebuilder.scheduleNow();
  });
  metrics.configProblems.set(model.problems.length);

  // 4. ADS: authenticate each proxy with its bootstrap token, then serve its snapshot.
  const authenticator: Authenticator =
    kube?.authenticator ?? new LocalTokenAuthenticator(tokens, (ns, name) => model.workloadEntry(ns, name)?.spec.serviceAccount);
  const xds = new XdsServer(
    cache,
    {
      // A sidecar or waypoint proves its workload, a node proxy its node (xds-server/proxy-node.ts).
      authenticate: async (node, md) => identifyProxy(node, await authenticator.authenticate(bearer(md) ?? '', {})),
      connected: (info) => {
        const ports = sidecarPorts(info);
        sidecars.set(info.id, { info, node: proxyNodeOf(info), ports });
        if (info.mode !== 'ambient') memory?.connected(info.id, ports);
        metrics.connected.set(xds.connectedProxies());
        // Its own snapshot now; everyone else's (its new endpoint) with the next debounced
        // rebuild, so that many sidecars connecting at once cost one rebuild, not one each.
        rebuilder.buildNow([info.id]);
        scheduleRebuild();
      },
      disconnected: (info) => {
        sidecars.delete(info.id);
        if (info.mode !== 'ambient') memory?.disconnected(info.id);
        rebuilder.forget(info.id);
        cache.delete(info.id);
        nacks.forget(info.id);
        metrics.connected.set(xds.connectedProxies());
        scheduleRebuild();
      },
      nacked: (info, typeUrl, message) => {
        metrics.rejects.inc({ type: typeLabel(typeUrl) });
        const nack = xds.syncStates().find((p) => p.id === info.id && p.types.get(typeUrl)?.nack?.message === message)?.types.get(typeUrl)?.nack;
        if (nack) nacks.record(info.id, typeUrl, nack, rebuilder.snapshot(info.id));
      },
    },
    log.child('xds'),
  );
  metrics.watchSync(() => xds.syncStates());
  /** Whether `proxy` still rejects `version` of `typeUrl` (it has not accepted a later one). */
  const stillNacked = (proxy: string, typeUrl: TypeUrl, version: string) =>
    xds.syncStates().some((p) => p.id === proxy && verdict(p.types.get(typeUrl)) === 'NACKED' && p.types.get(typeUrl)?.nack?.version === version);

  const caHandlers = createCaService({
    ca,
    authenticator,
    trustDomain: cfg.trustDomain,
    log: log.child('ca'),
    maxTtlSeconds: cfg.maxCertTtlSeconds,
    onIssued: () => metrics.certsIssued.inc(),
    // Node authorization reads the live model: a node proxy gets the identities of its node's ambient pods.
    workloadsWithIdentity: modelWorkloadsWithIdentity(() => model, (key) => directory(key) !== undefined),
  });
  // Root rotation (`weft ca rotate-root` / `remove-root`): reload the CA files when they change,
  // push the new bundle (ROOTCA), and sign under a new root only once every proxy trusts it.
  ca.subscribeRoots(() => scheduleRebuild());
  // In Kubernetes mode the files are the replica's copy of the CA Secret, which it follows.
  const caWatcher = watchCaDir({
    ca,
    dir: kube?.caDir ?? cfg.caDir ?? selfSignedDir(cfg.stateDir),
    rootsDistributed: (roots) => rootsAcked(xds.syncStates(), (id) => cache.get(id), roots),
    log: log.child('ca'),
  });

  const grpcServer = new grpc.Server({ 'grpc.max_send_message_length': 64 * 1024 * 1024 });
  grpcServer.addService(preparedAdsService, xds.handlers());
  grpcServer.addService(caService, caHandlers);
  const xdsPort = await bind(grpcServer, `${cfg.host}:${cfg.xdsPort}`, grpc.ServerCredentials.createInsecure());

  // The TLS port serves the same services with a server certificate from our own CA.
  let tlsServer: grpc.Server | undefined;
  let xdsTlsPort: number | undefined;
  let serving: ServingCredentials | undefined;
  if (cfg.xdsTlsPort >= 0) {
    // Renewed, and re-issued after a root rotation, without rebinding (ca/serving.ts).
    serving = await startServingCredentials(ca, ['weft-control-plane', 'localhost', cfg.host, ...(kube?.serviceNames ?? [])], log.child('ca'));
    tlsServer = new grpc.Server();
    tlsServer.addService(preparedAdsService, xds.handlers());
    tlsServer.addService(caService, caHandlers);
    xdsTlsPort = await bind(
      tlsServer,
      `${cfg.host}:${cfg.xdsTlsPort}`,
      serving.credentials,
    );
  }

  // 4b. Kubernetes: the injection webhook, and the leader's writes (route status, root certs, caBundle).
  const kubeServices: KubernetesServices | undefined = await kube?.startServices(
    () => model,
    (fn) => source.model.subscribe(fn),
  );

  // 5. Monitoring.
  const monitor: EndpointServer = await serveEndpoints(cfg.host, cfg.monitorPort, {
    ...(kubeServices ? { '/debug/kubernetes': () => ({ status: 200, body: kubeServices.debug() }) } : {}),
    '/ready': () => ({ status: 200, body: 'ready\n' }),
    '/metrics': async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }),
    '/debug/syncz': () => ({ status: 200, body: syncz(xds.syncStates()) }),
    '/debug/config_dump': (url) => {
      const id = url.searchParams.get('proxy') ?? '';
      const snap = cache.get(id);
      if (!snap) return { status: 404, body: `no config for proxy "${id}"; connected: ${[...sidecars.keys()].join(', ') || 'none'}\n` };
      return { status: 200, body: dumpSnapshot(snap) };
    },
    '/debug/status': () => ({
      status: 200,
      body: {
        problems: model.problems,
        routes: Object.fromEntries(withProxyRejections(routeStatuses(model), nacks.byRoute(stillNacked))),
        gateways: Object.fromEntries(gatewayStatuses(model)),
      },
    }),
  });

  log.info('control plane ready', {
    config: kube ? 'kubernetes' : cfg.configDir,
    xds: `${cfg.host}:${xdsPort}`,
    xdsTls: xdsTlsPort === undefined ? 'off' : `${cfg.host}:${xdsTlsPort}`,
    monitor: `${cfg.host}:${monitor.address.port}`,
    trustDomain: cfg.trustDomain,
  });

  return {
    xdsAddress: { address: cfg.host, family: 'IPv4', port: xdsPort },
    xdsTlsAddress: xdsTlsPort === undefined ? undefined : { address: cfg.host, family: 'IPv4', port: xdsTlsPort },
    monitorAddress: monitor.address,
    webhookAddress: kubeServices?.webhookAddress,
    trustBundle: () => ca.trustBundle(),
    model: () => model,
    onModel: (fn) => source.model.subscribe(fn),
    async stop() {
      memory?.freeze();
      if (graceTimer) clearTimeout(graceTimer);
      rebuilder.stop();
      convergence.stop();
      caWatcher?.stop();
      serving?.stop();
      await kubeServices?.stop();
      source.stop();
      await monitor.close();
      for (const s of [grpcServer, tlsServer]) {
        if (!s) continue;
        await new Promise<void>((resolve) => {
          const force = setTimeout(() => {
            s.forceShutdown();
            resolve();
          }, 2_000);
          s.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        });
      }
    },
  };
}

function bearer(md: grpc.Metadata): string | undefined {
  const v = md.get('authorization')[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(v);
  return m?.[1];
}

function bind(server: grpc.Server, address: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) =>
    server.bindAsync(address, creds, (err, port) => (err ? reject(new Error(`cannot listen on ${address}: ${err.message}`)) : resolve(port))),
  );
}

function dumpSnapshot(snapshot: Snapshot): unknown {
  const out: Record<string, unknown> = {};
  for (const [typeUrl, t] of snapshot.types) {
    out[SHORT_NAME[typeUrl]] = {
      version: t.version,
      resources: [...t.items.values()].map((r) => ({ name: r.name, version: r.version, resource: r.plain })),
    };
  }
  return out;
}

/** The ports a sidecar reports in its node metadata. Only a sidecar is its workload's endpoint:
 *  a waypoint's and a node proxy's come from the model. */
function sidecarPorts(info: ProxyInfo): SidecarPorts | undefined {
  if (info.mode === 'ambient' || info.mode === 'waypoint') return undefined;
  return sidecarPortsOf(info.metadata.INBOUND_PORT, info.metadata.HBONE_PORT);
}
