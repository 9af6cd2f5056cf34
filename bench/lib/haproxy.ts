// HAProxy for the benchmarks, in two roles, each one thread (`nbthread 1`) pinned by the caller:
// the fixed-response backend (HTTP/1.1 and h2c; a C server that is never the bottleneck) and
// the reference reverse proxy that Weft's sidecar is compared with.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { start, type Child } from './proc.js';
import { LOOPBACK, waitPort } from './net.js';

/** The body every fixed-response backend answers with (HTTP/1.1 and h2c). */
export const BACKEND_BODY = 'hello from the weft bench backend\n';

const GLOBAL = `global
  nbthread 1
  maxconn 4000
  tune.bufsize 16384
defaults
  mode http
  option dontlognull
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  timeout http-request 60s
`;

export interface BackendPorts {
  readonly http1: number;
  readonly h2c: number;
}

/** Fixed 200 answers on an HTTP/1.1 port and an h2c (prior knowledge) port. */
export function backendConfig(p: BackendPorts): string {
  return `${GLOBAL}
frontend fixed
  bind ${LOOPBACK}:${p.http1}
  bind ${LOOPBACK}:${p.h2c} proto h2
  http-request return status 200 content-type text/plain string "${BACKEND_BODY.replace('\n', '\\n')}"
`;
}

export interface ReferenceProxyPorts {
  /** Listening ports of the reference proxy. */
  readonly listen: { readonly http1: number; readonly h2c: number; readonly grpc: number };
  /** Where it forwards. */
  readonly upstream: { readonly http1: number; readonly h2c: number; readonly grpc: number };
}

/**
 * A plain reverse proxy: HTTP/1.1 keep-alive in and out (server connections reused across
 * clients, as Weft's pools do), h2c in and out, gRPC (h2c) in and out. No logging.
 */
export function referenceProxyConfig(p: ReferenceProxyPorts): string {
  return `${GLOBAL}
frontend http1
  bind ${LOOPBACK}:${p.listen.http1}
  default_backend http1
frontend h2c
  bind ${LOOPBACK}:${p.listen.h2c} proto h2
  default_backend h2c
frontend grpc
  bind ${LOOPBACK}:${p.listen.grpc} proto h2
  default_backend grpc
backend http1
  http-reuse always
  server s1 ${LOOPBACK}:${p.upstream.http1}
backend h2c
  http-reuse always
  server s1 ${LOOPBACK}:${p.upstream.h2c} proto h2
backend grpc
  http-reuse always
  server s1 ${LOOPBACK}:${p.upstream.grpc} proto h2
`;
}

/** Writes `config` into `dir` and starts HAProxy in the foreground on `cpu`. */
export async function startHaproxy(name: string, dir: string, config: string, ports: readonly number[], cpu: string | undefined): Promise<Child> {
  const file = path.join(dir, `${name}.cfg`);
  writeFileSync(file, config);
  const child = start(name, 'haproxy', ['-db', '-f', file], { cpu, logFile: path.join(dir, `${name}.log`) });
  try {
    for (const port of ports) await waitPort(port, 5_000);
  } catch (err) {
    await child.stop();
    throw new Error(`${name} did not start (see ${path.join(dir, `${name}.log`)}): ${(err as Error).message}`);
  }
  return child;
}
