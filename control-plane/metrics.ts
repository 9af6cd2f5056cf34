// Control-plane metrics for the monitoring port (Prometheus exposition via prom-client).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createControlPlaneMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'weft_control_plane_' });
  return {
    registry,
    pushes: new Counter({ name: 'pilot_xds_pushes', help: 'Snapshots published to proxies, by trigger', labelNames: ['type'], registers: [registry] }),
    rejects: new Counter({ name: 'pilot_total_xds_rejects', help: 'Config rejected by proxies (NACKs), by xDS type', labelNames: ['type'], registers: [registry] }),
    connected: new Gauge({ name: 'pilot_xds', help: 'Connected xDS proxies', registers: [registry] }),
    pushTime: new Histogram({
      name: 'pilot_proxy_convergence_time',
      help: 'Seconds from a config change to every connected proxy having its new snapshot',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers: [registry],
    }),
    configProblems: new Gauge({ name: 'weft_config_problems', help: 'Problems in the watched configuration', registers: [registry] }),
    inconsistent: new Counter({ name: 'weft_snapshot_inconsistent_total', help: 'Snapshots refused by the consistency check', registers: [registry] }),
    certsIssued: new Counter({ name: 'citadel_server_success_cert_issuance_count', help: 'Certificates issued', registers: [registry] }),
  };
}

export type ControlPlaneMetrics = ReturnType<typeof createControlPlaneMetrics>;
