// What injection adds to a pod, as plain Kubernetes JSON: the weft-init container (capture rules,
// then exit), the weft-proxy container (native sidecar or regular), and the volumes they mount.
// Pure: the same settings and overrides always give the same objects.
import { APP_PROBES_ENV } from '../../core/app-probes.js';
import type { Json } from './patch.js';
import {
  CA_TOKEN_AUDIENCE,
  INIT_CONTAINER,
  MOUNTS,
  PORTS,
  PROXY_CONTAINER,
  PROXY_UID,
  ROOT_CERT_CONFIGMAP,
  ROOT_CERT_KEY,
  VOLUMES,
} from './names.js';
import type { Overrides } from './overrides.js';
import type { InjectorSettings } from './settings.js';

type JsonObject = { [key: string]: Json };

/** How long the projected token lives; the kubelet refreshes it at 80 % of that. */
const TOKEN_SECONDS = 3600 * 12;

/**
 * `weft iptables apply` flags (cli/iptables.ts, named after istio-iptables'): redirect outbound
 * TCP to 15001 and inbound TCP to 15006, except traffic of the proxy's own UID/GID, the proxy's
 * own ports (always excluded there) and whatever the pod's annotations exclude.
 */
export function captureArgs(overrides: Overrides): string[] {
  const args = [
    'iptables',
    'apply',
    '--proxy-uid',
    String(PROXY_UID),
    '--proxy-gid',
    String(PROXY_UID),
    '--outbound-capture-port',
    String(PORTS.outbound),
    '--inbound-capture-port',
    String(PORTS.inbound),
    '--inbound-ports',
    '*',
  ];
  if (overrides.excludeInboundPorts.length > 0) args.push('--exclude-inbound-ports', overrides.excludeInboundPorts.join(','));
  if (overrides.excludeOutboundPorts.length > 0) args.push('--exclude-outbound-ports', overrides.excludeOutboundPorts.join(','));
  if (overrides.excludeOutboundCidrs.length > 0) args.push('--exclude-outbound-cidrs', overrides.excludeOutboundCidrs.join(','));
  return args;
}

export function initContainer(settings: InjectorSettings, overrides: Overrides): JsonObject {
  return {
    name: INIT_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    args: captureArgs(overrides),
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } },
    // Installing NAT rules in the pod's network namespace needs root with NET_ADMIN and NET_RAW;
    // nothing else, and it exits before the app starts.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

function fieldEnv(name: string, fieldPath: string): JsonObject {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

function readyProbe(periodSeconds: number, failureThreshold: number): JsonObject {
  return { httpGet: { path: '/healthz/ready', port: PORTS.health }, periodSeconds, timeoutSeconds: 3, failureThreshold };
}

/** The proxy container; `native` makes it a native sidecar (placed among the init containers). */
export function proxyContainer(settings: InjectorSettings, overrides: Overrides, native: boolean, appProbes: Record<string, Json> = {}): JsonObject {
  const cpu = overrides.proxyCpu ?? settings.proxyCpu;
  const memory = overrides.proxyMemory ?? settings.proxyMemory;
  const container: JsonObject = {
    name: PROXY_CONTAINER,
    image: settings.image,
    imagePullPolicy: settings.imagePullPolicy,
    args: [
      'proxy',
      '--xds',
      settings.xdsAddress,
      '--xds-root-cert',
      MOUNTS.rootCertFile,
      '--workload',
      '$(POD_NAME).$(POD_NAMESPACE)',
      '--token-file',
      MOUNTS.tokenFile,
      '--outbound-port',
      String(PORTS.outbound),
      '--inbound-port',
      String(PORTS.inbound),
      '--admin-port',
      String(PORTS.admin),
      '--stats-port',
      String(PORTS.stats),
      '--hbone-port',
      String(PORTS.hbone),
      // Captured mode: the pod's TCP arrives through weft-init's redirect rules.
      '--capture',
      ...(overrides.proxyConcurrency && overrides.proxyConcurrency > 1 ? ['--concurrency', String(overrides.proxyConcurrency)] : []),
    ],
    env: [
      fieldEnv('POD_NAME', 'metadata.name'),
      fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
      fieldEnv('POD_IP', 'status.podIP'),
      fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
      fieldEnv('NODE_NAME', 'spec.nodeName'),
      { name: 'WEFT_LOG_LEVEL', value: overrides.logLevel ?? settings.logLevel },
      // The app's probes, which the kubelet now sends to this container's health port.
      ...(Object.keys(appProbes).length > 0 ? [{ name: APP_PROBES_ENV, value: JSON.stringify(appProbes) }] : []),
    ],
    ports: [
      { name: 'weft-prom', containerPort: PORTS.stats, protocol: 'TCP' },
      { name: 'weft-health', containerPort: PORTS.health, protocol: 'TCP' },
    ],
    resources: { requests: { cpu, memory }, limits: { memory } },
    readinessProbe: readyProbe(2, 4),
    // Until this succeeds the kubelet starts nothing after a native sidecar; for a regular
    // container the postStart hook below holds the app back the same way.
    startupProbe: readyProbe(1, 600),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: VOLUMES.token, mountPath: MOUNTS.token, readOnly: true },
      { name: VOLUMES.rootCert, mountPath: MOUNTS.rootCert, readOnly: true },
      { name: VOLUMES.podInfo, mountPath: MOUNTS.podInfo, readOnly: true },
      { name: VOLUMES.tmp, mountPath: MOUNTS.tmp },
    ],
  };
  if (native) {
    container.restartPolicy = 'Always';
  } else {
    // The kubelet starts containers in order and waits for each postStart hook: the app
    // (after this container) never starts before its proxy is ready.
    container.lifecycle = {
      postStart: {
        exec: { command: ['weft', 'wait-ready', '--url', `http://127.0.0.1:${PORTS.health}/healthz/ready`, '--timeout-seconds', '120'] },
      },
    };
  }
  return container;
}

export function volumes(): JsonObject[] {
  return [
    {
      name: VOLUMES.token,
      projected: {
        sources: [{ serviceAccountToken: { audience: CA_TOKEN_AUDIENCE, expirationSeconds: TOKEN_SECONDS, path: 'weft-token' } }],
      },
    },
    { name: VOLUMES.rootCert, configMap: { name: ROOT_CERT_CONFIGMAP, items: [{ key: ROOT_CERT_KEY, path: ROOT_CERT_KEY }] } },
    {
      name: VOLUMES.podInfo,
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    { name: VOLUMES.tmp, emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  ];
}
