// The CA of a control plane in a cluster: a plugged-in CA (Istio's cacerts layout, mounted from
// a Secret) when given, else Weft's own root kept in the Secret `weft-ca-secret` in the control
// plane's namespace, so that every replica signs under the same root. The first replica creates
// it; a replica that loses the race (409) adopts the winner's. Every replica follows later changes
// of the Secret (a root rotation: `weft ca rotate-root --kubernetes`, which changes it through
// changeCaSecret).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { CertificateAuthority } from '../../../certs/ca.js';
import { CA_FILES, readSelfSigned, writeSelfSigned, type StoredCa } from '../../../certs/ca-store.js';
import { splitPemCertificates } from '../../../certs/pem.js';
import { ErrorCode, WeftError, errorMessage } from '../../../core/errors.js';
import type { Logger } from '../../../core/log.js';
import { isConflict, isNotFound } from './client.js';
import { Reflector, type RawObject } from './reflector.js';

export const CA_SECRET = 'weft-ca-secret';

export interface ClusterCaOptions {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly trustDomain: string;
  /** Local scratch space for the CA files (an emptyDir in the pod). */
  readonly stateDir: string;
  /** A plugged-in CA directory (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem); wins. */
  readonly pluggedDir?: string;
  readonly maxTtlSeconds?: number;
  readonly log: Logger;
}

function decode(secret: V1Secret, key: string): string | undefined {
  const v = secret.data?.[key];
  return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
}

function storedFromSecret(secret: V1Secret, namespace: string): StoredCa {
  const certPem = decode(secret, CA_FILES.cert);
  const keyPem = decode(secret, CA_FILES.key);
  if (!certPem || !keyPem) {
    throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `Secret ${namespace}/${CA_SECRET} lacks ${CA_FILES.cert} or ${CA_FILES.key}`, {
      hint: `delete the Secret to let the control plane create a new CA (every workload certificate then changes), or restore it`,
    });
  }
  const roots = splitPemCertificates(decode(secret, CA_FILES.roots) ?? '');
  const cert = splitPemCertificates(certPem)[0] ?? certPem;
  return { signer: { certPem: cert, keyPem, chainPem: [cert] }, roots: roots.length > 0 ? roots : [cert] };
}

export async function loadClusterCa(opts: ClusterCaOptions): Promise<CertificateAuthority> {
  const common = { trustDomain: opts.trustDomain, log: opts.log, ...(opts.maxTtlSeconds ? { maxTtlSeconds: opts.maxTtlSeconds } : {}) };
  if (opts.pluggedDir) return CertificateAuthority.loadOrCreate({ ...common, pluggedDir: opts.pluggedDir });
  const api = opts.kc.makeApiClient(CoreV1Api);
  const adopt = async (secret: V1Secret) => {
    await writeSelfSigned(opts.stateDir, storedFromSecret(secret, opts.namespace));
    return CertificateAuthority.loadOrCreate({ ...common, stateDir: opts.stateDir, create: false });
  };
  try {
    const secret = await api.readNamespacedSecret({ name: CA_SECRET, namespace: opts.namespace });
    opts.log.info('using the CA from its Secret', { secret: `${opts.namespace}/${CA_SECRET}` });
    return await adopt(secret);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const ca = await CertificateAuthority.loadOrCreate({ ...common, stateDir: opts.stateDir });
  const stored = await readSelfSigned(opts.stateDir);
  if (!stored) throw new WeftError(ErrorCode.INTERNAL, 'the CA was created but could not be read back');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const body: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: { name: CA_SECRET, namespace: opts.namespace, labels: { 'app.kubernetes.io/managed-by': 'weft' } },
    data: { [CA_FILES.cert]: b64(stored.signer.certPem), [CA_FILES.key]: b64(stored.signer.keyPem), [CA_FILES.roots]: b64(stored.roots.join('')) },
  };
  try {
    await api.createNamespacedSecret({ namespace: opts.namespace, body });
    opts.log.info('created the mesh CA and stored it in a Secret', { secret: `${opts.namespace}/${CA_SECRET}` });
    return ca;
  } catch (err) {
    if (!isConflict(err)) throw err;
    opts.log.info('another replica created the CA first; using theirs', { secret: `${opts.namespace}/${CA_SECRET}` });
    return adopt(await api.readNamespacedSecret({ name: CA_SECRET, namespace: opts.namespace }));
  }
}

/** What a Secret holds and the files hold are the same CA (same signer, same roots in order). */
function sameCa(a: StoredCa, b: StoredCa | undefined): boolean {
  return !!b && a.signer.certPem.trim() === b.signer.certPem.trim() && a.signer.keyPem.trim() === b.signer.keyPem.trim() && a.roots.map((r) => r.trim()).join('\n') === b.roots.map((r) => r.trim()).join('\n');
}

export interface CaSecretFollower {
  stop(): Promise<void>;
}

/**
 * Follows the CA Secret after start-up: when `weft ca rotate-root --kubernetes` (or an operator)
 * changes it, its content is written to `stateDir`'s CA files, where the CA watcher
 * (control-plane/ca/rotation.ts) reloads them as it does in local mode — new roots pushed to
 * every proxy, the new signer used once they all trust it. Watches that one Secret by name
 * (RBAC: get, list and watch with resourceNames).
 */
export async function followCaSecret(opts: { kc: KubeConfig; namespace: string; stateDir: string; log: Logger }): Promise<CaSecretFollower> {
  const api = opts.kc.makeApiClient(CoreV1Api);
  const fieldSelector = `metadata.name=${CA_SECRET}`;
  let syncing = Promise.resolve();
  const reflector = new Reflector({
    kc: opts.kc,
    apiVersion: 'v1',
    kind: 'Secret',
    path: `/api/v1/namespaces/${opts.namespace}/secrets`,
    fieldSelector,
    list: async () => {
      const list = await api.listNamespacedSecret({ namespace: opts.namespace, fieldSelector });
      return { items: list.items as RawObject[], resourceVersion: list.metadata?.resourceVersion ?? '' };
    },
    onChange: () => {
      syncing = syncing.then(sync, sync);
    },
    log: opts.log,
  });
  const sync = async () => {
    const secret = reflector.get(opts.namespace, CA_SECRET);
    if (!secret) return; // deleted: keep signing with what we have; a restart would create a new CA
    try {
      const stored = storedFromSecret(secret as V1Secret, opts.namespace);
      if (sameCa(stored, await readSelfSigned(opts.stateDir))) return;
      await writeSelfSigned(opts.stateDir, stored);
      opts.log.info('the CA Secret changed; reloading the CA from it', { secret: `${opts.namespace}/${CA_SECRET}`, roots: stored.roots.length });
    } catch (err) {
      opts.log.error('cannot use the changed CA Secret; keeping the CA as it was', { secret: `${opts.namespace}/${CA_SECRET}`, error: errorMessage(err) });
    }
  };
  await reflector.start();
  return { stop: () => reflector.stop() };
}

/**
 * Runs `change` (one of cli/ca.ts's commands) on the CA kept in the Secret: the Secret is written
 * to a private temporary state dir, changed there with the same code as local mode, and written
 * back with its resourceVersion, so a concurrent change fails (409) instead of being lost.
 */
export async function changeCaSecret(kc: KubeConfig, namespace: string, change: (stateDir: string) => Promise<string>): Promise<string> {
  const api = kc.makeApiClient(CoreV1Api);
  let secret: V1Secret;
  try {
    secret = await api.readNamespacedSecret({ name: CA_SECRET, namespace });
  } catch (err) {
    if (isNotFound(err)) throw new WeftError(ErrorCode.CONFIG_UNREADABLE, `no CA Secret ${namespace}/${CA_SECRET}`, { hint: 'start the control plane once with --kubernetes: it creates the CA there' });
    throw err;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'weft-ca-'));
  try {
    await writeSelfSigned(dir, storedFromSecret(secret, namespace));
    const said = await change(dir);
    const after = await readSelfSigned(dir);
    if (!after) throw new WeftError(ErrorCode.INTERNAL, 'the CA files went missing while changing them');
    if (sameCa(after, storedFromSecret(secret, namespace))) return said;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const body: V1Secret = {
      ...secret,
      data: { ...secret.data, [CA_FILES.cert]: b64(after.signer.certPem), [CA_FILES.key]: b64(after.signer.keyPem), [CA_FILES.roots]: b64(after.roots.join('')) },
    };
    try {
      await api.replaceNamespacedSecret({ name: CA_SECRET, namespace, body });
    } catch (err) {
      if (isConflict(err)) throw new WeftError(ErrorCode.CONFIG_INVALID, `Secret ${namespace}/${CA_SECRET} changed while this command ran; nothing was written`, { hint: 'run the command again' });
      throw err;
    }
    return `${said}\n(written to Secret ${namespace}/${CA_SECRET}; every control-plane replica follows it)`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
