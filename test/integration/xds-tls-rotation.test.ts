// The control plane's TLS port (15012) across a root rotation: its certificate is re-issued
// under the new root once the old one is removed (same port, no rebind), and a proxy whose
// --xds-root-cert file still holds only the old root reconnects after a control-plane restart,
// because it also trusts the roots the mesh sent it (SDS ROOTCA) over the verified channel.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caRemoveRoot, caRotateRoot } from '../../cli/ca.js';
import { controlPlaneConfig } from '../../control-plane/config.js';
import { startControlPlane, type ControlPlane } from '../../control-plane/main.js';
import { eventually } from '../support/eventually.js';
import { serverClientYaml, startBackend, startTestSidecar, waitReady, type TestBackend, type TestSidecar } from '../support/mesh.js';
import { freePort } from '../support/ports.js';

/** The certificate 15012 shows a client that trusts only `roots` (undefined: not verified). */
function servingCert(port: number, roots: string[]): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'weft-control-plane', ca: roots, ALPNProtocols: ['h2'] }, () => {
      const raw = socket.getPeerX509Certificate();
      socket.destroy();
      if (raw) resolve(raw);
      else reject(new Error('no certificate'));
    });
    socket.once('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('timed out')));
  });
}

async function syncedProxies(cp: ControlPlane): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${cp.monitorAddress.port}/debug/syncz`);
  return ((await res.json()) as { id: string }[]).map((p) => p.id);
}

describe('xDS over TLS across a root rotation', () => {
  let dir: string;
  let stateDir: string;
  let cfg: ReturnType<typeof controlPlaneConfig>;
  let cp: ControlPlane;
  let backend: TestBackend;
  let sidecar: TestSidecar;
  let tlsPort: number;
  let oldRoots: string[];

  beforeAll(async () => {
    backend = await startBackend('server');
    dir = mkdtempSync(path.join(os.tmpdir(), 'weft-xds-tls-'));
    const configDir = path.join(dir, 'config');
    stateDir = path.join(dir, 'state');
    mkdirSync(configDir);
    writeFileSync(path.join(configDir, 'mesh.yaml'), serverClientYaml(backend.port, { client: false }));
    tlsPort = await freePort();
    cfg = controlPlaneConfig({ configDir, stateDir, xdsPort: await freePort(), xdsTlsPort: tlsPort, monitorPort: 0, debounceMs: 50 });
    cp = await startControlPlane(cfg);
    // What a pod mounts from the weft-ca-root-cert ConfigMap, frozen at the first root.
    oldRoots = cp.trustBundle();
    const rootFile = path.join(dir, 'root-cert.pem');
    writeFileSync(rootFile, oldRoots.join(''));
    sidecar = await startTestSidecar(`127.0.0.1:${tlsPort}`, 'server.default', path.join(stateDir, 'tokens', 'default', 'server.token'), { xdsRootCert: rootFile });
    await waitReady(sidecar);
  });

  afterAll(async () => {
    await sidecar?.stop();
    await cp?.stop();
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-issues the serving certificate under the new root, and the proxy reconnects with a stale root file', async () => {
    const before = await servingCert(tlsPort, oldRoots);
    const oldRoot = new X509Certificate(oldRoots[0]!);
    expect(before.checkIssued(oldRoot)).toBe(true);

    await caRotateRoot({ stateDir });
    await eventually(() => expect(cp.trustBundle()).toHaveLength(2), { timeoutMs: 15_000 });
    await caRemoveRoot({ stateDir, fingerprint: oldRoot.fingerprint256 });
    await eventually(() => expect(cp.trustBundle()).toHaveLength(1), { timeoutMs: 15_000 });
    const newRoots = cp.trustBundle();
    expect(newRoots[0]).not.toBe(oldRoots[0]);

    // Same port, new certificate: a client that trusts only the new root gets in.
    const after = await eventually(() => servingCert(tlsPort, newRoots), { timeoutMs: 15_000, intervalMs: 200 });
    expect(after.checkIssued(new X509Certificate(newRoots[0]!))).toBe(true);
    await expect(servingCert(tlsPort, oldRoots)).rejects.toThrow(/certificate/i);

    // The connection the proxy had survives the switch; a restart makes it connect anew, with a
    // root file that knows only the old root.
    await cp.stop();
    cp = await startControlPlane(cfg);
    await eventually(async () => expect(await syncedProxies(cp)).toContain('server.default'), { timeoutMs: 20_000, intervalMs: 200 });
    const res = await fetch(`${sidecar.admin}/ready`);
    expect(res.status).toBe(200);
  });
});
