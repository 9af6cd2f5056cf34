// The CA of a control plane in a cluster: a plugged-in CA (Istio's cacerts layout, mounted from
// a Secret) when given, else Weft's own root kept in the Secret `weft-ca-secret` in the control
// plane's namespace, so that every replica signs under the same root. The first replica creates
// it; a replica that loses the race (409) adopts the winner's.
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { CertificateAuthority } from '../../../certs/ca.js';
import { CA_FILES, readSelfSigned, writeSelfSigned, type StoredCa } from '../../../certs/ca-store.js';
import { splitPemCertificates } from '../../../certs/pem.js';
import { ErrorCode, WeftError } from '../../../core/errors.js';
import type { Logger } from '../../../core/log.js';
import { isConflict, isNotFound } from './client.js';

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
