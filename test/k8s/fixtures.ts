// Real-shaped Kubernetes objects for the Kubernetes tests: a pod as the API server hands it to
// a mutating webhook when a Deployment's ReplicaSet creates it (defaults applied, no name yet,
// generateName and ownerReferences set), and the AdmissionReview that carries it.
import crypto from 'node:crypto';
import type { Json } from '../../control-plane/injector/patch.js';

type JsonObject = { [key: string]: Json };

export function deploymentPod(opts: { namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {}): JsonObject {
  return {
    kind: 'Pod',
    apiVersion: 'v1',
    metadata: {
      generateName: 'reviews-v1-5c6d8f7b9-',
      namespace: opts.namespace ?? 'bookinfo',
      creationTimestamp: null,
      labels: { app: 'reviews', version: 'v1', 'pod-template-hash': '5c6d8f7b9', ...opts.labels },
      ...(opts.annotations ? { annotations: opts.annotations } : {}),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'reviews-v1-5c6d8f7b9', uid: '3f1c2a9e-6a0b-4f41-9d0e-2b7f8c1d5e60', controller: true, blockOwnerDeletion: true },
      ],
      managedFields: [
        { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2024-05-01T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {} } },
      ],
    },
    spec: {
      volumes: [
        {
          name: 'kube-api-access-7xk2p',
          projected: {
            sources: [
              { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
              { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
              { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
            ],
            defaultMode: 420,
          },
        },
      ],
      containers: [
        {
          name: 'reviews',
          image: 'docker.io/istio/examples-bookinfo-reviews-v1:1.20.1',
          ports: [{ name: 'http', containerPort: 9080, protocol: 'TCP' }],
          resources: {},
          volumeMounts: [{ name: 'kube-api-access-7xk2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
          securityContext: { runAsUser: 1000 },
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'bookinfo-reviews',
      serviceAccount: 'bookinfo-reviews',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
    },
    status: {},
  };
}

export function admissionReview(pod: JsonObject, over: { operation?: string; kind?: string; namespace?: string } = {}): JsonObject {
  const namespace = over.namespace ?? String((pod.metadata as JsonObject).namespace ?? 'default');
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: crypto.randomUUID(),
      kind: { group: '', version: 'v1', kind: over.kind ?? 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: over.kind ?? 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace,
      operation: over.operation ?? 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: 'b3c5a2d4-6e8f-4a1b-9c0d-1e2f3a4b5c6d',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}
