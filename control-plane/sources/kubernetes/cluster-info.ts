// Small facts about the cluster the control plane needs: whether it supports native sidecars
// (GET /version ≥ 1.29), and keeping the injection webhook's caBundle equal to Weft's roots.
import { AdmissionregistrationV1Api, VersionApi, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../../core/log.js';
import { apiErrorMessage, isNotFound } from './client.js';

/** Native sidecars (init containers with restartPolicy Always) are on by default from 1.29. */
export function supportsNativeSidecars(major: string, minor: string): boolean {
  const ma = Number.parseInt(major, 10);
  const mi = Number.parseInt(minor, 10); // minor may read "29+" on managed clusters
  return ma > 1 || (ma === 1 && mi >= 29);
}

export async function detectNativeSidecars(kc: KubeConfig, log: Logger): Promise<boolean> {
  try {
    const v = await kc.makeApiClient(VersionApi).getCode();
    const native = supportsNativeSidecars(v.major, v.minor);
    log.info('Kubernetes version', { version: v.gitVersion, nativeSidecars: native });
    return native;
  } catch (err) {
    log.warn('could not read the Kubernetes version; injecting regular sidecar containers', { error: apiErrorMessage(err) });
    return false;
  }
}

/**
 * Sets `caBundle` of every webhook in the MutatingWebhookConfiguration `name` to `roots`, if it
 * differs. Returns whether anything was written. A missing configuration is not an error (the
 * chart may not install one, e.g. with a revision that only serves xDS).
 */
export async function syncWebhookCaBundle(kc: KubeConfig, name: string, roots: readonly string[], log: Logger): Promise<boolean> {
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  const bundle = Buffer.from(roots.join('')).toString('base64');
  let config;
  try {
    config = await api.readMutatingWebhookConfiguration({ name });
  } catch (err) {
    if (isNotFound(err)) {
      log.debug('no MutatingWebhookConfiguration to keep the caBundle of', { name });
      return false;
    }
    throw err;
  }
  const ops = (config.webhooks ?? []).flatMap((w, i) =>
    w.clientConfig?.caBundle === bundle ? [] : [{ op: w.clientConfig?.caBundle === undefined ? 'add' : 'replace', path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle }],
  );
  if (ops.length === 0) return false;
  // Guard the patch with the resourceVersion read, so a concurrent edit is not overwritten blindly.
  const guarded = [{ op: 'test', path: '/metadata/resourceVersion', value: config.metadata?.resourceVersion ?? '' }, ...ops];
  await api.patchMutatingWebhookConfiguration({ name, body: guarded });
  log.info('updated the injection webhook caBundle', { name, webhooks: ops.length });
  return true;
}
