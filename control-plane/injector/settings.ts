// What the injector needs to know, with its defaults in one table: the image, which control
// plane (revision, namespace, xDS address) the injected proxy joins, native sidecars or not,
// and the proxy's default resources and log level.
import { ErrorCode, WeftError } from '../../core/errors.js';
import { DEFAULT_REVISION } from './names.js';
import { LOG_LEVELS, type LogLevel } from './overrides.js';

export interface InjectorSettings {
  /** The single `weft` image: runs `weft iptables apply` in weft-init and `weft proxy` in weft-proxy. */
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** The control-plane revision this injector belongs to (label `weft.dev/rev`). */
  readonly revision: string;
  /** Never injected into, along with kube-system. */
  readonly controlPlaneNamespace: string;
  /** `host:port` of the control plane's TLS xDS + CA port, as pods reach it. */
  readonly xdsAddress: string;
  /** Proxy as a native sidecar (an init container with restartPolicy Always; Kubernetes ≥ 1.29). */
  readonly nativeSidecars: boolean;
  readonly proxyCpu: string;
  readonly proxyMemory: string;
  readonly logLevel: LogLevel;
}

export const INJECTOR_DEFAULTS = {
  image: 'ghcr.io/weft-mesh/weft:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  revision: DEFAULT_REVISION,
  controlPlaneNamespace: 'weft-system',
  nativeSidecars: true,
  proxyCpu: '100m',
  proxyMemory: '128Mi',
  logLevel: 'info',
} as const;

/** The Service name the control plane of `revision` is reached by (the chart creates it). */
export function controlPlaneServiceName(revision: string): string {
  return revision === DEFAULT_REVISION ? 'weft-control-plane' : `weft-control-plane-${revision}`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function injectorSettings(input: Partial<InjectorSettings> = {}): InjectorSettings {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined)) as Partial<InjectorSettings>;
  const revision = defined.revision ?? INJECTOR_DEFAULTS.revision;
  const namespace = defined.controlPlaneNamespace ?? INJECTOR_DEFAULTS.controlPlaneNamespace;
  const s: InjectorSettings = {
    ...INJECTOR_DEFAULTS,
    xdsAddress: `${controlPlaneServiceName(revision)}.${namespace}.svc:15012`,
    ...defined,
  };
  if (!DNS_LABEL.test(s.revision) || s.revision.length > 63) {
    throw new WeftError(ErrorCode.USAGE, `--revision: must be a DNS label such as "default" or "1-2-0", got "${s.revision}"`);
  }
  if (!DNS_LABEL.test(s.controlPlaneNamespace)) {
    throw new WeftError(ErrorCode.USAGE, `--control-plane-namespace: must be a namespace name, got "${s.controlPlaneNamespace}"`);
  }
  if (!/^[^:\s]+:\d+$/.test(s.xdsAddress)) throw new WeftError(ErrorCode.USAGE, `--xds-address: expected HOST:PORT, got "${s.xdsAddress}"`);
  if (!s.image || /\s/.test(s.image)) throw new WeftError(ErrorCode.USAGE, `--image: expected an image reference, got "${s.image}"`);
  if (!['Always', 'IfNotPresent', 'Never'].includes(s.imagePullPolicy)) {
    throw new WeftError(ErrorCode.USAGE, `--image-pull-policy: Always, IfNotPresent or Never, got "${s.imagePullPolicy}"`);
  }
  if (!LOG_LEVELS.includes(s.logLevel)) throw new WeftError(ErrorCode.USAGE, `--log-level: one of ${LOG_LEVELS.join(', ')}, got "${s.logLevel}"`);
  return Object.freeze(s);
}
