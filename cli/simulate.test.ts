// `weft simulate`: one request through the proxy's own planner, offline, on a fixture config
// (golden outputs), and the request-line parser.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { expectGolden } from '../test/support/golden.js';
import { parseRequestLine, runSimulate } from './simulate.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'test/golden/simulate');
const sim = (from: string, request: string, output: 'table' | 'json' = 'table') =>
  runSimulate({ config: path.join(dir, 'config'), from, request, output, seed: 7 });

describe('weft simulate', () => {
  it('a tester: header match, rewrite and header filters, timeout, allowed by policy', async () => {
    const text = await sim('client', 'GET http://reviews:9080/api/items -H x-user:test -H x-debug:1');
    expectGolden(path.join(dir, 'tester.txt'), text);
    const json = JSON.parse(await sim('client', 'GET http://reviews:9080/api/items -H x-user:test', 'json'));
    expect(json).toMatchObject({
      outcome: 'forward',
      route: { name: 'default/reviews/testers' },
      backends: [{ cluster: 'outbound|9080||reviews-v2.default.svc.cluster.local', chosen: true }],
      upstream: { path: '/v2/api/items' },
      timeoutMs: 5000,
      policy: [{ workload: 'reviews-v2.default', verdict: 'ALLOW' }],
    });
  });

  it('the canary split, with every backend and its share', async () => {
    expectGolden(path.join(dir, 'canary.txt'), await sim('client', 'http://reviews/'));
  });

  it('a caller the policy denies', async () => {
    const json = JSON.parse(await sim('stranger', 'GET http://reviews.default.svc.cluster.local:9080/api/x -H x-user:test', 'json'));
    expect(json.policy).toEqual([{ workload: 'reviews-v2.default', verdict: 'DENY', reason: expect.stringContaining('client-reads') }]);
    expectGolden(path.join(dir, 'denied.txt'), await sim('stranger', 'GET http://reviews.default.svc.cluster.local:9080/api/x -H x-user:test'));
  });

  it('a redirect, and a host that is not a mesh service', async () => {
    expectGolden(path.join(dir, 'redirect.txt'), await sim('client', 'GET http://reviews:9080/old/page'));
    expectGolden(path.join(dir, 'no-route.txt'), await sim('client', 'GET http://example.com/'));
  });

  it('parses request lines and refuses what it cannot read', async () => {
    expect(parseRequestLine(`POST http://a/b -H 'x-y: z w' -H k:v`)).toEqual({ method: 'POST', url: 'http://a/b', headers: [['x-y', 'z w'], ['k', 'v']] });
    expect(parseRequestLine('http://a/')).toEqual({ method: 'GET', url: 'http://a/', headers: [] });
    expect(() => parseRequestLine('GET /relative')).toThrow(/expected 'METHOD http/);
    expect(() => parseRequestLine('GET http://a/ -X y')).toThrow(/-H name:value/);
    await expect(sim('nobody', 'GET http://a/')).rejects.toThrow(/no WorkloadEntry default\/nobody.*client/);
  });
});
