// What the HBONE client and server share about one tunnel: the wire conventions (the port, the
// reason header, the `ip:port` authority). A TCP reset travels as RST_STREAM(CONNECT_ERROR)
// (RFC 9113 §8.5), a FIN as END_STREAM: see client.ts's Tunnel and server.ts's.
import net from 'node:net';
import { portNumber } from '../../core/port.js';

/**
 * The response header that says why a CONNECT was not answered 200 (a 400/403/404/405/502/503),
 * one line for the operator. Weft's own convention; Istio's ztunnel sends no reason.
 */
export const REASON_HEADER = 'x-weft-reason';

/** The HBONE port (Istio's), where the node proxy and waypoints accept tunnels. */
export const HBONE_PORT = 15008;

/** A parsed CONNECT authority. */
export interface TunnelTarget {
  readonly host: string;
  readonly port: number;
}

/**
 * `ip:port` or `[ipv6]:port` → host and port; undefined for anything else (names are refused:
 * HBONE addresses a workload, resolution happened before the tunnel).
 */
export function parseAuthority(authority: string | undefined): TunnelTarget | undefined {
  if (!authority) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(authority);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]) as string;
  const port = portNumber(m[3]);
  if (port === undefined) return undefined;
  if (m[1] !== undefined ? !net.isIPv6(host) : !net.isIPv4(host)) return undefined;
  return { host, port };
}

/** `host:port` as an authority (IPv6 in brackets). */
export function formatAuthority(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A header value any HTTP/2 peer accepts (no control characters): the reason, on one line. */
export function headerSafe(text: string): string {
  return text.replace(/[^\t\x20-\x7e]/g, ' ').slice(0, 512);
}
