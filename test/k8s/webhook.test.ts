// The sidecar-injection webhook over real HTTPS (certificate from Weft's CA, verified for the
// control plane's Service DNS name as the API server does): AdmissionReview in, AdmissionReview
// out, for real-shaped pods — a Deployment's pod, an injected one, an opted-out one, bad
// annotations — and the patched pods are valid Pods by the Kubernetes OpenAPI schema.
import https from 'node:https';
import { Pod } from 'kubernetes-models/v1/Pod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../certs/ca.js';
import { createLogger } from '../../core/log.js';
import { injectPod } from '../../control-plane/injector/inject.js';
import { applyPatch, type Json, type PatchOperation } from '../../control-plane/injector/patch.js';
import { injectorSettings } from '../../control-plane/injector/settings.js';
import { startWebhookServer, type WebhookServer } from '../../control-plane/injector/webhook.js';
import { admissionReview, deploymentPod } from './fixtures.js';

type JsonObject = { [key: string]: Json };

const SERVICE_NAME = 'weft-control-plane.weft-system.svc';
const log = createLogger('test');
log.debug = () => {};
log.info = () => {};

let ca: CertificateAuthority;
let server: WebhookServer;
const namespaces: Record<string, Record<string, string>> = {
  bookinfo: { 'weft.dev/inject': 'enabled' },
  plain: {},
};
const settings = injectorSettings({ nativeSidecars: true });

beforeAll(async () => {
  ca = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local' });
  const cert = await ca.servingCertificate(['weft-control-plane', 'weft-control-plane.weft-system', SERVICE_NAME]);
  server = await startWebhookServer('127.0.0.1', 0, cert, { settings: () => settings, namespaceLabels: (ns) => namespaces[ns], log });
});

afterAll(async () => {
  await server?.close();
});

/** POSTs a review the way the API server does: TLS to the Service name, verified with caBundle. */
function post(body: unknown, servername = SERVICE_NAME): Promise<{ status: number; review: JsonObject }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port: server.address.port,
        path: '/inject?timeout=10s',
        method: 'POST',
        servername,
        ca: ca.trustBundle().join(''),
        headers: { 'content-type': 'application/json', accept: 'application/json' },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, review: JSON.parse(text) as JsonObject }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function responseOf(review: JsonObject): JsonObject {
  return review.response as JsonObject;
}

function patchOf(review: JsonObject): PatchOperation[] {
  const r = responseOf(review);
  expect(r.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(String(r.patch), 'base64').toString('utf8')) as PatchOperation[];
}

describe('injection webhook (HTTPS, admission.k8s.io/v1)', () => {
  it("injects a Deployment's pod in a labelled namespace with a minimal JSON patch", async () => {
    const pod = deploymentPod();
    const review = admissionReview(pod);
    const { status, review: out } = await post(review);
    expect(status).toBe(200);
    expect(out.apiVersion).toBe('admission.k8s.io/v1');
    expect(out.kind).toBe('AdmissionReview');
    expect(responseOf(out).uid).toBe((review.request as JsonObject).uid);
    expect(responseOf(out).allowed).toBe(true);
    const ops = patchOf(out);
    // Only additions, at the places a sidecar needs: nothing of the user's pod is rewritten.
    expect(ops.every((op) => op.op === 'add')).toBe(true);
    expect(ops.map((op) => op.path).sort()).toEqual(
      [
        '/metadata/annotations',
        '/metadata/labels/weft.dev~1rev',
        '/spec/initContainers',
        '/spec/volumes/1',
        '/spec/volumes/2',
        '/spec/volumes/3',
        '/spec/volumes/4',
      ].sort(),
    );
    const patched = applyPatch(pod, ops) as JsonObject;
    // The webhook and `weft inject` are one code path.
    const direct = injectPod(pod, { settings, namespace: 'bookinfo', namespaceLabels: namespaces.bookinfo });
    expect(direct.kind).toBe('injected');
    expect(patched).toEqual((direct as { pod: JsonObject }).pod);
    // A valid Pod by the Kubernetes OpenAPI schema.
    expect(() => new Pod(patched as never).validate()).not.toThrow();
    const spec = patched.spec as { initContainers: JsonObject[]; containers: JsonObject[] };
    expect(spec.initContainers.map((c) => c.name)).toEqual(['weft-init', 'weft-proxy']);
    expect(spec.initContainers[1]!.restartPolicy).toBe('Always');
    expect(spec.containers.map((c) => c.name)).toEqual(['reviews']);
  });

  it('changes nothing in an already-injected pod', async () => {
    const injected = injectPod(deploymentPod(), { settings, namespace: 'bookinfo', namespaceLabels: namespaces.bookinfo });
    const { review: out } = await post(admissionReview((injected as { pod: JsonObject }).pod));
    expect(responseOf(out).allowed).toBe(true);
    expect(responseOf(out).patch).toBeUndefined();
  });

  it('leaves an opted-out pod alone', async () => {
    const { review: out } = await post(admissionReview(deploymentPod({ annotations: { 'weft.dev/inject': 'false' } })));
    expect(responseOf(out)).toMatchObject({ allowed: true });
    expect(responseOf(out).patch).toBeUndefined();
  });

  it('leaves pods of a namespace that did not opt in, and of kube-system, alone', async () => {
    for (const namespace of ['plain', 'kube-system']) {
      const { review: out } = await post(admissionReview(deploymentPod({ namespace })));
      expect(responseOf(out).allowed).toBe(true);
      expect(responseOf(out).patch).toBeUndefined();
    }
  });

  it('injects a pod that opts in by label in a namespace that did not', async () => {
    const { review: out } = await post(admissionReview(deploymentPod({ namespace: 'plain', labels: { 'weft.dev/inject': 'true' } })));
    expect(patchOf(out).length).toBeGreaterThan(0);
  });

  it('rejects a pod with invalid annotations, naming the annotation and value', async () => {
    const { review: out } = await post(
      admissionReview(deploymentPod({ annotations: { 'weft.dev/exclude-outbound-cidrs': '10.0.0.0/8,not-a-cidr', 'weft.dev/log-level': 'loud' } })),
    );
    const r = responseOf(out);
    expect(r.allowed).toBe(false);
    expect(r.patch).toBeUndefined();
    const status = r.status as { code: number; message: string };
    expect(status.code).toBe(400);
    expect(status.message).toContain('weft.dev/exclude-outbound-cidrs="10.0.0.0/8,not-a-cidr"');
    expect(status.message).toContain('"not-a-cidr" is not a CIDR');
    expect(status.message).toContain('weft.dev/log-level="loud"');
  });

  it('lets other operations and kinds through untouched', async () => {
    for (const over of [{ operation: 'UPDATE' }, { kind: 'Service' }]) {
      const { review: out } = await post(admissionReview(deploymentPod(), over));
      expect(responseOf(out)).toMatchObject({ allowed: true });
      expect(responseOf(out).patch).toBeUndefined();
    }
  });

  it('answers a malformed review with allowed: false and a reason', async () => {
    const { review: out } = await post({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1beta1', request: {} });
    expect(responseOf(out).allowed).toBe(false);
    expect((responseOf(out).status as { message: string }).message).toMatch(/admission\.k8s\.io\/v1/);
  });

  it("serves a certificate the API server accepts for the Service's name, and only for it", async () => {
    await expect(post(admissionReview(deploymentPod()), 'some-other.name.svc')).rejects.toThrow(/altnames|Hostname/i);
  });
});
