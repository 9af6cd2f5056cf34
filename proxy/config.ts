// The proxy's settings: defaults in one table, validated once, frozen.
import { ErrorCode, WeftError } from '../core/errors.js';
import type { AppProbes } from '../core/app-probes.js';

export interface ProxyConfigOptions {
  /** `sidecar` (one workload's proxy) or `waypoint` (also accepts HBONE on hbonePort and routes
   *  it as L7 for the Services that use this waypoint). The node proxy has its own config. */
  readonly mode: 'sidecar' | 'waypoint';
  /** Waypoint: the HBONE listener. */
  readonly hbonePort: number;
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
  /** `/healthz/ready` for probes (15021). */
  readonly healthPort: number;
  /** Requested certificate lifetime (the CA may clamp it). */
  readonly certTtlSeconds: number;
  /** How long in-flight requests get to finish on shutdown. */
  readonly drainSeconds: number;
  /** ALLOW_ANY passes unknown absolute-form hosts through; REGISTRY_ONLY refuses them. */
  readonly outboundPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Captured mode (pod networking): iptables redirects the pod's TCP to the outbound and
   *  inbound ports (`weft iptables apply`); the original destination picks the path. */
  readonly capture: boolean;
  /** Captured mode: wait this long for a client's first bytes on a port of unknown protocol. */
  readonly protocolDetectionTimeoutMs: number;
  /** JSON access log: `stdout` or a file path; undefined = off. */
  readonly accessLog: string | undefined;
  /** OTLP/gRPC collector for traces (`http://host:4317`); undefined = tracing off.
   *  Default: $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else $OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly otlpEndpoint: string | undefined;
  /** Percent of requests without a sampling decision that start a trace (a parent's is obeyed). */
  readonly traceSamplingPercent: number;
  /** `local`: the local app may ask for a decision record with `x-weft-debug: 1`; `off`: never. */
  readonly decisionHeader: 'local' | 'off';
  /** HTTP/1.1 plain forwards take the byte-level fast path (proxy/http1); false: node:http only. */
  readonly http1FastPath: boolean;
  /** HTTP/2 plain forwards to HTTP/2 clusters take the lean stream path (proxy/http2); false: node:http2's compat API only. */
  readonly http2FastPath: boolean;
  /** xDS wire protocol: `delta` (incremental: only changed resources are sent) or `sotw`. */
  readonly xdsProtocol: 'delta' | 'sotw';
  /** The app's probes, answered on the health port for the kubelet (core/app-probes.ts). */
  readonly appProbes: AppProbes;
  /** Where the stats and health ports listen (default: bindAddress); a worker's are loopback. */
  readonly endpointsAddress?: string;
  /** Worker processes sharing the listeners (proxy/workers.ts); 1: this process serves alone. */
  readonly concurrency: number;
  /** In a worker, the secret its session-ticket keys come from, shared by every worker of the
   *  sidecar (set by proxy/workers.ts, never a flag; see MeshTls). */
  readonly ticketSecret?: Buffer;
}

export const PROXY_DEFAULTS = {
  mode: 'sidecar',
  hbonePort: 15008,
  xdsRootCert: undefined,
  bindAddress: '0.0.0.0',
  outboundPort: 15001,
  inboundPort: 15006,
  adminPort: 15000,
  statsPort: 15020,
  healthPort: 15021,
  certTtlSeconds: 24 * 3600,
  drainSeconds: 5,
  outboundPolicy: 'ALLOW_ANY',
  capture: false,
  protocolDetectionTimeoutMs: 100,
  accessLog: undefined,
  otlpEndpoint: undefined,
  traceSamplingPercent: 1,
  decisionHeader: 'local',
  http1FastPath: true,
  http2FastPath: true,
  xdsProtocol: 'delta',
  appProbes: new Map() as AppProbes,
  concurrency: 1,
} as const;

export function proxyConfig(input: Partial<ProxyConfigOptions> & Pick<ProxyConfigOptions, 'xds' | 'workload' | 'tokenFile'>): ProxyConfigOptions {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const env = process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || process.env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
  const c = { ...PROXY_DEFAULTS, otlpEndpoint: env, ...defined } as ProxyConfigOptions;
  if (c.accessLog === 'off' || c.accessLog === '') (c as { accessLog: string | undefined }).accessLog = undefined;
  if (!/^[^:]+:\d+$/.test(c.xds)) throw new WeftError(ErrorCode.USAGE, `--xds: expected HOST:PORT, got "${c.xds}"`);
  if (c.mode !== 'sidecar' && c.mode !== 'waypoint') throw new WeftError(ErrorCode.USAGE, `--mode: sidecar or waypoint here, got "${String(c.mode)}"`);
  if (!c.workload) throw new WeftError(ErrorCode.USAGE, `--workload: required with --mode ${c.mode} (NAME.NAMESPACE of the workload this proxy serves)`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(c.workload)) {
    throw new WeftError(ErrorCode.USAGE, `--workload: expected NAME.NAMESPACE (lower-case DNS labels), got "${c.workload}"`);
  }
  if (!c.tokenFile) throw new WeftError(ErrorCode.USAGE, '--token-file: the workload bootstrap token file is required');
  for (const [flag, v] of [
    ['outbound-port', c.outboundPort],
    ['inbound-port', c.inboundPort],
    ['admin-port', c.adminPort],
    ['stats-port', c.statsPort],
    ['health-port', c.healthPort],
    ['hbone-port', c.hbonePort],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new WeftError(ErrorCode.USAGE, `--${flag}: must be a port number, got ${JSON.stringify(v)}`);
  }
  if (c.otlpEndpoint !== undefined && !/^https?:\/\/[^/]+/.test(c.otlpEndpoint)) {
    throw new WeftError(ErrorCode.USAGE, `--otlp-endpoint: expected a URL like http://127.0.0.1:4317, got "${c.otlpEndpoint}"`);
  }
  if (typeof c.traceSamplingPercent !== 'number' || !(c.traceSamplingPercent >= 0 && c.traceSamplingPercent <= 100)) {
    throw new WeftError(ErrorCode.USAGE, `--trace-sampling: a percentage from 0 to 100, got ${JSON.stringify(c.traceSamplingPercent)}`);
  }
  if (c.decisionHeader !== 'local' && c.decisionHeader !== 'off') {
    throw new WeftError(ErrorCode.USAGE, `--decision-header: local or off, got "${String(c.decisionHeader)}"`);
  }
  if (typeof c.http1FastPath !== 'boolean') {
    throw new WeftError(ErrorCode.USAGE, `--http1-fast-path: true or false, got ${JSON.stringify(c.http1FastPath)}`);
  }
  if (typeof c.http2FastPath !== 'boolean') {
    throw new WeftError(ErrorCode.USAGE, `--http2-fast-path: true or false, got ${JSON.stringify(c.http2FastPath)}`);
  }
  if (!Number.isInteger(c.concurrency) || c.concurrency < 1 || c.concurrency > 64) {
    throw new WeftError(ErrorCode.USAGE, `--concurrency: worker processes, 1 to 64, got ${JSON.stringify(c.concurrency)}`);
  }
  if (c.xdsProtocol !== 'delta' && c.xdsProtocol !== 'sotw') {
    throw new WeftError(ErrorCode.USAGE, `--xds-protocol: delta or sotw, got "${String(c.xdsProtocol)}"`);
  }
  if (!Number.isFinite(c.drainSeconds) || c.drainSeconds < 0) {
    throw new WeftError(ErrorCode.USAGE, `--drain-seconds: must be 0 or more, got ${JSON.stringify(c.drainSeconds)}`);
  }
  if (!Number.isInteger(c.protocolDetectionTimeoutMs) || c.protocolDetectionTimeoutMs < 1 || c.protocolDetectionTimeoutMs > 60_000) {
    throw new WeftError(ErrorCode.USAGE, `--protocol-detection-timeout: milliseconds from 1 to 60000, got ${JSON.stringify(c.protocolDetectionTimeoutMs)}`);
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
