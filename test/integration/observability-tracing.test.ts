// Distributed tracing through a sidecar pair: each hop adds a SERVER and a CLIENT span, linked
// parent → child across both proxies, exported over OTLP/gRPC to an in-process receiver; W3C
// context from the app is continued, an unsampled parent is obeyed, B3 is carried when used.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { canaryConfig, startTestMesh, viaProxy, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';

describe('tracing through a sidecar pair', () => {
  let receiver: OtlpReceiver;
  let mesh: TestMesh;
  let client: TestSidecar;
  let server: TestSidecar;
  let app: http.Server;
  /** Headers the app received, by request path. */
  const seen = new Map<string, http.IncomingHttpHeaders>();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    app = http.createServer((req, res) => {
      seen.set(req.url ?? '', req.headers);
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const port = (app.address() as AddressInfo).port;
    // reviews-v1 is the app; v2 gets weight 0 and no sidecar.
    mesh = await startTestMesh(canaryConfig(port, port, 100, 0));
    const tracing = { otlpEndpoint: receiver.endpoint, traceSamplingPercent: 100 };
    [client, server] = await Promise.all([mesh.sidecar('client.default', tracing), mesh.sidecar('reviews-v1.default', tracing)]);
    await waitReady(client, server);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://reviews:9080/warmup')).status).toBe(200), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    await mesh?.close();
    app?.close();
    await receiver?.close();
  });

  const trace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  const one = (spans: ReceivedSpan[], service: string, kind: ReceivedSpan['kind']) => {
    const found = spans.filter((s) => s.service === service && s.kind === kind);
    expect(found, `${service} ${kind}`).toHaveLength(1);
    return found[0]!;
  };

  it('starts a trace at the client sidecar and links four spans across two hops', async () => {
    expect((await viaProxy(client.outbound, 'http://reviews:9080/traced')).status).toBe(200);
    const traceparent = String(seen.get('/traced')?.traceparent);
    const [, traceId, appParent, flags] = /^00-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})$/.exec(traceparent) ?? [];
    expect(flags).toBe('01');
    await eventually(() => expect(trace(traceId!)).toHaveLength(4), { timeoutMs: 15_000 });
    const spans = trace(traceId!);
    const s1 = one(spans, 'client.default', 'server');
    const c1 = one(spans, 'client.default', 'client');
    const s2 = one(spans, 'reviews-v1.default', 'server');
    const c2 = one(spans, 'reviews-v1.default', 'client');
    expect(s1.parentSpanId).toBe('');
    expect(c1.parentSpanId).toBe(s1.spanId);
    expect(s2.parentSpanId).toBe(c1.spanId);
    expect(c2.parentSpanId).toBe(s2.spanId);
    // The app's parent is the last proxy's client span.
    expect(appParent).toBe(c2.spanId);
    // Mesh attributes on the spans.
    expect(s1.attributes).toMatchObject({
      'weft.reporter': 'source',
      'weft.source.workload': 'client.default',
      'weft.destination.workload': 'reviews-v1.default',
      'weft.route': 'default/reviews/0',
      'weft.upstream.cluster': 'outbound|9080||reviews-v1.default.svc.cluster.local',
      'weft.response_flags': '-',
      'http.response.status_code': 200,
      'http.request.method': 'GET',
      'url.path': '/traced',
    });
    expect(String(s1.attributes['weft.upstream.host'])).toBe(`127.0.0.1:${server.proxy.ports.inbound}`);
    expect(s2.attributes).toMatchObject({
      'weft.reporter': 'destination',
      'weft.source.workload': 'client.default',
      'weft.source.principal': 'spiffe://cluster.local/ns/default/sa/client',
      'weft.destination.workload': 'reviews-v1.default',
      'weft.authz': 'allow',
    });
  });

  it('continues the trace the app started (W3C), and leaves an unsampled one alone', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    await viaProxy(client.outbound, 'http://reviews:9080/w3c', { headers: { traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=x' } });
    await eventually(() => expect(trace(traceId)).toHaveLength(4), { timeoutMs: 15_000 });
    expect(one(trace(traceId), 'client.default', 'server').parentSpanId).toBe(parent);
    expect(seen.get('/w3c')?.tracestate).toBe('vendor=x');

    const unsampled = '0af7651916cd43dd8448eb211c80319c';
    const tp = `00-${unsampled}-b7ad6b7169203331-00`;
    await viaProxy(client.outbound, 'http://reviews:9080/unsampled', { headers: { traceparent: tp } });
    // Passed through untouched, and nothing recorded (the sampled trace above arrived; this one never does).
    expect(seen.get('/unsampled')?.traceparent).toBe(tp);
    await viaProxy(client.outbound, 'http://reviews:9080/marker', { headers: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` } });
    await eventually(() => expect(trace('1'.repeat(32))).toHaveLength(4), { timeoutMs: 15_000 });
    expect(trace(unsampled)).toEqual([]);
  });

  it('carries B3 when the request came with B3', async () => {
    const traceId = '463ac35c9f6413ad48485a3953bb6124';
    await viaProxy(client.outbound, 'http://reviews:9080/b3', {
      headers: { 'x-b3-traceid': traceId, 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' },
    });
    const h = seen.get('/b3')!;
    expect(h['x-b3-traceid']).toBe(traceId);
    expect(h['x-b3-sampled']).toBe('1');
    expect(String(h.traceparent)).toContain(traceId);
    await eventually(() => expect(trace(traceId)).toHaveLength(4), { timeoutMs: 15_000 });
    expect(one(trace(traceId), 'client.default', 'server').parentSpanId).toBe('a2fb4a1d1a96d312');
  });
});
