// The sidecar's composition root, top to bottom: identity → config state → listeners → xDS →
// admin. Nothing starts at import time; `startProxy` builds it all and `stop` drains it.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { RESOURCE_TYPES } from '../api/registry.js';
import type { SecretValue } from '../api/domain.js';
import { TypeUrl } from '../api/types.js';
import { createLogger, type Logger } from '../core/log.js';
import type { EndpointServer } from '../core/http-server.js';
import { stopOnce } from '../core/drain.js';
import { readinessAnswer, serveEndpoints } from '../core/http-server.js';
import { startAdmin } from './admin/admin.js';
import { createBalancers } from './balance/registry.js';
import type { ProxyConfigOptions } from './config.js';
import { splitWorkload } from './config.js';
import { controlPlaneChannel, splitPem } from './discovery/channel.js';
import { AdsClient } from './discovery/ads-client.js';
import { appProbeRoutes } from './health/app-probes.js';
import { IdentityManager } from './identity/manager.js';
import { createInboundListener } from './inbound/listener.js';
import { createOutboundListener, ProxyStats } from './outbound/index.js';
import { ProxyState } from './state/state.js';
import { MeshMetrics, openAccessLog, registerTlsHandshakes, Telemetry } from './telemetry/index.js';
import { MeshTls } from './transport/tls.js';
import { tlsTransports } from './transport/mesh.js';
import { plainUpstreamTransport } from './transport/plain.js';
import { createUpstreamPools } from './upstream/pools.js';
import { targetsOf } from './upstream/target.js';


export interface RunningProxy {
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number; health: number; hbone?: number };
  ready(): boolean;
  /** Ready or not, and every reason it is not. */
  readiness(): { ready: boolean; reasons: string[] };
  /** The Prometheus series as prom-client JSON (a --concurrency supervisor sums its workers'). */
  metricsJson(): Promise<object[]>;
  /** Drains (stop accepting, in-flight requests finish within drainSeconds) and stops. */
  stop(): Promise<void>;
  /** Resolves once the proxy has stopped, whoever asked (a signal, or POST /drain). */
  stopped(): Promise<void>;
}

export async function startProxy(cfg: ProxyConfigOptions, log: Logger = createLogger(`proxy ${cfg.workload}`)): Promise<RunningProxy> {
  const { name, namespace } = splitWorkload(cfg.workload);
  const readToken = () => readFileSync(cfg.tokenFile, 'utf8').trim();
  const controlPlane = controlPlaneChannel(cfg.xds, cfg.xdsRootCert);
  const { credentials: xdsCredentials, channelOptions } = controlPlane;

  // 1. Identity: our own key, a certificate from the CA for the identity our token proves.
  const identity = new IdentityManager({
    caAddress: cfg.xds,
    credentials: xdsCredentials,
    channelOptions,
    token: readToken,
    ttlSeconds: cfg.certTtlSeconds,
    log: log.child('identity'),
  });
  identity.start();
  const tls = new MeshTls(identity, { ticketSecret: cfg.ticketSecret });

  // 2. Config: every accepted xDS update becomes a new immutable snapshot.
  const state = new ProxyState();
  const getConfig = () => state.config.get();

  // 3. Telemetry: Istio metrics always; traces when a collector is set; access log when asked.
  const metrics = new MeshMetrics({ processMetrics: true });
  registerTlsHandshakes(metrics.registry, tls.handshakes);
  const telemetry = new Telemetry({
    workload: cfg.workload,
    identity: () => identity.current()?.identity,
    metrics,
    tracing: cfg.otlpEndpoint
      ? await (await import('./telemetry/tracing.js')).Tracing.create({ endpoint: cfg.otlpEndpoint, rootSampleRate: cfg.traceSamplingPercent / 100, workload: cfg.workload, namespace })
      : undefined,
    accessLog: cfg.accessLog ? openAccessLog(cfg.accessLog, log.child('access-log')) : undefined,
    decisionHeader: cfg.decisionHeader,
  });

  // 4. The data path: outbound (the app's calls) and inbound (other sidecars' calls).
  const transports = tlsTransports(tls, { log: log.child('tls') });
  const stats = new ProxyStats();
  // Captured mode (pod networking): iptables hands us every TCP connection of the pod; the
  // listeners get capture's server, transport and app hop instead of their local-mode defaults.
  // A waypoint runs the captured-outbound path too: its HBONE streams arrive as connections
  // whose original destination is the CONNECT authority (proxy/waypoint.ts).
  const waypoint = cfg.mode === 'waypoint';
  // Captured mode and the waypoint are loaded only by the proxies that run them.
  const waypointParts = waypoint ? await import('./waypoint.js') : undefined;
  const capture =
    cfg.capture || waypoint
      ? (await import('./capture/index.js')).createCapture({
          meshTls: tls,
          transports,
          getConfig,
          stats,
          outboundPolicy: cfg.outboundPolicy,
          detectTimeoutMs: cfg.protocolDetectionTimeoutMs,
          log: log.child('capture'),
          ...(waypointParts && !cfg.capture
            ? { originalDst: waypointParts.waypointOriginalDst, streamRefusal: waypointParts.waypointDetectedStreamRefusal(getConfig) }
            : {}),
        })
      : undefined;
  let outboundServer: net.Server | undefined;
  // Pools are ours, not the listeners': on every config swap, pools that no cluster uses any
  // more are retired — they close once their requests end (a removed cluster drains).
  const outboundPools = createUpstreamPools({ transport: transports.upstream, log: log.child('outbound').child('upstream') });
  const inboundPools = createUpstreamPools({
    transport: plainUpstreamTransport,
    ...(capture ? { plainTransport: capture.appTransport } : {}),
    log: log.child('inbound').child('upstream'),
  });
  state.config.subscribe((config) => {
    const used = [...targetsOf(config)];
    outboundPools.retainOnly(used);
    inboundPools.retainOnly(used);
  });
  // Shared with the admin port, which shows each endpoint's in-flight count, latency and ejection.
  const outboundBalancers = createBalancers();
  const outbound = createOutboundListener({
    host: cfg.bindAddress,
    port: cfg.outboundPort,
    getConfig,
    routeConfigName: 'outbound',
    transport: transports.upstream,
    outboundPolicy: cfg.outboundPolicy,
    pools: outboundPools,
    balancers: outboundBalancers,
    stats,
    telemetry,
    log: log.child('outbound'),
    http1FastPath: cfg.http1FastPath,
    http2FastPath: cfg.http2FastPath,
    ...capture?.outbound,
    ...(capture ? { createServer: (onSocket: (socket: net.Socket) => void) => (outboundServer = capture.outbound.createServer(onSocket)) } : {}),
    ...(capture && waypointParts ? { planFor: waypointParts.waypointPlanFor(capture.outbound.planFor, log.child('waypoint')) } : {}),
  });
  const inbound = createInboundListener({
    host: cfg.bindAddress,
    port: cfg.inboundPort,
    getConfig,
    listenerName: 'inbound',
    transport: capture?.inboundTransport ?? transports.inbound,
    ownIdentity: () => identity.current()?.identity,
    pools: inboundPools,
    stats,
    telemetry,
    log: log.child('inbound'),
    http1FastPath: cfg.http1FastPath,
    http2FastPath: cfg.http2FastPath,
  });
  const outboundAddr = await outbound.listen();
  const inboundAddr = await inbound.listen();
  // HBONE: a waypoint's entry; and a captured sidecar's, where peers tunnel TCP to its app (the
  // control plane sends L4 ports there: streams on one pooled mTLS connection per peer, instead
  // of a TLS handshake per TCP connection).
  const hbone = waypointParts
    ? waypointParts.createWaypointEntry({ meshTls: tls, getConfig, outbound: () => outboundServer, log: log.child('waypoint') })
    : capture
      ? (await import('./hbone/server.js')).createHboneServer(tls, capture.hbone, { log: log.child('hbone') })
      : undefined;
  if (hbone) await new Promise<void>((resolve, reject) => hbone.server.once('error', reject).listen(cfg.hbonePort, cfg.bindAddress, () => resolve()));
  const hbonePort = hbone ? (hbone.server.address() as net.AddressInfo).port : undefined;

  // 5. xDS: the inbound port we really got goes into the node metadata; it is our endpoint.
  const ads = new AdsClient({
    target: cfg.xds,
    credentials: xdsCredentials,
    channelOptions,
    node: {
      id: cfg.workload,
      metadata: {
        WORKLOAD: cfg.workload,
        NAMESPACE: namespace,
        NAME: name,
        INBOUND_PORT: inboundAddr.port,
        MODE: cfg.mode,
        // Where a sidecar takes HBONE tunnels (captured mode); its L4 endpoint.
        ...(hbonePort !== undefined && !waypoint ? { HBONE_PORT: hbonePort } : {}),
      },
    },
    token: readToken,
    types: RESOURCE_TYPES,
    localSecrets: new Set(['default']),
    onAccepted: (typeUrl, resources, version) => {
      if (typeUrl === TypeUrl.Secret) {
        const root = (resources.get('ROOTCA') as SecretValue | undefined)?.trustedCa;
        if (root) {
          identity.setTrustBundle(splitPem(root));
          controlPlane.trust(splitPem(root));
        }
      }
      state.apply(typeUrl, resources, version);
    },
    log: log.child('xds'),
    protocol: cfg.xdsProtocol,
  });
  ads.start();

  const readiness = () => {
    const reasons: string[] = [];
    if (!identity.current()) reasons.push('no certificate yet');
    if (!state.isComplete()) reasons.push(`config incomplete (${state.missing().join(', ') || 'waiting for listeners and clusters'})`);
    if (stopper.stopping) reasons.push('draining');
    return { ready: reasons.length === 0, reasons };
  };

  // Drain: stop accepting, answer in-flight requests (Connection: close / GOAWAY) for up to
  // drainSeconds, then close pools, xDS and the admin ports.
  const stopper = stopOnce(async () => {
    log.info('draining', { seconds: cfg.drainSeconds });
    await Promise.all([
      outbound.close(cfg.drainSeconds * 1000),
      inbound.close(cfg.drainSeconds * 1000),
      capture?.drain(cfg.drainSeconds * 1000),
      hbone?.close(cfg.drainSeconds * 1000),
    ]);
    await Promise.all([outboundPools.close(), inboundPools.close()]);
    await ads.stop();
    identity.stop();
    controlPlane.close();
    await Promise.all([admin.close(), statsServer.close(), healthServer.close(), telemetry.close()]);
    log.info('stopped');
  });
  const stop = stopper.stop;

  // 6. Admin on loopback only; readiness and Prometheus (/stats/prometheus) on the stats port.
  const admin: EndpointServer = await startAdmin(cfg.adminPort, {
    workload: cfg.workload,
    ready: readiness,
    config: getConfig,
    xdsStatus: () => ads.statusByType(),
    identity: () => {
      const c = identity.current();
      return c ? { identity: c.identity, notAfter: new Date(c.notAfter).toISOString() } : undefined;
    },
    stats: () => stats.snapshot(),
    endpointState: (cluster) => outboundBalancers.endpointState(cluster),
    drain: stop,
  });
  const healthz = () => readinessAnswer(readiness());
  const statsServer: EndpointServer = await serveEndpoints(cfg.endpointsAddress ?? cfg.bindAddress, cfg.statsPort, {
    '/stats/prometheus': async () => {
      const m = await telemetry.metrics.exposition();
      return { status: 200, body: m.body, contentType: m.contentType };
    },
    '/healthz/ready': healthz,
  });
  // Kubelet probes and the injected postStart hook use the health port (15021), as in Istio.
  const healthServer: EndpointServer = await serveEndpoints(cfg.endpointsAddress ?? cfg.bindAddress, cfg.healthPort, {
    '/healthz/ready': healthz,
    // The app's own probes, rewritten at injection: the kubelet cannot pass STRICT mTLS.
    ...appProbeRoutes(cfg.appProbes),
  });

  log.info('proxy listening', {
    outbound: `${cfg.bindAddress}:${outboundAddr.port}`,
    inbound: `${cfg.bindAddress}:${inboundAddr.port}`,
    admin: `127.0.0.1:${admin.address.port}`,
    xds: cfg.xds,
  });

  return {
    ports: {
      outbound: outboundAddr.port,
      inbound: inboundAddr.port,
      admin: admin.address.port,
      stats: statsServer.address.port,
      health: healthServer.address.port,
      ...(hbonePort !== undefined ? { hbone: hbonePort } : {}),
    },
    ready: () => readiness().ready,
    readiness,
    metricsJson: () => telemetry.metrics.registry.getMetricsAsJSON() as Promise<object[]>,
    stop,
    stopped: stopper.stopped,
  };
}
