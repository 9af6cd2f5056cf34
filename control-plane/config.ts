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
  /** Kubernetes mode (`--kubernetes`): config from the API server instead of `configDir`. */
  readonly kubernetes: KubernetesSettings | undefined;
  /** A plugged-in CA directory (Istio's cacerts layout), e.g. a mounted Secret. */
  readonly caDir: string | undefined;
}

export interface KubernetesSettings {
  /** A kubeconfig file; undefined: the pod's ServiceAccount (in cluster), else $KUBECONFIG. */
  readonly kubeconfig: string | undefined;
  /** The control plane's own namespace: its CA Secret and Lease live there; never injected. */
  readonly namespace: string;
  /** This control plane's revision (`weft.dev/rev`), so two versions can run side by side. */
  readonly revision: string;
  /** The sidecar-injection webhook (HTTPS); 0 picks a free port; -1 disables. */
  readonly webhookPort: number;
  /** The MutatingWebhookConfiguration whose caBundle the leader keeps equal to Weft's roots. */
  readonly webhookConfigName: string;
  /** Inject the proxy as a native sidecar: 'auto' asks the API server's version (>= 1.29). */
  readonly nativeSidecars: 'auto' | 'on' | 'off';
  /** The image injected pods run (weft-init and weft-proxy). */
  readonly proxyImage: string;
  readonly clusterDomain: string;
  /** Leader-election timing (tests shorten it). */
  readonly leaseDurationSeconds: number;
  readonly leaseRetryMs: number;
  /** `namespace/name` of the ServiceAccount the ambient node proxies run as (their tokens name their node). */
  readonly nodeServiceAccount: string;
}

export const KUBERNETES_DEFAULTS = {
  kubeconfig: undefined,
  namespace: 'weft-system',
  revision: 'default',
  webhookPort: 15017,
  webhookConfigName: 'weft-sidecar-injector',
  nativeSidecars: 'auto',
  proxyImage: 'ghcr.io/weft-mesh/weft:0.1.0',
  clusterDomain: 'cluster.local',
  leaseDurationSeconds: 15,
  leaseRetryMs: 2_000,
  nodeServiceAccount: 'weft-system/weft-node',
} as const;

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
  kubernetes: undefined,
  caDir: undefined,
} as const;

function port(name: string, value: number, allowDisabled = false): number {
  if (!Number.isInteger(value) || value < (allowDisabled ? -1 : 0) || value > 65535) {
    throw new WeftError(ErrorCode.USAGE, `--${name}: must be a port number (0 for any free port), got ${JSON.stringify(value)}`);
  }
  return value;
}

export function controlPlaneConfig(
  input: Omit<Partial<ControlPlaneConfig>, 'kubernetes'> & { configDir: string; kubernetes?: Partial<KubernetesSettings> },
): ControlPlaneConfig {
  const c = { ...CONTROL_PLANE_DEFAULTS, ...stripUndefined(input), kubernetes: kubernetesSettings(input.kubernetes) };
  if (!c.configDir && !c.kubernetes) throw new WeftError(ErrorCode.USAGE, '--config: a directory of YAML is required (or --kubernetes)');
  if (c.configDir && c.kubernetes) throw new WeftError(ErrorCode.USAGE, '--config and --kubernetes: choose one config source');
  if (!/^[a-z0-9.-]+$/.test(c.trustDomain)) {
    throw new WeftError(ErrorCode.USAGE, `--trust-domain: must be a DNS-like name, got "${c.trustDomain}"`);
  }
  if (!(c.certTtlSeconds > 0) || c.certTtlSeconds > c.maxCertTtlSeconds) {
    throw new WeftError(ErrorCode.USAGE, `--cert-ttl: must be between 1 s and ${c.maxCertTtlSeconds} s, got ${c.certTtlSeconds}`);
  }
  return Object.freeze({
    ...c,
    configDir: c.configDir ? path.resolve(c.configDir) : '',
    caDir: c.caDir ? path.resolve(c.caDir) : undefined,
    stateDir: path.resolve(c.stateDir),
    xdsPort: port('xds-port', c.xdsPort),
    xdsTlsPort: port('xds-tls-port', c.xdsTlsPort, true),
    monitorPort: port('monitor-port', c.monitorPort),
  });
}

function kubernetesSettings(input: Partial<KubernetesSettings> | undefined): KubernetesSettings | undefined {
  if (!input) return undefined;
  const k = { ...KUBERNETES_DEFAULTS, ...stripUndefined(input) };
  const label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  if (!label.test(k.namespace)) throw new WeftError(ErrorCode.USAGE, `--namespace: must be a namespace name, got "${k.namespace}"`);
  if (!label.test(k.revision)) throw new WeftError(ErrorCode.USAGE, `--revision: must be a DNS label such as "default" or "1-2", got "${k.revision}"`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(k.nodeServiceAccount)) {
    throw new WeftError(ErrorCode.USAGE, `--node-service-account: must be NAMESPACE/NAME of a ServiceAccount, got "${k.nodeServiceAccount}"`);
  }
  if (!['auto', 'on', 'off'].includes(k.nativeSidecars)) {
    throw new WeftError(ErrorCode.USAGE, `--native-sidecars: auto, on or off, got "${String(k.nativeSidecars)}"`);
  }
  return Object.freeze({ ...k, kubeconfig: k.kubeconfig ? path.resolve(k.kubeconfig) : undefined, webhookPort: port('webhook-port', k.webhookPort, true) });
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
