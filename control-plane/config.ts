// The control plane's settings: defaults in one table, validated once, frozen. Components get
// only the slice they need.
import path from 'node:path';
import { ErrorCode, WeftError } from '../core/errors.js';

export interface ControlPlaneConfig {
  readonly configDir: string;
  readonly stateDir: string;
  /** Address the plaintext xDS/CA port and the monitoring port bind to. */
  readonly host: string;
  readonly xdsPort: number;
  /** xDS/CA over TLS (server certificate from Weft's CA); 0 picks a free port; -1 disables. */
  readonly xdsTlsPort: number;
  readonly monitorPort: number;
  readonly trustDomain: string;
  /** Coalesces bursts of config changes into one rebuild. */
  readonly debounceMs: number;
  /** Whether sidecars talk mTLS to each other (always, once identity is available). */
  readonly mtls: boolean;
  readonly certTtlSeconds: number;
  readonly maxCertTtlSeconds: number;
}

export const CONTROL_PLANE_DEFAULTS = {
  stateDir: '.weft/state',
  host: '127.0.0.1',
  xdsPort: 15010,
  xdsTlsPort: 15012,
  monitorPort: 15014,
  trustDomain: 'cluster.local',
  debounceMs: 100,
  mtls: true,
  certTtlSeconds: 24 * 3600,
  maxCertTtlSeconds: 7 * 24 * 3600,
} as const;

function port(name: string, value: number, allowDisabled = false): number {
  if (!Number.isInteger(value) || value < (allowDisabled ? -1 : 0) || value > 65535) {
    throw new WeftError(ErrorCode.USAGE, `--${name}: must be a port number (0 for any free port), got ${JSON.stringify(value)}`);
  }
  return value;
}

export function controlPlaneConfig(input: Partial<ControlPlaneConfig> & { configDir: string }): ControlPlaneConfig {
  const c = { ...CONTROL_PLANE_DEFAULTS, ...stripUndefined(input) };
  if (!c.configDir) throw new WeftError(ErrorCode.USAGE, '--config: a directory of YAML is required');
  if (!/^[a-z0-9.-]+$/.test(c.trustDomain)) {
    throw new WeftError(ErrorCode.USAGE, `--trust-domain: must be a DNS-like name, got "${c.trustDomain}"`);
  }
  if (!(c.certTtlSeconds > 0) || c.certTtlSeconds > c.maxCertTtlSeconds) {
    throw new WeftError(ErrorCode.USAGE, `--cert-ttl: must be between 1 s and ${c.maxCertTtlSeconds} s, got ${c.certTtlSeconds}`);
  }
  return Object.freeze({
    ...c,
    configDir: path.resolve(c.configDir),
    stateDir: path.resolve(c.stateDir),
    xdsPort: port('xds-port', c.xdsPort),
    xdsTlsPort: port('xds-tls-port', c.xdsTlsPort, true),
    monitorPort: port('monitor-port', c.monitorPort),
  });
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
