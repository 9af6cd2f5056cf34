// Per-cluster and per-listener counters of the data path, read by the admin endpoint
// (/stats, /clusters) and Prometheus export. Plain numbers, mutated in place; cheap to bump.
import type { ProxyErrorKind } from './errors.js';

export interface ClusterCounters {
  /** Requests sent towards this cluster (once per downstream request, not per try). */
  requests: number;
  /** Downstream requests currently being served by this cluster. */
  inFlight: number;
  /** Completed with an upstream response, by status class. */
  responses: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** Requests that ended with a proxy error (no upstream response forwarded), by kind. */
  errors: Partial<Record<ProxyErrorKind, number>>;
  /** Extra tries made by the retry policy. */
  retries: number;
  /** Mirror requests sent (fire-and-forget) and mirror requests that failed. */
  mirrors: number;
  mirrorErrors: number;
  /** Responses that started and were then reset (upstream reset, timeout, client gone). */
  resetsAfterHeaders: number;
}

export interface ListenerCounters {
  connectionsTotal: number;
  connectionsActive: number;
  requests: number;
  /** Requests answered by the proxy itself, by kind (no_route, blackhole, ...). */
  localErrors: Partial<Record<ProxyErrorKind, number>>;
  /** Requests forwarded to non-mesh hosts (absolute-form pass-through). */
  passthrough: number;
  /** Requests carried by the byte-level HTTP/1.1 fast path (proxy/http1); the rest of
   *  `requests` went through node:http / node:http2. */
  fastPath: number;
}

/** The stats the admin endpoint reads. One instance per proxy, shared by both listeners. */
export class ProxyStats {
  private readonly clusterMap = new Map<string, ClusterCounters>();
  private readonly listenerMap = new Map<string, ListenerCounters>();

  cluster(name: string): ClusterCounters {
    let c = this.clusterMap.get(name);
    if (!c) {
      c = {
        requests: 0,
        inFlight: 0,
        responses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
        errors: {},
        retries: 0,
        mirrors: 0,
        mirrorErrors: 0,
        resetsAfterHeaders: 0,
      };
      this.clusterMap.set(name, c);
    }
    return c;
  }

  listener(name: string): ListenerCounters {
    let l = this.listenerMap.get(name);
    if (!l) {
      l = { connectionsTotal: 0, connectionsActive: 0, requests: 0, localErrors: {}, passthrough: 0, fastPath: 0 };
      this.listenerMap.set(name, l);
    }
    return l;
  }

  /** A deep copy for JSON output; callers may keep it. */
  snapshot(): { clusters: Record<string, ClusterCounters>; listeners: Record<string, ListenerCounters> } {
    return structuredClone({ clusters: Object.fromEntries(this.clusterMap), listeners: Object.fromEntries(this.listenerMap) });
  }
}

export function countResponse(c: ClusterCounters, status: number): void {
  const cls = `${Math.min(5, Math.max(1, Math.floor(status / 100)))}xx` as keyof ClusterCounters['responses'];
  c.responses[cls]++;
}

export function countError(map: Partial<Record<ProxyErrorKind, number>>, kind: ProxyErrorKind): void {
  map[kind] = (map[kind] ?? 0) + 1;
}
