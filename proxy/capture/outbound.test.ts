// The planner of captured HTTP connections, as a table (no sockets): the Service whose VIP the
// client addressed, then the Host as sent, then the Host completed with the destination port;
// the app's own Host goes upstream in every case.
import { describe, expect, it } from 'vitest';
import { NO_HEADER_MUTATION, type RouteConfig, type VirtualHost } from '../../api/domain.js';
import type { RequestFacts } from '../route/types.js';
import type { ProxyConfig } from '../state/types.js';
import { capturedPlan } from './outbound.js';

function vh(name: string, domains: string[]): VirtualHost {
  return {
    name,
    domains,
    requestHeaders: NO_HEADER_MUTATION,
    responseHeaders: NO_HEADER_MUTATION,
    routes: [
      {
        name: `${name}/default`,
        match: { path: { kind: 'prefix', value: '/' }, headers: [], query: [], grpc: false },
        action: { kind: 'forward', backends: [{ cluster: `cluster-${name}`, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }], totalWeight: 1, mirrors: [], clusterNotFoundStatus: 503 },
        requestHeaders: NO_HEADER_MUTATION,
        responseHeaders: NO_HEADER_MUTATION,
      },
    ],
  };
}

// As the translator writes them: a two-port Service (no portless names) and a port-80 one.
const routes: RouteConfig = {
  name: 'outbound',
  virtualHosts: [
    vh('db:5000', ['db:5000', 'db.default:5000', '10.96.0.20:5000']),
    vh('db:6000', ['db:6000', 'db.default:6000', '10.96.0.20:6000']),
    vh('web:80', ['web', 'web:80', '10.96.0.30', '10.96.0.30:80']),
  ],
};
const config = { routes: new Map([['outbound', routes]]), listeners: new Map() } as unknown as ProxyConfig;

const facts = (authority: string): RequestFacts => ({ authority, method: 'GET', path: '/', scheme: 'http', header: () => undefined });
const dst = (address: string, port: number) => ({ address, port, family: 4 as const });

describe('capturedPlan', () => {
  it.each([
    ['Host with its port', 'db:6000', dst('10.96.0.20', 6000), 'db:6000', 'db:6000'],
    ['a portless Host completed with the destination port', 'db', dst('10.96.0.20', 6000), 'db:6000', 'db'],
    ['a portless Host on the other port of the same Service', 'db.default', dst('10.96.0.20', 5000), 'db:5000', 'db.default'],
    ['a Host the mesh does not know: the VIP names the Service', 'db.example.com', dst('10.96.0.20', 5000), 'db:5000', 'db.example.com'],
    ['the VIP as Host', '10.96.0.20:6000', dst('10.96.0.20', 6000), 'db:6000', '10.96.0.20:6000'],
    ['port 80: the bare name', 'web', dst('10.96.0.30', 80), 'web:80', 'web'],
    // GAMMA: the Service the client addressed selects the routes, whatever its Host header says.
    ["another Service's name as Host: the addressed VIP wins", 'db:6000', dst('10.96.0.30', 80), 'web:80', 'db:6000'],
  ])('%s', (_name, host, d, vhost, upstreamAuthority) => {
    const p = capturedPlan(d)(config, 'outbound', facts(host), Math.random);
    expect(p.kind).toBe('forward');
    if (p.kind !== 'forward') return;
    expect(p.vhost.name).toBe(vhost);
    expect(p.authority).toBe(upstreamAuthority);
  });

  it('answers like the planner when neither Host nor VIP is known', () => {
    const p = capturedPlan(dst('192.0.2.1', 80))(config, 'outbound', facts('nowhere'), Math.random);
    expect(p).toMatchObject({ kind: 'noRoute', reason: 'no_virtual_host', authority: 'nowhere' });
  });
});
