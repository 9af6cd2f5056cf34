// The Telemetry facade without sockets: who may get a decision record, and the metric series
// cache (one prom-client child per outcome, reused).
import { EventEmitter } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { DownstreamRequest, DownstreamResponse } from '../http/facts.js';
import type { ConnectionInfo } from '../http/frontend.js';
import { MeshMetrics, type PeerLabels } from './metrics.js';
import { Telemetry } from './telemetry.js';

function fakeExchange(headers: Record<string, string>) {
  const req = Object.assign(new EventEmitter(), { headers, method: 'GET', httpVersionMajor: 1 });
  const res = Object.assign(new EventEmitter(), { write() {}, end() {} });
  return { req: req as unknown as DownstreamRequest, res: res as unknown as DownstreamResponse };
}

const conn = (remoteAddress: string): ConnectionInfo => ({ id: 1, secure: false, peerIdentity: undefined, targetPort: undefined, remoteAddress });

describe('Telemetry', () => {
  const telemetry = (decisionHeader: 'local' | 'off') =>
    new Telemetry({ workload: 'client.default', identity: () => undefined, metrics: new MeshMetrics(), decisionHeader, localAddresses: new Set(['127.0.0.1']) });

  it('gives a decision record only to the local app, on the outbound side, when asked', () => {
    const t = telemetry('local');
    const ask = { 'x-weft-debug': '1' };
    const debug = (dir: 'outbound' | 'inbound', headers: Record<string, string>, from: string) => {
      const { req, res } = fakeExchange(headers);
      return t.begin(dir, req, res, conn(from)).debug;
    };
    expect(debug('outbound', ask, '127.0.0.1')).toBe(true);
    expect(debug('outbound', ask, '10.9.9.9')).toBe(false); // another host reaching our outbound port
    expect(debug('inbound', ask, '127.0.0.1')).toBe(false); // a peer never learns our decisions
    expect(debug('outbound', { 'x-weft-debug': 'true' }, '127.0.0.1')).toBe(false);
    expect(debug('outbound', {}, '127.0.0.1')).toBe(false);
    const { req, res } = fakeExchange(ask);
    expect(telemetry('off').begin('outbound', req, res, conn('127.0.0.1')).debug).toBe(false);
  });

  it('reuses one state per series and outcome, and renders Istio labels', async () => {
    const m = new MeshMetrics();
    const labels: PeerLabels = {
      reporter: 'source', sourceWorkload: 'a', sourceNamespace: 'ns', sourcePrincipal: 'p', destinationWorkload: 'b', destinationNamespace: 'ns',
      destinationPrincipal: 'q', destinationService: 'b.ns.svc.cluster.local', destinationServiceName: 'b', destinationServiceNamespace: 'ns',
      requestProtocol: 'http', securityPolicy: 'unknown',
    };
    const s = m.series(labels);
    expect(m.series({ ...labels })).toBe(s);
    expect(s.http(200, '', '-')).toBe(s.http(200, '', '-'));
    expect(s.http(503, '14', 'UF')).toBe(s.http(503, '14', 'UF'));
    expect(s.http(200, '', '-')).not.toBe(s.http(201, '', '-'));
    m.observeRequest(s, 503, '14', 'UF', 12, 3, 4);
    const text = (await m.exposition()).body;
    expect(text).toContain(
      'istio_requests_total{reporter="source",source_workload="a",source_workload_namespace="ns",source_principal="p",destination_workload="b",destination_workload_namespace="ns",destination_principal="q",destination_service="b.ns.svc.cluster.local",destination_service_name="b",destination_service_namespace="ns",request_protocol="http",response_code="503",grpc_response_status="14",response_flags="UF",connection_security_policy="unknown"} 1',
    );
  });
});

describe('body byte counting on real servers', () => {
  async function measure(kind: 'h1' | 'h2', body: Buffer | undefined, chunked: boolean): Promise<{ received: number; sent: number }> {
    const metrics = new MeshMetrics();
    const t = new Telemetry({ workload: 'a.default', identity: () => undefined, metrics, decisionHeader: 'off' });
    const handler = (req: DownstreamRequest, res: DownstreamResponse) => {
      t.begin('outbound', req, res, conn('127.0.0.1'));
      req.pipe(new Writable({ write: (_c, _e, cb) => cb() }));
      req.on('end', () => {
        (res as http.ServerResponse).write('hello ');
        res.end('world');
      });
    };
    const server: http.Server | http2.Http2Server = kind === 'h1' ? http.createServer(handler as http.RequestListener) : http2.createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as AddressInfo).port;
    if (kind === 'h1') {
      await new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', headers: chunked ? {} : { 'content-length': String(body?.length ?? 0) } }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        if (body) req.write(body);
        req.end();
      });
    } else {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      await new Promise<void>((resolve) => {
        const s = session.request({ ':method': 'POST', ':path': '/' });
        s.resume();
        s.on('end', resolve);
        s.end(body);
      });
      session.close();
    }
    await new Promise((r) => setTimeout(r, 50));
    (server as { close(): void }).close();
    const text = (await metrics.exposition()).body;
    const sum = (name: string) => Number(new RegExp(`^${name}_sum\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);
    return { received: sum('istio_request_bytes'), sent: sum('istio_response_bytes') };
  }

  it.each([
    ['h1', false],
    ['h1', true],
    ['h2', false],
  ] as const)('%s (chunked request: %s) counts request and response bodies once', async (kind, chunked) => {
    expect(await measure(kind, Buffer.alloc(1234, 1), chunked)).toEqual({ received: 1234, sent: 11 });
  });
});
