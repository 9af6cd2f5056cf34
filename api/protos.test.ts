// Tests for the compact proto descriptor the build writes (api/protos-build.ts): the Root it
// gives encodes and decodes exactly as the parsed .proto files do, keeps every type outside the
// option-only files, and a descriptor made from other files or versions is never used.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import protobuf from 'protobufjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compactDescriptor,
  descriptorKey,
  parseProtoFiles,
  protoRoot,
  readProtoDescriptor,
  rootFromDescriptor,
  TO_PLAIN,
  writeProtoDescriptor,
  type ProtoDescriptor,
} from './protos.js';
import { HCM_TYPE_URL, HTTP_PROTOCOL_OPTIONS_TYPE_URL, RBAC_TYPE_URL, ROUTER_TYPE_URL, TypeUrl, UPSTREAM_TLS_TYPE_URL } from './types.js';

const T = 'type.googleapis.com/';

function definitions(ns: protobuf.NamespaceBase, out: protobuf.ReflectionObject[] = []): protobuf.ReflectionObject[] {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service) out.push(o);
    if (o instanceof protobuf.Namespace) definitions(o, out);
  }
  return out;
}

/** Everything about a field that changes its wire form or its plain-object form. */
function fieldShape(f: protobuf.Field) {
  return {
    id: f.id,
    type: f.type,
    rule: f.rule,
    repeated: f.repeated,
    packed: f.packed,
    map: f.map,
    keyType: f instanceof protobuf.MapField ? f.keyType : undefined,
    resolvedType: f.resolvedType?.fullName,
    oneof: f.partOf?.name,
    presence: Boolean(f.hasPresence),
    delimited: f.delimited,
    default: String(f.defaultValue),
    long: f.long,
    bytes: f.bytes,
  };
}

/** Realistic resources of every kind the codec carries, Any-packed filters and maps included. */
const SAMPLES: { typeUrl: string; plain: Record<string, unknown> }[] = [
  {
    typeUrl: TypeUrl.Listener,
    plain: {
      name: 'inbound',
      address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
      filter_chains: [
        {
          name: 'inbound|9080',
          filter_chain_match: { destination_port: { value: 9080 }, transport_protocol: 'tls' },
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': HCM_TYPE_URL,
                stat_prefix: 'inbound',
                codec_type: 'AUTO',
                route_config: {
                  name: 'inbound|9080',
                  virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|9080||', timeout: { seconds: 15 } } }] }],
                },
                http_filters: [
                  {
                    name: 'envoy.filters.http.rbac',
                    typed_config: {
                      '@type': RBAC_TYPE_URL,
                      rules: {
                        action: 'DENY',
                        policies: { p: { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: 'spiffe://x/ns/a/sa/b' } } }] } },
                      },
                    },
                  },
                  { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } },
                ],
              },
            },
          ],
        },
      ],
      metadata: { filter_metadata: { weft: { fields: { workload: { stringValue: 'a' } } } } },
    },
  },
  {
    typeUrl: TypeUrl.RouteConfiguration,
    plain: {
      name: 'outbound',
      virtual_hosts: [
        {
          name: 'reviews.default.svc.cluster.local:9080',
          domains: ['reviews', 'reviews:9080'],
          routes: [
            {
              name: 'default/r/0',
              match: { safe_regex: { regex: '^/v[12]/.*' }, headers: [{ name: ':method', string_match: { exact: 'GET' } }] },
              route: {
                weighted_clusters: { clusters: [{ name: 'a', weight: { value: 90 } }, { name: 'b', weight: { value: 10 } }] },
                retry_policy: { retry_on: '5xx', num_retries: { value: 3 }, per_try_timeout: { nanos: 500_000_000 } },
                request_mirror_policies: [{ cluster: 'm', runtime_fraction: { default_value: { numerator: 50, denominator: 'HUNDRED' } } }],
              },
              request_headers_to_add: [{ header: { key: 'x-a', value: '1' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
            },
            { match: { prefix: '/' }, redirect: { host_redirect: 'x', response_code: 'FOUND' } },
          ],
        },
      ],
    },
  },
  {
    typeUrl: TypeUrl.Cluster,
    plain: {
      name: 'outbound|9080||reviews.default.svc.cluster.local',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} }, service_name: 'outbound|9080||reviews.default.svc.cluster.local' },
      connect_timeout: { seconds: 1, nanos: 5 },
      lb_policy: 'LEAST_REQUEST',
      typed_extension_protocol_options: {
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': { '@type': HTTP_PROTOCOL_OPTIONS_TYPE_URL, explicit_http_config: { http2_protocol_options: {} } },
      },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: { '@type': UPSTREAM_TLS_TYPE_URL, sni: '9080.inbound.weft.internal', common_tls_context: { alpn_protocols: ['h2', 'http/1.1'] } },
      },
      outlier_detection: { consecutive_5xx: { value: 5 }, base_ejection_time: { seconds: 30 } },
      circuit_breakers: { thresholds: [{ max_connections: { value: 100 }, retry_budget: { budget_percent: { value: 20 } } }] },
    },
  },
  {
    typeUrl: TypeUrl.ClusterLoadAssignment,
    plain: {
      cluster_name: 'c',
      endpoints: [
        {
          load_balancing_weight: { value: 1 },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 15006 } } }, health_status: 'HEALTHY', load_balancing_weight: { value: 7 } }],
        },
      ],
    },
  },
  { typeUrl: TypeUrl.Secret, plain: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: '-----BEGIN CERTIFICATE-----' } } } },
  {
    typeUrl: `${T}envoy.service.discovery.v3.DiscoveryResponse`,
    plain: { version_info: '1', nonce: 'n', type_url: TypeUrl.Cluster, resources: [{ '@type': TypeUrl.Secret, name: 's' }] },
  },
  {
    typeUrl: `${T}envoy.service.discovery.v3.DeltaDiscoveryRequest`,
    plain: { node: { id: 'a.b', metadata: { fields: { INBOUND_PORT: { numberValue: 15006 } } } }, resource_names_subscribe: ['x'], initial_resource_versions: { x: 'v1' } },
  },
  { typeUrl: `${T}istio.v1.auth.IstioCertificateRequest`, plain: { csr: 'PEM', validity_duration: 86_400 } },
];

describe('the compact proto descriptor', () => {
  let parsed: protobuf.Root;
  let descriptor: ProtoDescriptor;
  let compact: protobuf.Root;
  beforeAll(() => {
    parsed = parseProtoFiles();
    descriptor = compactDescriptor(parsed);
    compact = rootFromDescriptor(JSON.parse(JSON.stringify(descriptor)) as ProtoDescriptor);
  });

  it('gives every type the same fields as the parsed files', () => {
    const types = definitions(compact).filter((o): o is protobuf.Type => o instanceof protobuf.Type);
    expect(types.length).toBeGreaterThan(300);
    for (const t of types) {
      const original = parsed.lookupType(t.fullName);
      expect(Object.keys(t.fields), t.fullName).toEqual(Object.keys(original.fields));
      for (const f of t.fieldsArray) expect(fieldShape(f), `${t.fullName}.${f.name}`).toEqual(fieldShape(original.fields[f.name]!));
      expect(Object.keys(t.oneofs ?? {}), t.fullName).toEqual(Object.keys(original.oneofs ?? {}));
    }
    for (const e of definitions(compact).filter((o): o is protobuf.Enum => o instanceof protobuf.Enum)) {
      expect(e.values, e.fullName).toEqual(parsed.lookupEnum(e.fullName).values);
    }
  });

  it('leaves out only what the option-only files define', () => {
    const left = definitions(parsed).filter((o) => compact.lookup(o.fullName) === null);
    const files = new Set(left.map((o) => path.basename(o.filename ?? '')));
    expect([...files].sort()).toEqual(['descriptor.proto', 'migrate.proto', 'security.proto', 'status.proto', 'validate.proto', 'versioning.proto']);
    expect(JSON.stringify(descriptor.root)).not.toContain('validate.rules');
  });

  it('encodes and decodes every kind of resource as the parsed files do', () => {
    for (const { typeUrl, plain } of SAMPLES) {
      const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
      const [a, b] = [parsed.lookupType(name), compact.lookupType(name)];
      const wire = a.encode(a.fromObject(plain)).finish();
      expect(Buffer.from(b.encode(b.fromObject(plain)).finish()).toString('hex'), name).toBe(Buffer.from(wire).toString('hex'));
      expect(b.toObject(b.decode(wire), TO_PLAIN), name).toEqual(a.toObject(a.decode(wire), TO_PLAIN));
    }
  });

  it("the process's Root keeps no lookup caches from resolving, and still resolves and round-trips every sample", () => {
    const root = protoRoot();
    const cached = (ns: protobuf.NamespaceBase) => Object.keys((ns as unknown as { _lookupCache: object })._lookupCache).length;
    // Resolving fills every namespace's cache (thousands of entries in all); the process's Root drops them.
    expect(definitions(compact).filter((o): o is protobuf.Namespace => o instanceof protobuf.Namespace).reduce((n, ns) => n + cached(ns), cached(compact))).toBeGreaterThan(1000);
    const namespaces = definitions(root).filter((o): o is protobuf.Namespace => o instanceof protobuf.Namespace);
    expect(namespaces.length).toBeGreaterThan(300);
    expect(namespaces.every((ns) => cached(ns) === 0)).toBe(true);
    for (const { typeUrl, plain } of SAMPLES) {
      const name = typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
      const [a, b] = [parsed.lookupType(name), root.lookupType(name)];
      const wire = a.encode(a.fromObject(plain)).finish();
      expect(b.toObject(b.decode(wire), TO_PLAIN), name).toEqual(a.toObject(a.decode(wire), TO_PLAIN));
    }
  });

  it('is used only when it was made from the same files and versions', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'weft-protos-'));
    const file = path.join(dir, 'protos.json');
    writeProtoDescriptor(file);
    expect(readProtoDescriptor(file)?.key).toEqual(descriptorKey());

    const key = descriptorKey();
    const stale = (k: object) => (writeFileSync(file, JSON.stringify({ key: { ...key, ...k }, root: descriptor.root })), readProtoDescriptor(file));
    expect(stale({ files: key.files.slice(1) })).toBeUndefined();
    expect(stale({ files: [...key.files, 'envoy/config/route/v3/scoped_route.proto'] })).toBeUndefined();
    expect(stale({ protobufjs: '0.0.1' })).toBeUndefined();
    expect(stale({ envoyApi: '0.0.1' })).toBeUndefined();
    expect(stale({ own: 'edited' })).toBeUndefined();
    // dist/ shipped without api/proto (the image): the descriptor stands on its own.
    expect(stale({ own: undefined })).toBeDefined();

    writeFileSync(file, '{"key": {"files": [');
    expect(readProtoDescriptor(file)).toBeUndefined();
    expect(readProtoDescriptor(path.join(dir, 'missing.json'))).toBeUndefined();
  });
});
