// The lean path's heads as field lists (fields.ts: upstreamRequestFields, responseFieldList,
// forwardableTrailerFields; http/headers.ts: removeFields, fieldValue; Telemetry.sendingFields;
// inbound/xfcc.ts: setClientCertField)
// against the HeaderMap functions they stand in for: the same fields out for the same fields in,
// table-driven. Order between different names may differ (a map groups repeats); what is sent is
// compared as a map, and the order of repeated fields as sent.
import { describe, expect, it } from 'vitest';
import { downstreamResponseHeaders, fieldValue, forwardableTrailers, fromNodeHeaders, removeFields, upstreamRequestHeaders, type HeaderMap } from '../http/headers.js';
import { MeshMetrics } from '../telemetry/metrics.js';
import { Telemetry } from '../telemetry/telemetry.js';
import { RequestRecord } from '../telemetry/record.js';
import { clientCertAdjust, setClientCertField, setClientCertHeader } from '../inbound/xfcc.js';
import { fieldEditOf, fieldsToHeaderMap, forwardableTrailerFields, invalidValue, responseFieldList, upstreamRequestFields } from './fields.js';

/** A field list as a HeaderMap (pseudo-headers left out), repeats as arrays in order. */
function asMap(fields: readonly string[]): HeaderMap {
  return fieldsToHeaderMap(fields, false);
}

const PSEUDO = [':method', 'GET', ':scheme', 'http', ':authority', 'svc', ':path', '/'];

const requests: [string, string[]][] = [
  ['plain fields', [...PSEUDO, 'user-agent', 'h2load', 'accept', '*/*']],
  ['repeated fields, in their order', [...PSEUDO, 'cookie', 'a=1', 'x-a', '1', 'cookie', 'b=2', 'x-a', '2']],
  ['the client’s own x-request-id and x-forwarded-proto', [...PSEUDO, 'x-request-id', 'given', 'x-forwarded-proto', 'https']],
  ['hop-by-hop fields and what Connection names', [...PSEUDO, 'connection', 'x-private, Keep-Alive', 'keep-alive', 'timeout=5', 'x-private', 'p', 'upgrade', 'h2c', 'host', 'h', 'proxy-authorization', 'secret', 'x-kept', 'k']],
  ['te: trailers kept once, other te values dropped', [...PSEUDO, 'te', 'gzip', 'te', 'Trailers, deflate', 'te', 'trailers', 'content-type', 'application/grpc']],
  ['te without trailers dropped', [...PSEUDO, 'te', 'gzip']],
];

describe('upstreamRequestFields = upstreamRequestHeaders on the list', () => {
  it.each(requests)('%s', (_name, fields) => {
    const out = upstreamRequestFields(fields, 'http', fields.slice(0, 8));
    expect(out.slice(0, 8)).toEqual(fields.slice(0, 8));
    const expected = upstreamRequestHeaders(asMap(fields), 'http');
    const got = asMap(out);
    // x-request-id is made afresh on each side when the client sent none.
    if (fieldValue(fields, 8, 'x-request-id') === undefined) {
      expect(got['x-request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      delete got['x-request-id'];
      delete expected['x-request-id'];
    }
    expect(got).toEqual(expected);
  });
});

const responses: [string, number, string[]][] = [
  ['plain fields, Date added', 200, [':status', '200', 'content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2']],
  ['the upstream’s Date kept', 404, [':status', '404', 'date', 'then', 'content-length', '0']],
  ['hop-by-hop, what Connection names, and te', 204, [':status', '204', 'connection', 'x-private, keep-alive', 'x-private', '1', 'keep-alive', 'timeout=5', 'te', 'trailers', 'transfer-encoding', 'chunked', 'upgrade', 'h2c', 'x-kept', 'yes']],
];

describe('responseFieldList = downstreamResponseHeaders + responsePrefix on the list', () => {
  it.each(responses)('%s', (_name, status, fields) => {
    const out = responseFieldList(status, fields);
    expect(out.slice(0, 2)).toEqual([':status', String(status)]);
    expect(out.filter((_, i) => i % 2 === 0 && out[i]!.startsWith(':'))).toEqual([':status']);
    const node: Record<string, string | string[]> = {};
    for (let i = 2; i < fields.length; i += 2) {
      const cur = node[fields[i]!];
      node[fields[i]!] = cur === undefined ? fields[i + 1]! : ([] as string[]).concat(cur, fields[i + 1]!);
    }
    const expected = downstreamResponseHeaders(fromNodeHeaders(node));
    if (expected.date === undefined) expected.date = fieldValue(out, 2, 'date')!;
    expect(fieldValue(out, 2, 'date')).toMatch(fields.includes('date') ? /^then$/ : / GMT$/);
    expect(asMap(out)).toEqual(expected);
  });
});

describe('forwardableTrailerFields = forwardableTrailers on the list', () => {
  it.each<[string, string[]]>([
    ['gRPC status', ['grpc-status', '0', 'grpc-message', 'ok']],
    ['framing and hop-by-hop fields', ['content-length', '3', 'te', 'trailers', 'connection', 'x-c', 'x-c', '1', 'transfer-encoding', 'chunked', 'x-kept', 'a', 'x-kept', 'b']],
    ['nothing left', ['content-length', '3']],
  ])('%s', (_name, fields) => {
    expect(asMap(forwardableTrailerFields(fields))).toEqual(forwardableTrailers(asMap(fields)));
  });
});

describe('removeFields and fieldValue', () => {
  it('removes every field of a name after `from`, in place, the rest in order', () => {
    const f = [':path', '/', 'a', '1', 'b', '2', 'a', '3', 'c', '4'];
    removeFields(f, 2, 'a');
    expect(f).toEqual([':path', '/', 'b', '2', 'c', '4']);
    removeFields(f, 2, 'none');
    expect(f).toEqual([':path', '/', 'b', '2', 'c', '4']);
    expect(fieldValue(f, 2, 'c')).toBe('4');
    expect(fieldValue(f, 0, 'x')).toBeUndefined();
  });
});

describe('Telemetry.sendingFields = Telemetry.sending on the list', () => {
  const telemetry = new Telemetry({ workload: 'client.ns', identity: () => undefined, metrics: new MeshMetrics(), decisionHeader: 'off', localAddresses: new Set() });
  const record = (direction: 'outbound' | 'inbound') =>
    new RequestRecord(telemetry, direction, {} as never, {} as never, { secure: false, peerIdentity: undefined, targetPort: undefined, remoteAddress: '127.0.0.1' } as never, false, false);

  it.each<['outbound' | 'inbound', string[]]>([
    ['outbound', [...PSEUDO, 'x-request-id', 'id-1', 'x-weft-debug', '1', 'x-weft-source-workload', 'spoofed.ns', 'x-a', '1']],
    ['outbound', [...PSEUDO, 'x-a', '1']],
    ['inbound', [...PSEUDO, 'x-request-id', 'id-2', 'x-weft-source-workload', 'peer.ns', 'x-a', '1']],
  ])('%s: %j', (direction, fields) => {
    const viaMap = record(direction);
    const map = asMap(fields);
    viaMap.sending('c', 'svc', map, false);
    const viaList = record(direction);
    const list = fields.slice();
    expect(viaList.sendingFields('c', 'svc', list, 8)).toBe(true);
    expect(list.slice(0, 8)).toEqual(PSEUDO);
    expect(asMap(list)).toEqual({ ...map });
    expect(viaList.requestId).toBe(viaMap.requestId);
    expect([viaList.forwarded, viaList.cluster, viaList.upstreamAuthority]).toEqual([true, 'c', 'svc']);
  });
});

describe('the XFCC adjustment on the list = setClientCertHeader', () => {
  const peer = 'spiffe://cluster.local/ns/a/sa/client';
  const own = 'spiffe://cluster.local/ns/b/sa/server';
  it.each<[string, string[], string | undefined, string | undefined]>([
    ['an authenticated peer, our identity known', [...PSEUDO, 'x-a', '1'], peer, own],
    ['an authenticated peer, our identity unknown', [...PSEUDO, 'x-a', '1'], peer, undefined],
    ['what the client sent is replaced', [...PSEUDO, 'x-forwarded-client-cert', 'URI=spoofed', 'x-a', '1', 'x-forwarded-client-cert', 'By=x'], peer, own],
    ['no peer: what the client sent is removed, nothing set', [...PSEUDO, 'x-forwarded-client-cert', 'URI=spoofed', 'x-a', '1'], undefined, own],
  ])('%s', (_name, fields, p, o) => {
    const expected = setClientCertHeader(asMap(fields), p, o);
    const list = fields.slice();
    const added = setClientCertField(list, 8, p, o);
    expect(list.slice(0, 8)).toEqual(PSEUDO);
    expect(asMap(list)).toEqual(expected);
    expect(added).toBe(expected['x-forwarded-client-cert']);
    // The listener's function does both, and is shared while peer and identity stay the same.
    const adjust = clientCertAdjust(p, o);
    expect(adjust(asMap(fields))).toEqual(expected);
    const viaAdjust = fields.slice();
    expect(fieldEditOf(adjust)!(viaAdjust, 8)).toBe(added);
    expect(viaAdjust).toEqual(list);
    expect(clientCertAdjust(p, o)).toBe(adjust);
  });

  it('a new peer or identity gets its own adjustment', () => {
    const a = clientCertAdjust(peer, own);
    expect(clientCertAdjust('spiffe://cluster.local/ns/a/sa/other', own)).not.toBe(a);
    expect(clientCertAdjust(peer, undefined)(asMap(PSEUDO))).toEqual({ 'x-forwarded-client-cert': `URI=${peer}` });
  });

  it('an adjustment without a list edit has none', () => {
    expect(fieldEditOf((h) => h)).toBeUndefined();
    expect(fieldEditOf(undefined)).toBeUndefined();
  });

  it('invalidValue: what HTTP/2 cannot carry', () => {
    expect(invalidValue('URI=spiffe://td/ns/a/sa/b')).toBe(false);
    expect(invalidValue('a\r\nb')).toBe(true);
    expect(invalidValue('a\0')).toBe(true);
  });
});
