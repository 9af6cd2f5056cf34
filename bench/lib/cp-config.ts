// Generated config for the control-plane benchmark: S Services with hand-made EndpointSlices
// (E endpoints in all, on 127.x addresses that nothing ever dials), one WorkloadEntry per
// simulated proxy, and one HTTPRoute whose weights the benchmark edits.
import { BENCH_NS, workloadEntry } from './mesh.js';

export interface CpScale {
  readonly services: number;
  readonly endpoints: number;
  readonly proxies: number;
}

const pad = (i: number) => String(i).padStart(4, '0');
export const serviceName = (i: number) => `svc-${pad(i)}`;
export const proxyName = (i: number) => `sim-${pad(i)}`;
export const ROUTE_FILE = 'route.yaml';
const SERVICE_PORT = 8080;

/** A loopback address for endpoint k (127.1.0.0 upwards): config data only, never connected to. */
function endpointAddress(k: number): string {
  return `127.${1 + Math.floor(k / 65536)}.${Math.floor(k / 256) % 256}.${k % 256}`;
}

export function cpConfig(scale: CpScale): Record<string, string> {
  const services: string[] = [];
  const slices: string[] = [];
  const perService = Math.floor(scale.endpoints / scale.services);
  const extra = scale.endpoints % scale.services;
  let k = 0;
  for (let i = 0; i < scale.services; i++) {
    const name = serviceName(i);
    services.push(`apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${BENCH_NS} }
spec:
  ports: [{ name: http, port: ${SERVICE_PORT} }]
`);
    const n = perService + (i < extra ? 1 : 0);
    const addrs: string[] = [];
    for (let j = 0; j < n; j++) addrs.push(`  - addresses: [${endpointAddress(k++)}]`);
    slices.push(`apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: ${name}-1, namespace: ${BENCH_NS}, labels: { kubernetes.io/service-name: ${name} } }
addressType: IPv4
endpoints:
${addrs.join('\n')}
ports: [{ name: http, port: ${SERVICE_PORT}, protocol: TCP }]
`);
  }
  const workloads: string[] = [];
  for (let i = 0; i < scale.proxies; i++) workloads.push(workloadEntry(proxyName(i), { app: 'sim' }, {}, 'sim'));
  return {
    'services.yaml': services.join('---\n'),
    'slices.yaml': slices.join('---\n'),
    'workloads.yaml': workloads.join('---\n'),
    [ROUTE_FILE]: routeYaml(0),
  };
}

/** The edited route: svc-0000 split between svc-0001 and svc-0002, weights moving with `edit`. */
export function routeYaml(edit: number): string {
  const w = 10 + ((edit * 7) % 80);
  return `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: split, namespace: ${BENCH_NS} }
spec:
  parentRefs: [{ group: "", kind: Service, name: ${serviceName(0)}, port: ${SERVICE_PORT} }]
  rules:
    - backendRefs:
        - { name: ${serviceName(1)}, port: ${SERVICE_PORT}, weight: ${w} }
        - { name: ${serviceName(2)}, port: ${SERVICE_PORT}, weight: ${100 - w} }
`;
}
