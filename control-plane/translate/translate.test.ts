// Tests for the sidecar's resources as ARCHITECTURE.md's xDS contract describes them: listeners,
// virtual hosts and their domains, clusters, endpoints with identity metadata, the mTLS flag,
// and every produced resource being a valid Envoy protobuf.
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from '../../api/codec.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import { readStruct } from '../../api/endpoint.js';
import { DOWNSTREAM_TLS_TYPE_URL, HCM_TYPE_URL, HTTP_PROTOCOL_OPTIONS_TYPE_URL, ROUTER_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from '../../api/types.js';
import { modelFromYaml } from '../model/testing.js';
import { CONNECTED, directoryOf, MESH, routesOf, run, virtualHost, virtualHosts } from './fixtures.js';
import { translate } from './index.js';
import { roundTrip, unknownEnvoyFields } from './testing.js';

const CLUSTER = 'outbound|9080||reviews.default.svc.cluster.local';

function lbEndpoints(set: ReturnType<typeof run>, cluster: string): Plain[] {
  const cla = set[TypeUrl.ClusterLoadAssignment].get(cluster);
  if (!cla) throw new Error(`no ClusterLoadAssignment ${cluster}`);
  return ((cla.endpoints as Plain[])[0]?.lb_endpoints as Plain[] | undefined) ?? [];
}

function endpointSummary(e: Plain): { address: string; weft?: Record<string, unknown> } {
  const sa = ((e.endpoint as Plain).address as Plain).socket_address as Plain;
  const md = (e.metadata as Plain | undefined)?.filter_metadata as Plain | undefined;
  return { address: `${String(sa.address)}:${String(sa.port_value)}`, ...(md ? { weft: readStruct(md.weft) } : {}) };
}

describe('listeners', () => {
  const set = run(`${MESH}`, { workload: 'reviews-v1' });

  it('outbound: one HCM using RDS "outbound" over ADS, router filter last', () => {
    const l = set[TypeUrl.Listener].get('outbound');
    expect(l?.address).toEqual({ socket_address: { address: '0.0.0.0', port_value: 15001 } });
    const chains = l?.filter_chains as Plain[];
    expect(chains).toHaveLength(1);
    const filters = chains[0]?.filters as Plain[];
    expect(filters.map((f) => f.name)).toEqual(['envoy.filters.network.http_connection_manager']);
    const hcm = filters[0]?.typed_config as Plain;
    expect(hcm['@type']).toBe(HCM_TYPE_URL);
    expect(hcm.rds).toEqual({ route_config_name: 'outbound', config_source: { ads: {}, resource_api_version: 'V3' } });
    const httpFilters = hcm.http_filters as Plain[];
    expect(httpFilters.at(-1)).toEqual({ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } });
  });

  it('inbound: one chain per app port, matched by destination port, routing to inbound|P||', () => {
    const l = set[TypeUrl.Listener].get('inbound');
    expect(l?.address).toEqual({ socket_address: { address: '0.0.0.0', port_value: 15006 } });
    const chains = l?.filter_chains as Plain[];
    expect(chains.map((c) => [c.name, c.filter_chain_match])).toEqual([['inbound|19081', { destination_port: { value: 19081 } }]]);
    const hcm = ((chains[0]?.filters as Plain[])[0]?.typed_config as Plain) ?? {};
    const rc = hcm.route_config as Plain;
    const vh = (rc.virtual_hosts as Plain[])[0] as Plain;
    expect(vh.domains).toEqual(['*']);
    expect(vh.routes).toEqual([{ name: 'inbound|19081', match: { prefix: '/' }, route: { cluster: 'inbound|19081||' } }]);
    expect(chains[0]?.transport_socket).toBeUndefined();
  });

  it('inbound cluster is STATIC at the workload address and app port', () => {
    const c = set[TypeUrl.Cluster].get('inbound|19081||');
    expect(c?.type).toBe('STATIC');
    const lb = ((c?.load_assignment as Plain).endpoints as Plain[])[0]?.lb_endpoints as Plain[];
    expect(lb.map(endpointSummary)).toEqual([{ address: '127.0.0.1:19081' }]);
  });

  it('a workload with numeric targetPorts gets inbound chains for them too', () => {
    const s = run(
      `${MESH}
---
apiVersion: v1
kind: Service
metadata: { name: metrics }
spec: { selector: { app: reviews, version: v1 }, ports: [{ port: 9090, targetPort: 19090 }] }`,
      { workload: 'reviews-v1' },
    );
    const chains = s[TypeUrl.Listener].get('inbound')?.filter_chains as Plain[];
    expect(chains.map((c) => c.name)).toEqual(['inbound|19081', 'inbound|19090']);
  });
});

describe('virtual hosts', () => {
  it('one per (Service, port), named fqdn:port, with every name form for a same-namespace client', () => {
    const set = run(MESH);
    expect(virtualHosts(set).map((v) => v.name)).toEqual([
      'reviews.default.svc.cluster.local:9080',
      'reviews-v1.default.svc.cluster.local:9080',
      'reviews-v2.default.svc.cluster.local:9080',
    ]);
    // The only port: portless names too.
    expect(virtualHost(set, 'reviews.default.svc.cluster.local:9080').domains).toEqual([
      'reviews.default.svc.cluster.local',
      'reviews.default.svc.cluster.local:9080',
      'reviews.default.svc',
      'reviews.default.svc:9080',
      'reviews.default',
      'reviews.default:9080',
      'reviews',
      'reviews:9080',
    ]);
  });

  it('short names only for clients in the same namespace; portless names only for port 80 or the only port', () => {
    const yaml = `
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { ports: [{ name: http, port: 80 }, { name: admin, port: 8080 }] }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: c, namespace: other }
spec: { address: 127.0.0.1 }`;
    const set = run(yaml, { workload: 'c', namespace: 'other' });
    expect(virtualHost(set, 'web.shop.svc.cluster.local:80').domains).toEqual([
      'web.shop.svc.cluster.local',
      'web.shop.svc.cluster.local:80',
      'web.shop.svc',
      'web.shop.svc:80',
      'web.shop',
      'web.shop:80',
    ]);
    expect(virtualHost(set, 'web.shop.svc.cluster.local:8080').domains).toEqual([
      'web.shop.svc.cluster.local:8080',
      'web.shop.svc:8080',
      'web.shop:8080',
    ]);
  });

  it('a Service without routes gets one catch-all route to its own cluster', () => {
    expect(routesOf(run(MESH), 'reviews')).toEqual([{ name: 'default', match: { prefix: '/' }, route: { cluster: CLUSTER } }]);
  });
});

describe('clusters and endpoints', () => {
  it('an EDS cluster over ADS per Service port, named outbound|port||fqdn', () => {
    const c = run(MESH)[TypeUrl.Cluster].get(CLUSTER);
    expect(c).toMatchObject({
      name: CLUSTER,
      type: 'EDS',
      eds_cluster_config: { service_name: CLUSTER, eds_config: { ads: {}, resource_api_version: 'V3' } },
    });
    expect(c?.typed_extension_protocol_options).toBeUndefined();
    expect(c?.transport_socket).toBeUndefined();
  });

  it('HTTP/2 upstream for grpc / http2 / h2c ports, from appProtocol or the port name', () => {
    const set = run(`
apiVersion: v1
kind: Service
metadata: { name: s }
spec:
  ports:
    - { name: grpc-api, port: 1 }
    - { name: web, port: 2, appProtocol: kubernetes.io/h2c }
    - { name: http2, port: 3 }
    - { name: http, port: 4 }
    - { name: grpc-web, port: 5 }
    - { name: tcp, port: 6, appProtocol: grpc }`);
    const h2 = (port: number) =>
      (set[TypeUrl.Cluster].get(`outbound|${port}||s.default.svc.cluster.local`)?.typed_extension_protocol_options as Plain | undefined) !== undefined;
    expect([1, 2, 3, 4, 5, 6].map(h2)).toEqual([true, true, true, false, false, true]);
    const opts = set[TypeUrl.Cluster].get('outbound|1||s.default.svc.cluster.local')?.typed_extension_protocol_options as Plain;
    expect(opts['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']).toEqual({
      '@type': HTTP_PROTOCOL_OPTIONS_TYPE_URL,
      explicit_http_config: { http2_protocol_options: {} },
    });
  });

  it('endpoints are connected sidecars: address + inbound port, with workload, identity and target port', () => {
    const set = run(MESH);
    expect(lbEndpoints(set, CLUSTER).map(endpointSummary)).toEqual([
      {
        address: '127.0.0.1:25001',
        weft: { workload: 'reviews-v1.default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', target_port: 19081 },
      },
      {
        address: '127.0.0.1:25002',
        weft: { workload: 'reviews-v2.default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', target_port: 19082 },
      },
    ]);
    const cla = set[TypeUrl.ClusterLoadAssignment].get(CLUSTER);
    expect((cla?.endpoints as Plain[])[0]?.load_balancing_weight).toEqual({ value: 1 });
  });

  it('a workload whose sidecar is not connected has no endpoint', () => {
    const set = run(MESH, { connected: { 'reviews-v2.default': 25002 } });
    expect(lbEndpoints(set, CLUSTER).map((e) => endpointSummary(e).address)).toEqual(['127.0.0.1:25002']);
    expect(set[TypeUrl.ClusterLoadAssignment].get('outbound|9080||reviews-v1.default.svc.cluster.local')?.endpoints).toEqual([]);
  });

  it('a numeric targetPort is the app port; a name the workload lacks selects nothing', () => {
    const set = run(`${MESH}
---
apiVersion: v1
kind: Service
metadata: { name: direct }
spec: { selector: { app: reviews }, ports: [{ name: a, port: 80, targetPort: 7000 }, { name: b, port: 81, targetPort: grpc }] }`);
    const ports = lbEndpoints(set, 'outbound|80||direct.default.svc.cluster.local').map((e) => endpointSummary(e).weft?.target_port);
    expect(ports).toEqual([7000, 7000]);
    expect(set[TypeUrl.ClusterLoadAssignment].get('outbound|81||direct.default.svc.cluster.local')?.endpoints).toEqual([]);
  });

  it('hand-made EndpointSlices: meshed targets through their sidecar, others directly', () => {
    const set = run(`${MESH}
---
apiVersion: v1
kind: Service
metadata: { name: legacy }
spec: { ports: [{ name: http, port: 8000 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: legacy-1, labels: { kubernetes.io/service-name: legacy } }
addressType: IPv4
ports: [{ name: http, port: 18000 }]
endpoints:
  - addresses: [10.1.2.3]
  - addresses: [10.1.2.4]
    conditions: { ready: false }
  - addresses: [127.0.0.1]
    targetRef: { kind: WorkloadEntry, name: reviews-v1 }`);
    expect(lbEndpoints(set, 'outbound|8000||legacy.default.svc.cluster.local').map(endpointSummary)).toEqual([
      { address: '10.1.2.3:18000' },
      {
        address: '127.0.0.1:25001',
        weft: { workload: 'reviews-v1.default', identity: 'spiffe://cluster.local/ns/default/sa/reviews', target_port: 18000 },
      },
    ]);
  });
});

describe('the mtls flag', () => {
  it('off: no transport sockets anywhere', () => {
    const text = JSON.stringify([...Object.values(run(MESH, { workload: 'reviews-v1' }))].map((m) => [...m.values()]));
    expect(text).not.toContain('transport_socket');
  });

  it('on: UpstreamTlsContext on outbound clusters, DownstreamTlsContext on inbound chains, SDS default + ROOTCA over ADS', () => {
    const set = run(MESH, { workload: 'reviews-v1', mtls: true });
    const up = (set[TypeUrl.Cluster].get(CLUSTER)?.transport_socket as Plain).typed_config as Plain;
    expect(up['@type']).toBe(UPSTREAM_TLS_TYPE_URL);
    expect(up.common_tls_context).toMatchObject({
      tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {}, resource_api_version: 'V3' } }],
      validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { ads: {}, resource_api_version: 'V3' } },
    });
    const chain = (set[TypeUrl.Listener].get('inbound')?.filter_chains as Plain[])[0] as Plain;
    const down = (chain.transport_socket as Plain).typed_config as Plain;
    expect(down['@type']).toBe(DOWNSTREAM_TLS_TYPE_URL);
    expect(down.require_client_certificate).toEqual({ value: true });
    // The app-facing inbound cluster stays plaintext.
    expect(set[TypeUrl.Cluster].get('inbound|19081||')?.transport_socket).toBeUndefined();
  });
});

describe('purity and validity', () => {
  it('gives equal output for equal input, and never includes Secrets', () => {
    const model = modelFromYaml(MESH);
    const node = { id: 'client.default', workload: 'client', namespace: 'default', mode: 'sidecar' as const };
    const opts = { trustDomain: 'cluster.local', mtls: true };
    const a = translate(model, node, directoryOf(CONNECTED), opts);
    const b = translate(model, node, directoryOf(CONNECTED), opts);
    expect(a).toEqual(b);
    expect(a[TypeUrl.Secret].size).toBe(0);
  });

  it('the shape checker itself catches a misspelt field', () => {
    expect(unknownEnvoyFields(TypeUrl.Cluster, { name: 'x', eds_config: {} })).toEqual(['eds_config: no such field in envoy.config.cluster.v3.Cluster']);
  });

  it('every resource of a busy config is a valid Envoy message, survives encode + decode, and the proxy accepts it', () => {
    const set = run(
      `${MESH}
---
apiVersion: v1
kind: Service
metadata: { name: grpc }
spec: { selector: { app: reviews }, ports: [{ name: grpc, port: 50051, targetPort: 19081 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: everything }
spec:
  parentRefs: [{ group: "", kind: Service, name: reviews }]
  rules:
    - name: api
      matches:
        - path: { type: PathPrefix, value: /api/ }
          headers: [{ name: X-Env, value: canary }, { type: RegularExpression, name: x-user, value: "u[0-9]+" }]
          queryParams: [{ name: debug, value: "1" }]
          method: GET
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: x-a, value: "1" }], add: [{ name: x-b, value: "2" }], remove: [x-c] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-d, value: "3" }] }
        - type: RequestMirror
          requestMirror: { backendRef: { name: reviews-v2, port: 9080 }, fraction: { numerator: 1, denominator: 3 } }
        - type: URLRewrite
          urlRewrite: { hostname: internal, path: { type: ReplacePrefixMatch, replacePrefixMatch: / } }
      backendRefs:
        - name: reviews-v1
          port: 9080
          weight: 3
          filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { add: [{ name: x-v, value: "1" }] } }]
        - { name: missing, port: 9080, weight: 1 }
      timeouts: { request: 10s, backendRequest: 2s }
      retry: { codes: [503], attempts: 2, backoff: 100ms }
    - matches: [{ path: { type: RegularExpression, value: "/r/[a-z]+" } }]
      filters: [{ type: RequestRedirect, requestRedirect: { scheme: https, hostname: example.com, statusCode: 308, path: { type: ReplaceFullPath, replaceFullPath: /new } } }]
    - matches: [{ path: { type: Exact, value: /zero } }]
      backendRefs: [{ name: reviews-v1, port: 9080, weight: 0 }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: g }
spec:
  parentRefs: [{ group: "", kind: Service, name: grpc }]
  rules:
    - matches: [{ method: { service: helloworld.Greeter, method: SayHello }, headers: [{ name: x-g, value: "1" }] }]
      backendRefs: [{ name: grpc, port: 50051 }]`,
      { workload: 'reviews-v1', mtls: true },
    );
    let count = 0;
    for (const typeUrl of Object.values(TypeUrl)) {
      for (const [name, plain] of set[typeUrl]) {
        const decoded = roundTrip(typeUrl, plain);
        const key = typeUrl === TypeUrl.ClusterLoadAssignment ? 'cluster_name' : 'name';
        expect(decoded[key], `${typeUrl} ${name}`).toBe(name);
        // The proxy's own decoders (api/) accept it: nothing here would be NACKed.
        const accepted = RESOURCE_TYPES.get(typeUrl)?.decode(pack(typeUrl, plain));
        expect(accepted?.ok ? 'ok' : JSON.stringify(accepted), `${typeUrl} ${name}`).toBe('ok');
        count++;
      }
    }
    expect(count).toBeGreaterThan(10);
    // Spot-check that nested values survive the trip, not just names.
    const vh = roundTrip(TypeUrl.VirtualHost, set[TypeUrl.VirtualHost].get('outbound/reviews.default.svc.cluster.local:9080') ?? {});
    const routes = vh?.routes as Plain[];
    // Exact /zero first, then by length: the 9-character regex before the /api prefix.
    expect(routes.map((r) => r.name)).toEqual(['default/everything/2', 'default/everything/1', 'default/everything/api']);
    const api = routes[2] as Plain;
    expect((api.route as Plain).cluster_not_found_response_code).toBe('INTERNAL_SERVER_ERROR');
    expect(((api.route as Plain).request_mirror_policies as Plain[])[0]).toEqual({
      cluster: 'outbound|9080||reviews-v2.default.svc.cluster.local',
      runtime_fraction: { default_value: { numerator: 333333, denominator: 'MILLION' } },
    });
  });
});

describe('the proxy itself', () => {
  it('a proxy whose WorkloadEntry is gone still gets outbound config, and no inbound listener', () => {
    const set = run(MESH, { workload: 'ghost' });
    expect([...set[TypeUrl.Listener].keys()]).toEqual(['outbound']);
    expect(routesOf(set, 'reviews')).toHaveLength(1);
  });

  it('accepts the workload given as name.namespace too', () => {
    const set = run(MESH, { workload: 'reviews-v1.default' });
    expect((set[TypeUrl.Listener].get('inbound')?.filter_chains as Plain[]).map((c) => c.name)).toEqual(['inbound|19081']);
  });
});
