// Test support for translator tests: a small mesh in YAML, a directory of connected sidecars,
// and accessors for the parts of a ResourceSet a test looks at.
import type { Plain } from '../../api/codec.js';
import { TypeUrl } from '../../api/types.js';
import { modelFromYaml } from '../model/testing.js';
import { translate } from './index.js';
import type { ResourceSet, SidecarDirectory, TranslateOptions } from './types.js';

/** reviews (both versions), reviews-v1, reviews-v2 and a client, all in `default`. */
export const MESH = `
apiVersion: v1
kind: Service
metadata: { name: reviews }
spec:
  selector: { app: reviews }
  ports: [{ name: http, port: 9080, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v1 }
spec:
  selector: { app: reviews, version: v1 }
  ports: [{ name: http, port: 9080, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: reviews-v2 }
spec:
  selector: { app: reviews, version: v2 }
  ports: [{ name: http, port: 9080, targetPort: http }]
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v1, labels: { app: reviews, version: v1 } }
spec: { address: 127.0.0.1, ports: { http: 19081 }, serviceAccount: reviews }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: reviews-v2, labels: { app: reviews, version: v2 } }
spec: { address: 127.0.0.1, ports: { http: 19082 }, serviceAccount: reviews }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: client, labels: { app: client } }
spec: { address: 127.0.0.1 }
`;

export const CONNECTED: Readonly<Record<string, number>> = {
  'reviews-v1.default': 25001,
  'reviews-v2.default': 25002,
  'client.default': 25000,
};

export function directoryOf(ports: Readonly<Record<string, number>> = CONNECTED): SidecarDirectory {
  return (key) => (Object.hasOwn(ports, key) ? { inboundPort: ports[key] ?? 0 } : undefined);
}

export interface RunOptions extends Partial<TranslateOptions> {
  readonly workload?: string;
  readonly namespace?: string;
  readonly connected?: Readonly<Record<string, number>>;
}

export function run(yaml: string, o: RunOptions = {}): ResourceSet {
  const workload = o.workload ?? 'client';
  const namespace = o.namespace ?? 'default';
  const { workload: _w, namespace: _n, connected, ...options } = o;
  return translate(
    modelFromYaml(yaml),
    { id: `${workload}.${namespace}`, workload, namespace, mode: 'sidecar' },
    directoryOf(connected),
    { trustDomain: 'cluster.local', mtls: false, ...options },
  );
}

/** The `outbound` virtual hosts (inline, then VHDS), named as they would be inline. */
export function virtualHosts(set: ResourceSet): Plain[] {
  const inline = (set[TypeUrl.RouteConfiguration].get('outbound')?.virtual_hosts as Plain[] | undefined) ?? [];
  const vhds = [...(set[TypeUrl.VirtualHost]?.values() ?? [])]
    .filter((vh) => String(vh.name).startsWith('outbound/'))
    .map((vh) => ({ ...vh, name: String(vh.name).slice('outbound/'.length) }));
  return [...inline, ...vhds];
}

export function virtualHost(set: ResourceSet, name: string): Plain {
  const vh = virtualHosts(set).find((v) => v.name === name);
  if (!vh) throw new Error(`no virtual host ${name}; have ${virtualHosts(set).map((v) => String(v.name)).join(', ')}`);
  return vh;
}

/** The Envoy routes of the virtual host of `svc` (short name, namespace default) on `port`. */
export function routesOf(set: ResourceSet, svc: string, port = 9080, ns = 'default'): Plain[] {
  return virtualHost(set, `${svc}.${ns}.svc.cluster.local:${port}`).routes as Plain[];
}
