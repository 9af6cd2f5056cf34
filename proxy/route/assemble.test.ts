// VHDS on the proxy: a route configuration with `vhds` routes over the virtual hosts filed under
// its name, decoded from xDS as the proxy decodes them; a changed virtual host recompiles alone.
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from '../../api/codec.js';
import type { VirtualHost } from '../../api/domain.js';
import { routeConfigType } from '../../api/route-config.js';
import { TypeUrl } from '../../api/types.js';
import { virtualHostType } from '../../api/virtual-host.js';
import { ProxyState } from '../state/state.js';
import { effectiveRoutes } from './assemble.js';
import { compiled } from './compile.js';
import { plan } from './plan.js';
import type { RequestFacts } from './types.js';

const facts = (authority: string, path = '/'): RequestFacts => ({ authority, path, method: 'GET', scheme: 'http', header: () => undefined });

function decodeVhost(vh: Plain): VirtualHost {
  const d = virtualHostType.decode(pack(TypeUrl.VirtualHost, vh));
  if (!d.ok) throw new Error(JSON.stringify(d.problems));
  return d.value;
}

const vhost = (svc: string, cluster: string, path = '/'): Plain => ({
  name: `outbound/${svc}:80`,
  domains: [svc, `${svc}:80`],
  routes: [{ name: `default/${svc}/0`, match: { prefix: path }, route: { cluster } }],
});

function stateWith(vhosts: Plain[]): ProxyState {
  const state = new ProxyState();
  const rc = routeConfigType.decode(pack(TypeUrl.RouteConfiguration, { name: 'outbound', vhds: { config_source: { ads: {} } } }));
  if (!rc.ok) throw new Error(JSON.stringify(rc.problems));
  state.apply(TypeUrl.RouteConfiguration, new Map([['outbound', rc.value]]), 'r1');
  state.apply(TypeUrl.VirtualHost, new Map(vhosts.map((v) => [String(v.name), decodeVhost(v)])), 'v1');
  return state;
}

describe('VHDS virtual hosts', () => {
  it('are routed to under the route configuration that names them, as if inline', () => {
    const state = stateWith([vhost('reviews', 'c-reviews'), vhost('ratings', 'c-ratings'), { ...vhost('other', 'c-other'), name: 'inbound/other:80' }]);
    const route = (authority: string) => {
      const p = plan(state.config.get(), 'outbound', facts(authority), Math.random);
      return p.kind === 'forward' ? p.cluster : `${p.kind}:${p.kind === 'noRoute' ? p.reason : ''}`;
    };
    expect(route('reviews')).toBe('c-reviews');
    expect(route('ratings:80')).toBe('c-ratings');
    // Filed under another route configuration: not part of `outbound`.
    expect(route('other')).toBe('noRoute:no_virtual_host');
    const p = plan(state.config.get(), 'outbound', facts('reviews'), Math.random);
    expect(p.kind === 'forward' && p.vhost.name).toBe('reviews:80');
  });

  it('a changed virtual host is a new table that recompiles only it', () => {
    const state = stateWith([vhost('reviews', 'c-reviews'), vhost('ratings', 'c-ratings')]);
    const rc = state.config.get().routes.get('outbound')!;
    const before = effectiveRoutes(state.config.get(), rc);
    expect(effectiveRoutes(state.config.get(), rc)).toBe(before);
    const old = compiled(before);

    // The control plane sends the edited one; the unchanged one keeps its decoded object.
    const held = new Map(state.config.get().virtualHosts);
    held.set('outbound/reviews:80', decodeVhost(vhost('reviews', 'c-reviews-v2')));
    held.set('outbound/ratings:80', decodeVhost(vhost('ratings', 'c-ratings')));
    state.apply(TypeUrl.VirtualHost, held, 'v2');
    const after = effectiveRoutes(state.config.get(), rc);
    expect(after).not.toBe(before);
    const now = compiled(after);
    expect(now.exact.get('ratings')).toBe(old.exact.get('ratings'));
    expect(now.exact.get('reviews')).not.toBe(old.exact.get('reviews'));
    const p = plan(state.config.get(), 'outbound', facts('reviews'), Math.random);
    expect(p.kind === 'forward' && p.cluster).toBe('c-reviews-v2');
  });

  it('makes the proxy wait for VHDS before it is ready', () => {
    const state = new ProxyState();
    const rc = routeConfigType.decode(pack(TypeUrl.RouteConfiguration, { name: 'outbound', vhds: { config_source: { ads: {} } } }));
    if (!rc.ok) throw new Error('rc');
    state.apply(TypeUrl.Listener, new Map(), 'l');
    state.apply(TypeUrl.Cluster, new Map(), 'c');
    state.apply(TypeUrl.RouteConfiguration, new Map([['outbound', rc.value]]), 'r');
    expect(state.isComplete()).toBe(false);
    state.apply(TypeUrl.VirtualHost, new Map(), 'v');
    expect(state.isComplete()).toBe(true);
  });
});

describe('decoding VHDS', () => {
  it('names the decoded virtual host without its route configuration, and refuses other names', () => {
    expect(decodeVhost(vhost('reviews', 'c')).name).toBe('reviews:80');
    const bad = virtualHostType.decode(pack(TypeUrl.VirtualHost, { ...vhost('reviews', 'c'), name: 'reviews:80' }));
    expect(bad.ok ? [] : bad.problems.map((p) => p.field)).toEqual(['name']);
    const badRoute = virtualHostType.decode(pack(TypeUrl.VirtualHost, { ...vhost('reviews', 'c'), routes: [{ name: 'r', match: { safe_regex: { regex: '(' } }, route: { cluster: 'c' } }] }));
    expect(badRoute.ok ? [] : badRoute.problems.map((p) => p.field)).toEqual(['routes[0].match.safe_regex.regex']);
  });

  it('refuses route-configuration-level header mutations with vhds, and VHDS from anywhere but ADS', () => {
    const r = routeConfigType.decode(pack(TypeUrl.RouteConfiguration, {
      name: 'outbound', vhds: { config_source: { path_config_source: { path: '/x' } } }, response_headers_to_remove: ['x-a'],
    }));
    expect(r.ok ? [] : r.problems.map((p) => p.field).sort()).toEqual(['response_headers_to_remove', 'vhds.config_source']);
  });
});
