// The proxy's settings: defaults in one table, validated once, frozen.
import { ErrorCode, WeftError } from '../core/errors.js';

export interface ProxyConfigOptions {
  /** `host:port` of the control plane's xDS/CA port. */
  readonly xds: string;
  /** PEM file of roots to verify the control plane's TLS port; absent = plaintext xDS (15010). */
  readonly xdsRootCert: string | undefined;
  /** `name.namespace` of the workload this sidecar serves. */
  readonly workload: string;
  readonly tokenFile: string;
  /** Address the outbound, inbound and stats listeners bind to. */
  readonly bindAddress: string;
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly adminPort: number;
  readonly statsPort: number;
  /** Requested certificate lifetime (the CA may clamp it). */
  readonly certTtlSeconds: number;
  /** How long in-flight requests get to finish on shutdown. */
  readonly drainSeconds: number;
  /** ALLOW_ANY passes unknown absolute-form hosts through; REGISTRY_ONLY refuses them. */
  readonly outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
}

export const PROXY_DEFAULTS = {
  xdsRootCert: undefined,
  bindAddress: '0.0.0.0',
  outboundPort: 15001,
  inboundPort: 15006,
  adminPort: 15000,
  statsPort: 15020,
  certTtlSeconds: 24 * 3600,
  drainSeconds: 5,
  outboundPolicy: 'ALLOW_ANY',
} as const;

export function proxyConfig(input: Partial<ProxyConfigOptions> & Pick<ProxyConfigOptions, 'xds' | 'workload' | 'tokenFile'>): ProxyConfigOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const c = { ...PROXY_DEFAULTS, ...defined } as ProxyConfigOptions;
  if (!/^[^:]+:\d+$/.test(c.xds)) throw new WeftError(ErrorCode.USAGE, `--xds: expected HOST:PORT, got "${c.xds}"`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(c.workload)) {
    throw new WeftError(ErrorCode.USAGE, `--workload: expected NAME.NAMESPACE (lower-case DNS labels), got "${c.workload}"`);
  }
  if (!c.tokenFile) throw new WeftError(ErrorCode.USAGE, '--token-file: the workload bootstrap token file is required');
  for (const [flag, v] of [
    ['outbound-port', c.outboundPort],
    ['inbound-port', c.inboundPort],
    ['admin-port', c.adminPort],
    ['stats-port', c.statsPort],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new WeftError(ErrorCode.USAGE, `--${flag}: must be a port number, got ${JSON.stringify(v)}`);
  }
  if (c.outboundPolicy !== 'ALLOW_ANY' && c.outboundPolicy !== 'REGISTRY_ONLY') {
    throw new WeftError(ErrorCode.USAGE, `--outbound-policy: ALLOW_ANY or REGISTRY_ONLY, got "${String(c.outboundPolicy)}"`);
  }
  return Object.freeze(c);
}

export function splitWorkload(workload: string): { name: string; namespace: string } {
  const i = workload.indexOf('.');
  return { name: workload.slice(0, i), namespace: workload.slice(i + 1) };
}
