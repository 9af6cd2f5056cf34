// Who is on each end of a request, as Istio's metric labels name them: workload, namespace and
// principal of source and destination, and the destination Service read from a cluster name
// or a Host. Pure helpers plus small caches, so the per-request path does not allocate.
import os from 'node:os';
import { parseSpiffeIdResult } from '../../certs/spiffe.js';

/** Istio's placeholder for a label value the reporter cannot know. */
export const UNKNOWN = 'unknown';

/** Request header a sidecar sets on its upstream requests so the peer sidecar can name the
 *  source workload (Istio's peer metadata exchange, reduced to one value: `name.namespace`). */
export const PEER_WORKLOAD_HEADER = 'x-weft-source-workload';

export interface WorkloadName {
  readonly workload: string;
  readonly namespace: string;
}

/** `name.namespace` → its parts (`unknown` for both when it has no dot). */
export function splitWorkloadKey(key: string | undefined): WorkloadName {
  if (!key) return { workload: UNKNOWN, namespace: UNKNOWN };
  const i = key.indexOf('.');
  return i <= 0 ? { workload: key, namespace: UNKNOWN } : { workload: key.slice(0, i), namespace: key.slice(i + 1) };
}

/** The namespace of a SPIFFE ID (`spiffe://td/ns/<ns>/sa/<sa>`), or undefined. */
export function spiffeNamespace(id: string | undefined): string | undefined {
  if (!id) return undefined;
  const r = parseSpiffeIdResult(id);
  return r.ok ? r.id.namespace : undefined;
}

export interface ServiceLabels {
  /** FQDN, e.g. `reviews.default.svc.cluster.local`. */
  readonly service: string;
  readonly name: string;
  readonly namespace: string;
}

const UNKNOWN_SERVICE: ServiceLabels = Object.freeze({ service: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN });

/** From a Service FQDN (or any host): name and namespace when it has the cluster-local shape. */
export function serviceFromHost(host: string): ServiceLabels {
  const m = /^([^.]+)\.([^.]+)\.svc(\..*)?$/.exec(host);
  return m ? { service: host, name: m[1]!, namespace: m[2]! } : { service: host, name: host, namespace: UNKNOWN };
}

const byCluster = new Map<string, ServiceLabels>();

/**
 * The destination Service of an outbound cluster, as Istio reads it from the cluster name
 * (`outbound|9080||reviews.default.svc.cluster.local`). Cached per cluster name.
 */
export function serviceOfCluster(cluster: string): ServiceLabels {
  let s = byCluster.get(cluster);
  if (!s) {
    const parts = cluster.split('|');
    s = parts[0] === 'outbound' && parts[3] ? serviceFromHost(parts[3]) : { service: cluster, name: cluster, namespace: UNKNOWN };
    if (byCluster.size > 10_000) byCluster.clear(); // cluster names come from config: bounded, but be safe
    byCluster.set(cluster, s);
  }
  return s;
}

const byAuthority = new Map<string, Map<string, ServiceLabels>>();

/**
 * The Service a request's Host names, as an FQDN: `svc`, `svc.ns`, `svc.ns.svc` and the full
 * form, with or without a port; a short name is in `clientNamespace`. Cached per (namespace,
 * authority) — the inbound side's destination_service.
 */
export function serviceOfAuthority(authority: string, clientNamespace: string): ServiceLabels {
  let perNs = byAuthority.get(clientNamespace);
  if (!perNs) byAuthority.set(clientNamespace, (perNs = new Map()));
  let s = perNs.get(authority);
  if (!s) {
    const host = authority.replace(/:\d+$/, '');
    const labels = host.split('.');
    if (host === '' || /^[\d.]+$|^\[/.test(host)) s = UNKNOWN_SERVICE;
    else if (labels.length === 1) s = serviceFromHost(`${host}.${clientNamespace}.svc.cluster.local`);
    else if (labels.length === 2) s = serviceFromHost(`${host}.svc.cluster.local`);
    else if (labels.length === 3 && labels[2] === 'svc') s = serviceFromHost(`${host}.cluster.local`);
    else s = serviceFromHost(host);
    if (perNs.size > 10_000) perNs.clear(); // Hosts come from clients: keep the cache bounded
    perNs.set(authority, s);
  }
  return s;
}

/**
 * Addresses a connection from the local app may come from: loopback, and every address of
 * this host's interfaces (a captured pod's app connects from the pod IP). Read once.
 */
export function localAddresses(): ReadonlySet<string> {
  const out = new Set<string>(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) {
      out.add(a.address);
      if (a.family === 'IPv4') out.add(`::ffff:${a.address}`);
    }
  }
  return out;
}
