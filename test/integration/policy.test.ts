// Mesh security policy, from YAML to a decision: PeerAuthentication → the effective mTLS mode and
// the inbound listener's filter chains; AuthorizationPolicy → Envoy RBAC → the proxy's decoder →
// its evaluator (pure tables, through the real translator, codec and decoder); then one allow and
// one deny end to end through the real control plane and sidecars.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pack } from '../../api/codec.js';
import type { Listener } from '../../api/domain.js';
import { listenerType } from '../../api/listener.js';
import { TypeUrl } from '../../api/types.js';
import { modelFromYaml } from '../../control-plane/model/testing.js';
import { translate } from '../../control-plane/translate/index.js';
import { mtlsModeFor } from '../../control-plane/translate/security.js';
import { roundTrip } from '../../control-plane/translate/testing.js';
import { configureLogging } from '../../core/log.js';
import { evaluateRbac, rbacAuthorizer, type AuthzRequest } from '../../proxy/inbound/authz.js';
import { eventually } from '../support/eventually.js';
import { serverClientYaml, startBackend, startTestMesh, viaProxy, waitReady, type TestBackend, type TestMesh, type TestSidecar } from '../support/mesh.js';

const WORKLOADS = `
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: server, namespace: default, labels: { app: server } }
spec: { address: 127.0.0.1, ports: { http: 8080, admin: 9090 }, serviceAccount: server }
---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: server, namespace: prod, labels: { app: server } }
spec: { address: 127.0.0.1, ports: { http: 8080 }, serviceAccount: server }
`;

const model = (policies: string) => modelFromYaml(WORKLOADS, policies);
const entry = (policies: string, ns = 'default') => {
  const m = model(policies);
  const w = m.workloadEntry(ns, 'server');
  if (!w) throw new Error('no workload');
  return { m, w };
};

function pa(ns: string, name: string, spec: string, created?: string): string {
  return `---
apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: ${name}, namespace: ${ns}${created ? `, creationTimestamp: "${created}"` : ''} }
spec: ${spec}
`;
}

function authz(ns: string, name: string, spec: string): string {
  return `---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: ${name}, namespace: ${ns} }
spec: ${spec}
`;
}

/** The inbound Listener exactly as a sidecar sees it: translated, encoded, decoded by api/. */
function inbound(policies: string, ns = 'default', mtls = true): Listener {
  const set = translate(model(policies), { id: `server.${ns}`, workload: 'server', namespace: ns, mode: 'sidecar' }, () => undefined, {
    trustDomain: 'cluster.local',
    mtls,
  });
  const plain = set[TypeUrl.Listener].get('inbound');
  if (!plain) throw new Error('no inbound listener');
  roundTrip(TypeUrl.Listener, plain); // every field is a real Envoy field
  const decoded = listenerType.decode(pack(TypeUrl.Listener, plain));
  if (!decoded.ok) throw new Error(`the proxy would NACK it: ${JSON.stringify(decoded.problems)}`);
  return decoded.value;
}

describe('PeerAuthentication: the effective mode per app port', () => {
  const mesh = (mode: string) => pa('weft-system', 'mesh', `{ mtls: { mode: ${mode} } }`);
  const ns = (mode: string, n = 'default', name = 'ns') => pa(n, name, `{ mtls: { mode: ${mode} } }`);
  const cases: Array<[string, string, number, 'STRICT' | 'PERMISSIVE', string | undefined]> = [
    ['no policy: PERMISSIVE', '', 8080, 'PERMISSIVE', undefined],
    ['mesh-wide STRICT in weft-system', mesh('STRICT'), 8080, 'STRICT', 'weft-system/mesh'],
    ['namespace beats mesh', mesh('STRICT') + ns('PERMISSIVE'), 8080, 'PERMISSIVE', 'default/ns'],
    ['another namespace does not apply', ns('STRICT', 'prod'), 8080, 'PERMISSIVE', undefined],
    ['workload beats namespace', ns('STRICT') + pa('default', 'w', '{ selector: { matchLabels: { app: server } }, mtls: { mode: PERMISSIVE } }'), 8080, 'PERMISSIVE', 'default/w'],
    ['a selector that does not match does not apply', ns('STRICT') + pa('default', 'w', '{ selector: { matchLabels: { app: other } }, mtls: { mode: PERMISSIVE } }'), 8080, 'STRICT', 'default/ns'],
    ['port level beats the workload mode', pa('default', 'w', '{ selector: { matchLabels: { app: server } }, mtls: { mode: STRICT }, portLevelMtls: { 9090: { mode: PERMISSIVE } } }'), 9090, 'PERMISSIVE', 'default/w'],
    ['other ports keep the workload mode', pa('default', 'w', '{ selector: { matchLabels: { app: server } }, mtls: { mode: STRICT }, portLevelMtls: { 9090: { mode: PERMISSIVE } } }'), 8080, 'STRICT', 'default/w'],
    ['a workload policy without a mode defers to the namespace', ns('STRICT') + pa('default', 'w', '{ selector: { matchLabels: { app: server } }, portLevelMtls: { 9090: { mode: PERMISSIVE } } }'), 8080, 'STRICT', 'default/ns'],
    ['a selector in the root namespace reaches every namespace', ns('PERMISSIVE') + pa('weft-system', 'servers', '{ selector: { matchLabels: { app: server } }, mtls: { mode: STRICT } }'), 8080, 'STRICT', 'weft-system/servers'],
    ['among equals the oldest wins', pa('default', 'b', '{ mtls: { mode: STRICT } }', '2024-01-01T00:00:00Z') + pa('default', 'a', '{ mtls: { mode: PERMISSIVE } }', '2024-06-01T00:00:00Z'), 8080, 'STRICT', 'default/b'],
  ];
  it.each(cases)('%s', (_name, yaml, port, mode, policy) => {
    const { m, w } = entry(yaml);
    expect(mtlsModeFor(m, w, port)).toEqual({ mode, policy });
  });
});

describe('PeerAuthentication: the inbound listener', () => {
  const shape = (l: Listener) => l.filterChains.map((c) => [c.name, c.destinationPorts[0], c.transportProtocol ?? 'any', c.tls ? 'tls' : 'plain']);

  it('PERMISSIVE ports get a TLS chain and a plaintext chain', () => {
    expect(shape(inbound(''))).toEqual([
      ['inbound|8080', 8080, 'tls', 'tls'],
      ['inbound|8080|plaintext', 8080, 'raw_buffer', 'plain'],
      ['inbound|9090', 9090, 'tls', 'tls'],
      ['inbound|9090|plaintext', 9090, 'raw_buffer', 'plain'],
    ]);
  });

  it('STRICT ports get only the TLS chain, port by port', () => {
    const l = inbound(pa('default', 'w', '{ selector: { matchLabels: { app: server } }, mtls: { mode: STRICT }, portLevelMtls: { 9090: { mode: PERMISSIVE } } }'));
    expect(shape(l)).toEqual([
      ['inbound|8080', 8080, 'tls', 'tls'],
      ['inbound|9090', 9090, 'tls', 'tls'],
      ['inbound|9090|plaintext', 9090, 'raw_buffer', 'plain'],
    ]);
    expect(l.filterChains[0]?.tls).toMatchObject({ certificateSecret: 'default', validationSecret: 'ROOTCA', requireClientCertificate: true });
  });

  it('without mesh mTLS (development) one chain per port takes anything, whatever the policy says', () => {
    expect(shape(inbound(pa('default', 'ns', '{ mtls: { mode: STRICT } }'), 'default', false))).toEqual([
      ['inbound|8080', 8080, 'any', 'plain'],
      ['inbound|9090', 9090, 'any', 'plain'],
    ]);
  });
});

describe('AuthorizationPolicy: Envoy RBAC in every inbound chain, evaluated by the proxy', () => {
  const CLIENT = 'spiffe://cluster.local/ns/default/sa/client';
  const OTHER = 'spiffe://cluster.local/ns/default/sa/other';
  const PROD = 'spiffe://cluster.local/ns/prod/sa/client';
  const req = (identity: string | undefined, more: Partial<AuthzRequest> = {}): AuthzRequest => ({ identity, method: 'GET', path: '/', port: 8080, ...more });
  const sel = 'selector: { matchLabels: { app: server } }';
  const STREAM = { method: undefined, path: undefined };

  type Case = [string, string, AuthzRequest, boolean, string?];
  const cases: Case[] = [
    ['no policy: allowed, even without an identity', '', req(undefined), true],
    ['ALLOW by exact principal (Istio form, no scheme): the caller', authz('default', 'p', `{ ${sel}, rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }] }`), req(CLIENT), true, 'ns[default]-policy[p]-rule[0]'],
    ['ALLOW by exact principal: someone else is denied', authz('default', 'p', `{ ${sel}, rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }] }`), req(OTHER), false],
    ['ALLOW by principal: a plaintext peer has none and is denied', authz('default', 'p', `{ ${sel}, rules: [{ from: [{ source: { principals: ["*"] } }] }] }`), req(undefined), false],
    ['ALLOW principals "*": any authenticated peer', authz('default', 'p', `{ ${sel}, rules: [{ from: [{ source: { principals: ["*"] } }] }] }`), req(PROD), true],
    ['ALLOW principal prefix*', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/*"] } }] }] }`), req(OTHER), true],
    ['ALLOW principal prefix*: other namespace denied', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: ["cluster.local/ns/default/*"] } }] }] }`), req(PROD), false],
    ['ALLOW principal *suffix', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: ["*/sa/client"] } }] }] }`), req(PROD), true],
    ['ALLOW principal *suffix: other account denied', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: ["*/sa/client"] } }] }] }`), req(OTHER), false],
    ['ALLOW source namespace', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: [prod] } }] }] }`), req(PROD), true],
    ['ALLOW source namespace: another namespace denied', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: [prod] } }] }] }`), req(CLIENT), false],
    ['ALLOW source namespace prefix*', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: ["pro*"] } }] }] }`), req(PROD), true],
    ['ALLOW source namespace *suffix', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: ["*ault"] } }] }] }`), req(CLIENT), true],
    ['principals AND namespaces in one source: both must hold', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: ["*/sa/client"], namespaces: [prod] } }] }] }`), req(CLIENT), false],
    ['two sources are alternatives', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: [prod] } }, { source: { principals: [cluster.local/ns/default/sa/client] } }] }] }`), req(CLIENT), true],
    ['ALLOW methods: GET', authz('default', 'p', `{ rules: [{ to: [{ operation: { methods: [GET, HEAD] } }] }] }`), req(CLIENT), true],
    ['ALLOW methods: POST denied', authz('default', 'p', `{ rules: [{ to: [{ operation: { methods: [GET, HEAD] } }] }] }`), req(CLIENT, { method: 'POST' }), false],
    ['ALLOW exact path', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: [/api] } }] }] }`), req(CLIENT, { path: '/api' }), true],
    ['ALLOW exact path: a longer path is denied', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: [/api] } }] }] }`), req(CLIENT, { path: '/api/x' }), false],
    ['ALLOW path prefix*', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: ["/api/*"] } }] }] }`), req(CLIENT, { path: '/api/v1/x' }), true],
    ['ALLOW path *suffix', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: ["*.json"] } }] }] }`), req(CLIENT, { path: '/data/x.json' }), true],
    ['ALLOW path *suffix: other suffix denied', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: ["*.json"] } }] }] }`), req(CLIENT, { path: '/data/x.xml' }), false],
    ['ALLOW ports: the app port named', authz('default', 'p', `{ rules: [{ to: [{ operation: { ports: ["9090"] } }] }] }`), req(CLIENT, { port: 9090 }), true],
    ['ALLOW ports: another app port denied', authz('default', 'p', `{ rules: [{ to: [{ operation: { ports: [9090] } }] }] }`), req(CLIENT, { port: 8080 }), false],
    ['from AND to in one rule', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: [default] } }], to: [{ operation: { methods: [POST], paths: ["/api/*"] } }] }] }`), req(CLIENT, { method: 'POST', path: '/api/x' }), true],
    ['from AND to in one rule: the method misses', authz('default', 'p', `{ rules: [{ from: [{ source: { namespaces: [default] } }], to: [{ operation: { methods: [POST], paths: ["/api/*"] } }] }] }`), req(CLIENT, { path: '/api/x' }), false],
    ['an ALLOW rule {} allows everything', authz('default', 'p', `{ rules: [{}] }`), req(undefined), true],
    ['an ALLOW policy without rules allows nothing', authz('default', 'p', `{ action: ALLOW }`), req(CLIENT), false],
    ['DENY a path: denied, naming the rule', authz('default', 'deny-admin', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }`), req(CLIENT, { path: '/admin/users' }), false, 'ns[default]-policy[deny-admin]-rule[0]'],
    ['DENY a path: other paths pass (no ALLOW policy)', authz('default', 'deny-admin', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }`), req(CLIENT, { path: '/x' }), true],
    ['DENY is evaluated before ALLOW', authz('default', 'allow-all', `{ rules: [{}] }`) + authz('default', 'deny-prod', `{ action: DENY, rules: [{ from: [{ source: { namespaces: [prod] } }] }] }`), req(PROD), false, 'ns[default]-policy[deny-prod]-rule[0]'],
    ['a DENY policy without rules denies nothing', authz('default', 'd', `{ action: DENY }`), req(CLIENT), true],
    ['a policy of another namespace does not apply', authz('prod', 'p', `{ action: ALLOW }`), req(CLIENT), true],
    ['a selector that does not match does not apply', authz('default', 'p', `{ selector: { matchLabels: { app: other } }, action: ALLOW }`), req(CLIENT), true],
    ['mesh-wide in weft-system applies everywhere', authz('weft-system', 'mesh', `{ action: DENY, rules: [{ to: [{ operation: { methods: [DELETE] } }] }] }`), req(CLIENT, { method: 'DELETE' }), false, 'ns[weft-system]-policy[mesh]-rule[0]'],
    ['not* in an ALLOW rule: the rule is dropped (allows less)', authz('default', 'p', `{ rules: [{ to: [{ operation: { notPaths: [/secret] } }] }] }`), req(CLIENT, { path: '/open' }), false],
    ['not* in a DENY rule: the negation is ignored (denies more)', authz('default', 'd', `{ action: DENY, rules: [{ from: [{ source: { notPrincipals: [cluster.local/ns/default/sa/client] } }] }] }`), req(CLIENT), false],
    // A byte stream (TCP, an HBONE tunnel) has no method or path: as Istio's sidecars and ztunnel do.
    ['on a stream: an ALLOW rule that needs a path allows nothing', authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: [/api] } }] }] }`), req(CLIENT, STREAM), false],
    ['on a stream: an ALLOW rule on the caller alone still allows', authz('default', 'p', `{ rules: [{ from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }] }] }`), req(CLIENT, STREAM), true],
    ['on a stream: a DENY rule on a path denies the stream (its HTTP conditions left out)', authz('default', 'deny-admin', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"] } }] }] }`), req(CLIENT, STREAM), false, 'ns[default]-policy[deny-admin]-rule[0]'],
    ['on a stream: a DENY rule on a method denies the stream', authz('default', 'd', `{ action: DENY, rules: [{ to: [{ operation: { methods: [DELETE] } }] }] }`), req(CLIENT, STREAM), false],
    ['on a stream: a DENY rule on a path and a port keeps its port', authz('default', 'd', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"], ports: [9090] } }] }] }`), req(CLIENT, STREAM), true],
    ['on a stream: a DENY rule on a path and a port denies that port', authz('default', 'd', `{ action: DENY, rules: [{ to: [{ operation: { paths: ["/admin*"], ports: [9090] } }] }] }`), req(CLIENT, { ...STREAM, port: 9090 }), false],
    ['on a stream: a DENY rule on a path keeps its caller condition', authz('default', 'd', `{ action: DENY, rules: [{ from: [{ source: { namespaces: [prod] } }], to: [{ operation: { paths: ["/admin*"] } }] }] }`), req(CLIENT, STREAM), true],
  ];

  it.each(cases)('%s', (_name, yaml, request, allow, policy) => {
    const l = inbound(yaml);
    const chains = l.filterChains.filter((c) => c.destinationPorts[0] === request.port);
    expect(chains.length).toBeGreaterThan(0);
    for (const chain of chains) {
      const d = evaluateRbac(chain.filter.kind === 'http' ? chain.filter.rbac : [], request);
      expect(d.allow, d.reason).toBe(allow);
      if (policy) expect(d.policy).toBe(policy);
    }
  });

  it('the hook matches paths without the query string, and takes the port from the chain for plaintext', () => {
    const l = inbound(authz('default', 'p', `{ rules: [{ to: [{ operation: { paths: [/api], ports: [8080] } }] }] }`));
    const chain = l.filterChains.find((c) => c.name === 'inbound|8080|plaintext')!;
    const logged: string[] = [];
    const log = { debug() {}, info: (m: string) => void logged.push(m), warn() {}, error() {}, child: () => log };
    const hook = rbacAuthorizer(log);
    const facts = (path: string) => ({ authority: 'server', method: 'GET', path, scheme: 'http' as const, header: () => undefined });
    const peer = { identity: undefined, address: '127.0.0.1', secure: false, targetPort: undefined };
    expect(hook(facts('/api?x=1'), peer, chain).allow).toBe(true);
    expect(logged).toEqual([]);
    expect(hook(facts('/other?api'), peer, chain).allow).toBe(false);
    expect(logged).toEqual(['request denied by authorization policy']);
  });

  it('puts the DENY filter, then the ALLOW filter, before the router', () => {
    const set = translate(
      model(authz('default', 'a', `{ rules: [{}] }`) + authz('default', 'd', `{ action: DENY, rules: [{}] }`)),
      { id: 'server.default', workload: 'server', namespace: 'default', mode: 'sidecar' },
      () => undefined,
      { trustDomain: 'cluster.local', mtls: true },
    );
    const chains = set[TypeUrl.Listener].get('inbound')?.filter_chains as Array<{ filters: Array<{ typed_config: { http_filters: Array<{ name: string; typed_config: { rules?: { action: string } } }> } }> }>;
    const filters = chains[0]?.filters[0]?.typed_config.http_filters ?? [];
    expect(filters.map((f) => `${f.name}${f.typed_config.rules ? `:${f.typed_config.rules.action}` : ''}`)).toEqual([
      'envoy.filters.http.rbac:DENY',
      'envoy.filters.http.rbac:ALLOW',
      'envoy.filters.http.router',
    ]);
  });
});

describe('AuthorizationPolicy end to end', () => {
  let mesh: TestMesh;
  let backend: TestBackend;
  let client: TestSidecar;
  const logs: string[] = [];

  beforeAll(async () => {
    configureLogging({ level: 'info', write: (line) => void (logs.length < 50_000 && logs.push(line)) });
    backend = await startBackend('server');
    mesh = await startTestMesh({
      'mesh.yaml': serverClientYaml(backend.port),
      'policy.yaml': `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: client-reads, namespace: default }
spec:
  selector: { matchLabels: { app: server } }
  rules:
    - from: [{ source: { principals: [cluster.local/ns/default/sa/client] } }]
      to: [{ operation: { methods: [GET], paths: ["/public/*", "/admin/*"] } }]
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: default }
spec:
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/admin/*"] } }] }]
`,
    });
    const server = await mesh.sidecar('server.default');
    client = await mesh.sidecar('client.default');
    await waitReady(server, client);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://server/public/ping')).status).toBe(200), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    configureLogging({ level: 'error', write: (line) => process.stderr.write(line + '\n') });
    await mesh?.close();
    await backend?.close();
  });

  it('allows what an ALLOW rule matches, and the app sees the caller', async () => {
    const before = backend.count;
    const r = await viaProxy(client.outbound, 'http://server/public/x');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).headers['x-forwarded-client-cert']).toContain('URI=spiffe://cluster.local/ns/default/sa/client');
    expect(backend.count).toBe(before + 1);
  });

  it('denies with 403 "RBAC: access denied" what no ALLOW rule matches, and what a DENY rule matches, naming the policy in the log', async () => {
    const before = backend.count;
    const post = await viaProxy(client.outbound, 'http://server/public/x', { method: 'POST', body: 'x' });
    expect(post.status).toBe(403);
    expect(post.body).toBe('RBAC: access denied\n');
    const admin = await viaProxy(client.outbound, 'http://server/admin/users');
    expect(admin.status).toBe(403);
    expect(admin.body).toBe('RBAC: access denied\n');
    expect(backend.count).toBe(before);
    await eventually(() => {
      const denials = logs.filter((l) => l.includes('request denied by authorization policy'));
      expect(denials.some((l) => l.includes('policy=ns[default]-policy[deny-admin]-rule[0]') && l.includes('peer=spiffe://cluster.local/ns/default/sa/client') && l.includes('path=/admin/users'))).toBe(true);
      expect(denials.some((l) => l.includes('matched no ALLOW policy') && l.includes('method=POST'))).toBe(true);
    });
  });
});
