// Which filter chain of the inbound Listener serves a connection, and the route config the
// planner should use for it. Pure: config and connection facts in, a chain out.
import type { FilterChain, Listener, RouteConfig } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';

export interface ChainFacts {
  /** App port the peer asked for (TLS SNI `<port>.inbound.weft.internal`), if it said. */
  readonly targetPort: number | undefined;
  readonly secure: boolean;
}

/**
 * Whether a chain serves plaintext connections: `raw_buffer` ones, and those that say nothing
 * and terminate no TLS (a chain with a TLS context cannot serve a client that speaks none).
 */
export function acceptsPlaintext(c: FilterChain): boolean {
  return c.transportProtocol === 'raw_buffer' || (c.transportProtocol === undefined && c.tls === undefined);
}

/**
 * Why a plaintext connection is refused by this listener (every port STRICT, or no inbound
 * listener at all), or undefined when some chain takes plaintext.
 */
export function plaintextRefusal(listener: Listener | undefined, listenerName: string): string | undefined {
  if (!listener) return `this workload has no ${listenerName} listener (no config yet, or it serves no port)`;
  const chains = [...listener.filterChains, ...(listener.defaultFilterChain ? [listener.defaultFilterChain] : [])];
  if (chains.some(acceptsPlaintext)) return undefined;
  return 'mTLS is STRICT on every port of this workload (PeerAuthentication); the client must use mTLS';
}

/**
 * Envoy-like selection, narrowed to what Weft's inbound listener uses: chains are filtered by
 * transport protocol; then the chain whose destination ports include the target port; without a
 * target port (plaintext has no SNI), the only chain that takes plaintext; then a chain for any
 * port; then the default chain.
 */
export function selectFilterChain(listener: Listener, facts: ChainFacts): FilterChain | undefined {
  const candidates = listener.filterChains.filter((c) => (facts.secure ? c.transportProtocol !== 'raw_buffer' : acceptsPlaintext(c)));
  if (facts.targetPort !== undefined) {
    const byPort = candidates.find((c) => c.destinationPorts.includes(facts.targetPort!));
    if (byPort) return byPort;
  } else if (candidates.length === 1) {
    return candidates[0];
  }
  const def = listener.defaultFilterChain;
  const defFits = def && (facts.secure ? def.transportProtocol !== 'raw_buffer' : acceptsPlaintext(def));
  return candidates.find((c) => c.destinationPorts.length === 0) ?? (defFits ? def : undefined);
}

const views = new WeakMap<ProxyConfig, WeakMap<RouteConfig, ProxyConfig>>();

/**
 * The (config, route config name) pair to hand the planner for an HTTP chain: its RDS name in
 * the snapshot itself, or a view of the snapshot whose only route config is the chain's
 * inline one (so inline configs of different chains never shadow each other). Views are
 * cached per snapshot.
 */
export function routesFor(config: ProxyConfig, chain: FilterChain): { config: ProxyConfig; name: string } | undefined {
  const f = chain.filter;
  if (f.kind !== 'http') return undefined;
  if (f.inlineRoutes) {
    const rc = f.inlineRoutes;
    let perConfig = views.get(config);
    if (!perConfig) views.set(config, (perConfig = new WeakMap()));
    let view = perConfig.get(rc);
    if (!view) perConfig.set(rc, (view = { ...config, routes: new Map([[rc.name, rc]]) }));
    return { config: view, name: rc.name };
  }
  return f.rdsName ? { config, name: f.rdsName } : undefined;
}
