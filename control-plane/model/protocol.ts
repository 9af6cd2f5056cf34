// The application protocol of a Service port: from appProtocol, else from the port name's
// prefix as Istio reads it (`http`, `http2-web`, `grpc`, ...), else unknown (left to detection).
import type { ServicePort } from './types.js';

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'grpc-web' | 'https' | 'tcp' | 'tls' | 'mongo' | 'mysql' | 'redis' | 'udp' | 'unknown';

const BY_NAME: Readonly<Record<string, PortProtocol>> = {
  http: 'http',
  http2: 'http2',
  h2c: 'http2',
  grpc: 'grpc',
  'grpc-web': 'grpc-web',
  https: 'https',
  tcp: 'tcp',
  tls: 'tls',
  mongo: 'mongo',
  mysql: 'mysql',
  redis: 'redis',
  udp: 'udp',
};

const BY_APP_PROTOCOL: Readonly<Record<string, PortProtocol>> = {
  ...BY_NAME,
  'kubernetes.io/h2c': 'http2',
  'kubernetes.io/ws': 'http',
  'kubernetes.io/wss': 'https',
};

function lookup(table: Readonly<Record<string, PortProtocol>>, key: string): PortProtocol | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

export function portProtocol(port: Pick<ServicePort, 'name' | 'appProtocol' | 'protocol'>): PortProtocol {
  if (port.protocol === 'UDP') return 'udp';
  if (port.appProtocol !== undefined) {
    const p = lookup(BY_APP_PROTOCOL, port.appProtocol.toLowerCase());
    if (p) return p;
  }
  if (port.name !== undefined) {
    const name = port.name.toLowerCase();
    // Istio: `<protocol>` or `<protocol>-<suffix>`; `grpc-web` is itself a protocol name.
    const whole = lookup(BY_NAME, name);
    if (whole) return whole;
    if (name.startsWith('grpc-web-')) return 'grpc-web';
    const dash = name.indexOf('-');
    const prefix = dash > 0 ? lookup(BY_NAME, name.slice(0, dash)) : undefined;
    if (prefix) return prefix;
  }
  return 'unknown';
}

/** Whether upstream connections for this protocol must speak HTTP/2 (prior knowledge / h2c). */
export function usesHttp2(p: PortProtocol): boolean {
  return p === 'http2' || p === 'grpc';
}
