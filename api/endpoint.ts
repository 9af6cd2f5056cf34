// EDS: ClusterLoadAssignment → EndpointAssignment (addresses, health, weights, and Weft's
// `weft` endpoint metadata: workload, SPIFFE identity, target port behind the sidecar, HBONE
// tunnel and waypoint flags).
import { isIPv4, isIPv6 } from 'node:net';
import { portNumber } from '../core/port.js';
import type { Plain } from './codec.js';
import type { Endpoint, EndpointAssignment } from './domain.js';
import type { ResourceType } from './resource.js';
import { TypeUrl } from './types.js';
import { Problems, deepEqual, field, has, list, num, obj, result, str, unpackChecked, wrappedNum } from './matchers.js';

const HEALTHY = new Set(['UNKNOWN', 'HEALTHY']);

/** core.v3.Address with a socket_address → host and port. */
export function decodeSocketAddress(
  addr: Plain | undefined,
  path: string,
  p: Problems,
  opts: { allowPortZero?: boolean } = {},
): { host: string; port: number } | undefined {
  if (!addr) {
    p.add(path, 'an address is required');
    return undefined;
  }
  const sa = obj(addr, 'socket_address');
  if (!sa) {
    const kind = Object.keys(addr)[0] ?? 'empty';
    p.add(path, `only socket_address is supported, got ${kind}`);
    return undefined;
  }
  const at = field(path, 'socket_address');
  const host = str(sa, 'address') ?? '';
  if (!host) p.add(field(at, 'address'), 'an address is required');
  if (has(sa, 'named_port')) {
    p.add(field(at, 'named_port'), 'named ports are not supported; use port_value');
    return undefined;
  }
  const port = num(sa, 'port_value') ?? 0;
  if (port > 65535 || (port === 0 && !opts.allowPortZero)) p.add(field(at, 'port_value'), `invalid port ${port}`);
  return host ? { host, port } : undefined;
}

/** A google.protobuf.Struct as unpacked: accepts both snake_case and camelCase Value fields
 *  (protobufjs ships struct.proto with camelCase names, whatever keepCase says). */
export function readStruct(s: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields;
  if (!fields || typeof fields !== 'object') return out;
  for (const [k, v] of Object.entries(fields)) out[k] = readValue(v as Plain);
  return out;
}

function readValue(v: Plain | undefined): unknown {
  if (!v || typeof v !== 'object') return null;
  const pick = (camel: string, snake: string) => (v[camel] !== undefined ? v[camel] : v[snake]);
  const s = pick('stringValue', 'string_value');
  if (s !== undefined) return s;
  const n = pick('numberValue', 'number_value');
  if (n !== undefined) return n;
  const b = pick('boolValue', 'bool_value');
  if (b !== undefined) return b;
  const st = pick('structValue', 'struct_value');
  if (st !== undefined) return readStruct(st);
  const l = pick('listValue', 'list_value') as { values?: Plain[] } | undefined;
  if (l !== undefined) return (l.values ?? []).map(readValue);
  return null;
}

function weftMetadata(md: Plain | undefined, path: string, p: Problems): Pick<Endpoint, 'workload' | 'identity' | 'targetPort' | 'tunnel' | 'waypoint' | 'authority'> {
  const weft = obj(obj(md, 'filter_metadata'), 'weft');
  if (!weft) return {};
  const at = `${path}.filter_metadata.weft`;
  const m = readStruct(weft);
  const out: { workload?: string; identity?: string; targetPort?: number; tunnel?: 'hbone'; waypoint?: boolean; authority?: string } = {};
  if (m.workload !== undefined && m.workload !== null) {
    if (typeof m.workload === 'string' && m.workload) out.workload = m.workload;
    else p.add(`${at}.workload`, `workload must be a non-empty string, got ${JSON.stringify(m.workload)}`);
  }
  if (m.identity !== undefined && m.identity !== null) {
    if (typeof m.identity === 'string' && m.identity.startsWith('spiffe://')) out.identity = m.identity;
    else p.add(`${at}.identity`, `identity must be a SPIFFE ID (spiffe://...), got ${JSON.stringify(m.identity)}`);
  }
  if (m.target_port !== undefined && m.target_port !== null) {
    const port = portNumber(m.target_port);
    if (port !== undefined) out.targetPort = port;
    else p.add(`${at}.target_port`, `target_port must be a port number, got ${JSON.stringify(m.target_port)}`);
  }
  if (m.tunnel !== undefined && m.tunnel !== null) {
    if (m.tunnel === 'hbone') out.tunnel = 'hbone';
    else p.add(`${at}.tunnel`, `tunnel must be "hbone" (the only tunnel Weft speaks), got ${JSON.stringify(m.tunnel)}`);
  }
  if (m.waypoint !== undefined && m.waypoint !== null) {
    if (typeof m.waypoint === 'boolean') out.waypoint = m.waypoint;
    else p.add(`${at}.waypoint`, `waypoint must be a boolean, got ${JSON.stringify(m.waypoint)}`);
  }
  if (m.authority !== undefined && m.authority !== null) {
    if (isIpAuthority(m.authority)) out.authority = m.authority;
    else p.add(`${at}.authority`, `authority must be an IP address and port ("10.96.0.10:80", "[fd00::10]:80"), got ${JSON.stringify(m.authority)}`);
  }
  return out;
}

/** `ip:port` or `[ipv6]:port`: what an HBONE CONNECT names. */
function isIpAuthority(v: unknown): v is string {
  if (typeof v !== 'string') return false;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):([0-9]{1,5})$/.exec(v);
  if (!m || portNumber(m[3]) === undefined) return false;
  return m[1] !== undefined ? isIPv6(m[1]) : isIPv4(m[2]!);
}

function localityName(l: Plain | undefined): string | undefined {
  const parts = [str(l, 'region') ?? '', str(l, 'zone') ?? '', str(l, 'sub_zone') ?? ''];
  return parts.some(Boolean) ? parts.join('/') : undefined;
}

function decodeLbEndpoint(e: Plain, path: string, p: Problems, locality: string | undefined): Endpoint | undefined {
  if (has(e, 'endpoint_name')) {
    p.add(field(path, 'endpoint_name'), 'named endpoints are not supported');
    return undefined;
  }
  const addr = decodeSocketAddress(obj(obj(e, 'endpoint'), 'address'), field(path, 'endpoint.address'), p);
  const weight = wrappedNum(e, 'load_balancing_weight') ?? 1;
  if (weight < 1) p.add(field(path, 'load_balancing_weight'), 'load_balancing_weight must be at least 1');
  const status = str(e, 'health_status') ?? 'UNKNOWN';
  const meta = weftMetadata(obj(e, 'metadata'), field(path, 'metadata'), p);
  if (!addr) return undefined;
  return { host: addr.host, port: addr.port, weight, healthy: HEALTHY.has(status), ...meta, ...(locality ? { locality } : {}) };
}

/** The endpoints of a ClusterLoadAssignment (also a STATIC cluster's inline load_assignment). */
export function decodeEndpoints(cla: Plain | undefined, path: string, p: Problems): Endpoint[] {
  const out: Endpoint[] = [];
  list(cla, 'endpoints').forEach((loc, i) => {
    const at = field(field(path, 'endpoints'), i);
    if ((num(loc, 'priority') ?? 0) !== 0) p.add(field(at, 'priority'), 'endpoint priorities other than 0 are not supported');
    if (has(loc, 'leds_cluster_locality_config')) p.add(field(at, 'leds_cluster_locality_config'), 'LEDS is not supported');
    const locality = localityName(obj(loc, 'locality'));
    const inline = list(loc, 'lb_endpoints');
    const grouped = list(obj(loc, 'load_balancer_endpoints'), 'lb_endpoints');
    const [key, eps] = inline.length > 0 ? ['lb_endpoints', inline] : ['load_balancer_endpoints.lb_endpoints', grouped];
    eps.forEach((e, j) => {
      const ep = decodeLbEndpoint(e, field(field(at, key), j), p, locality);
      if (ep) out.push(ep);
    });
  });
  return out;
}

export const endpointType: ResourceType<EndpointAssignment> = {
  typeUrl: TypeUrl.ClusterLoadAssignment,
  decode(any) {
    const p = new Problems();
    const plain = unpackChecked(any, TypeUrl.ClusterLoadAssignment, p);
    if (!plain) return result<EndpointAssignment>(undefined, undefined, p);
    const clusterName = str(plain, 'cluster_name');
    if (!clusterName) p.add('cluster_name', 'a cluster name is required');
    return result(clusterName, { clusterName: clusterName ?? '', endpoints: decodeEndpoints(plain, '', p) }, p);
  },
  references: () => [],
  equals: (a, b) => deepEqual(a, b),
};
