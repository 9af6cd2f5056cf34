// The control plane's Kubernetes mode, assembled in one place for the composition root: the
// client, the shared CA, the config source, TokenReview authentication, and then the services
// that need the live model — the injection webhook (every replica) and, on the Lease leader
// only, route status, the root-cert ConfigMaps and the webhook's caBundle.
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import type { CertificateAuthority } from '../../../certs/ca.js';
import { selfSignedDir } from '../../../certs/ca-store.js';
import { errorMessage } from '../../../core/errors.js';
import type { Logger } from '../../../core/log.js';
import type { Authenticator } from '../../ca/authenticator.js';
import { kubernetesTokenReviewer, TokenReviewAuthenticator } from '../../ca/tokenreview.js';
import type { ControlPlaneConfig, KubernetesSettings } from '../../config.js';
import { CA_TOKEN_AUDIENCE, SIDECAR_HBONE_PORT_ANNOTATION, SIDECAR_PORT_ANNOTATION } from '../../injector/names.js';
import { controlPlaneServiceName, injectorSettings, type InjectorSettings } from '../../injector/settings.js';
import { startWebhookServer, type WebhookServer } from '../../injector/webhook.js';
import type { Model } from '../../model/index.js';
import { sidecarPortsOf, type SidecarPorts } from '../../translate/index.js';
import { followCaSecret, loadClusterCa } from './ca-secret.js';
import { loadKubeConfig } from './client.js';
import { detectNativeSidecars, syncWebhookCaBundle } from './cluster-info.js';
import { LeaderElector, replicaIdentity } from './leader.js';
import { RootCertPublisher } from './root-cert.js';
import { KubernetesSource } from './source.js';
import { StatusWriter } from './status-writer.js';

export interface KubernetesServices {
  readonly webhookAddress: AddressInfo | undefined;
  leading(): boolean;
  /** For /debug/kubernetes: leadership, writes, and each reflector's counters. */
  debug(): unknown;
  stop(): Promise<void>;
}

export interface KubernetesMode {
  readonly kc: KubeConfig;
  readonly ca: CertificateAuthority;
  /** The CA's files on this replica (a copy of the Secret, or the plugged-in CA's mount). */
  readonly caDir: string;
  readonly source: KubernetesSource;
  readonly authenticator: Authenticator;
  readonly injector: InjectorSettings;
  /** DNS names the control plane is reached by (its Service), for its serving certificates. */
  readonly serviceNames: readonly string[];
  startServices(model: () => Model, onModel: (fn: (m: Model) => void) => () => void): Promise<KubernetesServices>;
}

/** The sidecar of a meshed pod that the source saw ready, for workloads not connected to this replica. */
export function podSidecar(model: Model, workloadKey: string): SidecarPorts | undefined {
  const annotations = model.workloadByKey(workloadKey)?.metadata.annotations;
  return sidecarPortsOf(annotations?.[SIDECAR_PORT_ANNOTATION], annotations?.[SIDECAR_HBONE_PORT_ANNOTATION]);
}

export function serviceNames(k: KubernetesSettings): string[] {
  const svc = controlPlaneServiceName(k.revision);
  return [svc, `${svc}.${k.namespace}`, `${svc}.${k.namespace}.svc`, `${svc}.${k.namespace}.svc.${k.clusterDomain}`];
}

/** Connects to the API server, loads the shared CA and lists every watched kind (the model is complete on return). */
export async function connectKubernetes(cfg: ControlPlaneConfig, k: KubernetesSettings, log: Logger): Promise<KubernetesMode> {
  const kc = loadKubeConfig(k.kubeconfig ? { kubeconfig: k.kubeconfig } : {});
  const caStateDir = path.join(cfg.stateDir, 'kubernetes');
  const ca = await loadClusterCa({
    kc,
    namespace: k.namespace,
    trustDomain: cfg.trustDomain,
    stateDir: caStateDir,
    ...(cfg.caDir ? { pluggedDir: cfg.caDir } : {}),
    log: log.child('ca'),
  });
  const native = k.nativeSidecars === 'auto' ? await detectNativeSidecars(kc, log) : k.nativeSidecars === 'on';
  const injector = injectorSettings({
    image: k.proxyImage,
    revision: k.revision,
    controlPlaneNamespace: k.namespace,
    xdsAddress: `${controlPlaneServiceName(k.revision)}.${k.namespace}.svc:15012`,
    nativeSidecars: native,
  });
  const source = new KubernetesSource({ kc, debounceMs: cfg.debounceMs, log: log.child('kubernetes') });
  await source.start();
  const authenticator = new TokenReviewAuthenticator({
    review: kubernetesTokenReviewer(kc),
    audience: CA_TOKEN_AUDIENCE,
    nodeServiceAccount: k.nodeServiceAccount,
  });
  const names = serviceNames(k);

  const startServices = async (model: () => Model, onModel: (fn: (m: Model) => void) => () => void): Promise<KubernetesServices> => {
    // 1. The webhook, on every replica (the Service balances admission requests over them).
    let webhook: WebhookServer | undefined;
    // The names the API server dials (the Service), plus the bound address unless it is a wildcard.
    const webhookNames = [...names, 'localhost', ...(cfg.host === '0.0.0.0' || cfg.host === '::' ? [] : [cfg.host])];
    if (k.webhookPort >= 0) {
      const cert = await ca.servingCertificate(webhookNames);
      webhook = await startWebhookServer(cfg.host, k.webhookPort, cert, {
        settings: () => injector,
        namespaceLabels: (ns) => model().namespaces.get(ns)?.metadata.labels,
        log: log.child('injector'),
      });
    }

    // Root rotation goes through the Secret: every replica copies it to its CA files.
    const caFollower = cfg.caDir ? undefined : await followCaSecret({ kc, namespace: k.namespace, stateDir: caStateDir, log: log.child('ca') });

    // 2. Leader election; the leader alone writes to the cluster.
    const elector = new LeaderElector({
      kc,
      namespace: k.namespace,
      name: `weft-control-plane-${k.revision}`,
      identity: replicaIdentity(),
      ...(k.leaseDurationSeconds ? { leaseDurationSeconds: k.leaseDurationSeconds } : {}),
      ...(k.leaseRetryMs ? { retryPeriodMs: k.leaseRetryMs, renewDeadlineMs: k.leaseRetryMs * 5 } : {}),
      log: log.child('leader'),
    });
    const leading = () => elector.leading.get();
    const status = new StatusWriter({
      kc,
      raw: (kind, ns, name) => source.raw(kind, ns, name),
      rawItems: (kind) => source.rawItems(kind),
      served: (kind) => source.served(kind),
      log: log.child('status'),
    });
    const rootCerts = new RootCertPublisher({
      kc,
      roots: () => ca.trustBundle(),
      namespaces: () => source.rawItems('Namespace').map((n) => n.metadata?.name ?? '').filter(Boolean),
      enabled: leading,
      log: log.child('root-cert'),
    });
    await rootCerts.start();
    const syncBundle = () => {
      if (!leading()) return;
      syncWebhookCaBundle(kc, k.webhookConfigName, ca.trustBundle(), log.child('webhook-config')).catch((err: unknown) =>
        log.warn('could not update the webhook caBundle', { error: errorMessage(err) }),
      );
    };
    const leaderWork = () => {
      if (!leading()) return;
      void status.reconcile(model());
      void rootCerts.reconcile();
    };
    const unsubscribers = [
      elector.leading.subscribe((isLeader) => {
        if (isLeader) {
          leaderWork();
          syncBundle();
        }
      }),
      // Every change (status included) is checked: the writer only writes what differs.
      source.changed.subscribe(leaderWork),
      onModel(() => leaderWork()),
      ca.subscribeRoots((roots) => {
        syncBundle();
        void rootCerts.reconcile();
        if (webhook) void ca.servingCertificate(webhookNames).then((c) => webhook?.setCertificate(c.keyPem, c.chainPem));
        log.info('trust roots changed', { roots: roots.length });
      }),
    ];
    // Someone may reset the caBundle (a `helm upgrade`): look again now and then.
    const bundleTimer = setInterval(syncBundle, 60_000);
    bundleTimer.unref();
    elector.start();

    return {
      webhookAddress: webhook?.address,
      leading,
      debug: () => ({ leader: leading(), identity: elector.identity, statusWrites: status.writes, statusPasses: status.passes, rootCertWrites: rootCerts.writes, reflectors: source.stats() }),
      async stop() {
        clearInterval(bundleTimer);
        for (const u of unsubscribers) u();
        await elector.stop();
        await rootCerts.stop();
        await webhook?.close();
        await caFollower?.stop();
      },
    };
  };

  return { kc, ca, caDir: cfg.caDir ?? selfSignedDir(caStateDir), source, authenticator, injector, serviceNames: names, startServices };
}
