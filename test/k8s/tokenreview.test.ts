// CSR authentication with Kubernetes ServiceAccount tokens, end to end against the STAND-IN API
// server (test/k8s/apiserver.ts; no real Kubernetes runs here): the CA asks TokenReview (audience
// weft-ca) who the caller is and certifies exactly that ServiceAccount; wrong audiences, tokens of
// deleted pods and CSRs for someone else are refused; a real proxy with a pod's projected token
// gets its certificate and its config.
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caService, type IstioCertificateResponse } from '../../api/services.js';
import { buildCsr } from '../../certs/csr.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import type { ControlPlane } from '../../control-plane/main.js';
import { proxyConfig } from '../../proxy/config.js';
import { startProxy, type RunningProxy } from '../../proxy/main.js';
import { eventually } from '../support/eventually.js';
import { meshedPod, startKubeControlPlane, startStandInCluster, type StandInCluster } from './harness.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/bookinfo/sa/client';

let cluster: StandInCluster;
let cp: ControlPlane;
let client: grpc.Client;
let proxy: RunningProxy | undefined;

function podToken(name: string, opts: { audiences?: string[]; serviceAccount?: string } = {}): string {
  const pod = cluster.api.get('v1', 'Pod', 'bookinfo', name);
  const uid = String((pod?.metadata as { uid?: string } | undefined)?.uid ?? 'gone');
  return cluster.api.issueToken({
    namespace: 'bookinfo',
    serviceAccount: opts.serviceAccount ?? 'client',
    audiences: opts.audiences ?? ['weft-ca'],
    pod: { name, uid },
    node: 'node-1',
  });
}

async function csr(identity?: string): Promise<string> {
  const keys = await generateWorkloadKeyPair();
  return buildCsr({ privateKey: keys.privateKey, ...(identity ? { identity } : {}) });
}

function createCertificate(csrPem: string, token: string): Promise<IstioCertificateResponse> {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  const m = caService.CreateCertificate;
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, { csr: csrPem, validity_duration: 3600 }, md, (err, res) =>
      err || !res ? reject(err) : resolve(res),
    ),
  );
}

async function refused(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call should have been refused').toBeDefined();
  return err as grpc.ServiceError;
}

beforeAll(async () => {
  cluster = await startStandInCluster();
  const api = cluster.api;
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'weft-system' } });
  api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'bookinfo', labels: { 'weft.dev/inject': 'enabled' } } });
  api.apply({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'client', namespace: 'bookinfo' } });
  api.apply({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'reviews', namespace: 'bookinfo' },
    spec: { selector: { app: 'reviews' }, ports: [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'TCP' }] },
  });
  for (const name of ['client-1', 'client-2']) {
    api.apply(meshedPod({ name, namespace: 'bookinfo', labels: { app: 'client' }, serviceAccount: 'client', ip: '10.1.0.9' }));
  }
  cp = await startKubeControlPlane(cluster, 'cp', { webhookPort: -1 });
  client = new grpc.Client(`127.0.0.1:${cp.xdsAddress.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  await proxy?.stop();
  client?.close();
  await cp?.stop();
  await cluster?.close();
});

describe('CA with TokenReview (stand-in API server)', () => {
  it("issues a certificate for the ServiceAccount the token proves, after a TokenReview for audience weft-ca", async () => {
    const token = podToken('client-1');
    const res = await createCertificate(await csr(CLIENT_ID), token);
    const leaf = new X509Certificate(res.cert_chain[0]!);
    expect(leaf.subjectAltName).toBe(`URI:${CLIENT_ID}`);
    expect(res.cert_chain.at(-1)).toBe(cp.trustBundle()[0]);
    const review = cluster.api.tokenReviews.find((r) => r.token === token);
    expect(review?.audiences).toEqual(['weft-ca']);
  });

  it('certifies the proven identity when the CSR names none', async () => {
    const res = await createCertificate(await csr(), podToken('client-1'));
    expect(new X509Certificate(res.cert_chain[0]!).subjectAltName).toBe(`URI:${CLIENT_ID}`);
  });

  it('refuses a token minted for another audience (the API server default), naming the audiences', async () => {
    const err = await refused(createCertificate(await csr(CLIENT_ID), podToken('client-1', { audiences: ['https://kubernetes.default.svc.cluster.local'] })));
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toMatch(/token audiences .* is invalid for the target audiences \["weft-ca"\]/);
  });

  it('refuses a CSR for another ServiceAccount than the token proves', async () => {
    const err = await refused(createCertificate(await csr('spiffe://cluster.local/ns/bookinfo/sa/admin'), podToken('client-1')));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toContain(`the caller's credential proves ${CLIENT_ID}`);
  });

  it('refuses the token of a pod that no longer exists, and a token the API server never issued', async () => {
    const token = podToken('client-2');
    cluster.api.remove('v1', 'Pod', 'bookinfo', 'client-2');
    const gone = await refused(createCertificate(await csr(CLIENT_ID), token));
    expect(gone.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(gone.details).toMatch(/pod "client-2" not found/);
    const forged = await refused(createCertificate(await csr(CLIENT_ID), 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.forged'));
    expect(forged.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(forged.details).not.toContain('forged');
  });

  it("a real proxy with the pod's projected token gets its certificate and a complete config", async () => {
    const tokenFile = path.join(cluster.dir, 'weft-token');
    writeFileSync(tokenFile, podToken('client-1'), { mode: 0o600 });
    proxy = await startProxy(
      proxyConfig({
        xds: `127.0.0.1:${cp.xdsAddress.port}`,
        workload: 'client-1.bookinfo',
        tokenFile,
        bindAddress: '127.0.0.1',
        outboundPort: 0,
        inboundPort: 0,
        adminPort: 0,
        statsPort: 0,
      }),
    );
    await eventually(() => expect(proxy!.ready()).toBe(true), { timeoutMs: 15_000 });
    const dump = (await (await fetch(`http://127.0.0.1:${proxy.ports.admin}/config_dump`)).json()) as {
      identity?: { identity: string };
      clusters: { name: string }[];
    };
    expect(dump.identity?.identity).toBe(CLIENT_ID);
    expect(dump.clusters.map((c) => c.name)).toContain('outbound|9080||reviews.bookinfo.svc.cluster.local');
  });
});
