// Tests for LDS decoding: the outbound and inbound listeners of the xDS contract, proxyless
// api_listeners, tcp_proxy, TLS by SDS name, RBAC, references, and every rejection's path.
import { describe, expect, it } from 'vitest';
import { pack, toStruct, type Plain } from './codec.js';
import type { Listener, NetworkFilter } from './domain.js';
import { listenerType } from './listener.js';
import {
  DOWNSTREAM_TLS_TYPE_URL, HCM_TYPE_URL, NETWORK_RBAC_TYPE_URL, RBAC_TYPE_URL, ROUTER_TYPE_URL, TCP_PROXY_TYPE_URL, TypeUrl,
} from './types.js';

const router = { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } };
const unknownAny = (name: string) => ({ type_url: `type.googleapis.com/${name}`, value: new Uint8Array() });

function hcm(fields: Plain): Plain {
  return { name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM_TYPE_URL, stat_prefix: 'http', ...fields } };
}
const outbound: Plain = {
  name: 'outbound',
  address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
  filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'outbound', config_source: { ads: {} } }, http_filters: [router] })] }],
};
function rbacFilter(rules: Plain): Plain {
  return { name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC_TYPE_URL, rules } };
}
function inboundChain(port: number, extra: Plain = {}): Plain {
  return {
    name: `inbound|${port}`,
    filter_chain_match: { destination_port: { value: port } },
    transport_socket: {
      name: 'envoy.transport_sockets.tls',
      typed_config: {
        '@type': DOWNSTREAM_TLS_TYPE_URL,
        require_client_certificate: { value: true },
        common_tls_context: {
          tls_certificate_sds_secret_configs: [{ name: 'default' }],
          validation_context_sds_secret_config: { name: 'ROOTCA' },
          alpn_protocols: ['h2', 'http/1.1'],
        },
      },
    },
    filters: [hcm({
      route_config: {
        name: `inbound|${port}`,
        virtual_hosts: [{ name: 'inbound', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: `inbound|${port}||` } }] }],
      },
      http_filters: [
        rbacFilter({
          action: 'ALLOW',
          policies: {
            'ns-default': {
              permissions: [{ any: true }],
              principals: [{ authenticated: { principal_name: { safe_regex: { regex: '.*/ns/default/.*' } } } }],
            },
          },
        }),
        router,
      ],
    })],
    ...extra,
  };
}

function decode(plain: Plain) {
  return listenerType.decode(pack(TypeUrl.Listener, plain));
}
function ok(plain: Plain): Listener {
  const r = decode(plain);
  if (!r.ok) throw new Error(`unexpected problems: ${JSON.stringify(r.problems)}`);
  return r.value;
}
function fields(plain: Plain): string[] {
  const r = decode(plain);
  expect(r.ok).toBe(false);
  return r.ok ? [] : r.problems.map((p) => p.field);
}
function httpFilter(l: Listener, i = 0): Extract<NetworkFilter, { kind: 'http' }> {
  const f = l.filterChains[i]!.filter;
  if (f.kind !== 'http') throw new Error('not http');
  return f;
}

describe('listenerType.decode', () => {
  it('decodes the outbound listener (RDS)', () => {
    const l = ok(outbound);
    expect(l.name).toBe('outbound');
    expect(l.address).toEqual({ host: '0.0.0.0', port: 15001 });
    expect(l.filterChains[0]).toEqual({
      name: '', destinationPorts: [], serverNames: [], filter: { kind: 'http', statPrefix: 'http', rdsName: 'outbound', rbac: [] },
    });
    expect(listenerType.references(l)).toEqual([{ typeUrl: TypeUrl.RouteConfiguration, name: 'outbound' }]);
  });

  it('decodes the inbound listener: port match, TLS by SDS name, inline routes, RBAC', () => {
    const l = ok({ name: 'inbound', address: { socket_address: { address: '0.0.0.0', port_value: 15006 } }, filter_chains: [inboundChain(8080), inboundChain(9090)] });
    const chain = l.filterChains[0]!;
    expect(chain.name).toBe('inbound|8080');
    expect(chain.destinationPorts).toEqual([8080]);
    expect(chain.tls).toEqual({ certificateSecret: 'default', validationSecret: 'ROOTCA', requireClientCertificate: true, alpn: ['h2', 'http/1.1'] });
    const f = httpFilter(l);
    expect(f.inlineRoutes?.virtualHosts[0]?.routes[0]?.action).toMatchObject({ backends: [{ cluster: 'inbound|8080||' }] });
    expect(f.rbac).toEqual([{
      action: 'ALLOW',
      policies: [{ name: 'ns-default', permissions: [{ any: true }], principals: [{ namespace: { kind: 'exact', value: 'default' } }] }],
    }]);
    expect(listenerType.references(l)).toEqual([
      { typeUrl: TypeUrl.Secret, name: 'default' },
      { typeUrl: TypeUrl.Secret, name: 'ROOTCA' },
    ]);
  });

  it('decodes server_names, transport_protocol and a default filter chain', () => {
    const l = ok({
      name: 'l',
      filter_chains: [{ filter_chain_match: { server_names: ['8080.Inbound.weft.internal'], transport_protocol: 'tls' }, filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [router] })] }],
      default_filter_chain: { filters: [{ name: 'tcp', typed_config: { '@type': TCP_PROXY_TYPE_URL, stat_prefix: 'tcp', cluster: 'passthrough' } }] },
    });
    expect(l.filterChains[0]).toMatchObject({ serverNames: ['8080.inbound.weft.internal'], transportProtocol: 'tls' });
    expect(l.defaultFilterChain?.filter).toEqual({ kind: 'tcp', statPrefix: 'tcp', cluster: 'passthrough', rbac: [] });
  });

  it('decodes network RBAC before tcp_proxy as the connection\'s authorization, and refuses it before the HTTP connection manager', () => {
    const networkRbac = (action: string) => ({
      name: 'envoy.filters.network.rbac',
      typed_config: { '@type': NETWORK_RBAC_TYPE_URL, stat_prefix: 'rbac_', rules: { action, policies: { p: { permissions: [{ any: true }], principals: [{ any: true }] } } } },
    });
    const tcp = { name: 'tcp', typed_config: { '@type': TCP_PROXY_TYPE_URL, stat_prefix: 'tcp', cluster: 'db' } };
    const l = ok({ name: 'l', filter_chains: [{ filters: [networkRbac('ALLOW'), networkRbac('DENY'), tcp] }] });
    expect(l.filterChains[0]!.filter).toEqual({
      kind: 'tcp',
      statPrefix: 'tcp',
      cluster: 'db',
      // DENY lists first, as for HTTP.
      rbac: [
        { action: 'DENY', policies: [{ name: 'p', permissions: [{ any: true }], principals: [{ any: true }] }] },
        { action: 'ALLOW', policies: [{ name: 'p', permissions: [{ any: true }], principals: [{ any: true }] }] },
      ],
    });
    expect(fields({ name: 'l', filter_chains: [{ filters: [networkRbac('DENY'), hcm({ rds: { route_config_name: 'r' }, http_filters: [router] })] }] })).toEqual(['filter_chains[0].filters']);
  });

  it('decodes a proxyless api_listener as one catch-all chain', () => {
    const l = ok({
      name: 'reviews.default.svc.cluster.local:9080',
      api_listener: { api_listener: hcm({ rds: { route_config_name: 'reviews:9080' }, http_filters: [router] }).typed_config },
    });
    expect(l.filterChains).toHaveLength(1);
    expect(httpFilter(l).rdsName).toBe('reviews:9080');
    expect(listenerType.references(l)).toEqual([{ typeUrl: TypeUrl.RouteConfiguration, name: 'reviews:9080' }]);
  });

  it('skips optional and disabled unknown HTTP filters', () => {
    const l = ok({ name: 'l', filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [
      { name: 'opt', is_optional: true, typed_config: unknownAny('x.Fault') },
      { name: 'off', disabled: true, typed_config: unknownAny('x.Other') },
      router,
    ] })] }] });
    expect(httpFilter(l).rbac).toEqual([]);
  });
});

describe('listenerType.decode: RBAC', () => {
  function rules(l: Listener) {
    return httpFilter(l).rbac;
  }
  function withRbac(...filters: Plain[]): Plain {
    return { name: 'l', filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [...filters, router] })] }] };
  }

  it('principals, :method / url_path / port permissions, and_rules expansion; DENY lists first', () => {
    const l = ok(withRbac(
      rbacFilter({
        action: 'ALLOW',
        policies: {
          p: {
            principals: [{ or_ids: { ids: [
              { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/default/sa/client' } } },
              { authenticated: {} },
            ] } }],
            permissions: [{ and_rules: { rules: [
              { or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'get' } } }, { header: { name: ':method', exact_match: 'POST' } }] } },
              { url_path: { path: { prefix: '/api/' } } },
              { destination_port: 8080 },
            ] } }],
          },
        },
      }),
      rbacFilter({ action: 'DENY', policies: { d: { principals: [{ any: true }], permissions: [{ url_path: { path: { exact: '/admin' } } }] } } }),
    ));
    const [deny, allow] = rules(l);
    expect(deny!.action).toBe('DENY');
    expect(allow!.policies[0]!.principals).toEqual([
      { principal: { kind: 'exact', value: 'spiffe://cluster.local/ns/default/sa/client' } },
      { principal: { kind: 'prefix', value: '' } },
    ]);
    expect(allow!.policies[0]!.permissions).toEqual([
      { methods: ['GET'], paths: [{ kind: 'prefix', value: '/api/' }], ports: [8080] },
      { methods: ['POST'], paths: [{ kind: 'prefix', value: '/api/' }], ports: [8080] },
    ]);
  });

  it('no rules or LOG action enforce nothing', () => {
    expect(rules(ok(withRbac({ name: 'rbac', typed_config: { '@type': RBAC_TYPE_URL } })))).toEqual([]);
    expect(rules(ok(withRbac(rbacFilter({ action: 'LOG', policies: {} }))))).toEqual([]);
  });

  it('rejects unsupported principals and permissions with their paths', () => {
    const at = 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.rules.policies["p"]';
    expect(fields(withRbac(rbacFilter({
      policies: {
        p: {
          principals: [{ not_id: { any: true } }],
          permissions: [{ header: { name: 'x-user', exact_match: 'a' } }, { destination_ip: { address_prefix: '10.0.0.0' } }],
        },
      },
    })))).toEqual([
      `${at}.permissions[0].header`,
      `${at}.permissions[1]`,
      `${at}.principals[0]`,
    ]);
  });
});

describe('listenerType.decode: rejections', () => {
  it('an unknown network filter type', () => {
    expect(fields({ name: 'l', filter_chains: [{ filters: [{ name: 'x', typed_config: unknownAny('envoy.extensions.filters.network.redis_proxy.v3.RedisProxy') }] }] }))
      .toEqual(['filter_chains[0].filters[0].typed_config']);
  });

  it('http_filters whose last filter is not the router', () => {
    const r = decode({ name: 'l', filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [router, rbacFilter({})] })] }] });
    expect(r.ok ? [] : r.problems).toEqual([
      { field: 'filter_chains[0].filters[0].typed_config.http_filters[0]', message: 'the router must be the last HTTP filter' },
      {
        field: 'filter_chains[0].filters[0].typed_config.http_filters[1]',
        message: `the last HTTP filter must be the router (envoy.filters.http.router), got "${RBAC_TYPE_URL}"`,
      },
    ]);
  });

  it('an empty http_filters list', () => {
    expect(fields({ name: 'l', filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'r' } })] }] }))
      .toEqual(['filter_chains[0].filters[0].typed_config.http_filters']);
  });

  it('an unknown HTTP filter that is not optional', () => {
    expect(fields({ name: 'l', filter_chains: [{ filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [{ name: 'fault', typed_config: unknownAny('x.Fault') }, router] })] }] }))
      .toEqual(['filter_chains[0].filters[0].typed_config.http_filters[0].typed_config']);
  });

  it('an HCM without routes, unsupported match criteria, duplicate chains', () => {
    expect(fields({
      name: 'l',
      filter_chains: [
        { filter_chain_match: { source_prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: { value: 8 } }] }, filters: [hcm({ http_filters: [router] })] },
        { filter_chain_match: { destination_port: { value: 80 } }, filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [router] })] },
        { filter_chain_match: { destination_port: { value: 80 } }, filters: [hcm({ rds: { route_config_name: 'r' }, http_filters: [router] })] },
      ],
    })).toEqual([
      'filter_chains[0].filter_chain_match.source_prefix_ranges',
      'filter_chains[0].filters[0].typed_config',
      'filter_chains[2]',
    ]);
  });

  it('a bad inline route inside an inbound chain keeps its full path', () => {
    const chain = inboundChain(8080);
    const hcmCfg = ((chain.filters as Plain[])[0]!.typed_config as Plain);
    ((hcmCfg.route_config as Plain).virtual_hosts as Plain[])[0]!.routes = [{ match: { safe_regex: { regex: '(' } }, route: { cluster: 'x' } }];
    expect(fields({ name: 'inbound', filter_chains: [chain] }))
      .toEqual(['filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex']);
  });

  it('TLS with inline certificates, or client certs required without a validation context', () => {
    const chain = inboundChain(8080, {
      transport_socket: {
        name: 'tls',
        typed_config: {
          '@type': DOWNSTREAM_TLS_TYPE_URL,
          require_client_certificate: { value: true },
          common_tls_context: { tls_certificates: [{ certificate_chain: { inline_string: 'x' } }] },
        },
      },
    });
    const at = 'filter_chains[0].transport_socket.typed_config';
    expect(fields({ name: 'inbound', filter_chains: [chain] })).toEqual([
      `${at}.common_tls_context.tls_certificates`,
      `${at}.common_tls_context.tls_certificate_sds_secret_configs`,
      `${at}.require_client_certificate`,
    ]);
  });

  it('reports several problems of one listener together', () => {
    expect(fields({
      name: '',
      filter_chains: [
        { filters: [] },
        { filters: [hcm({ rds: { route_config_name: '' }, http_filters: [router] })] },
      ],
    })).toEqual(['name', 'filter_chains[0].filters', 'filter_chains[1].filters[0].typed_config.rds.route_config_name']);
  });
});

describe('listenerType.decode: the ambient pod of a per-pod listener (metadata weft)', () => {
  const IDENTITY = 'spiffe://cluster.local/ns/shop/sa/reviews';
  const perPod = (weft: Record<string, unknown>): Plain => ({
    name: 'ambient|shop|reviews-v1',
    address: { socket_address: { address: '10.1.0.5', port_value: 15008 } },
    filter_chains: [inboundChain(9080)],
    metadata: { filter_metadata: { weft: toStruct(weft) } },
  });
  const good = { workload: 'reviews-v1', namespace: 'shop', service_account: 'reviews', identity: IDENTITY };

  it('decodes workload, namespace, service account and identity', () => {
    const l = ok(perPod(good));
    expect(l.workload).toEqual({ name: 'reviews-v1', namespace: 'shop', serviceAccount: 'reviews', identity: IDENTITY });
    expect(l.address).toEqual({ host: '10.1.0.5', port: 15008 });
  });

  it('a listener without the metadata has no workload', () => {
    expect(ok(outbound).workload).toBeUndefined();
    expect(ok({ ...outbound, metadata: { filter_metadata: { other: toStruct({ a: 1 }) } } }).workload).toBeUndefined();
  });

  const at = 'metadata.filter_metadata.weft';
  const rejections: [string, Record<string, unknown>, string, RegExp][] = [
    ['a missing workload', { ...good, workload: undefined }, `${at}.workload`, /workload is required/],
    ['a namespace that is not a DNS label', { ...good, namespace: 'Shop.x' }, `${at}.namespace`, /must be a namespace name .*got "Shop.x"/],
    ['a numeric service account', { ...good, service_account: 7 }, `${at}.service_account`, /got 7/],
    ['an identity that is not a SPIFFE ID', { ...good, identity: 'reviews' }, `${at}.identity`, /must be a SPIFFE ID/],
    [
      'an identity of another service account',
      { ...good, identity: 'spiffe://cluster.local/ns/shop/sa/ratings' },
      `${at}.identity`,
      /is not the one of namespace "shop" and service account "reviews"/,
    ],
  ];
  it.each(rejections)('rejects %s, naming the field', (_name, weft, field, message) => {
    const r = decode(perPod(Object.fromEntries(Object.entries(weft).filter(([, v]) => v !== undefined))));
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    expect(problems.map((p) => p.field)).toEqual([field]);
    expect(problems[0]?.message).toMatch(message);
  });
});
