// Small builders for the Envoy (xDS v3) plain objects the translator emits, in the snake_case
// shape api/codec.ts `pack()` accepts: names, durations, matchers, header mutations, TLS sockets.
import type { Plain } from '../../api/codec.js';
import { messageType } from '../../api/protos.js';
import { DOWNSTREAM_TLS_TYPE_URL, HCM_TYPE_URL, ROUTER_TYPE_URL, UPSTREAM_TLS_TYPE_URL } from '../../api/types.js';
import type { HeaderModifier } from '../model/index.js';

export const CLUSTER_DOMAIN = 'cluster.local';

export function serviceFqdn(name: string, namespace: string): string {
  return `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`;
}

export function outboundClusterName(port: number, name: string, namespace: string): string {
  return `outbound|${port}||${serviceFqdn(name, namespace)}`;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

/**
 * A cluster name that never exists, for a backendRef that cannot be resolved: the route keeps
 * its weights, and that share answers 500 through `cluster_not_found_response_code`.
 */
export function unresolvedClusterName(kind: string, namespace: string, name: string, port: number | undefined): string {
  return `unresolved|${kind}|${namespace}/${name}:${port ?? 0}`;
}

/** google.protobuf.Duration from milliseconds. */
export function duration(ms: number): Plain {
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms % 1000) * 1_000_000;
  return nanos === 0 ? { seconds } : { seconds, nanos };
}

/** google.protobuf.UInt32Value. */
export function u32(value: number): Plain {
  return { value };
}

let valueFieldsSnake: boolean | undefined;

/**
 * A google.protobuf.Struct of strings, numbers and booleans. protobufjs resolves
 * google/protobuf/struct.proto to its own bundled copy whose fields are camelCase, so the
 * spelling is taken from the loaded type; a snake_case Value would be dropped without a word.
 */
export function struct(json: Readonly<Record<string, string | number | boolean>>): Plain {
  valueFieldsSnake ??= 'string_value' in messageType('google.protobuf.Value').fields;
  const name = (snake: string) => (valueFieldsSnake ? snake : snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()));
  const fields: Plain = {};
  for (const [k, v] of Object.entries(json)) {
    fields[k] = { [name(typeof v === 'string' ? 'string_value' : typeof v === 'number' ? 'number_value' : 'bool_value')]: v };
  }
  return { fields };
}

export const ADS_CONFIG_SOURCE: Plain = Object.freeze({ ads: {}, resource_api_version: 'V3' });

export function stringMatch(type: 'Exact' | 'RegularExpression', value: string): Plain {
  return type === 'Exact' ? { exact: value } : { safe_regex: { regex: value } };
}

export interface HeaderMutation {
  readonly toAdd: Plain[];
  readonly toRemove: string[];
}

/** Gateway API set/add/remove → Envoy HeaderValueOptions (set overwrites, add appends). */
export function headerMutation(mod: HeaderModifier | undefined): HeaderMutation {
  if (!mod) return { toAdd: [], toRemove: [] };
  // Envoy reads header values as format strings (`%VAR%`): a literal "%" must be written "%%".
  const option = (name: string, value: string, append_action: string): Plain => ({
    header: { key: name.toLowerCase(), value: value.replaceAll('%', '%%') },
    append_action,
  });
  return {
    toAdd: [
      ...mod.set.map((h) => option(h.name, h.value, 'OVERWRITE_IF_EXISTS_OR_ADD')),
      ...mod.add.map((h) => option(h.name, h.value, 'APPEND_IF_EXISTS_OR_ADD')),
    ],
    toRemove: mod.remove.map((n) => n.toLowerCase()),
  };
}

/** Puts `request_headers_to_add` & co. on `target` (a Route or a ClusterWeight), only when non-empty. */
export function applyHeaderMutations(target: Plain, request: HeaderMutation, response: HeaderMutation): void {
  if (request.toAdd.length > 0) target.request_headers_to_add = request.toAdd;
  if (request.toRemove.length > 0) target.request_headers_to_remove = request.toRemove;
  if (response.toAdd.length > 0) target.response_headers_to_add = response.toAdd;
  if (response.toRemove.length > 0) target.response_headers_to_remove = response.toRemove;
}

/** An HTTP connection manager network filter; `routes` is an RDS reference or an inline config. */
export function httpConnectionManager(statPrefix: string, routes: { rds: string } | { inline: Plain }): Plain {
  const hcm: Plain = {
    '@type': HCM_TYPE_URL,
    stat_prefix: statPrefix,
    codec_type: 'AUTO',
    http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } }],
  };
  if ('rds' in routes) hcm.rds = { route_config_name: routes.rds, config_source: ADS_CONFIG_SOURCE };
  else hcm.route_config = routes.inline;
  return { name: 'envoy.filters.network.http_connection_manager', typed_config: hcm };
}

function sdsCommonTlsContext(alpn: readonly string[]): Plain {
  return {
    tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS_CONFIG_SOURCE }],
    validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS_CONFIG_SOURCE },
    alpn_protocols: [...alpn],
  };
}

/** mTLS towards another sidecar: our certificate `default`, peers checked against `ROOTCA`. */
export function upstreamTlsSocket(http2: boolean): Plain {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: { '@type': UPSTREAM_TLS_TYPE_URL, common_tls_context: sdsCommonTlsContext(http2 ? ['h2'] : ['http/1.1']) },
  };
}

/** mTLS from other sidecars: client certificates required and checked against `ROOTCA`. */
export function downstreamTlsSocket(): Plain {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS_TYPE_URL,
      common_tls_context: sdsCommonTlsContext(['h2', 'http/1.1']),
      require_client_certificate: { value: true },
    },
  };
}

export function socketAddress(address: string, port: number): Plain {
  return { socket_address: { address, port_value: port } };
}
