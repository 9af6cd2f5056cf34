// A route configuration with `vhds` is its inline virtual hosts plus every VHDS virtual host
// filed under its name (`<name>/<virtual host>`). Assembled once per (route configuration,
// VHDS set) pair and cached; the snapshot's maps are immutable, so identity tells change.
import type { RouteConfig, VirtualHost } from '../../api/domain.js';
import type { ProxyConfig } from '../state/types.js';

const assembled = new WeakMap<RouteConfig, { readonly from: ReadonlyMap<string, VirtualHost> | undefined; readonly rc: RouteConfig }>();

/** `rc` as the router sees it: with its VHDS virtual hosts (in resource-name order) when it has `vhds`. */
export function effectiveRoutes(config: Pick<ProxyConfig, 'virtualHosts'>, rc: RouteConfig): RouteConfig {
  if (!rc.vhds) return rc;
  const from = config.virtualHosts;
  const hit = assembled.get(rc);
  if (hit && hit.from === from) return hit.rc;
  const prefix = `${rc.name}/`;
  const named: Array<[string, VirtualHost]> = [];
  for (const entry of from ?? []) if (entry[0].startsWith(prefix)) named.push(entry);
  named.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const out: RouteConfig = { name: rc.name, vhds: true, virtualHosts: [...rc.virtualHosts, ...named.map(([, vh]) => vh)] };
  assembled.set(rc, { from, rc: out });
  return out;
}
