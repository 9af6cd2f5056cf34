// A Service's traffic policy on its Envoy cluster: the defaults (P2C + peak-EWMA for HTTP,
// Istio-like outlier detection, retry budget, no connection limits), each `weft.dev/*`
// annotation, values that do not parse, and that what is sent is valid Envoy that Weft's own
// decoder reads back as the intended domain values.
import { describe, expect, it } from 'vitest';
import { pack, type Plain } from '../../api/codec.js';
import { clusterType } from '../../api/cluster.js';
import { TypeUrl } from '../../api/types.js';
import { modelFromYaml } from '../model/testing.js';
import { ANNOTATIONS, clusterPolicy } from './cluster-policy.js';
import { unknownEnvoyFields } from './testing.js';

function service(annotations: Record<string, string> = {}, portName = 'http') {
  const yaml = `apiVersion: v1
kind: Service
metadata:
  name: reviews
  namespace: default
  annotations: ${JSON.stringify(annotations)}
spec:
  selector: { app: reviews }
  ports: [{ name: ${portName}, port: 9080 }]
`;
  const svc = modelFromYaml(yaml).services[0]!;
  return { svc, port: svc.spec.ports[0]! };
}

/** The policy as Weft's proxy will see it, after an Envoy encode/decode. */
function decoded(policy: Plain) {
  const plain: Plain = { name: 'c', type: 'EDS', ...policy };
  expect(unknownEnvoyFields(TypeUrl.Cluster, plain)).toEqual([]);
  const r = clusterType.decode(pack(TypeUrl.Cluster, plain));
  if (!r.ok) throw new Error(JSON.stringify(r.problems));
  return r.value;
}

describe('clusterPolicy', () => {
  it('defaults: P2C + peak-EWMA for HTTP (ROUND_ROBIN on the wire), outlier detection, retry budget, no limits', () => {
    const { svc, port } = service();
    const policy = clusterPolicy(svc, port);
    expect(policy.lb_policy).toBe('ROUND_ROBIN');
    const c = decoded(policy);
    expect(c.lbPolicy).toBe('P2C_EWMA');
    expect(c.outlierDetection).toEqual({
      consecutive5xx: 5, enforcing5xxPercent: 100, consecutiveGatewayFailure: 0, enforcingGatewayFailurePercent: 0,
      intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 50, alwaysEjectOne: false,
    });
    expect(c.circuitBreakers).toEqual({
      maxConnections: 4_294_967_295, maxPendingRequests: 4_294_967_295, maxRequests: 4_294_967_295,
      retryBudget: { budgetPercent: 20, minRetryConcurrency: 3 },
    });
    expect(c.hashKey).toBeUndefined();
  });

  it('a TCP port balances by round robin', () => {
    const { svc, port } = service({}, 'tcp-db');
    expect(decoded(clusterPolicy(svc, port)).lbPolicy).toBe('ROUND_ROBIN');
  });

  it.each([
    [{ [ANNOTATIONS.lbPolicy]: 'least_request' }, { lbPolicy: 'LEAST_REQUEST' }],
    [{ [ANNOTATIONS.lbPolicy]: 'ROUND_ROBIN' }, { lbPolicy: 'ROUND_ROBIN' }],
    [{ [ANNOTATIONS.hashKey]: 'header:X-User' }, { lbPolicy: 'RING_HASH', hashKey: { kind: 'header', name: 'x-user' }, ringHash: { minRingSize: 1024, maxRingSize: 65536 } }],
    [{ [ANNOTATIONS.lbPolicy]: 'MAGLEV', [ANNOTATIONS.hashKey]: 'cookie:session' }, { lbPolicy: 'MAGLEV', hashKey: { kind: 'cookie', name: 'session' } }],
    [{ [ANNOTATIONS.hashKey]: 'source-ip' }, { lbPolicy: 'RING_HASH', hashKey: { kind: 'source-ip' } }],
    [{ [ANNOTATIONS.lbPolicy]: 'FASTEST' }, { lbPolicy: 'P2C_EWMA' }],
    [{ [ANNOTATIONS.hashKey]: 'query:x' }, { lbPolicy: 'P2C_EWMA' }],
  ])('lb annotations %j → %j', (annotations, expected) => {
    const { svc, port } = service(annotations);
    expect(decoded(clusterPolicy(svc, port))).toMatchObject(expected);
  });

  it('outlier detection, circuit breaker and retry budget from annotations', () => {
    const { svc, port } = service({
      [ANNOTATIONS.outlierDetection]: 'consecutive5xx=3, consecutiveGatewayErrors=2, interval=500ms, baseEjectionTime=2s, maxEjectionPercent=100',
      [ANNOTATIONS.circuitBreaker]: 'maxConnections=10,maxPendingRequests=5,maxRequests=20,maxRetries=2',
      [ANNOTATIONS.retryBudget]: 'budgetPercent=50,minRetryConcurrency=1',
    });
    const c = decoded(clusterPolicy(svc, port));
    expect(c.outlierDetection).toMatchObject({
      consecutive5xx: 3, consecutiveGatewayFailure: 2, enforcingGatewayFailurePercent: 100, intervalMs: 500, baseEjectionTimeMs: 2000, maxEjectionPercent: 100,
    });
    expect(c.circuitBreakers).toEqual({
      maxConnections: 10, maxPendingRequests: 5, maxRequests: 20, maxRetries: 2, retryBudget: { budgetPercent: 50, minRetryConcurrency: 1 },
    });
  });

  it('turns outlier detection and the retry budget off', () => {
    const { svc, port } = service({ [ANNOTATIONS.outlierDetection]: 'off', [ANNOTATIONS.retryBudget]: 'off', [ANNOTATIONS.circuitBreaker]: 'maxRetries=1' });
    const c = decoded(clusterPolicy(svc, port));
    expect(c.outlierDetection).toBeUndefined();
    expect(c.circuitBreakers?.retryBudget).toBeUndefined();
    expect(c.circuitBreakers?.maxRetries).toBe(1);
  });

  it('keeps the defaults for values that do not parse', () => {
    const { svc, port } = service({ [ANNOTATIONS.outlierDetection]: 'consecutive5xx=lots', [ANNOTATIONS.circuitBreaker]: 'maxRequests=-1' });
    const c = decoded(clusterPolicy(svc, port));
    expect(c.outlierDetection?.consecutive5xx).toBe(5);
    expect(c.circuitBreakers?.maxRequests).toBe(4_294_967_295);
  });
});
