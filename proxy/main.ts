// The sidecar's composition root, top to bottom: identity → config state → listeners → xDS →
// admin. Nothing starts at import time; `startProxy` builds it all and `stop` drains it.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { RESOURCE_TYPES } from '../api/registry.js';
import type { SecretValue } from '../api/domain.js';
import { TypeUrl } from '../api/types.js';
import { createLogger, type Logger } from '../core/log.js';
import type { EndpointServer } from '../core/http-server.js';
import { serveEndpoints } from '../core/http-server.js';
import { startAdmin } from './admin/admin.js';
import type { ProxyConfigOptions } from './config.js';
import { splitWorkload } from './config.js';
import { AdsClient } from './discovery/ads-client.js';
import { IdentityManager } from './identity/manager.js';
import { createInboundListener } from './inbound/listener.js';
import { createOutboundListener, ProxyStats } from './outbound/index.js';
import { ProxyState } from './state/state.js';
import { MeshTls } from './transport/tls.js';
import { tlsTransports } from './transport/mesh.js';

/** A DNS name in the control plane's serving certificate (see control-plane/main.ts). */
const CONTROL_PLANE_TLS_NAME = 'weft-control-plane';

export interface RunningProxy {
  readonly ports: { outbound: number; inbound: number; admin: number; stats: number };
  ready(): boolean;
  stop(): Promise<void>;
}

export async function startProxy(cfg: ProxyConfigOptions, log: Logger = createLogger(`proxy ${cfg.workload}`)): Promise<RunningProxy> {
  const { name, namespace } = splitWorkload(cfg.workload);
  const readToken = () => readFileSync(cfg.tokenFile, 'utf8').trim();
  const xdsCredentials = cfg.xdsRootCert
    ? grpc.credentials.createSsl(readFileSync(cfg.xdsRootCert))
    : grpc.credentials.createInsecure();
  // TLS to an IP address (local mode) verifies the name the control plane's certificate carries;
  // TLS SNI may not be an IP address (RFC 6066).
  const xdsHost = cfg.xds.slice(0, cfg.xds.lastIndexOf(':'));
  const channelOptions: grpc.ChannelOptions =
    cfg.xdsRootCert && isIP(xdsHost) ? { 'grpc.ssl_target_name_override': CONTROL_PLANE_TLS_NAME, 'grpc.default_authority': CONTROL_PLANE_TLS_NAME } : {};

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
  const tls = new MeshTls(identity);

  // 2. Config: every accepted xDS update becomes a new immutable snapshot.
  const state = new ProxyState();
  const getConfig = () => state.config.get();

  // 3. The data path: outbound (the app's calls) and inbound (other sidecars' calls).
  const transports = tlsTransports(tls);
  const stats = new ProxyStats();
  const outbound = createOutboundListener({
    host: cfg.bindAddress,
    port: cfg.outboundPort,
    getConfig,
    routeConfigName: 'outbound',
    transport: transports.upstream,
    outboundPolicy: cfg.outboundPolicy,
    stats,
    log: log.child('outbound'),
  });
  const inbound = createInboundListener({
    host: cfg.bindAddress,
    port: cfg.inboundPort,
    getConfig,
    listenerName: 'inbound',
    transport: transports.inbound,
    ownIdentity: () => identity.current()?.identity,
    stats,
    log: log.child('inbound'),
  });
  const outboundAddr = await outbound.listen();
  const inboundAddr = await inbound.listen();

  // 4. xDS: the inbound port we really got goes into the node metadata; it is our endpoint.
  const ads = new AdsClient({
    target: cfg.xds,
    credentials: xdsCredentials,
    channelOptions,
    node: { id: cfg.workload, metadata: { WORKLOAD: cfg.workload, NAMESPACE: namespace, NAME: name, INBOUND_PORT: inboundAddr.port, MODE: 'sidecar' } },
    token: readToken,
    types: RESOURCE_TYPES,
    localSecrets: new Set(['default']),
    onAccepted: (typeUrl, resources, version) => {
      if (typeUrl === TypeUrl.Secret) {
        const root = (resources.get('ROOTCA') as SecretValue | undefined)?.trustedCa;
        if (root) identity.setTrustBundle(splitPem(root));
      }
      state.apply(typeUrl, resources, version);
    },
    log: log.child('xds'),
  });
  ads.start();

  const readiness = () => {
    const reasons: string[] = [];
    if (!identity.current()) reasons.push('no certificate yet');
    if (!state.isComplete()) reasons.push(`config incomplete (${state.missing().join(', ') || 'waiting for listeners and clusters'})`);
    return { ready: reasons.length === 0, reasons };
  };

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('draining', { seconds: cfg.drainSeconds });
      await Promise.all([outbound.close(cfg.drainSeconds * 1000), inbound.close(cfg.drainSeconds * 1000)]);
      await ads.stop();
      identity.stop();
      await Promise.all([admin.close(), statsServer.close()]);
      log.info('stopped');
    })());

  // 5. Admin on loopback only; readiness and (later) Prometheus on the stats port.
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
    drain: stop,
  });
  const statsServer: EndpointServer = await serveEndpoints(cfg.bindAddress, cfg.statsPort, {
    '/healthz/ready': () => {
      const r = readiness();
      return { status: r.ready ? 200 : 503, body: r.ready ? 'ready\n' : `not ready: ${r.reasons.join('; ')}\n` };
    },
  });

  log.info('proxy listening', {
    outbound: `${cfg.bindAddress}:${outboundAddr.port}`,
    inbound: `${cfg.bindAddress}:${inboundAddr.port}`,
    admin: `127.0.0.1:${admin.address.port}`,
    xds: cfg.xds,
  });

  return {
    ports: { outbound: outboundAddr.port, inbound: inboundAddr.port, admin: admin.address.port, stats: statsServer.address.port },
    ready: () => readiness().ready,
    stop,
  };
}

function splitPem(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}
