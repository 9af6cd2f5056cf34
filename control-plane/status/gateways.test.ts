// Table tests for waypoint Gateway status: Accepted and Programmed, addresses and listeners, with
// the spec's reasons and messages that say what to deploy or change; other classes get nothing.
import { describe, expect, it } from 'vitest';
import { modelFromYaml } from '../model/testing.js';
import { gatewayStatuses } from './gateways.js';

const gateway = (name: string, className: string, listeners = '[{ name: mesh, port: 15008, protocol: HBONE }]') => `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: ${name}, namespace: shop, generation: 2 }
spec: { gatewayClassName: ${className}, listeners: ${listeners} }
`;

const replica = (name: string, waypoint: string, address: string, namespace = 'shop') => `
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: ${name}, namespace: ${namespace}, labels: { gateway.networking.k8s.io/gateway-name: ${waypoint} } }
spec: { address: ${address}, serviceAccount: ${waypoint} }
`;

const summary = (c: readonly { type: string; status: string; reason: string }[]) => c.map((x) => `${x.type}=${x.status}/${x.reason}`);

describe('waypoint Gateway status', () => {
  it('is accepted and programmed by its replicas, whose addresses it lists', () => {
    const s = gatewayStatuses(modelFromYaml(gateway('wp', 'weft-waypoint'), replica('wp-2', 'wp', '10.0.0.7'), replica('wp-1', 'wp', '10.0.0.3')));
    const wp = s.get('shop/wp')!;
    expect(summary(wp.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed']);
    expect(wp.conditions[1]!.message).toBe('Served by 2 replicas: 10.0.0.3, 10.0.0.7');
    expect(wp.conditions.every((c) => c.observedGeneration === 2)).toBe(true);
    expect(wp.addresses).toEqual([
      { type: 'IPAddress', value: '10.0.0.3' },
      { type: 'IPAddress', value: '10.0.0.7' },
    ]);
    expect(wp.listeners).toEqual([
      expect.objectContaining({ name: 'mesh', attachedRoutes: 0, supportedKinds: [] }),
    ]);
    expect(summary(wp.listeners[0]!.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed', 'ResolvedRefs=True/ResolvedRefs']);
  });

  it('without a replica in its namespace is not programmed, and says how to deploy one', () => {
    const s = gatewayStatuses(modelFromYaml(gateway('wp', 'weft-waypoint'), replica('wp-1', 'wp', '10.0.0.3', 'elsewhere')));
    const wp = s.get('shop/wp')!;
    expect(summary(wp.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=False/NoResources']);
    expect(wp.conditions[1]!.message).toBe(
      'No running workload is labelled gateway.networking.k8s.io/gateway-name=wp in namespace shop: deploy the waypoint (`weft waypoint apply -n shop --name wp`)',
    );
    expect(wp.addresses).toEqual([]);
    expect(summary(wp.listeners[0]!.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=False/Pending', 'ResolvedRefs=True/ResolvedRefs']);
  });

  it.each([
    ['[{ name: http, port: 80, protocol: HTTP }]', 'UnsupportedProtocol', 'a waypoint takes HBONE only (sidecars and node proxies tunnel to it), got protocol "HTTP"'],
    ['[{ name: mesh, port: 15009, protocol: HBONE }]', 'PortUnavailable', 'a waypoint takes HBONE on port 15008, where sidecars and node proxies send it, got port 15009'],
  ])('refuses a listener %s (%s), and is not accepted without a usable one', (listeners, reason, message) => {
    const wp = gatewayStatuses(modelFromYaml(gateway('wp', 'weft-waypoint', listeners), replica('wp-1', 'wp', '10.0.0.3'))).get('shop/wp')!;
    expect(summary(wp.conditions)).toEqual(['Accepted=False/ListenersNotValid', 'Programmed=False/Invalid']);
    expect(summary(wp.listeners[0]!.conditions)).toEqual([`Accepted=False/${reason}`, 'Programmed=False/Invalid', 'ResolvedRefs=True/ResolvedRefs']);
    expect(wp.listeners[0]!.conditions[0]!.message).toBe(message);
  });

  it('is accepted when one listener of several is usable, each listener with its own verdict', () => {
    const wp = gatewayStatuses(
      modelFromYaml(gateway('wp', 'weft-waypoint', '[{ name: mesh, port: 15008, protocol: HBONE }, { name: http, port: 80, protocol: HTTP }]'), replica('wp-1', 'wp', '10.0.0.3')),
    ).get('shop/wp')!;
    expect(summary(wp.conditions)).toEqual(['Accepted=True/Accepted', 'Programmed=True/Programmed']);
    expect(wp.listeners.map((l) => summary(l.conditions)[0])).toEqual(['Accepted=True/Accepted', 'Accepted=False/UnsupportedProtocol']);
  });

  it("reports nothing for another controller's Gateway", () => {
    const s = gatewayStatuses(modelFromYaml(gateway('edge', 'example-ingress', '[{ name: https, port: 443, protocol: HTTPS }]')));
    expect([...s.keys()]).toEqual([]);
  });
});
