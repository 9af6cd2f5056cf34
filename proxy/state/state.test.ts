// Tests for ProxyState: SotW replacement, immutable snapshots published through the Watch,
// object identity kept for unchanged resources, missing references and completeness.
import { describe, expect, it } from 'vitest';
import { NO_HEADER_MUTATION, type Cluster, type EndpointAssignment, type Listener, type RouteConfig } from '../../api/domain.js';
import { TypeUrl } from '../../api/types.js';
import { ProxyState } from './state.js';
import type { ProxyConfig } from './types.js';

function listener(name: string, rds: string, tls = false): Listener {
  return {
    name,
    filterChains: [{
      name: '', destinationPorts: [], serverNames: [],
      ...(tls ? { tls: { certificateSecret: 'default', validationSecret: 'ROOTCA', requireClientCertificate: true, alpn: [] } } : {}),
      filter: { kind: 'http', statPrefix: name, rdsName: rds, rbac: [] },
    }],
  };
}
function cluster(name: string, discovery: Cluster['discovery'] = 'EDS'): Cluster {
  return { name, discovery, edsServiceName: name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 5000, protocol: 'http1' };
}
function routes(name: string, cluster = 'c'): RouteConfig {
  return {
    name,
    virtualHosts: [{
      name: 'vh', domains: ['*'], requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION,
      routes: [{
        name: 'r', requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION,
        match: { path: { kind: 'prefix', value: '/' }, headers: [], query: [], grpc: false },
        action: { kind: 'forward', backends: [{ cluster, weight: 1, requestHeaders: NO_HEADER_MUTATION, responseHeaders: NO_HEADER_MUTATION }], totalWeight: 1, mirrors: [], clusterNotFoundStatus: 503 },
      }],
    }],
  };
}
const cla = (name: string): EndpointAssignment => ({ clusterName: name, endpoints: [] });
const m = <T>(...entries: [string, T][]) => new Map<string, T>(entries);

describe('ProxyState', () => {
  it('starts empty and incomplete', () => {
    const s = new ProxyState();
    expect(s.config.get().generation).toBe(0);
    expect(s.isComplete()).toBe(false);
    expect(s.missing()).toEqual([]);
  });

  it('publishes a new snapshot per apply and leaves the old one untouched', () => {
    const s = new ProxyState();
    const seen: ProxyConfig[] = [];
    s.config.subscribe((c) => seen.push(c));
    const first = s.apply(TypeUrl.Cluster, m(['a', cluster('a')]), 'v1');
    const second = s.apply(TypeUrl.Cluster, m(['b', cluster('b')]), 'v2');
    expect(seen).toEqual([first, second]);
    expect(s.config.get()).toBe(second);
    expect([...first.clusters.keys()]).toEqual(['a']);
    expect([...second.clusters.keys()]).toEqual(['b']); // SotW: 'a' is gone
    expect(first.versions.get(TypeUrl.Cluster)).toBe('v1');
    expect(second.versions.get(TypeUrl.Cluster)).toBe('v2');
    expect(second.generation).toBe(first.generation + 1);
    expect(Object.isFrozen(second)).toBe(true);
  });

  it('copies the caller’s map: later mutation of it does not leak into the snapshot', () => {
    const s = new ProxyState();
    const input = m(['a', cluster('a')]);
    const c = s.apply(TypeUrl.Cluster, input, 'v1');
    input.set('b', cluster('b'));
    expect(c.clusters.has('b')).toBe(false);
  });

  it('keeps the old object for a resource equal to the one it replaces', () => {
    const s = new ProxyState();
    const before = s.apply(TypeUrl.RouteConfiguration, m(['outbound', routes('outbound')], ['x', routes('x')]), '1');
    const after = s.apply(TypeUrl.RouteConfiguration, m(['outbound', routes('outbound')], ['x', routes('x', 'changed')]), '2');
    expect(after.routes.get('outbound')).toBe(before.routes.get('outbound'));
    expect(after.routes.get('x')).not.toBe(before.routes.get('x'));
  });

  it('lists missing RDS, EDS and SDS references and becomes complete when they arrive', () => {
    const s = new ProxyState();
    s.apply(TypeUrl.Listener, m(['outbound', listener('outbound', 'outbound')], ['inbound', listener('inbound', 'inbound', true)]), '1');
    expect(s.isComplete()).toBe(false); // no CDS yet
    s.apply(TypeUrl.Cluster, m(['svc', cluster('svc')], ['inbound|80||', cluster('inbound|80||', 'STATIC')]), '1');
    // 'default' is the proxy's own certificate: never expected from xDS.
    expect(s.missing()).toEqual(['EDS/svc', 'RDS/inbound', 'RDS/outbound', 'SDS/ROOTCA']);
    expect(s.isComplete()).toBe(false);
    s.apply(TypeUrl.RouteConfiguration, m(['outbound', routes('outbound')], ['inbound', routes('inbound')]), '1');
    s.apply(TypeUrl.ClusterLoadAssignment, m(['svc', cla('svc')]), '1');
    expect(s.missing()).toEqual(['SDS/ROOTCA']);
    s.apply(TypeUrl.Secret, m(['ROOTCA', { name: 'ROOTCA', trustedCa: 'PEM' }]), '1');
    expect(s.missing()).toEqual([]);
    expect(s.isComplete()).toBe(true);
  });

  it('is complete with empty listener and cluster sets once both were received', () => {
    const s = new ProxyState();
    s.apply(TypeUrl.Listener, m(), '1');
    expect(s.isComplete()).toBe(false);
    s.apply(TypeUrl.Cluster, m(), '1');
    expect(s.isComplete()).toBe(true);
  });

  it('honours custom local secrets', () => {
    const s = new ProxyState({ localSecrets: [] });
    s.apply(TypeUrl.Listener, m(['inbound', listener('inbound', 'r', true)]), '1');
    expect(s.missing()).toEqual(['RDS/r', 'SDS/ROOTCA', 'SDS/default']);
  });

  it('rejects an unknown type URL loudly (a programming error)', () => {
    expect(() => new ProxyState().apply('type.googleapis.com/x.Y' as TypeUrl, m(), '1')).toThrow(/unknown type URL/);
  });
});
