// `weft waypoint apply`: a waypoint for a namespace or a Service — the Gateway of class
// `weft-waypoint` that declares it, and what runs it: in Kubernetes a ServiceAccount, Deployment
// and Service for `kubectl apply -f -` (Weft has no gateway-deployment controller; the manifests
// are the deployment); in local mode a Gateway and a WorkloadEntry written into the config
// directory that `weft up` / `weft control-plane` watch. Pure manifest building, tested by golden file.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { CA_TOKEN_AUDIENCE, MOUNTS, PORTS, ROOT_CERT_CONFIGMAP, ROOT_CERT_KEY, VOLUMES } from '../control-plane/injector/names.js';
import { INJECTOR_DEFAULTS } from '../control-plane/injector/settings.js';
import { ErrorCode, WeftError } from '../core/errors.js';

/** The GatewayClass whose Gateways are waypoints, and the label naming a workload's waypoint. */
export const WAYPOINT_CLASS = 'weft-waypoint';
export const GATEWAY_NAME_LABEL = 'gateway.networking.k8s.io/gateway-name';
export const USE_WAYPOINT_LABEL = 'weft.dev/use-waypoint';
const HBONE_PORT = 15008;

export interface WaypointOptions {
  readonly name: string;
  readonly namespace: string;
  /** Kubernetes: the proxy image and the control plane's xDS address. */
  readonly image: string;
  readonly xdsAddress: string;
  readonly replicas: number;
  /** Local mode: the waypoint's address and node (a WorkloadEntry). */
  readonly address?: string;
  readonly nodeName?: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function validate(o: WaypointOptions): void {
  if (!DNS_LABEL.test(o.name) || o.name.length > 63) throw new WeftError(ErrorCode.USAGE, `--name: a DNS label (lower-case letters, digits, '-'), got "${o.name}"`);
  if (!DNS_LABEL.test(o.namespace)) throw new WeftError(ErrorCode.USAGE, `--namespace: a DNS label, got "${o.namespace}"`);
  if (!(Number.isInteger(o.replicas) && o.replicas >= 1)) throw new WeftError(ErrorCode.USAGE, `--replicas: a whole number ≥ 1, got ${o.replicas}`);
}

function gateway(o: WaypointOptions): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name: o.name, namespace: o.namespace },
    spec: { gatewayClassName: WAYPOINT_CLASS, listeners: [{ name: 'mesh', port: HBONE_PORT, protocol: 'HBONE' }] },
  };
}

/** Kubernetes objects for `kubectl apply -f -`. */
export function kubernetesWaypoint(o: WaypointOptions): Array<Record<string, unknown>> {
  validate(o);
  const labels = { [GATEWAY_NAME_LABEL]: o.name, 'weft.dev/inject': 'false' };
  const env = (name: string, fieldPath: string) => ({ name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } });
  return [
    gateway(o),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: o.name, namespace: o.namespace, labels: { [GATEWAY_NAME_LABEL]: o.name } } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: o.name, namespace: o.namespace, labels },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: { [GATEWAY_NAME_LABEL]: o.name } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: o.name,
            containers: [
              {
                name: 'waypoint',
                image: o.image,
                args: [
                  'proxy', '--mode', 'waypoint', '--xds', o.xdsAddress, '--xds-root-cert', MOUNTS.rootCertFile,
                  '--workload', '$(POD_NAME).$(POD_NAMESPACE)', '--token-file', MOUNTS.tokenFile, '--hbone-port', String(HBONE_PORT),
                ],
                env: [env('POD_NAME', 'metadata.name'), env('POD_NAMESPACE', 'metadata.namespace')],
                ports: [
                  { name: 'hbone', containerPort: HBONE_PORT, protocol: 'TCP' },
                  { name: 'weft-prom', containerPort: PORTS.stats, protocol: 'TCP' },
                  { name: 'weft-health', containerPort: PORTS.health, protocol: 'TCP' },
                ],
                readinessProbe: { httpGet: { path: '/healthz/ready', port: PORTS.health }, periodSeconds: 2 },
                securityContext: { runAsNonRoot: true, runAsUser: 1337, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
                volumeMounts: [
                  { name: VOLUMES.token, mountPath: MOUNTS.token, readOnly: true },
                  { name: VOLUMES.rootCert, mountPath: MOUNTS.rootCert, readOnly: true },
                  { name: VOLUMES.tmp, mountPath: MOUNTS.tmp },
                ],
              },
            ],
            volumes: [
              { name: VOLUMES.token, projected: { sources: [{ serviceAccountToken: { audience: CA_TOKEN_AUDIENCE, expirationSeconds: 43200, path: 'weft-token' } }] } },
              { name: VOLUMES.rootCert, configMap: { name: ROOT_CERT_CONFIGMAP, items: [{ key: ROOT_CERT_KEY, path: ROOT_CERT_KEY }] } },
              { name: VOLUMES.tmp, emptyDir: { medium: 'Memory' } },
            ],
          },
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: o.name, namespace: o.namespace, labels: { [GATEWAY_NAME_LABEL]: o.name } },
      spec: { selector: { [GATEWAY_NAME_LABEL]: o.name }, ports: [{ name: 'hbone', port: HBONE_PORT, targetPort: HBONE_PORT, appProtocol: 'tcp' }] },
    },
  ];
}

/** Local mode: the Gateway and the waypoint's WorkloadEntry, for a `weft up` config directory. */
export function localWaypoint(o: WaypointOptions): Array<Record<string, unknown>> {
  validate(o);
  if (!o.address) throw new WeftError(ErrorCode.USAGE, '--address: local mode (--config-dir) needs the waypoint workload\'s address');
  return [
    gateway(o),
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'WorkloadEntry',
      metadata: { name: o.name, namespace: o.namespace, labels: { [GATEWAY_NAME_LABEL]: o.name } },
      spec: { address: o.address, serviceAccount: o.name, ...(o.nodeName ? { nodeName: o.nodeName } : {}), ports: {} },
    },
  ];
}

export function toYaml(objects: ReadonlyArray<Record<string, unknown>>): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}

function nextSteps(o: WaypointOptions, local: boolean): string {
  const enroll = local
    ? `label the Namespace (or a Service) in your config: metadata.labels["${USE_WAYPOINT_LABEL}"]: ${o.name}`
    : `kubectl label namespace ${o.namespace} ${USE_WAYPOINT_LABEL}=${o.name}   (or label one Service)`;
  return `waypoint ${o.namespace}/${o.name}: to send traffic through it, ${enroll}\n`;
}

export function registerWaypoint(program: Command): void {
  const waypoint = program.command('waypoint').description('waypoints: L7 (routes, L7 authorization) for ambient workloads');
  waypoint
    .command('apply')
    .description('a waypoint for a namespace: Kubernetes manifests on stdout (pipe to kubectl apply -f -), or local-mode YAML with --config-dir')
    .option('--name <name>', 'the waypoint (Gateway) name', 'waypoint')
    .option('-n, --namespace <ns>', 'its namespace', 'default')
    .option('--replicas <n>', 'Kubernetes: Deployment replicas', (v) => Number(v), 1)
    .option('--image <image>', 'Kubernetes: the weft image', INJECTOR_DEFAULTS.image)
    .option('--xds-address <host:port>', "Kubernetes: the control plane's xDS/CA address", 'weft.weft-system.svc:15012')
    .option('--config-dir <dir>', 'local mode: write waypoint-<name>.yaml into this config directory')
    .option('--address <ip>', "local mode: the waypoint workload's address")
    .option('--node <name>', "local mode: the waypoint workload's node")
    .action((o) => {
      const opts: WaypointOptions = {
        name: o.name,
        namespace: o.namespace,
        image: o.image,
        xdsAddress: o.xdsAddress,
        replicas: o.replicas,
        ...(o.address ? { address: o.address } : {}),
        ...(o.node ? { nodeName: o.node } : {}),
      };
      if (o.configDir) {
        const file = path.join(o.configDir, `waypoint-${opts.name}.yaml`);
        writeFileSync(file, toYaml(localWaypoint(opts)));
        process.stderr.write(`wrote ${file}\n${nextSteps(opts, true)}`);
        return;
      }
      process.stdout.write(toYaml(kubernetesWaypoint(opts)));
      process.stderr.write(nextSteps(opts, false));
    });
}
