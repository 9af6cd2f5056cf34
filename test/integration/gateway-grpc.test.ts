// GRPCRoute (GAMMA) end to end with @grpc/grpc-js on both ends: client → its sidecar → HTTP/2
// over mTLS → the server's sidecar → gRPC app. Service/method matching (Exact and
// RegularExpression), header matching, weights, header modifiers, mirrors, all four streaming
// kinds with metadata and trailers intact, and the status codes the proxy itself answers with.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/eventually.js';
import { ECHO, grpcClient, MISSING, OTHER, startGrpcEcho, unary, type EchoReply, type GrpcEchoApp } from '../support/grpc-echo.js';
import { startTestMesh, waitReady, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { workload } from './gateway-config.js';

type Client = ReturnType<typeof grpcClient>;

/** A Service whose one port speaks gRPC (declared by appProtocol, the port name says nothing). */
function grpcService(name: string, selector: string, port = 50051): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec:
  selector: { app: ${selector} }
  ports: [{ name: api, port: ${port}, targetPort: grpc, appProtocol: grpc }]
`;
}

function grpcRoute(name: string, parent: string, rules: string): string {
  return `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: ${name}, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: ${parent}, port: 50051 }]
  rules:
${rules
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
`;
}

const V1 = '{ name: grpc-v1, port: 50051 }';
const V2 = '{ name: grpc-v2, port: 50051 }';

function grpcMesh(ports: { v1: number; v2: number; closed: number }): Record<string, string> {
  return {
    'workloads.yaml': [
      workload('client', 'default', { app: 'client' }),
      workload('grpc-v1', 'default', { app: 'grpc-v1' }, ports.v1, 'grpc'),
      workload('grpc-v2', 'default', { app: 'grpc-v2' }, ports.v2, 'grpc'),
      // Its sidecar runs, its app does not: connections to the app are refused.
      workload('grpc-down', 'default', { app: 'grpc-down' }, ports.closed, 'grpc'),
    ].join('---\n'),
    'services.yaml': [
      grpcService('grpc-v1', 'grpc-v1'),
      grpcService('grpc-v2', 'grpc-v2'),
      grpcService('grpc-down', 'grpc-down'),
      grpcService('grpc-nowhere', 'nothing-selects-this'),
      grpcService('greeter', 'grpc-v1'),
      grpcService('split', 'grpc-v1'),
      grpcService('slow', 'grpc-v1'),
      grpcService('mirrored', 'grpc-v1'),
      grpcService('zero', 'grpc-v1'),
      grpcService('ghost', 'grpc-v1'),
    ].join('---\n'),
    'broken.yaml': [
      grpcRoute('zero', 'zero', `- backendRefs: [{ name: grpc-v1, port: 50051, weight: 0 }]`),
      grpcRoute('ghost', 'ghost', `- backendRefs: [{ name: no-such-service, port: 50051 }]`),
    ].join('---\n'),
    'greeter.yaml': grpcRoute(
      'greeter',
      'greeter',
      `
- name: exact-method
  matches: [{ method: { service: ${ECHO}, method: ServerStream } }]
  backendRefs: [${V2}]
- name: service-only
  matches: [{ method: { service: ${OTHER} } }]
  backendRefs: [${V2}]
- name: regex
  matches: [{ method: { type: RegularExpression, service: "weft\\\\.test\\\\.E.*", method: "Cli.*" } }]
  backendRefs: [${V2}]
- name: header
  matches: [{ method: { service: ${ECHO}, method: Unary }, headers: [{ name: X-Tenant, value: blue }] }]
  filters:
  - type: RequestHeaderModifier
    requestHeaderModifier: { set: [{ name: x-header-set, value: set-overwrites-values }], add: [{ name: x-header-add, value: added }], remove: [x-header-remove] }
  - type: ResponseHeaderModifier
    responseHeaderModifier: { add: [{ name: x-response-add, value: from-route }] }
  backendRefs: [${V2}]
- name: header-regex
  matches: [{ method: { service: ${ECHO}, method: Unary }, headers: [{ type: RegularExpression, name: x-tenant, value: "re.+" }] }]
  backendRefs:
  - name: grpc-v2
    port: 50051
    filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-backend, value: v2 }] } }]
- name: echo
  matches: [{ method: { service: ${ECHO} } }]
  backendRefs: [${V1}]
`,
    ),
    'split.yaml': grpcRoute('split', 'split', `- backendRefs: [{ name: grpc-v1, port: 50051, weight: 4 }, { name: grpc-v2, port: 50051, weight: 1 }]`),
    'mirrored.yaml': grpcRoute(
      'mirrored',
      'mirrored',
      `- filters: [{ type: RequestMirror, requestMirror: { backendRef: ${V2} } }]
  backendRefs: [${V1}]`,
    ),
    // The proxy's own deadline: an HTTPRoute timeout on a gRPC Service.
    'slow.yaml': `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: slow, namespace: default }
spec:
  parentRefs: [{ group: "", kind: Service, name: slow }]
  rules: [{ timeouts: { request: 1s }, backendRefs: [${V1}] }]
`,
  };
}

let mesh: TestMesh;
let client: TestSidecar;
let v1: GrpcEchoApp;
let v2: GrpcEchoApp;
const clients: grpc.Client[] = [];

function clientFor(host: string, service = ECHO): Client {
  const c = grpcClient(client.outbound, host, service);
  clients.push(c);
  return c;
}

beforeAll(async () => {
  [v1, v2] = await Promise.all([startGrpcEcho('grpc-v1'), startGrpcEcho('grpc-v2')]);
  // A port nothing listens on: bind one, note it, close it.
  const closed = await startGrpcEcho('closed');
  await closed.close();
  mesh = await startTestMesh(grpcMesh({ v1: v1.port, v2: v2.port, closed: closed.port }));
  const sidecars = await Promise.all(['client.default', 'grpc-v1.default', 'grpc-v2.default', 'grpc-down.default'].map((w) => mesh.sidecar(w)));
  client = sidecars[0]!;
  await waitReady(...sidecars);
  await eventually(async () => {
    for (const host of ['grpc-v1:50051', 'grpc-v2:50051']) {
      const r = await unary(clientFor(host), { text: 'warmup' });
      expect(r.code, `${host}: ${r.details}`).toBe(grpc.status.OK);
    }
  }, { timeoutMs: 20_000, message: 'gRPC backends reachable' });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await mesh?.close();
  await Promise.all([v1?.close(), v2?.close()]);
});

describe('unary through the mesh', () => {
  it('reaches the app over HTTP/2 with metadata, initial metadata and trailers intact', async () => {
    const r = await unary(clientFor('grpc-v1.default.svc.cluster.local:50051'), { text: 'hello' }, { 'x-custom': 'abc' });
    expect(r.code).toBe(grpc.status.OK);
    expect(r.reply?.name).toBe('grpc-v1');
    expect(r.reply?.text).toBe('hello');
    expect(r.reply?.metadata['x-custom']).toBe('abc');
    expect(r.headers['x-initial']).toBe('grpc-v1');
    expect(r.trailers['x-trailer']).toBe('grpc-v1');
  });

  it("an app's error status, message and trailers reach the client unchanged", async () => {
    for (const code of [grpc.status.NOT_FOUND, grpc.status.PERMISSION_DENIED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE]) {
      const r = await unary(clientFor('grpc-v1:50051'), { text: 'x', failWith: code });
      expect(r.code).toBe(code);
      expect(r.details).toBe('failed on purpose by grpc-v1');
      expect(r.trailers['x-trailer']).toBe('grpc-v1');
    }
  });
});

describe('GRPCRoute matching', () => {
  const cases: { name: string; service: string; call: 'Unary' | 'ServerStream' | 'ClientStream'; md?: Record<string, string>; backend: string }[] = [
    { name: 'Exact service and method', service: ECHO, call: 'ServerStream', backend: 'grpc-v2' },
    { name: 'Exact service only: every method of it', service: OTHER, call: 'Unary', backend: 'grpc-v2' },
    { name: 'RegularExpression service and method', service: ECHO, call: 'ClientStream', backend: 'grpc-v2' },
    { name: 'method and Exact header', service: ECHO, call: 'Unary', md: { 'x-tenant': 'blue' }, backend: 'grpc-v2' },
    { name: 'method and RegularExpression header', service: ECHO, call: 'Unary', md: { 'x-tenant': 'red' }, backend: 'grpc-v2' },
    { name: 'a header that matches no rule falls to the service rule', service: ECHO, call: 'Unary', md: { 'x-tenant': 'green' }, backend: 'grpc-v1' },
    { name: 'the service rule', service: ECHO, call: 'Unary', backend: 'grpc-v1' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const cl = clientFor('greeter:50051', c.service);
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(c.md ?? {})) md.set(k, v);
      let reply: EchoReply | undefined;
      if (c.call === 'Unary') reply = (await unary(cl, { text: 'm' }, c.md ?? {})).reply;
      else if (c.call === 'ServerStream') reply = (await collect(cl.ServerStream!({ text: 'm', replies: 1 }, md) as grpc.ClientReadableStream<EchoReply>))[0];
      else reply = await clientStream(cl, ['a'], md);
      expect(reply?.name).toBe(c.backend);
    });
  }

  it('no matching rule: UNIMPLEMENTED from the proxy', async () => {
    const r = await unary(clientFor('greeter:50051', MISSING), { text: 'x' });
    expect(r.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(r.details).toContain('no route');
  });

  it('RequestHeaderModifier and ResponseHeaderModifier on a rule; filters on a backendRef', async () => {
    const r = await unary(clientFor('greeter:50051'), { text: 'x' }, { 'x-tenant': 'blue', 'x-header-set': 'old', 'x-header-add': 'old', 'x-header-remove': 'gone' });
    expect(r.reply?.name).toBe('grpc-v2');
    expect(r.reply?.metadata['x-header-set']).toBe('set-overwrites-values');
    expect(r.reply?.metadata['x-header-add']).toBe('old, added');
    expect(r.reply?.metadata['x-header-remove']).toBeUndefined();
    expect(r.headers['x-response-add']).toBe('from-route');
    expect(r.trailers['x-trailer']).toBe('grpc-v2');
    const b = await unary(clientFor('greeter:50051'), { text: 'x' }, { 'x-tenant': 'red' });
    expect(b.reply?.metadata['x-backend']).toBe('v2');
  });

  it('splits by weight: 4:1 over 500 calls (± 5 %)', async () => {
    const cl = clientFor('split:50051');
    const names: string[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const rs = await Promise.all(Array.from({ length: 25 }, () => unary(cl, { text: 'w' })));
      for (const r of rs) names.push(r.reply?.name ?? `code ${r.code}`);
    }
    const v1Share = names.filter((n) => n === 'grpc-v1').length / names.length;
    expect(names.filter((n) => n !== 'grpc-v1' && n !== 'grpc-v2')).toEqual([]);
    expect(v1Share).toBeGreaterThanOrEqual(0.75);
    expect(v1Share).toBeLessThanOrEqual(0.85);
  });

  it('RequestMirror: a copy of each call reaches the mirror; the client sees the primary', async () => {
    const before = v2.calls.get(`/${ECHO}/Unary`) ?? 0;
    for (let i = 0; i < 5; i++) expect((await unary(clientFor('mirrored:50051'), { text: 'm' })).reply?.name).toBe('grpc-v1');
    await eventually(() => expect((v2.calls.get(`/${ECHO}/Unary`) ?? 0) - before).toBe(5));
  });

  it('status: the route is Accepted with ResolvedRefs', async () => {
    const res = await fetch(`http://127.0.0.1:${mesh.cp.monitorAddress.port}/debug/status`);
    const body = (await res.json()) as { routes: Record<string, { parents: { conditions: { type: string; status: string }[] }[] }> };
    const conds = body.routes['GRPCRoute/default/greeter']?.parents[0]?.conditions ?? [];
    const gateway = conds.filter((c) => c.type === 'Accepted' || c.type === 'ResolvedRefs');
    expect(gateway.map((c) => `${c.type}=${c.status}`)).toEqual(['Accepted=True', 'ResolvedRefs=True']);
  });
});

describe('streaming', () => {
  it('server streaming: every message in order, then the trailers', async () => {
    const call = clientFor('grpc-v1:50051').ServerStream!({ text: 's', replies: 50 }) as grpc.ClientReadableStream<EchoReply>;
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    const replies = await collect(call);
    expect(replies.map((x) => x.text)).toEqual(Array.from({ length: 50 }, (_, i) => `s#${i + 1}`));
    expect((await status).metadata.get('x-trailer')).toEqual(['grpc-v1']);
  });

  it('server streaming that ends in an error status: the messages, then that status', async () => {
    const call = clientFor('grpc-v1:50051').ServerStream!({ text: 'e', replies: 2, failWith: grpc.status.ABORTED }) as grpc.ClientReadableStream<EchoReply>;
    const got: EchoReply[] = [];
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', (d: EchoReply) => got.push(d));
      call.on('error', resolve);
    });
    expect(got).toHaveLength(2);
    expect(err.code).toBe(grpc.status.ABORTED);
    expect(err.metadata.get('x-trailer')).toEqual(['grpc-v1']);
  });

  it('client streaming: every message arrives, one reply', async () => {
    const texts = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const reply = await clientStream(clientFor('grpc-v1:50051'), texts, new grpc.Metadata());
    expect(reply.count).toBe(100);
    expect(reply.text).toBe(texts.join(','));
  });

  it('bidirectional streaming: each reply comes back before the client has finished sending', async () => {
    const call = clientFor('grpc-v1:50051').Bidi!() as grpc.ClientDuplexStream<{ text: string }, EchoReply>;
    const status = new Promise<grpc.StatusObject>((r) => call.on('status', r));
    const replies: EchoReply[] = [];
    // Ping-pong: the next message is sent only once the previous reply is back, which can only
    // work if the proxy streams both ways at once.
    for (let i = 0; i < 20; i++) {
      const next = new Promise<EchoReply>((resolve) => call.once('data', resolve));
      call.write({ text: `b${i}` });
      replies.push(await next);
    }
    call.end();
    expect(replies.map((r) => `${r.text}:${r.count}`)).toEqual(Array.from({ length: 20 }, (_, i) => `b${i}:${i + 1}`));
    const s = await status;
    expect(s.code).toBe(grpc.status.OK);
    expect(s.metadata.get('x-trailer')).toEqual(['grpc-v1']);
  });
});

describe('statuses the proxy answers itself', () => {
  it('UNAVAILABLE when the app behind the sidecar is down', async () => {
    const r = await unary(clientFor('grpc-down:50051'), { text: 'x' });
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toContain('upstream connect error');
  });

  it('UNAVAILABLE when the Service has no endpoint', async () => {
    const r = await unary(clientFor('grpc-nowhere:50051'), { text: 'x' });
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toContain('no healthy upstream');
  });

  it('UNAVAILABLE when every backend of the rule has weight 0', async () => {
    const r = await unary(clientFor('zero:50051'), { text: 'x' });
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(v1.calls.get(`/${ECHO}/Unary`)).toBeGreaterThan(0); // the app is there, it is the route that says no
  });

  it('UNAVAILABLE for a backendRef that does not resolve', async () => {
    const r = await unary(clientFor('ghost:50051'), { text: 'x' });
    expect(r.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.details).toContain('not found');
  });

  it("DEADLINE_EXCEEDED when the route's timeout expires (the client set none)", async () => {
    const r = await unary(clientFor('slow:50051'), { text: 'x', delayMs: 5000 }, {}, 60_000);
    expect(r.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(r.details).toContain('upstream request timeout');
    expect((await unary(clientFor('slow:50051'), { text: 'x' })).code).toBe(grpc.status.OK);
  });

  it('DEADLINE_EXCEEDED also once messages are flowing: the stream ends with that status in its trailers', async () => {
    const call = clientFor('slow:50051').ServerStream!({ text: 'd', replies: 3, delayMs: 5000 }) as grpc.ClientReadableStream<EchoReply>;
    const got: EchoReply[] = [];
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on('data', (d: EchoReply) => got.push(d));
      call.on('error', resolve);
    });
    expect(got.map((g) => g.text)).toEqual(['d#1']);
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(err.details).toContain('upstream request timeout');
  });
});

function collect(call: grpc.ClientReadableStream<EchoReply>): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const out: EchoReply[] = [];
    call.on('data', (d: EchoReply) => out.push(d));
    call.on('end', () => resolve(out));
    call.on('error', reject);
  });
}

function clientStream(cl: Client, texts: string[], md: grpc.Metadata): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const call = cl.ClientStream!(md, (err: grpc.ServiceError | null, r: EchoReply) => (err ? reject(err) : resolve(r))) as grpc.ClientWritableStream<{ text: string }>;
    for (const text of texts) call.write({ text });
    call.end();
  });
}
