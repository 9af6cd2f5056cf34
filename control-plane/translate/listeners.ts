// The sidecar's two listeners: `outbound` (HTTP routed by Host through RDS `outbound`) and
// `inbound` (filter chains per app port by transport protocol, forwarding to that port's STATIC
// inbound cluster, with the workload's RBAC filters).
import type { Plain } from '../../api/codec.js';
import { TCP_PROXY_TYPE_URL } from '../../api/types.js';
import { portProtocol, type Model } from '../model/index.js';
import { meshPorts } from './clusters.js';
import { downstreamTlsSocket, httpConnectionManager, inboundClusterName, outboundClusterName, socketAddress, u32 } from './envoy.js';
import { OUTBOUND_ROUTE_CONFIG, serviceVip } from './route-config.js';
import { withHttpFilters, type InboundSecurity } from './security.js';

export const OUTBOUND_LISTENER = 'outbound';
export const INBOUND_LISTENER = 'inbound';
/** Informational: the proxy binds the ports its flags name. */
const OUTBOUND_PORT = 15001;
const INBOUND_PORT = 15006;

export function outboundListener(): Plain {
  return {
    name: OUTBOUND_LISTENER,
    address: socketAddress('0.0.0.0', OUTBOUND_PORT),
    traffic_direction: 'OUTBOUND',
    filter_chains: [{ name: OUTBOUND_LISTENER, filters: [httpConnectionManager(OUTBOUND_LISTENER, { rds: OUTBOUND_ROUTE_CONFIG })] }],
  };
}

function inboundRouteConfig(port: number, cluster: string): Plain {
  const name = `inbound|${port}`;
  return {
    name,
    virtual_hosts: [{ name, domains: ['*'], routes: [{ name, match: { prefix: '/' }, route: { cluster } }] }],
  };
}

/** Where an inbound listener is and what its chains forward to; the defaults are the sidecar's. */
export interface InboundListenerShape {
  readonly name?: string;
  readonly address?: Plain;
  /** The cluster of app port P (default `inbound|P||`). */
  readonly clusterFor?: (port: number) => string;
  /**
   * Put a DownstreamTlsContext (SDS `default` + `ROOTCA`) on the TLS chains (default true). A
   * node proxy terminates TLS itself, with each pod's own certificate: its chains only say
   * `transport_protocol`.
   */
  readonly tlsContext?: boolean;
}

/**
 * The inbound listener: per app port, a TLS chain (`transport_protocol: tls`), plus a plaintext
 * chain (`raw_buffer`) when the port is PERMISSIVE; STRICT ports get only the TLS chain. Without
 * mTLS (development) one chain per port takes any connection. Every HCM carries the workload's
 * RBAC filters before the router.
 */
export function inboundListener(appPorts: Iterable<number>, security: InboundSecurity, shape: InboundListenerShape = {}): Plain {
  const clusterFor = shape.clusterFor ?? inboundClusterName;
  const chains = [...appPorts].flatMap((port) => {
    const name = `inbound|${port}`;
    const chain = (chainName: string, transport?: 'tls' | 'raw_buffer'): Plain => {
      const hcm = httpConnectionManager(name, { inline: inboundRouteConfig(port, clusterFor(port)) });
      withHttpFilters(hcm, security.httpFilters);
      return {
        name: chainName,
        filter_chain_match: { destination_port: u32(port), ...(transport ? { transport_protocol: transport } : {}) },
        filters: [hcm],
        ...(transport === 'tls' && shape.tlsContext !== false ? { transport_socket: downstreamTlsSocket() } : {}),
      };
    };
    if (!security.mtls) return [chain(name)];
    const tls = chain(name, 'tls');
    return security.modeFor(port) === 'STRICT' ? [tls] : [tls, chain(`${name}|plaintext`, 'raw_buffer')];
  });
  return {
    name: shape.name ?? INBOUND_LISTENER,
    address: shape.address ?? socketAddress('0.0.0.0', INBOUND_PORT),
    traffic_direction: 'INBOUND',
    filter_chains: chains,
  };
}

// ---- Service VIP listeners (captured mode) --------------------------------------------------

/** Istio's name for the virtual listener of a Service's ClusterIP:port. */
export function vipListenerName(ip: string, port: number): string {
  return `${ip}_${port}`;
}

export function tcpProxy(cluster: string): Plain {
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE_URL, stat_prefix: cluster, cluster } };
}

const HTTP_PROTOCOLS = new Set(['http', 'http2', 'grpc', 'grpc-web']);

/**
 * One virtual listener (`bind_to_port: false`) per Service ClusterIP and port, as Istio sends:
 * a sidecar whose traffic is captured looks the original destination up here. Its chains say
 * the port's protocol: HTTP (appProtocol / port name http, http2, grpc...) → the `outbound`
 * routes; TCP, TLS, MySQL, ... → tcp_proxy to the Service's cluster; unknown → both, the HTTP
 * chain first and tcp_proxy as the default chain (the proxy detects which one the bytes need).
 * Services without a ClusterIP (headless, local mode) get none.
 */
export function serviceVipListeners(model: Model): Array<[string, Plain]> {
  const out: Array<[string, Plain]> = [];
  for (const service of model.services) {
    const vip = serviceVip(service);
    if (vip === undefined) continue;
    for (const port of meshPorts(service)) {
      const protocol = portProtocol(port);
      const name = vipListenerName(vip, port.port);
      const cluster = outboundClusterName(port.port, service.metadata.name, service.metadata.namespace);
      const http = { name: `${name}|http`, filters: [httpConnectionManager(name, { rds: OUTBOUND_ROUTE_CONFIG })] };
      const tcp = { name: `${name}|tcp`, filters: [tcpProxy(cluster)] };
      const listener: Plain = {
        name,
        address: socketAddress(vip, port.port),
        bind_to_port: { value: false },
        traffic_direction: 'OUTBOUND',
        filter_chains: HTTP_PROTOCOLS.has(protocol) || protocol === 'unknown' ? [http] : [tcp],
      };
      if (protocol === 'unknown') listener.default_filter_chain = tcp;
      out.push([name, listener]);
    }
  }
  return out;
}
