// The names injection shares with the rest of Weft (labels, annotations, container names, ports,
// mount paths): one table, read by the webhook, `weft inject`, the Kubernetes source and the chart.

export const INJECT_LABEL = 'weft.dev/inject';
export const REVISION_LABEL = 'weft.dev/rev';
/** The JSON record of what was injected; its presence means "already injected". */
export const STATUS_ANNOTATION = 'weft.dev/status';
export const INJECT_ANNOTATION = 'weft.dev/inject';

export const ANNOTATIONS = {
  excludeInboundPorts: 'weft.dev/exclude-inbound-ports',
  excludeOutboundPorts: 'weft.dev/exclude-outbound-ports',
  excludeOutboundCidrs: 'weft.dev/exclude-outbound-cidrs',
  proxyCpu: 'weft.dev/proxy-cpu',
  proxyMemory: 'weft.dev/proxy-memory',
  logLevel: 'weft.dev/log-level',
  /** "false": leave the app's probes as they are (they then reach the app through the inbound capture). */
  rewriteAppProbes: 'weft.dev/rewrite-app-probes',
  /** Worker processes of the proxy (`weft proxy --concurrency`), one core each. */
  proxyConcurrency: 'weft.dev/proxy-concurrency',
} as const;

export const INIT_CONTAINER = 'weft-init';
export const PROXY_CONTAINER = 'weft-proxy';

export const VOLUMES = {
  token: 'weft-token',
  rootCert: 'weft-ca-root-cert',
  podInfo: 'weft-podinfo',
  tmp: 'weft-tmp',
} as const;

/** The ConfigMap the control plane publishes in every namespace, holding the mesh's roots. */
export const ROOT_CERT_CONFIGMAP = 'weft-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';
/** Label on the ConfigMaps the control plane owns. */
export const ROOT_CERT_CONFIGMAP_LABEL = 'weft.dev/ca-root-cert';

/** The audience of the projected ServiceAccount token the proxy presents to the CA. */
export const CA_TOKEN_AUDIENCE = 'weft-ca';

export const MOUNTS = {
  token: '/var/run/secrets/weft/tokens',
  tokenFile: '/var/run/secrets/weft/tokens/weft-token',
  rootCert: '/var/run/weft/ca',
  rootCertFile: '/var/run/weft/ca/root-cert.pem',
  podInfo: '/etc/weft/pod',
  tmp: '/tmp',
} as const;

export const PROXY_UID = 1337;

/** The proxy's ports in a pod (DESIGN.md). */
export const PORTS = {
  outbound: 15001,
  inbound: 15006,
  admin: 15000,
  stats: 15020,
  health: 15021,
  /** HBONE: where peers tunnel TCP to the pod's app ports. */
  hbone: 15008,
} as const;

export const DEFAULT_REVISION = 'default';

/**
 * Set by the Kubernetes source on the workload it makes from a meshed Pod whose proxy is ready:
 * the port its sidecar accepts mTLS on (other replicas of the control plane learn it this way).
 */
export const SIDECAR_PORT_ANNOTATION = 'weft.dev/sidecar-inbound-port';
/** Beside it, from the same injection record: the port its sidecar takes HBONE tunnels on. */
export const SIDECAR_HBONE_PORT_ANNOTATION = 'weft.dev/sidecar-hbone-port';
