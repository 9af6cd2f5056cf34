// Tracing decisions and propagation without a network: parent decisions obeyed, roots sampled
// at the configured rate, context injected in W3C (and B3 when the request used it).
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import type { HeaderMap } from '../http/headers.js';
import { parentSampled, Tracing } from './tracing.js';

const make = (rate: number, random = () => 0.5) =>
  Tracing.create({ endpoint: 'http://127.0.0.1:1', rootSampleRate: rate, workload: 'a.default', namespace: 'default', exporter: new InMemorySpanExporter(), random });

describe('tracing', () => {
  it('reads the sampling decision a request carries', () => {
    expect(parentSampled({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` })).toBe(true);
    expect(parentSampled({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-00` })).toBe(false);
    expect(parentSampled({ traceparent: 'garbage' })).toBeUndefined();
    expect(parentSampled({ b3: `${'a'.repeat(32)}-${'b'.repeat(16)}-1` })).toBe(true);
    expect(parentSampled({ b3: '0' })).toBe(false);
    expect(parentSampled({ b3: `${'a'.repeat(32)}-${'b'.repeat(16)}` })).toBeUndefined();
    expect(parentSampled({ 'x-b3-sampled': '0', 'x-b3-traceid': 'a'.repeat(32) })).toBe(false);
    expect(parentSampled({ 'x-b3-flags': '1' })).toBe(true);
    expect(parentSampled({})).toBeUndefined();
  });

  it('samples roots at the configured rate and obeys parents whatever the rate', async () => {
    const never = await make(0);
    expect(never.startServer({}, 'x', Date.now())).toBeUndefined();
    expect(never.startServer({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` }, 'x', Date.now())).toBeDefined();
    const half = await make(0.5, () => 0.49);
    expect(half.startServer({}, 'x', Date.now())).toBeDefined();
    const halfMiss = await make(0.5, () => 0.5);
    expect(halfMiss.startServer({}, 'x', Date.now())).toBeUndefined();
    const always = await make(1);
    expect(always.startServer({ traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-00` }, 'x', Date.now())).toBeUndefined();
  });

  it('injects the client span as the parent, in W3C and in the B3 form the request used', async () => {
    const t = await make(1);
    const traceId = 'c'.repeat(32);
    const server = t.startServer({ traceparent: `00-${traceId}-${'d'.repeat(16)}-01`, tracestate: 'k=v' }, 'x', Date.now())!;
    const carrier: HeaderMap = {};
    const client = t.startClient(server, 'y', {}, carrier, 'none');
    expect(carrier.traceparent).toBe(`00-${traceId}-${client.spanContext().spanId}-01`);
    expect(carrier.tracestate).toBe('k=v');
    expect(carrier['x-b3-traceid']).toBeUndefined();
    const multi: HeaderMap = {};
    t.startClient(server, 'y', {}, multi, 'multi');
    expect(multi['x-b3-traceid']).toBe(traceId);
    const single: HeaderMap = {};
    t.startClient(server, 'y', {}, single, 'single');
    expect(String(single.b3)).toMatch(new RegExp(`^${traceId}-[\\da-f]{16}-1$`));
    expect(Tracing.b3Form({ b3: '1' })).toBe('single');
    expect(Tracing.b3Form({ 'x-b3-traceid': traceId })).toBe('multi');
    await t.shutdown();
  });
});
