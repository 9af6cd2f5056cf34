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
 * Envoy-like selection, narrowed to what Weft's inbound listener uses: chains are filtered by
 * transport protocol; then the chain whose destination ports include the target port; without a
 * target port (plaintext), the only chain; then a chain for any port; then the default chain.
 */
export function selectFilterChain(listener: Listener, facts: ChainFacts): FilterChain | undefined {
  const candidates = listener.filterChains.filter(
    (c) => c.transportProtocol === undefined || (c.transportProtocol === 'tls') === facts.secure,
  );
  if (facts.targetPort !== undefined) {
    const byPort = candidates.find((c) => c.destinationPorts.includes(facts.targetPort!));
    if (byPort) return byPort;
  } else if (candidates.length === 1) {
    return candidates[0];
  }
  return candidates.find((c) => c.destinationPorts.length === 0) ?? listener.defaultFilterChain;
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
