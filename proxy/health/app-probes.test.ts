// The app probes the proxy runs for the kubelet, against real servers on loopback: HTTP and
// HTTPS (any certificate, as the kubelet), TCP, and the gRPC health service of a grpc-js server;
// each healthy, unhealthy, unreachable and too slow, with the reason in the answer's body.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCa, testIdentity, workloadCert } from '../../certs/testing.js';
import type { AppProbe } from '../../core/app-probes.js';
import { freePort } from '../../test/support/ports.js';
import { runProbe } from './app-probes.js';

const HOST = '127.0.0.1';
const port = (s: { address(): AddressInfo | string | null }) => (s.address() as AddressInfo).port;
const get = (p: number, path: string, headers: { name: string; value: string }[] = [], scheme: 'HTTP' | 'HTTPS' = 'HTTP', timeoutSeconds = 1): AppProbe => ({
  httpGet: { port: p, path, scheme, httpHeaders: headers },
  timeoutSeconds,
});

describe('HTTP and HTTPS probes', () => {
  const seen: http.IncomingHttpHeaders[] = [];
  const handler: http.RequestListener = (req, res) => {
    seen.push(req.headers);
    if (req.url === '/ok') res.writeHead(204).end();
    else if (req.url === '/moved') res.writeHead(302, { location: '/elsewhere' }).end();
    else if (req.url === '/sick') res.writeHead(500).end('database down');
    else if (req.url === '/slow') setTimeout(() => res.writeHead(200).end(), 1_500);
    else res.writeHead(404).end();
  };
  const plain = http.createServer(handler);
  let secure: https.Server;

  beforeAll(async () => {
    const cert = await workloadCert(await testCa(), testIdentity('default', 'web'));
    secure = https.createServer({ key: cert.keyPem, cert: cert.chainPem.join('\n') }, handler);
    await Promise.all([new Promise<void>((r) => plain.listen(0, HOST, r)), new Promise<void>((r) => secure.listen(0, HOST, r))]);
  });
  afterAll(() => {
    plain.closeAllConnections();
    secure.closeAllConnections();
    plain.close();
    secure.close();
  });

  it('2xx and 3xx are healthy (a redirect is not followed), 4xx/5xx keep their status', async () => {
    expect(await runProbe(get(port(plain), '/ok'), HOST)).toEqual({ status: 200, body: `HTTP GET ${HOST}:${port(plain)}/ok: 204\n` });
    expect((await runProbe(get(port(plain), '/moved'), HOST)).status).toBe(200);
    expect(await runProbe(get(port(plain), '/sick'), HOST)).toEqual({ status: 500, body: `HTTP GET ${HOST}:${port(plain)}/sick: the app answered 500\n` });
    expect((await runProbe(get(port(plain), '/nope'), HOST)).status).toBe(404);
  });

  it("sends the probe's headers (and the kubelet's user agent unless one is given)", async () => {
    seen.length = 0;
    await runProbe(get(port(plain), '/ok', [{ name: 'X-Probe', value: 'ready' }, { name: 'Host', value: 'web.local' }]), HOST);
    expect(seen[0]).toMatchObject({ 'x-probe': 'ready', host: 'web.local', 'user-agent': 'kube-probe/weft' });
  });

  it('HTTPS does not verify the certificate, as the kubelet does not', async () => {
    expect(await runProbe(get(port(secure), '/ok', [], 'HTTPS'), HOST)).toEqual({ status: 200, body: `HTTPS GET ${HOST}:${port(secure)}/ok: 204\n` });
  });

  it('too slow, or nobody listening: 503 saying why', async () => {
    const slow = await runProbe(get(port(plain), '/slow', [], 'HTTP', 0.3), HOST);
    expect(slow).toEqual({ status: 503, body: `HTTP GET ${HOST}:${port(plain)}/slow: no answer within 300 ms\n` });
    const closed = await freePort();
    const refused = await runProbe(get(closed, '/ok'), HOST);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatch(/ECONNREFUSED/);
  });
});

describe('TCP probes', () => {
  it('a listening port is healthy, a closed one is not', async () => {
    const server = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => server.listen(0, HOST, r));
    try {
      expect(await runProbe({ tcpSocket: { port: port(server) }, timeoutSeconds: 1 }, HOST)).toEqual({ status: 200, body: `TCP ${HOST}:${port(server)}: connected\n` });
    } finally {
      server.close();
    }
    const closed = await runProbe({ tcpSocket: { port: await freePort() }, timeoutSeconds: 1 }, HOST);
    expect(closed.status).toBe(503);
    expect(closed.body).toMatch(/ECONNREFUSED/);
  });
});

describe('gRPC probes (grpc.health.v1 served by grpc-js)', () => {
  const Req = new protobuf.Type('HealthCheckRequest').add(new protobuf.Field('service', 1, 'string'));
  const Res = new protobuf.Type('HealthCheckResponse').add(new protobuf.Field('status', 1, 'int32'));
  /** Service name → ServingStatus (1 SERVING, 2 NOT_SERVING); unknown names: NOT_FOUND. */
  const statuses = new Map([['', 1], ['web', 1], ['batch', 2]]);
  const server = new grpc.Server();
  let grpcPort = 0;

  beforeAll(async () => {
    server.addService(
      {
        Check: {
          path: '/grpc.health.v1.Health/Check',
          requestStream: false,
          responseStream: false,
          requestSerialize: (m: { service: string }) => Buffer.from(Req.encode(m).finish()),
          requestDeserialize: (b: Buffer) => Req.decode(b) as unknown as { service: string },
          responseSerialize: (m: { status: number }) => Buffer.from(Res.encode(m).finish()),
          responseDeserialize: (b: Buffer) => Res.decode(b) as unknown as { status: number },
        },
      },
      {
        Check: (call: grpc.ServerUnaryCall<{ service: string }, { status: number }>, cb: grpc.sendUnaryData<{ status: number }>) => {
          const status = statuses.get(call.request.service);
          if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
          else cb(null, { status });
        },
      },
    );
    grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync(`${HOST}:0`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  });
  afterAll(() => server.forceShutdown());

  const probe = (service: string): AppProbe => ({ grpc: { port: grpcPort, service }, timeoutSeconds: 2 });

  it('SERVING is healthy, for the server and for a named service', async () => {
    expect(await runProbe(probe(''), HOST)).toEqual({ status: 200, body: `gRPC health ${HOST}:${grpcPort}: SERVING\n` });
    expect((await runProbe(probe('web'), HOST)).status).toBe(200);
  });

  it('NOT_SERVING, an unknown service, or no server: 503 saying why', async () => {
    expect(await runProbe(probe('batch'), HOST)).toEqual({ status: 503, body: `gRPC health ${HOST}:${grpcPort} service "batch": NOT_SERVING\n` });
    expect(await runProbe(probe('nope'), HOST)).toEqual({ status: 503, body: `gRPC health ${HOST}:${grpcPort} service "nope": grpc-status 5 (unknown service nope)\n` });
    const gone = await runProbe({ grpc: { port: await freePort(), service: '' }, timeoutSeconds: 1 }, HOST);
    expect(gone.status).toBe(503);
    expect(gone.body).toMatch(/ECONNREFUSED/);
  });
});
