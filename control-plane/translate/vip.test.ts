// Tests for what captured sidecars need from the translator: a Service's ClusterIP in its virtual
// hosts' domains, and one virtual listener per ClusterIP:port whose chains say the protocol; and
// the proxy's decoding + decision on those listeners (the xDS round trip, pure).
import { describe, expect, it } from 'vitest';
import type { Listener } from '../../api/domain.js';
import { pack, type Plain } from '../../api/codec.js';
import { RESOURCE_TYPES } from '../../api/registry.js';
import { TypeUrl } from '../../api/types.js';
import { decideOutbound, listenerDecision } from '../../proxy/capture/decide.js';
import type { ProxyConfig } from '../../proxy/state/types.js';
import { run, virtualHost } from './fixtures.js';
import { roundTrip } from './testing.js';

const YAML = `
apiVersion: v1
kind: Service
metadata: { name: reviews }
spec:
  clusterIP: 10.96.0.10
  selector: { app: reviews }
  ports: [{ name: http, port: 9080, targetPort: 9080 }]
---
apiVersion: v1
kind: Service
metadata: { name: db }
spec:
  clusterIP: 10.96.0.20
  selector: { app: db }
  ports:
    - { name: mysql, port: 3306, targetPort: 3306 }
    - { name: admin, port: 8080, targetPort: 8080 }
    - { name: grpc-api, port: 9090, targetPort: 9090 }
    - { name: plain, port: 7000, targetPort: 7000, appProtocol: tcp }
---
apiVersion: v1
kind: Service
metadata: { name: headless }
spec:
  clusterIP: None
  selector: { app: db }
  ports: [{ name: http, port: 80, targetPort: 80 }]
`;

const set = run(YAML, { mtls: true });
const listeners = set[TypeUrl.Listener];

function chainSummary(l: Plain | undefined): string[] {
  const one = (c: Plain) => `${String(c.name)}:${String(((c.filters as Plain[])[0]?.name as string).split('.').pop())}`;
  return [...((l?.filter_chains as Plain[] | undefined) ?? []).map(one), ...(l?.default_filter_chain ? [`default ${one(l.default_filter_chain as Plain)}`] : [])];
}

describe('Service VIPs in the translation', () => {
  it('adds ClusterIP:port (and the bare IP for a single-port Service) to the virtual host domains', () => {
    expect(virtualHost(set, 'reviews.default.svc.cluster.local:9080').domains).toEqual(expect.arrayContaining(['10.96.0.10', '10.96.0.10:9080']));
    const admin = virtualHost(set, 'db.default.svc.cluster.local:8080').domains as string[];
    expect(admin).toContain('10.96.0.20:8080');
    expect(admin).not.toContain('10.96.0.20');
  });

  it.each([
    ['10.96.0.10_9080', 'port name http → HTTP only', ['10.96.0.10_9080|http:http_connection_manager']],
    ['10.96.0.20_3306', 'port name mysql → TCP only', ['10.96.0.20_3306|tcp:tcp_proxy']],
    ['10.96.0.20_7000', 'appProtocol tcp → TCP only', ['10.96.0.20_7000|tcp:tcp_proxy']],
    ['10.96.0.20_9090', 'port name grpc-* → HTTP only', ['10.96.0.20_9090|http:http_connection_manager']],
    ['10.96.0.20_8080', 'unknown protocol → HTTP, TCP as the default chain', ['10.96.0.20_8080|http:http_connection_manager', 'default 10.96.0.20_8080|tcp:tcp_proxy']],
  ])('%s: %s', (name, _why, chains) => {
    const l = listeners.get(name);
    expect(l?.address).toEqual({ socket_address: { address: name.split('_')[0], port_value: Number(name.split('_')[1]) } });
    expect(l?.bind_to_port).toEqual({ value: false });
    expect(chainSummary(l)).toEqual(chains);
  });

  it('gives headless Services and Services without a ClusterIP no virtual listener', () => {
    expect([...listeners.keys()].filter((n) => n.includes('_')).sort()).toEqual(
      ['10.96.0.10_9080', '10.96.0.20_3306', '10.96.0.20_7000', '10.96.0.20_8080', '10.96.0.20_9090'].sort(),
    );
  });

  it('produces valid Envoy Listeners', () => {
    for (const [name, l] of listeners) if (name.includes('_')) expect(() => roundTrip(TypeUrl.Listener, l)).not.toThrow();
  });
});

describe("the proxy's decision from the decoded listeners", () => {
  const decoded = new Map<string, Listener>();
  for (const [name, l] of listeners) {
    const r = RESOURCE_TYPES.get(TypeUrl.Listener)!.decode(pack(TypeUrl.Listener, l));
    if (!r.ok) throw new Error(`listener ${name} does not decode: ${JSON.stringify(r.problems)}`);
    decoded.set(name, r.value as Listener);
  }
  const config = { listeners: decoded } as unknown as ProxyConfig;
  const local = { address: '127.0.0.1', port: 15001 };
  const dst = (address: string, port: number) => ({ address, port, family: 4 as const });

  it.each([
    ['a declared HTTP port', dst('10.96.0.10', 9080), 'ALLOW_ANY', { kind: 'http', listener: '10.96.0.10_9080' }],
    ['a declared TCP port', dst('10.96.0.20', 3306), 'ALLOW_ANY', { kind: 'tcp', listener: '10.96.0.20_3306', cluster: 'outbound|3306||db.default.svc.cluster.local' }],
    ['a port of unknown protocol', dst('10.96.0.20', 8080), 'ALLOW_ANY', { kind: 'detect', listener: '10.96.0.20_8080', cluster: 'outbound|8080||db.default.svc.cluster.local' }],
    ['a VIP on a port the Service lacks', dst('10.96.0.20', 1234), 'ALLOW_ANY', { kind: 'passthrough' }],
    ['a host outside the mesh', dst('192.0.2.7', 443), 'ALLOW_ANY', { kind: 'passthrough' }],
    ['a host outside the mesh, registry-only', dst('192.0.2.7', 443), 'REGISTRY_ONLY', { kind: 'blackhole' }],
    ['no NAT record (not redirected)', undefined, 'ALLOW_ANY', { kind: 'direct' }],
    ['a client of the listener itself (HTTP_PROXY)', dst('127.0.0.1', 15001), 'ALLOW_ANY', { kind: 'direct' }],
  ] as const)('%s', (_name, d, policy, want) => {
    expect(decideOutbound(config, d, local, policy)).toEqual(want);
  });

  it('reads the outbound and inbound listeners as no VIP', () => {
    expect(listenerDecision(decoded.get('10.96.0.10_9080')!).kind).toBe('http');
    expect(decideOutbound(config, dst('0.0.0.0', 15001), { address: '10.0.0.5', port: 15001 }, 'ALLOW_ANY').kind).toBe('passthrough');
  });
});
