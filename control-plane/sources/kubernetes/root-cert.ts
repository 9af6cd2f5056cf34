// Publishes the mesh's trust roots as the ConfigMap `weft-ca-root-cert` (key root-cert.pem) in
// every namespace, where injected proxies mount it to verify the control plane. Watches its own
// ConfigMaps (by label) so that one deleted or edited by hand is put back; writes only when
// `enabled()` (the leader).
import { CoreV1Api, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from '../../../core/log.js';
import { ROOT_CERT_CONFIGMAP, ROOT_CERT_CONFIGMAP_LABEL, ROOT_CERT_KEY } from '../../injector/names.js';
import { apiErrorMessage, isConflict, isNotFound } from './client.js';
import { Reflector } from './reflector.js';

export interface RootCertPublisherOptions {
  readonly kc: KubeConfig;
  readonly roots: () => readonly string[];
  readonly namespaces: () => readonly string[];
  readonly enabled: () => boolean;
  readonly log: Logger;
}

export class RootCertPublisher {
  private readonly api: CoreV1Api;
  private readonly configMaps: Reflector;
  private running: Promise<void> | undefined;
  private again = false;
  writes = 0;

  constructor(private readonly opts: RootCertPublisherOptions) {
    this.api = opts.kc.makeApiClient(CoreV1Api);
    const labelSelector = `${ROOT_CERT_CONFIGMAP_LABEL}=true`;
    this.configMaps = new Reflector({
      kc: opts.kc,
      apiVersion: 'v1',
      kind: 'ConfigMap',
      path: '/api/v1/configmaps',
      labelSelector,
      list: async () => {
        const list = await this.api.listConfigMapForAllNamespaces({ labelSelector });
        return { items: list.items.map((i) => JSON.parse(JSON.stringify(i)) as Record<string, unknown>), resourceVersion: list.metadata?.resourceVersion ?? '' };
      },
      onChange: () => void this.reconcile(),
      log: opts.log,
    });
  }

  async start(): Promise<void> {
    await this.configMaps.start();
  }

  async stop(): Promise<void> {
    await this.configMaps.stop();
  }

  /** Makes every namespace's ConfigMap hold the current roots (no-op unless enabled). One pass at a time. */
  reconcile(): Promise<void> {
    this.again = true;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      // A request that arrived as the last pass was finishing.
      if (this.again) void this.reconcile();
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.again) {
      this.again = false;
      try {
        if (this.opts.enabled() && this.configMaps.hasSynced()) await this.pass();
      } catch (err) {
        this.opts.log.warn('reconciling failed; the next change retries', { error: apiErrorMessage(err) });
      }
    }
  }

  private async pass(): Promise<void> {
    const pem = this.opts.roots().join('');
    for (const namespace of this.opts.namespaces()) {
      const existing = this.configMaps.get(namespace, ROOT_CERT_CONFIGMAP) as (V1ConfigMap & { metadata?: { resourceVersion?: string } }) | undefined;
      if (existing?.data?.[ROOT_CERT_KEY] === pem) continue;
      const body: V1ConfigMap = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: ROOT_CERT_CONFIGMAP,
          namespace,
          labels: { [ROOT_CERT_CONFIGMAP_LABEL]: 'true', 'app.kubernetes.io/managed-by': 'weft' },
          ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
        },
        data: { [ROOT_CERT_KEY]: pem },
      };
      try {
        if (existing) {
          await this.api.replaceNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace, body });
        } else {
          try {
            await this.api.createNamespacedConfigMap({ namespace, body });
          } catch (err) {
            if (!isConflict(err)) throw err;
            // One without our label (made by hand, or by an older release): take it over.
            const found = await this.api.readNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace });
            body.metadata = { ...body.metadata, resourceVersion: found.metadata?.resourceVersion ?? '' };
            await this.api.replaceNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace, body });
          }
        }
        this.writes++;
      } catch (err) {
        // Someone else wrote first (or the namespace is going away): the watch brings it back here.
        if (isConflict(err) || isNotFound(err)) continue;
        this.opts.log.warn('could not publish the root certificate', { namespace, error: apiErrorMessage(err) });
      }
    }
  }
}
