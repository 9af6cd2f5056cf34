// The app probes a sidecar answers for the kubelet: the injector rewrites each HTTP, TCP and
// gRPC probe of an app container to `GET /app-health/<container>/<kind>` on the proxy's health
// port, and hands the original probe to the proxy as JSON (env WEFT_APP_PROBES). The kubelet
// has no mesh certificate, so under STRICT mTLS its probes to the app's port would be refused;
// the proxy runs them from inside the pod instead. This file is the contract both sides share.
import { ErrorCode, WeftError } from './errors.js';

/** The env var (and `weft proxy --app-probes`) carrying the rewritten probes. */
export const APP_PROBES_ENV = 'WEFT_APP_PROBES';

export const PROBE_KINDS = { livenessProbe: 'livez', readinessProbe: 'readyz', startupProbe: 'startupz' } as const;
export type ProbeField = keyof typeof PROBE_KINDS;

/** The path on the health port that runs `container`'s probe of `field`. */
export function appProbePath(container: string, field: ProbeField): string {
  return `/app-health/${container}/${PROBE_KINDS[field]}`;
}

export interface HttpGetAction {
  readonly port: number;
  readonly path: string;
  readonly scheme: 'HTTP' | 'HTTPS';
  readonly httpHeaders: readonly { readonly name: string; readonly value: string }[];
}

/** One probe as the kubelet would have run it, with named ports already resolved. */
export type AppProbe =
  | { readonly httpGet: HttpGetAction; readonly timeoutSeconds: number }
  | { readonly tcpSocket: { readonly port: number }; readonly timeoutSeconds: number }
  | { readonly grpc: { readonly port: number; readonly service: string }; readonly timeoutSeconds: number };

/** Health-port path → probe. */
export type AppProbes = ReadonlyMap<string, AppProbe>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Reads the probes JSON, naming `origin` (where it came from), the path and the field of the
 * first thing wrong: a proxy started with probes it cannot run must not start and look healthy.
 */
export function parseAppProbes(json: string, origin: string): AppProbes {
  const fail = (where: string, message: string): never => {
    throw new WeftError(ErrorCode.USAGE, `${origin}: ${where}: ${message}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return fail('not JSON', (err as Error).message);
  }
  if (!isObject(raw)) return fail('top level', 'must be an object of health-port path to probe');
  const probes = new Map<string, AppProbe>();
  for (const [path, p] of Object.entries(raw)) {
    if (!/^\/app-health\/[^/]+\/(livez|readyz|startupz)$/.test(path)) fail(JSON.stringify(path), 'must be /app-health/<container>/livez|readyz|startupz');
    if (!isObject(p)) return fail(path, 'must be an object');
    const timeout = p.timeoutSeconds ?? 1;
    if (typeof timeout !== 'number' || !(timeout > 0)) fail(`${path}.timeoutSeconds`, `must be a positive number, got ${JSON.stringify(timeout)}`);
    const port = (action: Record<string, unknown>, field: string): number => {
      const v = action.port;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(`${path}.${field}.port`, `must be a port number, got ${JSON.stringify(v)}`);
      return v as number;
    };
    const actions = ['httpGet', 'tcpSocket', 'grpc'].filter((k) => p[k] !== undefined);
    if (actions.length !== 1) fail(path, `must have exactly one of httpGet, tcpSocket, grpc (has ${actions.join(', ') || 'none'})`);
    const timeoutSeconds = timeout as number;
    if (isObject(p.httpGet)) {
      const h = p.httpGet;
      const scheme = h.scheme ?? 'HTTP';
      if (scheme !== 'HTTP' && scheme !== 'HTTPS') fail(`${path}.httpGet.scheme`, `must be HTTP or HTTPS, got ${JSON.stringify(scheme)}`);
      const reqPath = h.path ?? '/';
      if (typeof reqPath !== 'string' || !reqPath.startsWith('/')) fail(`${path}.httpGet.path`, `must start with "/", got ${JSON.stringify(reqPath)}`);
      const headers = h.httpHeaders ?? [];
      if (!Array.isArray(headers) || !headers.every((x) => isObject(x) && typeof x.name === 'string' && typeof x.value === 'string')) {
        fail(`${path}.httpGet.httpHeaders`, 'must be a list of { name, value } strings');
      }
      const httpHeaders = (headers as { name: string; value: string }[]).map(({ name, value }) => ({ name, value }));
      probes.set(path, { httpGet: { port: port(h, 'httpGet'), path: reqPath as string, scheme: scheme as 'HTTP' | 'HTTPS', httpHeaders }, timeoutSeconds });
    } else if (isObject(p.tcpSocket)) {
      probes.set(path, { tcpSocket: { port: port(p.tcpSocket, 'tcpSocket') }, timeoutSeconds });
    } else if (isObject(p.grpc)) {
      const service = p.grpc.service ?? '';
      if (typeof service !== 'string') fail(`${path}.grpc.service`, `must be a string, got ${JSON.stringify(service)}`);
      probes.set(path, { grpc: { port: port(p.grpc, 'grpc'), service: service as string }, timeoutSeconds });
    } else {
      fail(`${path}.${actions[0]}`, 'must be an object');
    }
  }
  return probes;
}
