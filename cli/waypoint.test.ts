// `weft waypoint apply`: the manifests as Kubernetes reads them (validated against the API
// schemas with kubernetes-models) and the local-mode YAML the control plane reads.
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Service, ServiceAccount } from 'kubernetes-models/v1';
import { kubernetesWaypoint, localWaypoint, toYaml } from './waypoint.js';

const opts = { name: 'waypoint', namespace: 'shop', image: 'ghcr.io/weft-mesh/weft:0.1.0', xdsAddress: 'weft.weft-system.svc:15012', replicas: 2 };

describe('weft waypoint apply', () => {
  it('writes a Gateway of class weft-waypoint and the Deployment, ServiceAccount and Service that run it', () => {
    const docs = parseAllDocuments(toYaml(kubernetesWaypoint(opts))).map((d) => d.toJS() as Record<string, any>);
    expect(docs.map((d) => d.kind)).toEqual(['Gateway', 'ServiceAccount', 'Deployment', 'Service']);
    expect(docs[0]!.spec).toEqual({ gatewayClassName: 'weft-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] });
    new ServiceAccount(docs[1] as never).validate();
    const deployment = new Deployment(docs[2] as never);
    deployment.validate();
    const container = docs[2]!.spec.template.spec.containers[0];
    expect(container.args).toEqual(expect.arrayContaining(['--mode', 'waypoint', '--workload', '$(POD_NAME).$(POD_NAMESPACE)']));
    // The pods carry the label that makes them this waypoint's workloads; no sidecar is injected.
    expect(docs[2]!.spec.template.metadata.labels).toEqual({ 'gateway.networking.k8s.io/gateway-name': 'waypoint', 'weft.dev/inject': 'false' });
    new Service(docs[3] as never).validate();
    expect(docs[3]!.spec.ports).toEqual([{ name: 'hbone', port: 15008, targetPort: 15008, appProtocol: 'tcp' }]);
  });

  it('writes a Gateway and a WorkloadEntry for local mode, and needs an address for it', () => {
    const docs = localWaypoint({ ...opts, address: '10.244.0.9', nodeName: 'local' });
    expect(docs[1]).toMatchObject({ kind: 'WorkloadEntry', metadata: { labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } }, spec: { address: '10.244.0.9', nodeName: 'local', serviceAccount: 'waypoint' } });
    expect(() => localWaypoint(opts)).toThrow(/--address/);
  });

  it('refuses names Kubernetes would refuse, naming the flag and value', () => {
    expect(() => kubernetesWaypoint({ ...opts, name: 'Way_Point' })).toThrow(/--name: .*"Way_Point"/);
    expect(() => kubernetesWaypoint({ ...opts, replicas: 0 })).toThrow(/--replicas/);
  });
});
