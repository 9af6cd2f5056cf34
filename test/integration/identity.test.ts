// Identity and mTLS end to end through the real control plane and sidecars: STRICT refuses
// plaintext, PERMISSIVE takes both, bad client certificates are refused with the reason logged,
// certificates rotate every few seconds under load without a failure, and the root is rotated
// (new root added, workloads re-issued, old root removed) with traffic flowing.
import type { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../certs/ca.js';
import { workloadCert, type TestWorkloadCert } from '../../certs/testing.js';
import { caRemoveRoot, caRotateRoot } from '../../cli/ca.js';
import { configureLogging } from '../../core/log.js';
import { eventually } from '../support/eventually.js';
import { plainGet, serverClientYaml, startBackend, startTestMesh, viaProxy, waitReady, type TestBackend, type TestMesh, type TestSidecar } from '../support/mesh.js';

const silent = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };
const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';

function meshYaml(backendPort: number): Record<string, string> {
  return { 'mesh.yaml': serverClientYaml(backendPort) };
}

const STRICT = `apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: default, namespace: default }
spec: { mtls: { mode: STRICT } }
`;

/** Captured log lines (the sink is process-wide; this file's tests own it). */
const logs: string[] = [];
function captureLogs(): void {
  configureLogging({ level: 'info', write: (line) => void (logs.length < 100_000 && logs.push(line)) });
}
function restoreLogs(): void {
  configureLogging({ level: 'error', write: (line) => process.stderr.write(line + '\n') });
}

/** A plaintext HTTP/1.1 request straight to a sidecar's inbound port (no mTLS). */
const plaintextGet = (port: number) => plainGet(port, '/plain', { host: 'server' });

interface MtlsExchange {
  /** The certificate the sidecar presented. */
  readonly peer: X509Certificate | undefined;
  /** The raw HTTP response, or '' when the sidecar closed the connection without one. */
  readonly response: string;
}

/** One mTLS connection to a sidecar's inbound port as a peer sidecar makes it, with `cert`. */
function mtlsGet(port: number, cert: TestWorkloadCert, targetPort: number): Promise<MtlsExchange> {
  return new Promise((resolve, reject) => {
    let peer: X509Certificate | undefined;
    let response = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      key: cert.keyPem,
      cert: cert.chainPem.slice(0, -1).join('') || cert.chainPem[0],
      servername: `${targetPort}.inbound.weft.internal`,
      ALPNProtocols: ['http/1.1'],
      minVersion: 'TLSv1.3',
      rejectUnauthorized: false, // the test reads what was presented; the sidecar judges us
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      peer = socket.getPeerX509Certificate();
      socket.write(`GET /probe HTTP/1.1\r\nhost: server\r\nconnection: close\r\n\r\n`);
    });
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => (response += c));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A refusal after the TLS 1.3 handshake arrives as a reset: that is an answer, not a failure.
      if (peer && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) resolve({ peer, response });
      else reject(err);
    });
    socket.on('close', () => resolve({ peer, response }));
  });
}

/** Requests at a steady rate through the client sidecar until `done()` (after at least `min`), bounded in count and time. */
async function steadyLoad(client: TestSidecar, opts: { rps: number; min: number; maxMs: number; done: () => boolean }) {
  const failures: string[] = [];
  let sent = 0;
  let ok = 0;
  const inflight = new Set<Promise<void>>();
  const start = Date.now();
  const interval = 1000 / opts.rps;
  const maxCount = opts.min * 10;
  while (Date.now() - start < opts.maxMs && sent < maxCount && !(sent >= opts.min && opts.done())) {
    if (inflight.size < 64) {
      const n = sent++;
      const p = viaProxy(client.outbound, `http://server/load/${n}`).then(
        (r) => {
          if (r.status === 200) ok++;
          else failures.push(`#${n}: ${r.status} ${r.body.slice(0, 200)}`);
        },
        (err: Error) => void failures.push(`#${n}: ${err.message}`),
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    const next = start + sent * interval;
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
  }
  await Promise.all(inflight);
  return { sent, ok, failures, ms: Date.now() - start };
}

async function diskCa(mesh: TestMesh): Promise<CertificateAuthority> {
  return CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: mesh.stateDir, create: false, log: silent });
}

describe('mTLS modes and refused clients', () => {
  let mesh: TestMesh;
  let backend: TestBackend;
  let server: TestSidecar;
  let client: TestSidecar;
  let ca: CertificateAuthority;
  let inboundPort: number;

  beforeAll(async () => {
    captureLogs();
    backend = await startBackend('server');
    mesh = await startTestMesh(meshYaml(backend.port));
    server = await mesh.sidecar('server.default');
    client = await mesh.sidecar('client.default');
    await waitReady(server, client);
    inboundPort = server.proxy.ports.inbound;
    ca = await diskCa(mesh);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://server/ready')).status).toBe(200), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    restoreLogs();
    await mesh?.close();
    await backend?.close();
  });

  it('PERMISSIVE (the default) accepts plaintext and mTLS on the same port', async () => {
    const plain = await plaintextGet(inboundPort);
    expect(plain.status).toBe(200);
    // Plaintext proves no identity: the app gets no XFCC.
    expect(JSON.parse(plain.body).headers['x-forwarded-client-cert']).toBeUndefined();
    const meshed = await viaProxy(client.outbound, 'http://server/meshed');
    expect(meshed.status).toBe(200);
    expect(JSON.parse(meshed.body).headers['x-forwarded-client-cert']).toBe(`By=spiffe://cluster.local/ns/default/sa/server;URI=${CLIENT_ID}`);
  });

  it('a client certificate from an untrusted root, an expired one, or one from another trust domain is refused, with the reason logged', async () => {
    const foreign = await workloadCert(await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', log: silent }), CLIENT_ID);
    const longAgo = Date.now() - 50 * 60_000; // within the root's back-dated validity
    const pastCa = await CertificateAuthority.loadOrCreate({ trustDomain: 'cluster.local', stateDir: mesh.stateDir, create: false, now: () => longAgo, log: silent });
    const expired = await workloadCert(pastCa, CLIENT_ID, 600);
    const otherDomain = await CertificateAuthority.loadOrCreate({ trustDomain: 'other.example', stateDir: mesh.stateDir, create: false, log: silent });
    const wrongId = await workloadCert(otherDomain, 'spiffe://other.example/ns/default/sa/client');
    const good = await workloadCert(ca, CLIENT_ID);

    const cases: Array<[string, TestWorkloadCert, RegExp]> = [
      ['untrusted root', foreign, /reason="client certificate was issued by a CA not in the trust bundle/],
      ['expired', expired, /reason="client certificate expired at /],
      ['wrong SPIFFE ID', wrongId, /reason="client SPIFFE ID spiffe:\/\/other.example\/ns\/default\/sa\/client is outside this mesh's trust domain cluster.local"/],
    ];
    for (const [name, cert, why] of cases) {
      const before = backend.count;
      const r = await mtlsGet(inboundPort, cert, backend.port);
      expect(r.response, name).toBe('');
      expect(backend.count, name).toBe(before);
      await eventually(() => expect(logs.filter((l) => l.includes('refused an mTLS client') && why.test(l)), name).toHaveLength(1));
    }
    // The same path with a good certificate reaches the app.
    const ok = await mtlsGet(inboundPort, good, backend.port);
    expect(ok.response).toMatch(/^HTTP\/1.1 200/);
  });

  it('STRICT refuses plaintext (closed, and logged with the client address and why) while mTLS keeps working', async () => {
    mesh.write('strict.yaml', STRICT);
    await eventually(async () => {
      const dump = (await (await fetch(`${server.admin}/config_dump`)).json()) as { listeners: Array<{ name: string; filterChains: Array<{ transportProtocol?: string }> }> };
      const inbound = dump.listeners.find((l) => l.name === 'inbound');
      expect(inbound?.filterChains.map((c) => c.transportProtocol)).toEqual(['tls']);
    }, { timeoutMs: 10_000 });
    const before = backend.count;
    await expect(plaintextGet(inboundPort)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(backend.count).toBe(before);
    await eventually(() => {
      const refused = logs.filter((l) => l.includes('refused a plaintext connection'));
      expect(refused.some((l) => /client=127\.0\.0\.1:\d+/.test(l) && l.includes('mTLS is STRICT on every port of this workload'))).toBe(true);
    });
    const meshed = await viaProxy(client.outbound, 'http://server/still-meshed');
    expect(meshed.status).toBe(200);

    // Back to PERMISSIVE: plaintext is taken again.
    mesh.write('strict.yaml', STRICT.replace('STRICT', 'PERMISSIVE'));
    await eventually(async () => expect((await plaintextGet(inboundPort)).status).toBe(200), { timeoutMs: 10_000 });
  });
});

describe('certificate and root rotation under load', () => {
  let mesh: TestMesh;
  let backend: TestBackend;
  let server: TestSidecar;
  let client: TestSidecar;

  beforeAll(async () => {
    captureLogs();
    backend = await startBackend('server');
    mesh = await startTestMesh(meshYaml(backend.port));
    // Five-second certificates: each sidecar renews about every 2.5 s.
    server = await mesh.sidecar('server.default', { certTtlSeconds: 5 });
    client = await mesh.sidecar('client.default', { certTtlSeconds: 5 });
    await waitReady(server, client);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://server/ready')).status).toBe(200), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    restoreLogs();
    await mesh?.close();
    await backend?.close();
  });

  /** Polls what each sidecar presents on new connections, while `running()`. */
  function startProbing(probeCert: () => TestWorkloadCert, running: () => boolean) {
    const seen = { server: [] as X509Certificate[], client: [] as X509Certificate[] };
    const errors: string[] = [];
    const done = (async () => {
      while (running()) {
        for (const [name, sc] of [['server', server], ['client', client]] as const) {
          try {
            const r = await mtlsGet(sc.proxy.ports.inbound, probeCert(), backend.port);
            if (r.peer && !seen[name].some((c) => c.serialNumber === r.peer!.serialNumber)) seen[name].push(r.peer);
          } catch (err) {
            errors.push(`${name}: ${(err as Error).message}`);
          }
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    return { seen, errors, done };
  }

  it('rotates both sides at least three times while 1000+ requests flow at a steady rate, with no failure', async () => {
    const ca = await diskCa(mesh);
    const probe = await workloadCert(ca, 'spiffe://cluster.local/ns/default/sa/probe', 3600);
    let running = true;
    const probing = startProbing(() => probe, () => running);
    const load = await steadyLoad(client, {
      rps: 100,
      min: 1000,
      maxMs: 45_000,
      done: () => probing.seen.server.length >= 4 && probing.seen.client.length >= 4,
    });
    running = false;
    await probing.done;

    expect(load.failures).toEqual([]);
    expect(load.sent).toBeGreaterThanOrEqual(1000);
    expect(load.ok).toBe(load.sent);
    // Four different certificates each (the first, then three renewals), all for the right identity.
    for (const [name, certs] of Object.entries(probing.seen)) {
      expect(new Set(certs.map((c) => c.serialNumber)).size, name).toBeGreaterThanOrEqual(4);
      expect(new Set(certs.map((c) => c.subjectAltName)), name).toEqual(new Set([`URI:spiffe://cluster.local/ns/default/sa/${name}`]));
    }
    expect(probing.errors).toEqual([]);
  });

  it('rotates the root with traffic flowing: new root trusted everywhere, workloads re-issued, old root removed, no failure', async () => {
    const oldCa = await diskCa(mesh);
    const oldRoot = oldCa.signingCertificate();
    const oldRootCert = await workloadCert(oldCa, 'spiffe://cluster.local/ns/default/sa/probe', 3600);
    let probeCert = oldRootCert;
    let loadDone = false;
    const loading = steadyLoad(client, { rps: 50, min: 500, maxMs: 60_000, done: () => loadDone });
    let running = true;
    const probing = startProbing(() => probeCert, () => running);

    // 1. A new root: trusted by the control plane at once, and signing once every proxy has it.
    const said = await caRotateRoot({ stateDir: mesh.stateDir });
    expect(said).toContain('weft ca remove-root');
    await eventually(() => expect(mesh.cp.trustBundle()).toHaveLength(2), { timeoutMs: 15_000 });
    const newCa = await diskCa(mesh);
    const newRoot = newCa.signingCertificate();
    expect(newRoot.fingerprint256).not.toBe(oldRoot.fingerprint256);

    // 2. Both sidecars renew onto the new root by themselves.
    const issuedBy = (c: X509Certificate | undefined, root: X509Certificate) => !!c && c.checkIssued(root) && c.verify(root.publicKey);
    await eventually(() => {
      expect(issuedBy(probing.seen.server.at(-1), newRoot)).toBe(true);
      expect(issuedBy(probing.seen.client.at(-1), newRoot)).toBe(true);
    }, { timeoutMs: 30_000, intervalMs: 200 });

    // 3. The old root goes: the bundle shrinks everywhere, and a certificate under it is refused.
    probeCert = await workloadCert(newCa, 'spiffe://cluster.local/ns/default/sa/probe', 3600);
    await caRemoveRoot({ stateDir: mesh.stateDir, fingerprint: oldRoot.fingerprint256 });
    await eventually(() => expect(mesh.cp.trustBundle()).toHaveLength(1), { timeoutMs: 15_000 });
    await eventually(async () => {
      const r = await mtlsGet(server.proxy.ports.inbound, oldRootCert, backend.port);
      expect(r.response).toBe('');
    }, { timeoutMs: 15_000, intervalMs: 200 });
    expect(logs.some((l) => l.includes('refused an mTLS client') && l.includes('not in the trust bundle'))).toBe(true);
    // New connections under the new root still work.
    expect((await mtlsGet(server.proxy.ports.inbound, probeCert, backend.port)).response).toMatch(/^HTTP\/1.1 200/);

    // Keep the traffic going across a few more renewals under the new root alone.
    const renewedAfterRemoval = probing.seen.server.length + 2;
    await eventually(() => expect(probing.seen.server.length).toBeGreaterThanOrEqual(renewedAfterRemoval), { timeoutMs: 20_000, intervalMs: 200 });
    loadDone = true;
    const load = await loading;
    running = false;
    await probing.done;

    expect(load.failures).toEqual([]);
    expect(load.ok).toBe(load.sent);
    expect(load.sent).toBeGreaterThanOrEqual(500);
    expect(probing.seen.server.filter((c) => issuedBy(c, oldRoot)).length).toBeGreaterThan(0);
    expect(probing.seen.server.filter((c) => issuedBy(c, newRoot)).length).toBeGreaterThanOrEqual(3);
  });
});
