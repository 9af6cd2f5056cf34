// Probe rewriting at injection (core/app-probes.ts says why): each app container's HTTP, TCP and
// gRPC liveness, readiness and startup probe becomes an HTTP GET of the sidecar's health port,
// and the original goes to the proxy. Timing (period, thresholds, timeout) is kept; exec probes,
// and HTTP probes of another host, are the kubelet's own business and stay as they are. A probe
// on a named port that the container does not declare is left alone too: the kubelet reports it.
import { appProbePath, PROBE_KINDS, type ProbeField } from '../../core/app-probes.js';
import { portNumber } from '../../core/port.js';
import { PORTS } from './names.js';
import type { Json } from './patch.js';

type JsonObject = { [key: string]: Json };

const obj = (v: Json | undefined): JsonObject | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : undefined);

/** A probe's port (number or the name of one of the container's ports), resolved. */
function resolvePort(port: Json | undefined, container: JsonObject): number | undefined {
  if (typeof port === 'number' || /^\d+$/.test(String(port))) return portNumber(port);
  if (typeof port !== 'string') return undefined;
  for (const p of Array.isArray(container.ports) ? container.ports : []) {
    const o = obj(p);
    if (o?.name === port && typeof o.containerPort === 'number') return o.containerPort;
  }
  return undefined;
}

/** What the proxy runs for `probe`, or undefined when it is not one to rewrite. */
function original(probe: JsonObject, container: JsonObject): JsonObject | undefined {
  const timeoutSeconds = typeof probe.timeoutSeconds === 'number' ? probe.timeoutSeconds : 1;
  const http = obj(probe.httpGet);
  if (http) {
    if (typeof http.host === 'string' && http.host !== '') return undefined;
    const port = resolvePort(http.port, container);
    if (port === undefined) return undefined;
    return {
      httpGet: {
        port,
        path: typeof http.path === 'string' && http.path !== '' ? http.path : '/',
        scheme: http.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
        httpHeaders: Array.isArray(http.httpHeaders) ? http.httpHeaders : [],
      },
      timeoutSeconds,
    };
  }
  const tcp = obj(probe.tcpSocket);
  if (tcp) {
    if (typeof tcp.host === 'string' && tcp.host !== '') return undefined;
    const port = resolvePort(tcp.port, container);
    return port === undefined ? undefined : { tcpSocket: { port }, timeoutSeconds };
  }
  const grpc = obj(probe.grpc);
  if (grpc) {
    const port = resolvePort(grpc.port, container);
    return port === undefined ? undefined : { grpc: { port, service: typeof grpc.service === 'string' ? grpc.service : '' }, timeoutSeconds };
  }
  return undefined;
}

export interface RewrittenProbes {
  /** The app containers, their probes pointing at the sidecar. */
  readonly containers: Json[];
  /** Health-port path → original probe (core/app-probes.ts); empty when nothing was rewritten. */
  readonly probes: Record<string, Json>;
}

export function rewriteAppProbes(containers: readonly Json[]): RewrittenProbes {
  const probes: Record<string, Json> = {};
  const out = containers.map((c) => {
    const container = obj(c);
    if (!container || typeof container.name !== 'string') return c;
    let changed: JsonObject | undefined;
    for (const field of Object.keys(PROBE_KINDS) as ProbeField[]) {
      const probe = obj(container[field]);
      const was = probe && original(probe, container);
      if (!probe || !was) continue;
      const path = appProbePath(container.name, field);
      probes[path] = was;
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...timing } = probe;
      changed ??= { ...container };
      changed[field] = { httpGet: { path, port: PORTS.health, scheme: 'HTTP' }, ...timing };
    }
    return changed ?? c;
  });
  return { containers: out, probes };
}
