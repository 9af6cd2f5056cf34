// Test fixture for the ADS client: Weft's real XdsServer over a MemorySnapshotCache we fill by
// hand, served on loopback with the control plane's own service definition, recording what
// crossed the wire; plus an AdsClient that records what it accepted, and Envoy resources to feed
// them. Used by this folder's tests only (proxy/ never imports control-plane/ otherwise).
import * as grpc from '@grpc/grpc-js';
import type { Plain } from '../../api/codec.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../../api/services.js';
import { HCM_TYPE_URL, ROUTER_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from '../../api/types.js';
import { MemorySnapshotCache } from '../../control-plane/snapshot/cache.js';
import { buildSnapshot, type ResourceSet } from '../../control-plane/snapshot/snapshot.js';
import { preparedAdsService } from '../../control-plane/xds-server/encode.js';
import { XdsServer } from '../../control-plane/xds-server/server.js';
import { Backoff } from '../../core/backoff.js';
import { createLogger, type Logger } from '../../core/log.js';
import { AdsClient, type XdsProtocol } from './ads-client.js';

export const PROXY_ID = 'client.default';

/** One sequence for what the server sends and what the client accepts, to tell their order. */
let seq = 0;

export function quietLogger(name: string): Logger {
  const log = createLogger(name);
  log.info = () => {};
  log.warn = () => {};
  log.debug = () => {};
  return log;
}

// ---- Envoy resources ------------------------------------------------------------------------

const ADS = { ads: {}, resource_api_version: 'V3' };

export function listener(name: string, rds: string): Plain {
  return {
    name,
    address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM_TYPE_URL,
          stat_prefix: name,
          rds: { route_config_name: rds, config_source: ADS },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } }],
        },
      }],
    }],
  };
}

function vhostBody(domain: string, cluster: string, badRegex: boolean): Plain {
  return {
    domains: [domain],
    routes: [
      ...(badRegex ? [{ match: { safe_regex: { regex: '(unclosed' } }, route: { cluster } }] : []),
      { match: { prefix: '/' }, route: { cluster } },
    ],
  };
}

/** A route configuration with one virtual host for `domain` sending everything to `cluster`. */
export function routeConfig(name: string, cluster: string, opts: { badRegex?: boolean; domain?: string } = {}): Plain {
  return { name, virtual_hosts: [{ name: 'vh', ...vhostBody(opts.domain ?? 'backend', cluster, opts.badRegex ?? false) }] };
}

/** A route configuration whose virtual hosts come over VHDS. */
export function vhdsRouteConfig(name: string): Plain {
  return { name, vhds: { config_source: ADS } };
}

/** A VHDS resource, named `<route configuration>/<host>`. */
export function virtualHost(owner: string, host: string, cluster: string, opts: { badRegex?: boolean } = {}): Plain {
  return { name: `${owner}/${host}`, ...vhostBody(host, cluster, opts.badRegex ?? false) };
}

/** An EDS cluster over mTLS: our certificate `default` (local), peers checked against `ROOTCA`. */
export function cluster(name: string): Plain {
  return {
    name,
    type: 'EDS',
    connect_timeout: { seconds: 1 },
    eds_cluster_config: { service_name: name, eds_config: ADS },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': UPSTREAM_TLS_TYPE_URL,
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
          validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
        },
      },
    },
  };
}

export function endpoints(name: string, port: number): Plain {
  return {
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }],
  };
}

export function rootCa(pem: string): Plain {
  return { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: pem } } };
}

/** A ResourceSet from resources, each type keyed by the resource's own name. */
export function resourceSet(parts: Partial<Record<TypeUrl, readonly Plain[]>>): ResourceSet {
  const out: ResourceSet = {};
  for (const [t, list] of Object.entries(parts) as [TypeUrl, Plain[]][]) {
    out[t] = new Map(list.map((r) => [String(t === TypeUrl.ClusterLoadAssignment ? r.cluster_name : r.name), r]));
  }
  return out;
}

/** A small sidecar's world: listener → route → clusters → endpoints, clusters → ROOTCA. */
export function world(o: { routeTo?: string; ports?: Record<string, number>; badRegex?: boolean; pem?: string } = {}): ResourceSet {
  const ports = o.ports ?? { c1: 1001, c2: 1002 };
  return resourceSet({
    [TypeUrl.Listener]: [listener('outbound', 'outbound')],
    [TypeUrl.RouteConfiguration]: [routeConfig('outbound', o.routeTo ?? 'c1', { badRegex: o.badRegex ?? false })],
    [TypeUrl.Cluster]: Object.keys(ports).map(cluster),
    [TypeUrl.ClusterLoadAssignment]: Object.entries(ports).map(([n, p]) => endpoints(n, p)),
    [TypeUrl.Secret]: [rootCa(o.pem ?? 'root-1')],
  });
}

// ---- the server -----------------------------------------------------------------------------

/** One response as it left the server: its type, the names it carried (delta) or their count. */
export interface SentResponse {
  readonly type: string;
  readonly names: readonly string[];
  readonly removed: readonly string[];
  readonly count: number;
  readonly nonce: string;
  readonly seq: number;
}

export interface TestXds {
  readonly target: string;
  /** The snapshot the proxy gets from now on (and on every later connect). */
  set(resources: ResourceSet): void;
  readonly sent: SentResponse[];
  readonly deltaRequests: DeltaDiscoveryRequest[];
  readonly sotwRequests: DiscoveryRequest[];
  readonly nacks: string[];
  server(): XdsServer;
  /** Stops serving (the client's stream breaks) and serves again on the same port, fresh. */
  restart(resources?: ResourceSet): Promise<void>;
  close(): void;
}

export async function startTestXds(initial: ResourceSet): Promise<TestXds> {
  let current = initial;
  let cache = new MemorySnapshotCache();
  let xds: XdsServer;
  let server: grpc.Server | undefined;
  const sent: SentResponse[] = [];
  const deltaRequests: DeltaDiscoveryRequest[] = [];
  const sotwRequests: DiscoveryRequest[] = [];
  const nacks: string[] = [];

  const serve = async (port: number): Promise<number> => {
    cache = new MemorySnapshotCache();
    xds = new XdsServer(
      cache,
      {
        authenticate: async (node) => ({ id: node.id ?? '', workload: node.id ?? '', namespace: 'default', metadata: {} }),
        connected: (p) => cache.set(p.id, buildSnapshot(current)),
        disconnected: () => {},
        nacked: (_p, _t, m) => nacks.push(m),
      },
      quietLogger('test-xds'),
    );
    const h = xds.handlers();
    const s = new grpc.Server();
    // The control plane's own handlers, with every request and response recorded on the way.
    s.addService(preparedAdsService, {
      StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        call.on('data', (r: DiscoveryRequest) => sotwRequests.push(r));
        const write = call.write.bind(call);
        call.write = ((res: DiscoveryResponse, cb?: () => void) => {
          sent.push({ type: res.type_url, names: [], removed: [], count: res.resources.length, nonce: res.nonce, seq: ++seq });
          return write(res, cb);
        }) as typeof call.write;
        (h.StreamAggregatedResources as grpc.handleBidiStreamingCall<DiscoveryRequest, DiscoveryResponse>)(call);
      },
      DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>) => {
        call.on('data', (r: DeltaDiscoveryRequest) => deltaRequests.push(r));
        const write = call.write.bind(call);
        call.write = ((res: DeltaDiscoveryResponse, cb?: () => void) => {
          sent.push({ type: res.type_url, names: res.resources.map((r) => r.name), removed: [...res.removed_resources], count: res.resources.length, nonce: res.nonce, seq: ++seq });
          return write(res, cb);
        }) as typeof call.write;
        (h.DeltaAggregatedResources as grpc.handleBidiStreamingCall<DeltaDiscoveryRequest, DeltaDiscoveryResponse>)(call);
      },
    });
    const bound = await new Promise<number>((resolve, reject) =>
      s.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    server = s;
    return bound;
  };

  const port = await serve(0);
  return {
    target: `127.0.0.1:${port}`,
    set(resources) {
      current = resources;
      if (cache.get(PROXY_ID)) cache.set(PROXY_ID, buildSnapshot(resources));
    },
    sent,
    deltaRequests,
    sotwRequests,
    nacks,
    server: () => xds,
    async restart(resources) {
      server?.forceShutdown();
      server = undefined;
      if (resources) current = resources;
      await serve(port);
    },
    close() {
      server?.forceShutdown();
    },
  };
}

// ---- the client -----------------------------------------------------------------------------

export interface TestClient {
  readonly ads: AdsClient;
  /** Every onAccepted call, in order. */
  readonly accepted: { type: TypeUrl; names: string[]; version: string; seq: number }[];
  /** The last set accepted of a type (empty before any). */
  held(type: TypeUrl): ReadonlyMap<string, unknown>;
}

export function startTestClient(target: string, protocol?: XdsProtocol): TestClient {
  const latest = new Map<TypeUrl, ReadonlyMap<string, unknown>>();
  const accepted: TestClient['accepted'] = [];
  const ads = new AdsClient({
    target,
    credentials: grpc.credentials.createInsecure(),
    node: { id: PROXY_ID, metadata: { WORKLOAD: PROXY_ID, NAMESPACE: 'default', INBOUND_PORT: 15006 } },
    token: () => 'test-token',
    types: RESOURCE_TYPES,
    localSecrets: new Set(['default']),
    onAccepted: (type, resources, version) => {
      latest.set(type, resources);
      accepted.push({ type, names: [...resources.keys()].sort(), version, seq: ++seq });
    },
    log: quietLogger('test-ads'),
    backoff: new Backoff({ initialMs: 50, maxMs: 200 }),
    ...(protocol ? { protocol } : {}),
  });
  ads.start();
  return { ads, accepted, held: (t) => latest.get(t) ?? new Map() };
}
