// The proxy's admin port (127.0.0.1 only): readiness, the config it holds with versions and
// nonces per type, clusters with their endpoints, counters, and a drain switch (/drain, and
// /quitquitquit, which Jobs call to let their proxy exit).
import { endpointKey } from '../balance/types.js';
import { readinessAnswer, serveEndpoints, type EndpointServer } from '../../core/http-server.js';
import type { ProxyConfig } from '../state/types.js';
import { effectiveRoutes } from '../route/assemble.js';

export interface AdminSources {
  readonly workload: string;
  ready(): { ready: boolean; reasons: string[] };
  config(): ProxyConfig;
  /** Per-type xDS versions, nonces and NACKs. */
  xdsStatus(): unknown;
  identity(): { identity: string; notAfter: string; serial?: string } | undefined;
  stats(): unknown;
  /** Per-endpoint balancer state of a cluster, keyed by endpointKey. */
  endpointState?(cluster: string): Record<string, { inflight: number; ejected: boolean; timesEjected: number; rttMs: number }> | undefined;
  drain(): Promise<void>;
}

/** JSON.stringify replacer for domain values: RegExp as its source, Set/Map as arrays/objects. */
export function domainJson(_key: string, value: unknown): unknown {
  if (value instanceof RegExp) return value.source;
  if (value instanceof Set) return [...value];
  if (value instanceof Map) return Object.fromEntries(value);
  return value;
}

export function configDump(src: AdminSources): unknown {
  const c = src.config();
  const plain = {
    workload: src.workload,
    generation: c.generation,
    xds: src.xdsStatus(),
    identity: src.identity(),
    listeners: [...c.listeners.values()],
    // As the router sees them: a route configuration with `vhds` holds its VHDS virtual hosts.
    routes: [...c.routes.values()].map((rc) => effectiveRoutes(c, rc)),
    clusters: [...c.clusters.values()],
    endpoints: [...c.endpoints.values()],
    // Secrets by name and kind only: certificates are public, but nothing here needs them.
    secrets: [...c.secrets.values()].map((s) => ({ name: s.name, trustedCa: s.trustedCa !== undefined, certificate: s.certificateChain !== undefined })),
  };
  return JSON.parse(JSON.stringify(plain, domainJson));
}

export function startAdmin(port: number, src: AdminSources): Promise<EndpointServer> {
  return serveEndpoints('127.0.0.1', port, {
    '/ready': () => readinessAnswer(src.ready()),
    '/config_dump': () => ({ status: 200, body: configDump(src) }),
    '/clusters': () => {
      const c = src.config();
      return {
        status: 200,
        body: [...c.clusters.values()].map((cl) => ({
          name: cl.name,
          lbPolicy: cl.lbPolicy,
          protocol: cl.protocol,
          endpoints: (c.endpoints.get(cl.edsServiceName)?.endpoints ?? cl.staticEndpoints ?? []).map((e) => ({
            address: `${e.host}:${e.port}`,
            healthy: e.healthy,
            weight: e.weight,
            identity: e.identity,
            workload: e.workload,
            // In flight, peak-EWMA latency and outlier ejection, once the endpoint has seen traffic.
            ...src.endpointState?.(cl.name)?.[endpointKey(e)],
          })),
        })),
      };
    },
    '/stats': () => ({ status: 200, body: JSON.parse(JSON.stringify(src.stats(), domainJson)) }),
    '/drain': async (_url, req) => {
      if (req.method !== 'POST') return { status: 405, body: 'use POST /drain\n' };
      void src.drain();
      return { status: 202, body: 'draining\n' };
    },
    // For Jobs whose proxy is a regular container (no native sidecars): the app's last step
    // (`curl -X POST 127.0.0.1:15000/quitquitquit`) ends the proxy, so the pod can complete.
    '/quitquitquit': async (_url, req) => {
      if (req.method !== 'POST') return { status: 405, body: 'use POST /quitquitquit\n' };
      void src.drain();
      return { status: 200, body: 'quitting\n' };
    },
  });
}
