// The sidecar's two listeners: `outbound` (HTTP routed by Host through RDS `outbound`) and
// `inbound` (one filter chain per app port, forwarding to that port's STATIC inbound cluster).
import type { Plain } from '../../api/codec.js';
import { downstreamTlsSocket, httpConnectionManager, inboundClusterName, socketAddress, u32 } from './envoy.js';
import { OUTBOUND_ROUTE_CONFIG } from './route-config.js';

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

function inboundRouteConfig(port: number): Plain {
  const name = `inbound|${port}`;
  return {
    name,
    virtual_hosts: [{ name, domains: ['*'], routes: [{ name, match: { prefix: '/' }, route: { cluster: inboundClusterName(port) } }] }],
  };
}

export function inboundListener(appPorts: Iterable<number>, mtls: boolean): Plain {
  const chains = [...appPorts].map((port) => {
    const name = `inbound|${port}`;
    const chain: Plain = {
      name,
      filter_chain_match: { destination_port: u32(port) },
      filters: [httpConnectionManager(name, { inline: inboundRouteConfig(port) })],
    };
    if (mtls) chain.transport_socket = downstreamTlsSocket();
    return chain;
  });
  return {
    name: INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', INBOUND_PORT),
    traffic_direction: 'INBOUND',
    filter_chains: chains,
  };
}
