// Runs the app's own probes for the kubelet (core/app-probes.ts says why): each rewritten probe
// is an endpoint on the health port that probes the app from inside the pod, as the kubelet
// would have — HTTP(S) GET, TCP connect, gRPC health check — and answers 200 when the app is
// healthy, else the app's status or 503, with the reason in the body for `kubectl describe`.
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import protobuf from 'protobufjs';
import type { AppProbe, AppProbes, HttpGetAction } from '../../core/app-probes.js';
import type { Handler } from '../../core/http-server.js';

export interface ProbeAnswer {
  readonly status: number;
  readonly body: string;
}

/** The health-port routes of `probes`, probing the app at `host` (its loopback by default). */
export function appProbeRoutes(probes: AppProbes, host = '127.0.0.1'): Record<string, Handler> {
  const routes: Record<string, Handler> = {};
  for (const [path, probe] of probes) routes[path] = () => runProbe(probe, host);
  return routes;
}

export function runProbe(probe: AppProbe, host: string): Promise<ProbeAnswer> {
  const timeoutMs = probe.timeoutSeconds * 1000;
  if ('httpGet' in probe) return httpProbe(probe.httpGet, host, timeoutMs);
  if ('tcpSocket' in probe) return tcpProbe(probe.tcpSocket.port, host, timeoutMs);
  return grpcProbe(probe.grpc.port, probe.grpc.service, host, timeoutMs);
}

const failed = (what: string, err: unknown): ProbeAnswer => ({ status: 503, body: `${what}: ${err instanceof Error ? err.message : String(err)}\n` });

function httpProbe(a: HttpGetAction, host: string, timeoutMs: number): Promise<ProbeAnswer> {
  const what = `${a.scheme} GET ${host}:${a.port}${a.path}`;
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/weft', accept: '*/*' };
  for (const h of a.httpHeaders) headers[h.name.toLowerCase()] = h.value;
  return new Promise((resolve) => {
    const options = { host, port: a.port, path: a.path, method: 'GET', headers, timeout: timeoutMs, agent: false as const };
    // As the kubelet: an HTTPS probe does not verify the app's certificate.
    const req = a.scheme === 'HTTPS' ? https.request({ ...options, rejectUnauthorized: false }) : http.request(options);
    req.once('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      // The kubelet counts 200-399 as healthy; a redirect is not followed here, it is success.
      if (status >= 200 && status < 400) resolve({ status: 200, body: `${what}: ${status}\n` });
      else resolve({ status: status >= 400 && status < 600 ? status : 503, body: `${what}: the app answered ${status}\n` });
    });
    req.once('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.once('error', (err) => resolve(failed(what, err)));
    req.end();
  });
}

function tcpProbe(port: number, host: string, timeoutMs: number): Promise<ProbeAnswer> {
  const what = `TCP ${host}:${port}`;
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once('connect', () => {
      socket.destroy();
      resolve({ status: 200, body: `${what}: connected\n` });
    });
    socket.once('error', (err) => resolve(failed(what, err)));
  });
}

/** grpc.health.v1.HealthCheckResponse.ServingStatus names. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** `grpc.health.v1.Health/Check` over plaintext HTTP/2, as the kubelet's gRPC probe. */
function grpcProbe(port: number, service: string, host: string, timeoutMs: number): Promise<ProbeAnswer> {
  const what = `gRPC health ${host}:${port}${service ? ` service "${service}"` : ''}`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (a: ProbeAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => done(failed(what, new Error(`no answer within ${timeoutMs} ms`))), timeoutMs);
    const session = http2.connect(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
    session.on('error', (err) => done(failed(what, err)));
    const req = session.request({
      ':method': 'POST',
      ':path': '/grpc.health.v1.Health/Check',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    let grpcMessage = '';
    req.on('response', (h) => {
      if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']); // trailers-only
      grpcMessage = grpcMessageOf(h['grpc-message']);
    });
    req.on('trailers', (t) => {
      grpcStatus = String(t['grpc-status'] ?? '');
      grpcMessage = grpcMessageOf(t['grpc-message']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('error', (err) => done(failed(what, err)));
    req.on('end', () => {
      if (grpcStatus !== '0') return done({ status: 503, body: `${what}: grpc-status ${grpcStatus ?? 'missing'}${grpcMessage ? ` (${grpcMessage})` : ''}\n` });
      let status: number;
      try {
        status = servingStatus(Buffer.concat(chunks));
      } catch (err) {
        return done(failed(`${what}: unreadable HealthCheckResponse`, err));
      }
      const name = SERVING_STATUS[status] ?? String(status);
      done(status === 1 ? { status: 200, body: `${what}: ${name}\n` } : { status: 503, body: `${what}: ${name}\n` });
    });
    req.end(grpcFrame(service));
  });
}

// grpc.health.v1 (grpc/health/v1/health.proto), the two messages the probe needs.
const HealthCheckRequest = new protobuf.Type('HealthCheckRequest').add(new protobuf.Field('service', 1, 'string'));
const HealthCheckResponse = new protobuf.Type('HealthCheckResponse').add(new protobuf.Field('status', 1, 'int32'));

/** grpc-message is percent-encoded on the wire. */
function grpcMessageOf(v: string | string[] | undefined): string {
  const raw = String(v ?? '');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** One gRPC message (uncompressed) holding HealthCheckRequest { service }. */
function grpcFrame(service: string): Buffer {
  const message = HealthCheckRequest.encode(HealthCheckRequest.create({ service })).finish();
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** HealthCheckResponse.status from the response's one gRPC message; 0 (UNKNOWN) if there is none. */
function servingStatus(body: Buffer): number {
  if (body.length < 5 || body[0] !== 0) return 0;
  const message = HealthCheckResponse.decode(body.subarray(5, 5 + body.readUInt32BE(1))) as unknown as { status?: number };
  return message.status ?? 0;
}
