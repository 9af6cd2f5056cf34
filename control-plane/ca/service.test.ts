// The CA service end to end: a real grpc-js server on 127.0.0.1 and a real client. Certificates
// go to the identity the token proves, or a node proxy's to the ambient pods on its node;
// everything else is refused with the right status.
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { toStruct } from '../../api/codec.js';
import { caService, type IstioCertificateRequest, type IstioCertificateResponse } from '../../api/services.js';
import { BACKDATE_SECONDS, type CertificateAuthority } from '../../certs/ca.js';
import { buildCsr } from '../../certs/csr.js';
import { generateWorkloadKeyPair } from '../../certs/keys.js';
import { certTime } from '../../certs/pem.js';
import { tempDir, testCa, testIdentity } from '../../certs/testing.js';
import type { Fields, Logger } from '../../core/log.js';
import { modelFromYaml } from '../model/testing.js';
import { LocalTokenAuthenticator } from './authenticator.js';
import { createCaService, modelWorkloadsWithIdentity, type CaServiceHandlers } from './service.js';
import { TokenStore } from './tokens.js';

/** WorkloadEntries of the test mesh: workload -> ServiceAccount. */
const WORKLOADS: Record<string, string> = { 'reviews-v1.default': 'reviews', 'ratings-v1.default': 'ratings' };
const REVIEWS = testIdentity('default', 'reviews');
const RATINGS = testIdentity('default', 'ratings');

/** Where workloads run, for node authorization: `shop` is an ambient namespace. */
const MESH = modelFromYaml(`
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { weft.dev/dataplane-mode: ambient } }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: cart-1, namespace: shop }
spec: { address: 10.1.0.5, nodeName: node-a, serviceAccount: cart }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: pay-1, namespace: shop }
spec: { address: 10.1.0.6, nodeName: node-b, serviceAccount: pay }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: with-sidecar, namespace: shop }
spec: { address: 10.1.0.7, nodeName: node-a, serviceAccount: sc }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: legacy-1, namespace: legacy }
spec: { address: 10.2.0.1, nodeName: node-a, serviceAccount: legacy }
`);
const CART = testIdentity('shop', 'cart');
const PAY = testIdentity('shop', 'pay');

interface Line {
  level: string;
  msg: string;
  fields: Fields | undefined;
}
function recordingLogger(lines: Line[]): Logger {
  const at = (level: string) => (msg: string, fields?: Fields) => void lines.push({ level, msg, fields });
  const log: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

let ca: CertificateAuthority;
let server: grpc.Server;
let client: grpc.Client;
let handlers: CaServiceHandlers;
let tokens: { reviews: string; ratings: string; nodeA: string };
const lines: Line[] = [];
let cleanup: () => Promise<void>;

beforeAll(async () => {
  const dir = await tempDir();
  cleanup = dir.cleanup;
  ca = await testCa({ maxTtlSeconds: 48 * 3600 });
  const store = new TokenStore(dir.dir);
  tokens = { reviews: store.ensure('default', 'reviews-v1'), ratings: store.ensure('default', 'ratings-v1'), nodeA: store.ensureNode('node-a') };
  handlers = createCaService({
    ca,
    authenticator: new LocalTokenAuthenticator(store, (ns, name) => WORKLOADS[`${name}.${ns}`]),
    trustDomain: 'cluster.local',
    log: recordingLogger(lines),
    maxTtlSeconds: 7200,
    workloadsWithIdentity: modelWorkloadsWithIdentity(() => MESH, (key) => key === 'with-sidecar.shop'),
  });
  server = new grpc.Server();
  server.addService(caService, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client.close();
  await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  await cleanup();
});

beforeEach(() => {
  lines.length = 0;
});

function createCertificate(req: IstioCertificateRequest, token?: string): Promise<IstioCertificateResponse> {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  const m = caService.CreateCertificate;
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(m.path, m.requestSerialize, m.responseDeserialize, req, md, (err, res) =>
      err || !res ? reject(err) : resolve(res),
    ),
  );
}

/** notAfter - issue time, from the certificate itself (notBefore is back-dated by a fixed amount). */
function lifetimeSeconds(res: IstioCertificateResponse): number {
  const leaf = new X509Certificate(res.cert_chain[0] as string);
  return (certTime(leaf.validTo) - certTime(leaf.validFrom)) / 1000 - BACKDATE_SECONDS;
}

async function csrFor(identity?: string) {
  const keys = await generateWorkloadKeyPair();
  return { keys, csr: buildCsr({ privateKey: keys.privateKey, ...(identity ? { identity } : {}) }) };
}

async function refusal(p: Promise<unknown>): Promise<grpc.ServiceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call should have been refused').toBeDefined();
  return err as grpc.ServiceError;
}

describe('CreateCertificate', () => {
  it('issues a chain that verifies, for the proven identity, with the requested TTL', async () => {
    const { keys, csr } = await csrFor(REVIEWS);
    const before = handlers.issuedCount();
    const res = await createCertificate({ csr, validity_duration: 3600 }, tokens.reviews);
    expect(res.cert_chain).toHaveLength(2);
    expect(res.cert_chain[1]).toBe(ca.roots()[0]);
    expect(ca.bundle().verifyChain(res.cert_chain).identity).toBe(REVIEWS);
    const leaf = new X509Certificate(res.cert_chain[0] as string);
    expect(leaf.publicKey.equals(keys.publicKey)).toBe(true);
    expect(lifetimeSeconds(res)).toBe(3600);
    expect(handlers.issuedCount()).toBe(before + 1);
  });

  it("clamps a long or missing TTL to the service's maximum", async () => {
    const { csr } = await csrFor(REVIEWS);
    expect(lifetimeSeconds(await createCertificate({ csr, validity_duration: 30 * 86400 }, tokens.reviews))).toBe(7200);
    // No TTL asked: the CA's default (24 h), clamped to the service's maximum as well.
    expect(lifetimeSeconds(await createCertificate({ csr }, tokens.reviews))).toBe(7200);
  });

  it('issues the proven identity for a CSR that names none', async () => {
    const { csr } = await csrFor();
    const res = await createCertificate({ csr }, tokens.ratings);
    expect(ca.bundle().verifyChain(res.cert_chain).identity).toBe(RATINGS);
  });

  it('refuses a call without a token, or with a wrong one: UNAUTHENTICATED', async () => {
    const { csr } = await csrFor(REVIEWS);
    const before = handlers.issuedCount();
    const missing = await refusal(createCertificate({ csr }));
    expect(missing.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(missing.details).toBe('missing "authorization: Bearer <token>" metadata');
    const wrong = await refusal(createCertificate({ csr }, 'not-a-token'));
    expect(wrong.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(wrong.details).toMatch(/^authentication failed: the bearer token is not one this control plane issued/);
    expect(handlers.issuedCount()).toBe(before);
  });

  it("refuses a CSR for another identity: PERMISSION_DENIED, warning names both, never the token", async () => {
    const { csr } = await csrFor(RATINGS);
    const err = await refusal(createCertificate({ csr }, tokens.reviews));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(`the CSR asks for ${RATINGS} but the caller's credential proves ${REVIEWS}`);
    const warning = lines.find((l) => l.level === 'warn');
    expect(warning?.fields).toMatchObject({ proven: REVIEWS, requested: RATINGS, workload: 'reviews-v1.default' });
    expect(JSON.stringify(lines)).not.toContain(tokens.reviews);
  });

  it("a workload's token cannot get another workload's identity by any CSR", async () => {
    for (const identity of [RATINGS, REVIEWS, undefined]) {
      const { csr } = await csrFor(identity);
      const res = await createCertificate({ csr }, tokens.reviews).catch(() => undefined);
      if (res) expect(ca.bundle().verifyChain(res.cert_chain).identity).toBe(REVIEWS);
      else expect(identity).toBe(RATINGS);
    }
  });

  it('refuses a malformed CSR with INVALID_ARGUMENT naming the problem', async () => {
    const err = await refusal(createCertificate({ csr: 'garbage' }, tokens.reviews));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toBe('invalid CSR: not a PEM "CERTIFICATE REQUEST" block');
  });

  it("refuses a workload's token asking for another identity (ImpersonatedIdentity is for node proxies)", async () => {
    const { csr } = await csrFor(RATINGS);
    const err = await refusal(createCertificate({ csr, metadata: toStruct({ ImpersonatedIdentity: RATINGS }) }, tokens.reviews));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(`only a node proxy may ask for another identity (ImpersonatedIdentity ${RATINGS}); the caller is workload reviews-v1.default`);
  });
});

describe('CreateCertificate for a node proxy (node authorization)', () => {
  const asNode = async (identity: string | undefined, impersonate: unknown = identity, token = tokens.nodeA) => {
    const { csr } = await csrFor(identity);
    return createCertificate({ csr, metadata: toStruct({ ImpersonatedIdentity: impersonate }) }, token);
  };

  it('issues the identity of an ambient pod on its own node, whether or not the CSR names it', async () => {
    const before = handlers.issuedCount();
    expect(ca.bundle().verifyChain((await asNode(CART)).cert_chain).identity).toBe(CART);
    expect(ca.bundle().verifyChain((await asNode(undefined, CART)).cert_chain).identity).toBe(CART);
    expect(handlers.issuedCount()).toBe(before + 2);
  });

  const refusals: [string, string, string][] = [
    [
      'a pod on another node',
      PAY,
      `node node-a may not have ${PAY}: no ambient workload with that identity runs on node-a; it runs on node-b (shop/pay-1 on node-b)`,
    ],
    [
      'a pod on its node that is not ambient',
      testIdentity('legacy', 'legacy'),
      `node node-a may not have ${testIdentity('legacy', 'legacy')}: no ambient workload with that identity runs on node-a: legacy/legacy-1 is not in ambient mode`,
    ],
    [
      'a pod on its node that runs a sidecar',
      testIdentity('shop', 'sc'),
      `node node-a may not have ${testIdentity('shop', 'sc')}: no ambient workload with that identity runs on node-a: shop/with-sidecar is not in ambient mode`,
    ],
    ['an identity nobody has', testIdentity('shop', 'nobody'), `node node-a may not have ${testIdentity('shop', 'nobody')}: no workload has that identity`],
    [
      'another trust domain',
      'spiffe://other.example/ns/shop/sa/cart',
      `node node-a may not have spiffe://other.example/ns/shop/sa/cart: it is not in this mesh's trust domain "cluster.local"`,
    ],
  ];
  it.each(refusals)('refuses %s: PERMISSION_DENIED naming the node, the identity and why', async (_name, identity, details) => {
    const before = handlers.issuedCount();
    const err = await refusal(asNode(identity));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(details);
    expect(handlers.issuedCount()).toBe(before);
    expect(lines.find((l) => l.level === 'warn')?.fields).toMatchObject({ node: 'node-a', identity });
    expect(JSON.stringify(lines)).not.toContain(tokens.nodeA);
  });

  it('refuses a CSR for another identity than the one impersonated', async () => {
    const err = await refusal(asNode(PAY, CART));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe(`the CSR asks for ${PAY} but the request's ImpersonatedIdentity is ${CART}`);
  });

  it('refuses a malformed ImpersonatedIdentity with INVALID_ARGUMENT', async () => {
    const err = await refusal(asNode(undefined, 'spiffe://cluster.local/cart'));
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^ImpersonatedIdentity: "spiffe:\/\/cluster.local\/cart" does not have the path/);
    expect((await refusal(asNode(undefined, 7))).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("a node token alone proves no identity: without ImpersonatedIdentity it gets nothing", async () => {
    const { csr } = await csrFor();
    const err = await refusal(createCertificate({ csr }, tokens.nodeA));
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(err.details).toBe("a node proxy's token (node node-a) proves no identity of its own: ask for a pod's with ImpersonatedIdentity");
  });
});
