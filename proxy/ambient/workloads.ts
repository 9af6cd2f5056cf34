// What a node proxy's config says about workloads (pure, memoised per config snapshot): the pods
// on this node it must serve (one `ambient|<namespace>|<name>` listener each) and, for every
// address the mesh knows, who answers there and how it is reached (HBONE, sidecar mTLS, plain).
import type { Endpoint, Listener } from '../../api/domain.js';
import { endpointsOf } from '../balance/registry.js';
import type { ProxyConfig } from '../state/types.js';

/** Prefix of the per-pod listeners the control plane sends a node proxy. */
export const AMBIENT_LISTENER_PREFIX = 'ambient|';

/** A pod on this node that the node proxy carries. */
export interface LocalPod {
  /** `namespace/name`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly ip: string;
  /** SPIFFE ID the node proxy holds (and presents) for it. */
  readonly identity: string;
  /** Its listener in the config (L4 authorization per app port). */
  readonly listener: string;
}

/** How a mesh address answers, as the endpoints of the config describe it. */
export interface KnownAddress {
  readonly identity?: string;
  /** Reached through HBONE at `<ip>:<hbonePort>` (an ambient pod or a waypoint). */
  readonly hbonePort?: number;
  readonly workload?: string;
}

export function ambientListenerName(namespace: string, name: string): string {
  return `${AMBIENT_LISTENER_PREFIX}${namespace}|${name}`;
}

const podsMemo = new WeakMap<ProxyConfig, readonly LocalPod[]>();

/** The pods the config asks this node proxy to carry, sorted by key. */
export function localPods(config: ProxyConfig): readonly LocalPod[] {
  let pods = podsMemo.get(config);
  if (!pods) {
    const found: LocalPod[] = [];
    for (const l of config.listeners.values()) {
      const pod = podOf(l);
      if (pod) found.push(pod);
    }
    pods = found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    podsMemo.set(config, pods);
  }
  return pods;
}

function podOf(l: Listener): LocalPod | undefined {
  if (!l.name.startsWith(AMBIENT_LISTENER_PREFIX) || !l.workload || !l.address) return undefined;
  const { name, namespace, identity } = l.workload;
  return { key: `${namespace}/${name}`, name, namespace, ip: l.address.host, identity, listener: l.name };
}

const addressMemo = new WeakMap<ProxyConfig, ReadonlyMap<string, KnownAddress>>();

/**
 * Every workload address in the config's endpoints → how it answers. A pod addressed directly
 * by IP (not through a Service) is reached the way its endpoints say.
 */
export function knownAddresses(config: ProxyConfig): ReadonlyMap<string, KnownAddress> {
  let m = addressMemo.get(config);
  if (!m) {
    const found = new Map<string, KnownAddress>();
    for (const cluster of config.clusters.values()) {
      for (const e of endpointsOf(config, cluster)) {
        if (found.has(e.host) || isWaypoint(e)) continue;
        found.set(e.host, {
          ...(e.identity !== undefined ? { identity: e.identity } : {}),
          ...(e.tunnel === 'hbone' ? { hbonePort: e.port } : {}),
          ...(e.workload !== undefined ? { workload: e.workload } : {}),
        });
      }
    }
    m = found;
    addressMemo.set(config, m);
  }
  return m;
}

function isWaypoint(e: Endpoint): boolean {
  return e.waypoint === true;
}
