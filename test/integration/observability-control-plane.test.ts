// The control plane as an operator watches it: istiod-named metrics on the monitoring port
// (pushes, push time, convergence, NACKs, connected proxies, certificates), a route whose config
// a proxy rejects saying so in its status, and `weft status` / `weft config-dump` reading it all.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toStruct, unpack, type Plain } from '../../api/codec.js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { TypeUrl } from '../../api/types.js';
import { runConfigDump } from '../../cli/config-dump.js';
import { runStatus, type SynczProxy } from '../../cli/status.js';
import { eventually } from '../support/eventually.js';
import { canaryConfig, canaryRoute, startBackend, startTestMesh, viaProxy, waitReady, type TestBackend, type TestMesh, type TestSidecar } from '../support/mesh.js';
import { samples, scrape, total } from '../support/prometheus.js';

/**
 * A proxy that is not Weft's — say an Envoy build without an extension a route uses — which
 * rejects the virtual host (VHDS) it is sent while `reject` says so, naming the resource and the
 * route's field path, and accepts everything else.
 */
class RejectingProxy {
  reject = true;
  private readonly client: grpc.Client;
  private readonly stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private readonly acked = new Map<string, string>();

  constructor(address: string, id: string, token: string) {
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'AggregatedDiscoveryService');
    this.client = new Ctor(address, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${token}`);
    this.stream = this.client.makeBidiStreamRequest(
      adsService.StreamAggregatedResources.path,
      adsService.StreamAggregatedResources.requestSerialize,
      adsService.StreamAggregatedResources.responseDeserialize,
      md,
    ) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    this.stream.on('error', () => {});
    this.stream.on('data', (res: DiscoveryResponse) => this.onResponse(res));
    const node = { id, metadata: toStruct({ WORKLOAD: id, NAMESPACE: 'default', NAME: id.split('.')[0]!, MODE: 'sidecar' }) };
    this.stream.write({ node, type_url: TypeUrl.Listener, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.Cluster, resource_names: [] });
    this.stream.write({ type_url: TypeUrl.RouteConfiguration, resource_names: ['outbound'] });
    this.stream.write({ type_url: TypeUrl.VirtualHost, resource_names: [] });
  }

  private onResponse(res: DiscoveryResponse): void {
    const names = res.type_url === TypeUrl.RouteConfiguration ? ['outbound'] : [];
    const req: DiscoveryRequest = { type_url: res.type_url, response_nonce: res.nonce, resource_names: names, version_info: this.acked.get(res.type_url) ?? '' };
    const offending = res.type_url === TypeUrl.VirtualHost && this.reject ? this.offendingPath(res) : undefined;
    if (offending) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: `Proto constraint validation failed: ${offending}: unsupported extension` };
    else this.acked.set(res.type_url, req.version_info = res.version_info ?? '');
    this.stream.write(req);
  }

  /** `<virtual host resource> routes[j]` of the first route of HTTPRoute default/reviews. */
  private offendingPath(res: DiscoveryResponse): string | undefined {
    for (const any of res.resources ?? []) {
      const vh = unpack(any as { type_url: string; value: Uint8Array });
      const j = ((vh.routes as Plain[] | undefined) ?? []).findIndex((r) => String(r.name).startsWith('default/reviews/'));
      if (j >= 0) return `${String(vh.name)}: routes[${j}].typed_per_filter_config`;
    }
    return undefined;
  }

  close(): void {
    this.stream.cancel();
    this.client.close();
  }
}

describe('control-plane observability', () => {
  let mesh: TestMesh;
  let v1: TestBackend;
  let client: TestSidecar;
  let server: TestSidecar;
  let monitor: string;
  let rejecting: RejectingProxy | undefined;

  beforeAll(async () => {
    v1 = await startBackend('v1');
    const files = canaryConfig(v1.port, v1.port, 100, 0);
    // A third workload whose proxy rejects route config.
    files['workloads.yaml'] += `---
apiVersion: weft.dev/v1alpha1
kind: WorkloadEntry
metadata: { name: legacy, namespace: default, labels: { app: legacy } }
spec: { address: 127.0.0.1, serviceAccount: legacy }
`;
    mesh = await startTestMesh(files);
    monitor = `127.0.0.1:${mesh.cp.monitorAddress.port}`;
    [client, server] = await Promise.all([mesh.sidecar('client.default'), mesh.sidecar('reviews-v1.default')]);
    await waitReady(client, server);
    await eventually(async () => expect((await viaProxy(client.outbound, 'http://reviews:9080/')).status).toBe(200), { timeoutMs: 15_000 });
  });

  afterAll(async () => {
    rejecting?.close();
    await mesh?.close();
    await v1?.close();
  });

  const metrics = async () => (await scrape(`http://${monitor}/metrics`)).families;
  const routeStatus = async () => {
    const body = (await (await fetch(`http://${monitor}/debug/status`)).json()) as {
      routes: Record<string, { parents: { conditions: { type: string; status: string; reason: string; message: string }[] }[]; proxyRejections: { proxy: string; type: string }[] }>;
    };
    return body.routes['HTTPRoute/default/reviews']!;
  };

  it('exports connected proxies, certificates issued, pushes per type and push time', async () => {
    const m = await metrics();
    expect(total(m, 'pilot_xds')).toBe(2);
    expect(total(m, 'citadel_server_success_cert_issuance_count')).toBeGreaterThanOrEqual(2);
    for (const type of ['lds', 'rds', 'vhds', 'cds', 'eds', 'sds']) expect(total(m, 'pilot_xds_pushes', { type }), type).toBeGreaterThanOrEqual(2);
    expect(Number(samples(m, 'pilot_xds_push_time')[0]?.count)).toBeGreaterThanOrEqual(2);
    expect(total(m, 'pilot_total_xds_rejects')).toBe(0);
  });

  it('measures convergence: a config change until every proxy has ACKed it', async () => {
    const before = Number(samples(await metrics(), 'pilot_proxy_convergence_time')[0]?.count ?? 0);
    mesh.write('route.yaml', canaryRoute(99, 1));
    await eventually(async () => {
      const h = samples(await metrics(), 'pilot_proxy_convergence_time')[0]!;
      expect(Number(h.count)).toBe(before + 1);
      expect(Number(h.sum)).toBeGreaterThan(0);
      expect(Number(h.sum)).toBeLessThan(10);
    });
  });

  it('shows a proxy rejecting a route in that route status, in the metrics and in `weft status`', async () => {
    const token = readFileSync(path.join(mesh.stateDir, 'tokens', 'default', 'legacy.token'), 'utf8').trim();
    rejecting = new RejectingProxy(`127.0.0.1:${mesh.cp.xdsAddress.port}`, 'legacy.default', token);
    await eventually(async () => {
      const s = await routeStatus();
      const c = s.parents[0]!.conditions.find((x) => x.type === 'weft.dev/ProxyAccepted')!;
      expect(c).toMatchObject({ status: 'False', reason: 'Rejected' });
      expect(c.message).toContain('legacy.default (VHDS version');
      expect(c.message).toContain('unsupported extension');
      expect(s.proxyRejections).toEqual([expect.objectContaining({ proxy: 'legacy.default', type: 'VHDS' })]);
    });
    // The Gateway API conditions are still there, untouched.
    expect((await routeStatus()).parents[0]!.conditions.map((c) => c.type)).toEqual(['Accepted', 'ResolvedRefs', 'weft.dev/ProxyAccepted']);
    const m = await metrics();
    expect(total(m, 'pilot_total_xds_rejects', { type: 'vhds' })).toBeGreaterThanOrEqual(1);
    expect(total(m, 'pilot_xds_vhds_reject')).toBe(1);
    expect(total(m, 'pilot_xds_rds_reject')).toBe(0);
    expect(total(m, 'pilot_xds_cds_reject')).toBe(0);

    const table = await runStatus({ monitor, output: 'table' });
    expect(table).toMatch(/^NAME\s+STREAM\s+CDS\s+LDS\s+EDS\s+RDS\s+VHDS\s+SDS\s+PEER/);
    expect(table).toMatch(/client\.default\s+\w+\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED\s+SYNCED/);
    expect(table).toMatch(/legacy\.default\s+SOTW\s+SYNCED\s+SYNCED\s+NOT SENT\s+SYNCED\s+NACKED\s+NOT SENT/);
    expect(table).toContain('legacy.default VHDS version');
    const json = JSON.parse(await runStatus({ monitor, output: 'json' })) as SynczProxy[];
    expect(json.find((p) => p.id === 'legacy.default')?.types.VHDS?.status).toBe('NACKED');

    // Fixed (this proxy accepts the next version): the condition turns True again.
    rejecting.reject = false;
    mesh.write('route.yaml', canaryRoute(98, 2));
    await eventually(async () => {
      const c = (await routeStatus()).parents[0]!.conditions.find((x) => x.type === 'weft.dev/ProxyAccepted')!;
      expect(c.status).toBe('True');
      expect(total(await metrics(), 'pilot_xds_vhds_reject')).toBe(0);
    });
  });

  it('`weft config-dump` shows what the control plane sends a proxy, and what the proxy holds', async () => {
    const fromCp = await runConfigDump({ proxy: 'client.default', monitor, admin: undefined, output: 'table' });
    expect(fromCp).toContain('Config of client.default as the control plane sends it');
    expect(fromCp).toMatch(/outbound\s+reviews\.default\.svc\.cluster\.local:9080\s+default\/reviews\/0\s+prefix \/\s+→ outbound\|9080\|\|reviews-v1\.default\.svc\.cluster\.local \(\d+\), outbound\|9080\|\|reviews-v2/);
    expect(fromCp).toMatch(new RegExp(`outbound\\|9080\\|\\|reviews-v1\\.default\\.svc\\.cluster\\.local\\s+127\\.0\\.0\\.1:${server.proxy.ports.inbound}\\s+reviews-v1\\.default\\s+yes`));
    const fromProxy = await runConfigDump({ proxy: 'client.default', monitor, admin: `127.0.0.1:${client.proxy.ports.admin}`, output: 'table' });
    expect(fromProxy).toContain('as the proxy holds it');
    expect(fromProxy).toMatch(/default\/reviews\/0\s+prefix \/\s+→ outbound\|9080\|\|reviews-v1/);
    const json = JSON.parse(await runConfigDump({ proxy: 'client.default', monitor, admin: undefined, output: 'json' })) as Record<string, unknown>;
    expect(Object.keys(json).sort()).toEqual(['CDS', 'EDS', 'LDS', 'RDS', 'SDS', 'VHDS']);
    await expect(runConfigDump({ proxy: 'nobody.default', monitor, admin: undefined, output: 'table' })).rejects.toThrow(/404: no config for proxy "nobody.default"/);
  });
});
