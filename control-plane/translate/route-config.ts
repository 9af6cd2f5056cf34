// The `outbound` routes: one virtual host per (Service, port) with every name form a client may
// use, and the routes attached to that Service (GAMMA producer/consumer rules). The virtual
// hosts are VHDS resources of their own (`outbound/<fqdn>:<port>`) and the `outbound`
// RouteConfiguration only points at them (`vhds`): a route edit then changes one small resource
// that delta xDS sends alone, instead of the whole table for every proxy.
import { isIP } from 'node:net';
import type { Plain } from '../../api/codec.js';
import {
  resolveParent,
  routeProblems,
  type Model,
  type RouteObject,
  type RouteSemanticsOptions,
  type Service,
} from '../model/index.js';
import { meshPorts } from './clusters.js';
import { outboundClusterName, serviceFqdn } from './envoy.js';
import { grpcRouteCandidates } from './grpc-route.js';
import { httpRouteCandidates } from './http-route.js';
import { sortByPrecedence, type RouteCandidate } from './precedence.js';

export const OUTBOUND_ROUTE_CONFIG = 'outbound';

/** The `outbound` RouteConfiguration: the same for every proxy, its virtual hosts from VHDS. */
export const OUTBOUND_VHDS_ROUTE_CONFIG: Plain = Object.freeze({ name: OUTBOUND_ROUTE_CONFIG, vhds: { config_source: { ads: {} } } });

/** What clients in one namespace get: the RouteConfiguration and its VHDS virtual hosts by resource name. */
export interface OutboundRoutes {
  readonly config: Plain;
  readonly virtualHosts: ReadonlyMap<string, Plain>;
}

/** The VHDS resource name of a virtual host of the `outbound` route configuration. */
export function outboundVirtualHostName(vhost: string): string {
  return `${OUTBOUND_ROUTE_CONFIG}/${vhost}`;
}
interface Attachment {
  readonly route: RouteObject;
  readonly ports: ReadonlySet<number>;
}

/** Accepted routes by the Service (`ns/name`) they attach to, with the ports they cover. */
export function attachmentsByService(model: Model): Map<string, Attachment[]> {
  const out = new Map<string, Attachment[]>();
  for (const route of model.routes) {
    // An unacceptable route is not translated at all; no other route is affected.
    if (routeProblems(route).length > 0) continue;
    const perService = new Map<string, Set<number>>();
    route.spec.parentRefs.forEach((ref, i) => {
      const res = resolveParent(model, route, ref, i);
      if (res.kind !== 'attached') return;
      const key = `${res.service.metadata.namespace}/${res.service.metadata.name}`;
      const ports = perService.get(key) ?? new Set<number>();
      for (const p of res.ports) ports.add(p.port);
      perService.set(key, ports);
    });
    for (const [key, ports] of perService) {
      const list = out.get(key) ?? [];
      list.push({ route, ports });
      out.set(key, list);
    }
  }
  return out;
}

/**
 * The routes that apply to a client in `clientNs` calling `service` on `port` (GEP-1294):
 * consumer routes of the client's own namespace replace the producer routes of the Service's
 * namespace; routes of any other namespace never apply. If a GRPCRoute applies, HTTPRoutes
 * for the same port are set aside (GRPCRoute wins the route-type conflict).
 */
export function applicableRoutes(attached: readonly Attachment[], service: Service, port: number, clientNs: string): RouteObject[] {
  const svcNs = service.metadata.namespace;
  const forPort = attached.filter((a) => a.ports.has(port)).map((a) => a.route);
  const consumer = forPort.filter((r) => r.metadata.namespace === clientNs && clientNs !== svcNs);
  const chosen = consumer.length > 0 ? consumer : forPort.filter((r) => r.metadata.namespace === svcNs);
  return chosen.some((r) => r.kind === 'GRPCRoute') ? chosen.filter((r) => r.kind === 'GRPCRoute') : chosen;
}

/** A Service's virtual IP (spec.clusterIP), when it has one: not headless (`None`), not empty. */
export function serviceVip(service: Service): string | undefined {
  const ip = service.spec.clusterIP;
  return ip !== undefined && isIP(ip) !== 0 ? ip : undefined;
}

export function domainsFor(service: Service, port: number, clientNs: string): string[] {
  const { name, namespace } = service.metadata;
  const names = [serviceFqdn(name, namespace), `${name}.${namespace}.svc`, `${name}.${namespace}`];
  if (namespace === clientNs) names.push(name);
  // Captured traffic addressed to the VIP itself (`http://10.96.0.10:9080/`) names the Service too.
  const vip = serviceVip(service);
  if (vip !== undefined) names.push(isIP(vip) === 6 ? `[${vip}]` : vip);
  const portless = port === 80 || meshPorts(service).length === 1;
  return names.flatMap((n) => (portless ? [n, `${n}:${port}`] : [`${n}:${port}`]));
}

/** The `outbound` routes for clients in `clientNs`, as VHDS resources (see the top of this file). */
/**
 * `throughWaypoint`: Services a sidecar sends to their waypoint, which applies their routes (see
 * ambient.ts sidecarAssignments): the sidecar's virtual host for them only forwards to the
 * Service's cluster. Absent: every Service's routes (waypoints, analysis).
 */
export function outboundRoutes(model: Model, clientNs: string, semantics: RouteSemanticsOptions, throughWaypoint?: (service: Service) => boolean): OutboundRoutes {
  const virtualHosts = new Map<string, Plain>();
  for (const vh of outboundVirtualHosts(model, clientNs, semantics, throughWaypoint)) {
    const name = outboundVirtualHostName(vh.name as string);
    virtualHosts.set(name, { ...vh, name });
  }
  return { config: OUTBOUND_VHDS_ROUTE_CONFIG, virtualHosts };
}

/** The same routes as one RouteConfiguration with its virtual hosts inline (analysis, tests). */
export function outboundRouteConfiguration(model: Model, clientNs: string, semantics: RouteSemanticsOptions): Plain {
  return { name: OUTBOUND_ROUTE_CONFIG, virtual_hosts: outboundVirtualHosts(model, clientNs, semantics) };
}

function outboundVirtualHosts(model: Model, clientNs: string, semantics: RouteSemanticsOptions, throughWaypoint?: (service: Service) => boolean): Plain[] {
  const attachments = attachmentsByService(model);
  // Candidates depend only on the route and the Service port (redirects name the port), so each
  // (route, port) is translated once per call.
  const candidates = new Map<RouteObject, Map<number, RouteCandidate[]>>();
  const candidatesOf = (route: RouteObject, port: number): RouteCandidate[] => {
    const byPort = candidates.get(route) ?? new Map<number, RouteCandidate[]>();
    candidates.set(route, byPort);
    let list = byPort.get(port);
    if (!list) {
      list = route.kind === 'HTTPRoute' ? httpRouteCandidates(model, route, semantics, port) : grpcRouteCandidates(model, route, semantics);
      byPort.set(port, list);
    }
    return list;
  };

  const virtualHosts: Plain[] = [];
  for (const service of model.services) {
    const { name, namespace } = service.metadata;
    const attached = throughWaypoint?.(service) ? [] : (attachments.get(`${namespace}/${name}`) ?? []);
    for (const port of meshPorts(service)) {
      const routes = applicableRoutes(attached, service, port.port, clientNs);
      const envoyRoutes =
        routes.length > 0
          ? sortByPrecedence(routes.flatMap((r) => candidatesOf(r, port.port)))
          : [{ name: 'default', match: { prefix: '/' }, route: { cluster: outboundClusterName(port.port, name, namespace) } }];
      virtualHosts.push({
        name: `${serviceFqdn(name, namespace)}:${port.port}`,
        domains: domainsFor(service, port.port, clientNs),
        routes: envoyRoutes,
      });
    }
  }
  return virtualHosts;
}
