// HTTPRoute (GAMMA) end to end: a client app calls a Service through its sidecar, the request
// crosses mTLS to the chosen workload's sidecar and reaches an echo app that reports what it saw.
// One case per match kind, filter, backend rule, timeout, retry and status condition of the
// Gateway API spec (the MESH-HTTP conformance profile and the gateway profile's HTTPRoute
// data-plane behaviours).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { call, callMany, startEcho, tally, type Answer, type EchoApp } from '../support/echo.js';
import { startTestMesh, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { httpMesh } from './gateway-config.js';

let mesh: TestMesh;
let client: TestSidecar;
let teamClient: TestSidecar;
let v1: EchoApp;
let v2: EchoApp;
let mirror: EchoApp;
let other: EchoApp;

/** GET (or `opts`) `path` on Service `host` through the default client's sidecar. */
const get = (host: string, path = '/', opts: Parameters<typeof call>[3] = {}) => call(client.outbound, host, path, opts);

interface RouteCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
}

async function routeConditions(name: string, kind = 'HTTPRoute', ns = 'default'): Promise<RouteCondition[]> {
  const res = await fetch(`http://127.0.0.1:${mesh.cp.monitorAddress.port}/debug/status`);
  const body = (await res.json()) as { routes: Record<string, { parents: { conditions: RouteCondition[] }[] }> };
  const route = body.routes[`${kind}/${ns}/${name}`];
  if (!route) throw new Error(`no status for ${kind} ${ns}/${name}`);
  return route.parents.flatMap((p) => p.conditions);
}

function condition(conds: RouteCondition[], type: string): RouteCondition {
  const c = conds.find((x) => x.type === type);
  if (!c) throw new Error(`no ${type} condition in ${JSON.stringify(conds)}`);
  return c;
}

/** The values of a header as a list (node joins repeats with ", "; the spec's examples use ","). */
function values(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).flatMap((x) => x.split(',')).map((x) => x.trim());
}

beforeAll(async () => {
  [v1, v2, mirror, other] = await Promise.all([startEcho('echo-v1'), startEcho('echo-v2'), startEcho('echo-mirror', { holdPrefix: '/stuck' }), startEcho('echo-other')]);
  mesh = await startTestMesh(httpMesh({ v1: v1.port, v2: v2.port, mirror: mirror.port, other: other.port }));
  const sidecars = await Promise.all(
    ['client.default', 'client.team', 'echo-v1.default', 'echo-v2.default', 'echo-mirror.default', 'echo-other.other'].map((w) => mesh.sidecar(w)),
  );
  [client, teamClient] = sidecars as [TestSidecar, TestSidecar];
  await waitReady(...sidecars);
  // Every workload's endpoint must be in the clients' config before the cases run.
  await eventually(async () => {
    for (const [c, host] of [
      [client, 'echo-v1'],
      [client, 'echo-v2'],
      [client, 'echo-mirror'],
      [client, 'echo-other.other'],
      [teamClient, 'echo-v2.default'],
    ] as const) {
      const r = await call(c.outbound, host, '/warmup');
      expect(r.status, `${host}: ${r.body}`).toBe(200);
    }
  }, { timeoutMs: 20_000, message: 'all echo workloads reachable' });
}, 60_000);

afterAll(async () => {
  await mesh?.close();
  await Promise.all([v1, v2, mirror, other].map((a) => a?.close()));
});

describe('matches', () => {
  const cases: { name: string; path: string; headers?: Record<string, string>; method?: string; backend: string }[] = [
    { name: 'no match of any rule but the catch-all: "/"', path: '/', backend: 'echo-v1' },
    { name: 'Exact path', path: '/exact', backend: 'echo-v2' },
    { name: 'Exact path does not match a longer path', path: '/exact/more', backend: 'echo-v1' },
    { name: 'Exact path ignores the query', path: '/exact?x=1', backend: 'echo-v2' },
    { name: 'PathPrefix (written with a trailing "/") matches the prefix itself', path: '/v2', backend: 'echo-v2' },
    { name: 'PathPrefix matches with a trailing "/"', path: '/v2/', backend: 'echo-v2' },
    { name: 'PathPrefix matches whole segments below it', path: '/v2/example', backend: 'echo-v2' },
    { name: 'PathPrefix is segment-wise: "/v2example" is not under "/v2"', path: '/v2example', backend: 'echo-v1' },
    { name: 'PathPrefix anchors at the start', path: '/foo/v2/example', backend: 'echo-v1' },
    { name: 'RegularExpression path matches the whole path', path: '/regex/123', backend: 'echo-v2' },
    { name: 'RegularExpression path must match all of it', path: '/regex/123/x', backend: 'echo-v1' },
    { name: 'RegularExpression path that does not match', path: '/regex/abc', backend: 'echo-v1' },
    { name: 'Exact header, name case-insensitive', path: '/', headers: { version: 'two' }, backend: 'echo-v2' },
    { name: 'Exact header with another value', path: '/', headers: { Version: 'one' }, backend: 'echo-v1' },
    { name: 'RegularExpression header', path: '/', headers: { 'x-user': 'admin' }, backend: 'echo-v2' },
    { name: 'RegularExpression header must match the whole value', path: '/', headers: { 'x-user': 'xadmin' }, backend: 'echo-v1' },
    { name: 'RegularExpression in RE2 syntax: a leading (?i) flag', path: '/', headers: { 'x-user': 'ADMIN' }, backend: 'echo-v2' },
    { name: 'Exact query parameter', path: '/?animal=whale', backend: 'echo-v2' },
    { name: 'Exact query parameter with another value', path: '/?animal=dolphin', backend: 'echo-v1' },
    { name: 'RegularExpression query parameter (second match of the rule: OR)', path: '/?id=123', backend: 'echo-v2' },
    { name: 'RegularExpression query parameter that does not match', path: '/?id=12', backend: 'echo-v1' },
    { name: 'method match', path: '/method', method: 'POST', backend: 'echo-v2' },
    { name: 'method match with another method', path: '/method', method: 'GET', backend: 'echo-v1' },
    { name: 'path, header and query of one match are ANDed', path: '/and?q=1', headers: { 'x-a': '1' }, backend: 'echo-v2' },
    { name: 'AND: the header alone is not enough', path: '/and', headers: { 'x-a': '1' }, backend: 'echo-v1' },
    { name: 'AND: the query alone is not enough', path: '/and?q=1', backend: 'echo-v1' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await get('matching', c.path, { method: c.method ?? 'GET', headers: c.headers ?? {} });
      expect(r.status, r.body).toBe(200);
      expect(r.echo?.name).toBe(c.backend);
      expect(r.echo?.path).toBe(c.path);
    });
  }

  it('routes every name form of the Service, origin-form and absolute-form', async () => {
    for (const host of ['matching', 'matching:80', 'matching.default', 'matching.default.svc:80', 'matching.default.svc.cluster.local']) {
      for (const absolute of [false, true]) {
        const r = await get(host, '/exact', { absolute });
        expect(r.echo?.name, `${host} ${absolute ? 'absolute' : 'origin'}-form`).toBe('echo-v2');
      }
    }
  });

  it('absolute-form: the request target chooses the Service, not a differing Host header', async () => {
    const r = await get('matching', '/exact', { absolute: true, hostHeader: 'filters' });
    expect(r.echo?.name).toBe('echo-v2');
  });

  it('named rules are the names of the routes the proxy holds', async () => {
    const dump = (await (await fetch(`${client.admin}/config_dump`)).json()) as { routes: { virtualHosts: { name: string; routes: { name: string }[] }[] }[] };
    const vh = dump.routes.flatMap((r) => r.virtualHosts).find((v) => v.name === 'matching.default.svc.cluster.local:80');
    expect(vh?.routes.map((r) => r.name)).toEqual(expect.arrayContaining(['default/matching/exact', 'default/matching/regex', 'default/matching/rest']));
  });
});

describe('filters', () => {
  it('RequestHeaderModifier sets, adds and removes request headers (names case-insensitive)', async () => {
    const plain = await get('filters', '/request-headers');
    expect(plain.echo?.headers['x-header-set']).toBe('set-overwrites-values');
    expect(plain.echo?.headers['x-header-add']).toBe('add-appends-values');
    expect(plain.echo?.headers['x-percent']).toBe('100%');

    const r = await get('filters', '/request-headers', {
      headers: { 'x-header-set': 'some-other-value', 'X-HEADER-ADD': 'some-other-value', 'x-header-remove': 'gone', 'x-keep': 'kept' },
    });
    const h = r.echo!.headers;
    expect(h['x-header-set']).toBe('set-overwrites-values');
    expect(values(h['x-header-add'])).toEqual(['some-other-value', 'add-appends-values']);
    expect(h['x-header-remove']).toBeUndefined();
    expect(h['x-keep']).toBe('kept');
  });

  it('RequestHeaderModifier: set replaces every value of a multi-valued header; add keeps them all', async () => {
    const r = await get('filters', '/request-headers', { headers: { 'x-header-set': ['a', 'b'], 'x-header-add': ['a', 'b'] } });
    expect(values(r.echo!.headers['x-header-set'])).toEqual(['set-overwrites-values']);
    expect(values(r.echo!.headers['x-header-add'])).toEqual(['a', 'b', 'add-appends-values']);
  });

  it('ResponseHeaderModifier sets, adds and removes response headers', async () => {
    const r = await get('filters', '/response-headers', {
      headers: { 'x-echo-response-headers': JSON.stringify({ 'X-Header-Set': 'original', 'x-header-add': 'original', 'X-Header-Remove': 'gone', 'x-keep': 'kept' }) },
    });
    expect(r.headers['x-header-set']).toBe('set-overwrites-values');
    expect(values(r.headers['x-header-add'])).toEqual(['original', 'add-appends-values']);
    expect(r.headers['x-header-remove']).toBeUndefined();
    expect(r.headers['x-keep']).toBe('kept');
    const bare = await get('filters', '/response-headers');
    expect(bare.headers['x-header-set']).toBe('set-overwrites-values');
    expect(bare.headers['x-header-add']).toBe('add-appends-values');
  });

  it('URLRewrite ReplaceFullPath and hostname (the query is kept)', async () => {
    const r = await get('filters', '/rewrite-full/deep/path?q=1');
    expect(r.echo?.path).toBe('/full-replaced?q=1');
    expect(r.echo?.host).toBe('rewritten.example');
  });

  const prefixCases: [string, string][] = [
    ['/rewrite-prefix', '/prefix-replaced'],
    ['/rewrite-prefix/', '/prefix-replaced/'],
    ['/rewrite-prefix/one/two?x=y', '/prefix-replaced/one/two?x=y'],
    ['/strip', '/'],
    ['/strip/', '/'],
    ['/strip/one', '/one'],
    ['/strip/one/?q', '/one/?q'],
  ];
  for (const [from, to] of prefixCases) {
    it(`URLRewrite ReplacePrefixMatch: ${from} → ${to}`, async () => {
      const r = await get('filters', from);
      expect(r.echo?.path).toBe(to);
      // Without a hostname rewrite the Host is the one the client sent.
      expect(r.echo?.host).toBe('filters');
    });
  }

  it('backendRef filters apply to that backend only, after the rule filters', async () => {
    const r = await get('filters', '/backend-filters');
    expect(r.echo?.name).toBe('echo-v2');
    expect(r.echo?.headers['x-rule']).toBe('rule');
    expect(r.echo?.headers['x-backend']).toBe('v2');
    expect(r.headers['x-backend-response']).toBe('v2');
    const elsewhere = await get('filters', '/request-headers');
    expect(elsewhere.echo?.headers['x-backend']).toBeUndefined();
  });
});

describe('RequestRedirect', () => {
  const cases: { name: string; host?: string; path: string; status: number; location: string }[] = [
    { name: 'scheme https: its well-known port, left out', path: '/scheme', status: 302, location: 'https://redirect/scheme' },
    { name: 'hostname (status 302 by default; query kept)', path: '/hostname/x?a=b', status: 302, location: 'http://example.org/hostname/x?a=b' },
    { name: 'port', path: '/port', status: 302, location: 'http://redirect:8083/port' },
    { name: 'scheme, hostname, port and 301', path: '/scheme-port', status: 301, location: 'https://example.org:8443/scheme-port' },
    { name: 'http with port 80 leaves the port out', path: '/http-80', status: 302, location: 'http://example.org/http-80' },
    { name: 'ReplaceFullPath, 303', path: '/full-path/x?q=1', status: 303, location: 'http://redirect/replaced?q=1' },
    { name: 'ReplacePrefixMatch, 307', path: '/prefix-path/x', status: 307, location: 'http://redirect/new-prefix/x' },
    { name: '308', path: '/permanent', status: 308, location: 'http://example.org/permanent' },
    { name: 'ReplacePrefixMatch "/" (no doubled slash)', path: '/strip-prefix/x/y?q', status: 302, location: 'http://redirect/x/y?q' },
    { name: 'ReplacePrefixMatch "/" on the prefix itself', path: '/strip-prefix', status: 302, location: 'http://redirect/' },
    {
      name: 'no scheme, no port: the Service port the request came to (the "listener" port)',
      host: 'redirect-multi:8080',
      path: '/hostname',
      status: 302,
      location: 'http://example.org:8080/hostname',
    },
    { name: 'no scheme, no port, Service port 80: left out', host: 'redirect-multi', path: '/hostname', status: 302, location: 'http://example.org/hostname' },
    { name: 'scheme https without port drops the request port', host: 'redirect-multi:8080', path: '/scheme', status: 302, location: 'https://redirect-multi/scheme' },
    {
      name: 'no scheme, no port, a Host without port: still the Service port',
      host: 'redirect-9080',
      path: '/x',
      status: 302,
      location: 'http://example.org:9080/x',
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await get(c.host ?? 'redirect', c.path);
      expect(r.status, r.body).toBe(c.status);
      expect(r.headers.location).toBe(c.location);
      expect(r.echo).toBeUndefined();
    });
  }
});

describe('backends and weights', () => {
  it('splits 80/20 over 500 requests (± 5 %); weight 0 gets nothing, even for a Service that does not exist', async () => {
    const answers = await callMany(500, 25, () => get('split', '/'));
    const t = tally(answers);
    expect(Object.keys(t).sort()).toEqual(['echo-v1', 'echo-v2']);
    expect(t['echo-v1']! / 500).toBeGreaterThanOrEqual(0.75);
    expect(t['echo-v1']! / 500).toBeLessThanOrEqual(0.85);
  });

  it('a rule whose backends all have weight 0, or that has none, answers 500', async () => {
    expect((await get('split', '/all-zero')).status).toBe(500);
    expect((await get('split', '/no-backends')).status).toBe(500);
    expect(v1.count('/all-zero') + v1.count('/no-backends')).toBe(0);
  });

  it('producer route for clients everywhere; a consumer route replaces it for its own namespace only', async () => {
    expect((await get('consumer', '/')).echo?.name).toBe('echo-v1');
    expect((await call(teamClient.outbound, 'consumer.default', '/')).echo?.name).toBe('echo-v2');
    expect((await call(teamClient.outbound, 'matching.default', '/exact')).echo?.name).toBe('echo-v2');
  });

  it('a parentRef with a port applies to that Service port only', async () => {
    const on8080 = await get('ports:8080', '/');
    expect(on8080.echo?.name).toBe('echo-v2');
    expect(on8080.headers['x-route']).toBe('ports-8080');
    const on80 = await get('ports', '/');
    expect(on80.echo?.name).toBe('echo-v1');
    expect(on80.headers['x-route']).toBeUndefined();
  });
});

describe('precedence across rules and routes', () => {
  const cases: { name: string; path: string; method?: string; headers?: Record<string, string>; backend: string }[] = [
    { name: 'equal matches: the older route wins', path: '/p/x', backend: 'echo-v1' },
    { name: 'the longest prefix wins over an older route', path: '/p/longer/x', backend: 'echo-v2' },
    { name: 'Exact wins over prefixes', path: '/p/exact', backend: 'echo-v2' },
    { name: 'more header matches win over an older route', path: '/h', headers: { 'x-a': '1', 'x-b': '1' }, backend: 'echo-v2' },
    { name: 'a method match wins over header matches', path: '/h', method: 'PUT', headers: { 'x-a': '1' }, backend: 'echo-v2' },
    { name: 'fewer headers: the older route', path: '/h', headers: { 'x-a': '1' }, backend: 'echo-v1' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const r = await get('precedence', c.path, { method: c.method ?? 'GET', headers: c.headers ?? {} });
      expect(r.echo?.name, r.body).toBe(c.backend);
    });
  }
});

describe('RequestMirror', () => {
  it('mirrors every request, fire and forget; the client sees the primary only', async () => {
    const before = mirror.count('/all');
    for (let i = 0; i < 10; i++) {
      const r = await get('mirror', `/all/${i}`, { method: 'POST', body: `body-${i}` });
      expect(r.echo?.name).toBe('echo-v1');
    }
    await eventually(() => expect(mirror.count('/all') - before).toBe(10));
    const copy = mirror.seen.find((e) => e.path === '/all/3');
    expect(copy?.method).toBe('POST');
    expect(copy?.bytes).toBe('body-3'.length);
  });

  for (const [what, headers] of [
    ['chunked, no content-length', { 'transfer-encoding': 'chunked' }],
    ['larger than what is buffered for replay', {}],
  ] as const) {
    it(`mirrors a streamed request body (${what}): the copy is complete`, async () => {
      const path = `/all/streamed-${what.length}`;
      const body = Buffer.alloc(300_000, 'm');
      const r = await get('mirror', path, { method: 'POST', headers, body });
      expect(r.echo?.name).toBe('echo-v1');
      expect(r.echo?.bytes).toBe(body.length);
      await eventually(() => expect(mirror.seen.find((e) => e.path === path)?.sha256).toBe(r.echo?.sha256));
    });
  }

  it('several mirrors each get a copy', async () => {
    for (let i = 0; i < 5; i++) expect((await get('mirror', '/several')).echo?.name).toBe('echo-v1');
    await eventually(() => {
      expect(mirror.count('/several')).toBe(5);
      expect(v2.count('/several')).toBe(5);
    });
  });

  for (const [path, share] of [
    ['/percent', 0.5],
    ['/fraction', 0.25],
  ] as const) {
    it(`${path}: ${share * 100} % of 500 requests mirrored, within 3 standard deviations`, async () => {
      const answers = await callMany(500, 25, () => get('mirror', path));
      expect(tally(answers)).toEqual({ 'echo-v1': 500 });
      const sd = Math.sqrt(500 * share * (1 - share));
      // Mirrors are fire-and-forget: wait until the count stops growing.
      let last = -1;
      await eventually(() => {
        const n = mirror.count(path);
        const settled = n === last;
        last = n;
        expect(settled).toBe(true);
      }, { intervalMs: 300, timeoutMs: 15_000 });
      expect(Math.abs(mirror.count(path) - 500 * share)).toBeLessThanOrEqual(3 * sd);
    });
  }

  it('a mirror that never answers does not delay the primary', async () => {
    const r = await get('mirror', '/stuck');
    expect(r.echo?.name).toBe('echo-v1');
    // The copy reached the mirror, which will never answer it: the primary did not wait for it.
    await eventually(() => expect(mirror.count('/stuck')).toBe(1));
  });

  it('a mirror target without endpoints does not fail the primary', async () => {
    for (let i = 0; i < 3; i++) expect((await get('mirror', '/nowhere')).status).toBe(200);
  });
});

describe('timeouts and retries', () => {
  it('timeouts.request: 504 when the backend is slower; fine when it is not', async () => {
    const slow = await get('resilience', '/request-timeout', { headers: { 'x-echo-delay-ms': '3000' } });
    expect(slow.status).toBe(504);
    expect((await get('resilience', '/request-timeout')).status).toBe(200);
  });

  it('timeouts.backendRequest: 504 when one backend request is slower', async () => {
    expect((await get('resilience', '/backend-timeout', { headers: { 'x-echo-delay-ms': '3000' } })).status).toBe(504);
    expect((await get('resilience', '/backend-timeout', { headers: { 'x-echo-delay-ms': '50' } })).status).toBe(200);
  });

  it('retry: a listed code is retried until it succeeds, within attempts', async () => {
    const ok = await get('resilience', '/retry', { headers: { 'x-echo-key': 'retry-ok', 'x-echo-fail': '2' } });
    expect(ok.status).toBe(200);
    expect(v1.seen.filter((e) => e.headers['x-echo-key'] === 'retry-ok')).toHaveLength(3);
    const exhausted = await get('resilience', '/retry', { headers: { 'x-echo-key': 'retry-out', 'x-echo-fail': '10', 'x-echo-fail-status': '502' } });
    expect(exhausted.status).toBe(502);
    // 1 try + 3 retries.
    expect(v1.seen.filter((e) => e.headers['x-echo-key'] === 'retry-out')).toHaveLength(4);
  });

  it('retry: codes not listed are not retried', async () => {
    const r = await get('resilience', '/only-500', { headers: { 'x-echo-key': 'only-500', 'x-echo-fail': '1', 'x-echo-fail-status': '503' } });
    expect(r.status).toBe(503);
    expect(v1.seen.filter((e) => e.headers['x-echo-key'] === 'only-500')).toHaveLength(1);
  });

  it('retry: the backoff is the minimum wait before a retry', async () => {
    const r = await get('resilience', '/backoff', { headers: { 'x-echo-key': 'backoff', 'x-echo-fail': '1' } });
    expect(r.status).toBe(200);
    const tries = v1.seen.filter((e) => e.headers['x-echo-key'] === 'backoff');
    expect(tries).toHaveLength(2);
    expect(tries[1]!.at - tries[0]!.at).toBeGreaterThanOrEqual(400);
  });

  it('retry: a backend request that exceeds backendRequest is retried', async () => {
    const r = await get('resilience', '/retry-slow', { headers: { 'x-echo-key': 'slow', 'x-echo-fail': '1', 'x-echo-fail-status': 'delay:10000' } });
    expect(r.status, r.body).toBe(200);
    expect(v1.seen.filter((e) => e.headers['x-echo-key'] === 'slow')).toHaveLength(2);
  });

  it('retry: a connection reset by the backend is retried (across the sidecar pair)', async () => {
    const r = await get('resilience', '/retry-reset', { headers: { 'x-echo-key': 'reset', 'x-echo-fail': '1', 'x-echo-fail-status': 'reset' } });
    expect(r.status, r.body).toBe(200);
    expect(v1.seen.filter((e) => e.headers['x-echo-key'] === 'reset')).toHaveLength(2);
  });
});

describe('status per parentRef', () => {
  it('each Service parent gets its own Accepted condition; the valid one routes', async () => {
    const res = await fetch(`http://127.0.0.1:${mesh.cp.monitorAddress.port}/debug/status`);
    const body = (await res.json()) as { routes: Record<string, { parents: { parentRef: { name: string; port?: number }; conditions: RouteCondition[] }[] }> };
    const parents = body.routes['HTTPRoute/default/two-parents']!.parents;
    expect(parents.map((p) => [p.parentRef.name, p.parentRef.port, condition(p.conditions, 'Accepted').status, condition(p.conditions, 'Accepted').reason])).toEqual([
      ['ports', 8080, 'True', 'Accepted'],
      ['no-such-service', undefined, 'False', 'NoMatchingParent'],
      ['ports', 9999, 'False', 'NoMatchingParent'],
    ]);
    expect(condition(parents[1]!.conditions, 'Accepted').message).toContain('Service default/no-such-service not found');
    expect(condition(parents[2]!.conditions, 'Accepted').message).toContain('has no port 9999');
    expect((await get('ports:8080', '/two-parents')).echo?.name).toBe('echo-v2');
  });
});

describe('references', () => {
  it('an unresolvable backend keeps its share and answers 500; the rest of the route works', async () => {
    const answers = await callMany(100, 20, () => get('refs', '/half'));
    const t = tally(answers);
    expect(Object.keys(t).sort()).toEqual(['HTTP 500', 'echo-v1']);
    expect(t['HTTP 500']).toBeGreaterThan(20);
    expect(t['echo-v1']).toBeGreaterThan(20);
    expect((await get('refs', '/kind')).status).toBe(500);
    expect((await get('refs', '/no-grant')).status).toBe(500);
    expect((await get('refs', '/')).echo?.name).toBe('echo-v1');
  });

  it('a Service in another namespace is reachable with a ReferenceGrant', async () => {
    expect((await get('refs', '/granted')).echo?.name).toBe('echo-other');
  });

  it('status: Accepted, and ResolvedRefs=False naming each bad reference and what to do', async () => {
    const conds = await routeConditions('refs');
    expect(condition(conds, 'Accepted').status).toBe('True');
    const refs = condition(conds, 'ResolvedRefs');
    expect(refs.status).toBe('False');
    expect(refs.reason).toBe('BackendNotFound');
    expect(refs.message).toContain('Service default/ghost not found');
    expect(refs.message).toContain('kind "Deployment"');
    expect(refs.message).toContain('ReferenceGrant');
    expect(refs.message).not.toContain('echo-granted');
    const fine = await routeConditions('matching');
    expect(condition(fine, 'Accepted').status).toBe('True');
    expect(condition(fine, 'ResolvedRefs').status).toBe('True');
  });
});

describe('bad input: the route is not accepted, nothing else is affected', () => {
  const bad: { route: string; why: RegExp; reason?: string }[] = [
    { route: 'bad-regex', why: /invalid regular expression "\/regex\/\("/ },
    { route: 'bad-re2', why: /invalid regular expression "b\\\\e": invalid escape sequence \\e \(routes use RE2 syntax\)/ },
    { route: 'bad-lookahead', why: /lookahead and lookbehind are not supported by RE2/ },
    { route: 'bad-conflict', why: /RequestRedirect and URLRewrite/, reason: 'IncompatibleFilters' },
    { route: 'bad-redirect-backend', why: /cannot be combined with backendRefs/, reason: 'IncompatibleFilters' },
    { route: 'bad-filter', why: /filter type "Teleport" is not supported/ },
  ];
  for (const c of bad) {
    it(`${c.route}: Accepted=False (${c.reason ?? 'UnsupportedValue'}) saying why`, async () => {
      const accepted = condition(await routeConditions(c.route), 'Accepted');
      expect(accepted.status).toBe('False');
      expect(accepted.reason).toBe(c.reason ?? 'UnsupportedValue');
      expect(accepted.message).toMatch(c.why);
    });
  }

  it('an ExtensionRef filter Weft cannot resolve is never skipped: its requests get 500, ResolvedRefs says why', async () => {
    expect((await get('bad', '/extension')).status).toBe(500);
    expect(v2.count('/extension')).toBe(0);
    const conds = await routeConditions('extension');
    expect(condition(conds, 'Accepted').status).toBe('True');
    const refs = condition(conds, 'ResolvedRefs');
    expect([refs.status, refs.reason]).toEqual(['False', 'InvalidKind']);
    expect(refs.message).toContain('Magic "m" in group "example.com" cannot be resolved');
  });

  it('requests the bad routes would have matched go to the good route; other Services work', async () => {
    for (const [path, headers] of [
      ['/regex/(', {}],
      ['/', { 'x-re': 'b' }],
      ['/conflict', {}],
      ['/redirect-backend', {}],
      ['/unknown-filter', {}],
    ] as [string, Record<string, string>][]) {
      const r: Answer = await get('bad', path, { headers });
      expect(r.echo?.name, `${path}: ${r.body}`).toBe('echo-v1');
    }
    expect((await get('matching', '/exact')).echo?.name).toBe('echo-v2');
  });
});
