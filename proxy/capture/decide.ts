// Where a captured outbound connection goes, decided from the config snapshot and the original
// destination alone (pure): a Service VIP's virtual listener says HTTP, TCP or detect; anything
// else passes through to where it was going (Envoy's PassthroughCluster) unless the mesh is
// registry-only (BlackHoleCluster).
import type { FilterChain, Listener } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';
import type { OriginalDestination } from './original-dst.js';

export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';
export const BLACKHOLE_CLUSTER = 'BlackHoleCluster';

export type OutboundDecision =
  /** Not redirected: the client addressed the listener itself (HTTP_PROXY style): plain HTTP. */
  | { readonly kind: 'direct' }
  /** A Service port declared HTTP (name / appProtocol): straight to the HTTP data path. */
  | { readonly kind: 'http'; readonly listener: string }
  /** A Service port declared TCP (or TLS, MySQL, ...): bytes to the cluster over mTLS. */
  | { readonly kind: 'tcp'; readonly listener: string; readonly cluster: string }
  /** A Service port of unknown protocol: detect, then HTTP or TCP to `cluster`. */
  | { readonly kind: 'detect'; readonly listener: string; readonly cluster: string }
  /** Not a mesh Service: to the original destination, unchanged. */
  | { readonly kind: 'passthrough' }
  /** Not a mesh Service, and the mesh is registry-only. */
  | { readonly kind: 'blackhole' };

const byConfig = new WeakMap<ProxyConfig, ReadonlyMap<string, Listener>>();

function key(address: string, port: number): string {
  return `${address.toLowerCase()}:${port}`;
}

/** The snapshot's virtual (Service VIP) listeners by `address:port`, built once per snapshot. */
export function vipListeners(config: ProxyConfig): ReadonlyMap<string, Listener> {
  let m = byConfig.get(config);
  if (!m) {
    const found = new Map<string, Listener>();
    for (const l of config.listeners.values()) {
      const a = l.address;
      // The sidecar's own listeners bind the wildcard address; a Service's carries its VIP.
      if (!a || a.host === '0.0.0.0' || a.host === '::' || a.port === 0) continue;
      if (!found.has(key(a.host, a.port))) found.set(key(a.host, a.port), l);
    }
    m = found;
    byConfig.set(config, m);
  }
  return m;
}

function chains(l: Listener): FilterChain[] {
  return [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])];
}

/** What a VIP listener's chains say about the port's protocol. */
export function listenerDecision(l: Listener): OutboundDecision {
  const all = chains(l);
  const http = all.find((c) => c.filter.kind === 'http');
  const tcp = all.find((c) => c.filter.kind === 'tcp');
  const cluster = tcp?.filter.kind === 'tcp' ? tcp.filter.cluster : undefined;
  if (http && cluster) return { kind: 'detect', listener: l.name, cluster };
  if (cluster) return { kind: 'tcp', listener: l.name, cluster };
  return { kind: 'http', listener: l.name };
}

/**
 * The decision for one captured connection. `dst` is its original destination (undefined: the
 * kernel has no NAT record), `local` the address it arrived on: equal means not redirected.
 */
export function decideOutbound(
  config: ProxyConfig,
  dst: OriginalDestination | undefined,
  local: { readonly address: string; readonly port: number },
  policy: 'ALLOW_ANY' | 'REGISTRY_ONLY',
): OutboundDecision {
  if (!dst || (dst.port === local.port && sameAddress(dst.address, local.address))) return { kind: 'direct' };
  const l = vipListeners(config).get(key(dst.address, dst.port));
  if (l) return listenerDecision(l);
  return policy === 'REGISTRY_ONLY' ? { kind: 'blackhole' } : { kind: 'passthrough' };
}

function sameAddress(a: string, b: string): boolean {
  const strip = (s: string) => (s.startsWith('::ffff:') ? s.slice(7) : s).toLowerCase();
  return strip(a) === strip(b);
}
