// The ambient cluster's pods and Services, shared by its tests.
import type { PodSpec, ServiceSpec } from './support/cluster.js';

export const PODS: PodSpec[] = [
  // Starts outside the mesh; a test enrolls it while it runs.
  { name: 'client', node: 1, mode: 'none', labels: { app: 'client' }, serviceAccount: 'client', ports: {} },
  { name: 'reviews-v1', node: 1, mode: 'ambient', labels: { app: 'reviews', version: 'v1' }, serviceAccount: 'reviews', ports: { http: 9080 }, app: ['http', '--version', 'v1', '--port', '9080'] },
  { name: 'reviews-v2', node: 2, mode: 'ambient', labels: { app: 'reviews', version: 'v2' }, serviceAccount: 'reviews', ports: { http: 9080 }, app: ['http', '--version', 'v2', '--port', '9080'] },
  { name: 'ratings', node: 2, mode: 'ambient', labels: { app: 'ratings' }, serviceAccount: 'ratings', ports: { http: 9080 }, app: ['http', '--version', 'ratings', '--port', '9080'] },
  // A sidecar workload beside the ambient ones (interop both ways).
  { name: 'legacy', node: 2, labels: { app: 'legacy' }, serviceAccount: 'legacy', ports: { http: 9080 }, app: ['http', '--version', 'legacy', '--port', '9080'] },
  { name: 'waypoint', node: 2, mode: 'waypoint', labels: {}, serviceAccount: 'waypoint', ports: {} },
  // A TCP server (a line echo), for a Service port relayed as bytes.
  { name: 'db', node: 1, mode: 'ambient', labels: { app: 'db' }, serviceAccount: 'db', ports: { 'tcp-echo': 7000 }, app: ['tcp', '--echo', '7000'] },
];

export const SERVICES: ServiceSpec[] = [
  { name: 'reviews', clusterIP: '10.96.0.10', selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  { name: 'reviews-v1', clusterIP: '10.96.0.11', selector: { app: 'reviews', version: 'v1' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  { name: 'reviews-v2', clusterIP: '10.96.0.12', selector: { app: 'reviews', version: 'v2' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  { name: 'ratings', clusterIP: '10.96.0.13', selector: { app: 'ratings' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  { name: 'legacy', clusterIP: '10.96.0.14', selector: { app: 'legacy' }, ports: [{ name: 'http', port: 9080, targetPort: 9080 }] },
  // 7001: the same server on a port of unknown protocol (its bytes are sniffed for HTTP first).
  { name: 'db', clusterIP: '10.96.0.15', selector: { app: 'db' }, ports: [{ name: 'tcp-echo', port: 7000, targetPort: 7000 }, { name: 'echo', port: 7001, targetPort: 7000 }] },
];

