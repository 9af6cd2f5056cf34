// Gateway status for Weft's waypoints: every Gateway of class `weft-waypoint` gets the Gateway
// API's conditions (Accepted, Programmed), its addresses (its replicas'), and a status per
// listener, with reasons from the spec and messages a person can act on. Gateways of other
// classes belong to other controllers and get nothing. Pure.
import { GATEWAY_NAME_LABEL, WAYPOINT_GATEWAY_CLASS, type Gateway, type Model } from '../model/index.js';

/** The port and protocol a waypoint takes traffic on: HBONE from sidecars and node proxies. */
export const WAYPOINT_LISTENER = { port: 15008, protocol: 'HBONE' } as const;

export interface GatewayCondition {
  /** Gateway: Accepted, Programmed. Listener: Accepted, Programmed, ResolvedRefs. */
  readonly type: 'Accepted' | 'Programmed' | 'ResolvedRefs';
  readonly status: 'True' | 'False';
  /** Accepted, ListenersNotValid, Programmed, NoResources, UnsupportedProtocol, PortUnavailable, Invalid, ResolvedRefs. */
  readonly reason: string;
  readonly message: string;
  readonly observedGeneration?: number;
}

export interface ListenerStatus {
  readonly name: string;
  readonly supportedKinds: readonly { readonly group: string; readonly kind: string }[];
  /** Routes attach to the Services a waypoint serves, never to its listener. */
  readonly attachedRoutes: number;
  readonly conditions: readonly GatewayCondition[];
}

export interface GatewayStatus {
  readonly namespace: string;
  readonly name: string;
  readonly conditions: readonly GatewayCondition[];
  /** The addresses its replicas take HBONE on. */
  readonly addresses: readonly { readonly type: 'IPAddress'; readonly value: string }[];
  readonly listeners: readonly ListenerStatus[];
}

/** The status of every waypoint Gateway, by `namespace/name`. */
export function gatewayStatuses(model: Model): Map<string, GatewayStatus> {
  const out = new Map<string, GatewayStatus>();
  for (const gw of model.gateways) {
    if (gw.spec.gatewayClassName !== WAYPOINT_GATEWAY_CLASS) continue;
    out.set(`${gw.metadata.namespace}/${gw.metadata.name}`, gatewayStatus(model, gw));
  }
  return out;
}

function gatewayStatus(model: Model, gw: Gateway): GatewayStatus {
  const { namespace, name, generation } = gw.metadata;
  const stamp = (c: Omit<GatewayCondition, 'observedGeneration'>): GatewayCondition => (generation === undefined ? c : { ...c, observedGeneration: generation });
  const replicas = model.waypointReplicas(namespace, name);
  const addresses = [...new Set(replicas.map((w) => w.spec.address))].sort().map((value) => ({ type: 'IPAddress' as const, value }));
  const programmed = replicas.length > 0;
  const listeners = gw.spec.listeners.map((l): ListenerStatus => {
    const problem =
      l.protocol !== WAYPOINT_LISTENER.protocol
        ? { reason: 'UnsupportedProtocol', message: `a waypoint takes ${WAYPOINT_LISTENER.protocol} only (sidecars and node proxies tunnel to it), got protocol "${l.protocol}"` }
        : l.port !== WAYPOINT_LISTENER.port
          ? { reason: 'PortUnavailable', message: `a waypoint takes ${WAYPOINT_LISTENER.protocol} on port ${WAYPOINT_LISTENER.port}, where sidecars and node proxies send it, got port ${l.port}` }
          : undefined;
    const conditions: GatewayCondition[] = problem
      ? [
          stamp({ type: 'Accepted', status: 'False', ...problem }),
          stamp({ type: 'Programmed', status: 'False', reason: 'Invalid', message: 'The listener is not accepted' }),
        ]
      : [
          stamp({ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'HBONE from sidecars and node proxies' }),
          programmed
            ? stamp({ type: 'Programmed', status: 'True', reason: 'Programmed', message: `Served by ${replicas.length} replica${replicas.length === 1 ? '' : 's'}` })
            : stamp({ type: 'Programmed', status: 'False', reason: 'Pending', message: 'No replica yet' }),
        ];
    conditions.push(stamp({ type: 'ResolvedRefs', status: 'True', reason: 'ResolvedRefs', message: 'Nothing to resolve' }));
    return { name: l.name, supportedKinds: [], attachedRoutes: 0, conditions };
  });
  const accepted = listeners.some((l) => l.conditions.some((c) => c.type === 'Accepted' && c.status === 'True'));
  const conditions = [
    accepted
      ? stamp({ type: 'Accepted', status: 'True', reason: 'Accepted', message: `A waypoint: Services and Namespaces labelled weft.dev/use-waypoint=${name} send their traffic through it` })
      : stamp({ type: 'Accepted', status: 'False', reason: 'ListenersNotValid', message: `No listener is usable: a waypoint needs one with protocol ${WAYPOINT_LISTENER.protocol} and port ${WAYPOINT_LISTENER.port}` }),
    !accepted
      ? stamp({ type: 'Programmed', status: 'False', reason: 'Invalid', message: 'The Gateway is not accepted' })
      : programmed
        ? stamp({ type: 'Programmed', status: 'True', reason: 'Programmed', message: `Served by ${replicas.length} replica${replicas.length === 1 ? '' : 's'}: ${addresses.map((a) => a.value).join(', ')}` })
        : stamp({
            type: 'Programmed',
            status: 'False',
            reason: 'NoResources',
            message: `No running workload is labelled ${GATEWAY_NAME_LABEL}=${name} in namespace ${namespace}: deploy the waypoint (\`weft waypoint apply -n ${namespace} --name ${name}\`)`,
          }),
  ];
  return { namespace, name, conditions, addresses, listeners };
}
