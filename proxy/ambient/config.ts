// The node proxy's settings (`weft proxy --mode ambient`): defaults in one table, validated
// once, frozen.
import type net from 'node:net';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { OriginalDestination } from '../capture/original-dst.js';
import { IN_POD_PORTS, type PodPorts } from './pod.js';

export interface NodeProxyOptions {
  /** `host:port` of the control plane's xDS/CA port. */
  readonly xds: string;
  readonly xdsRootCert: string | undefined;
  /** The Kubernetes node (or local-mode node name) this proxy serves. */
  readonly node: string;
  /** The node proxy's own token (local mode: `<state-dir>/tokens/nodes/<node>.token`). */
  readonly tokenFile: string;
  /** Stats and health ports bind here; admin is always 127.0.0.1. */
  readonly bindAddress: string;
  readonly adminPort: number;
  readonly statsPort: number;
  readonly healthPort: number;
  readonly certTtlSeconds: number;
  readonly drainSeconds: number;
  /** How often the node agent re-verifies every pod's rules and listeners. */
  readonly reconcileIntervalMs: number;
  readonly connectTimeoutMs: number;
  /** The listeners opened inside each pod's network namespace. */
  readonly ports: PodPorts;
  /** Where the node agent remembers which pods hold its rules (across restarts); '' = nowhere.
   *  Default /var/run/weft/ambient-<node>.json (a hostPath in the DaemonSet). */
  readonly stateFile: string;
  /** Keep the node's SNAT rule for the kubelet's probes (redirect.ts, PROBE_SOURCE). Off where
   *  the node proxy runs on a machine that is no Kubernetes node (`weft up`'s lab). */
  readonly kubeletProbeRules: boolean;
  /** Tests only: where captured connections were going. Default getsockopt(SO_ORIGINAL_DST). */
  readonly originalDst?: (socket: net.Socket) => OriginalDestination | undefined;
}

export const NODE_PROXY_DEFAULTS = {
  xdsRootCert: undefined,
  bindAddress: '0.0.0.0',
  adminPort: 15000,
  statsPort: 15020,
  healthPort: 15021,
  certTtlSeconds: 24 * 3600,
  drainSeconds: 5,
  reconcileIntervalMs: 5000,
  connectTimeoutMs: 10_000,
  ports: IN_POD_PORTS,
  kubeletProbeRules: true,
} as const;

export function nodeProxyConfig(input: Partial<NodeProxyOptions> & Pick<NodeProxyOptions, 'xds' | 'node' | 'tokenFile'>): NodeProxyOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const c = { ...NODE_PROXY_DEFAULTS, stateFile: `/var/run/weft/ambient-${String(input.node)}.json`, ...defined } as NodeProxyOptions;
  if (!/^[^:]+:\d+$/.test(c.xds)) throw new WeftError(ErrorCode.USAGE, `--xds: expected HOST:PORT, got "${c.xds}"`);
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(c.node)) {
    throw new WeftError(ErrorCode.USAGE, `--node: expected the node's name (a lower-case DNS name), got "${c.node}"`);
  }
  if (!c.tokenFile) throw new WeftError(ErrorCode.USAGE, '--token-file: the node proxy token file is required');
  for (const [flag, v] of [
    ['admin-port', c.adminPort],
    ['stats-port', c.statsPort],
    ['health-port', c.healthPort],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new WeftError(ErrorCode.USAGE, `--${flag}: must be a port number, got ${JSON.stringify(v)}`);
  }
  if (!(c.reconcileIntervalMs >= 100)) throw new WeftError(ErrorCode.USAGE, `--reconcile-interval: at least 100 ms, got ${c.reconcileIntervalMs}`);
  return Object.freeze(c);
}
