// A STAND-IN for the Kubernetes API server, for tests only: no real API server can run here.
// It speaks the real wire protocol on 127.0.0.1 (HTTPS, bearer-token auth) for what Weft uses:
// list + watch with resourceVersion (JSON lines, allowWatchBookmarks BOOKMARKs, `410 Gone` /
// `Expired` once history is compacted), get / create / replace / patch / delete with optimistic
// concurrency (409 Conflict), the status subresource, generation, TokenReview
// (authentication.k8s.io/v1), Leases, ConfigMaps, Secrets, MutatingWebhookConfigurations, /version.
// It is not Kubernetes: no admission, no defaulting, no RBAC, field selectors on
// metadata.name / metadata.namespace only; it stores what it is sent, a custom resource with its
// keys sorted (as the API server's unstructured JSON comes back). The real @kubernetes/client-node talks to it through a real kubeconfig.
import crypto from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { applyPatch, mergePatch, type Json, type PatchOperation } from '../../control-plane/injector/patch.js';

type Obj = { [key: string]: Json };

interface ResourceType {
  readonly group: string;
  readonly versions: readonly string[];
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
  /** Has a status subresource: writes to the main resource keep the old status, and /status only changes status. */
  readonly status: boolean;
}

const GATEWAY = 'gateway.networking.k8s.io';
const TYPES: readonly ResourceType[] = [
  { group: '', versions: ['v1'], plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true },
  { group: '', versions: ['v1'], plural: 'services', kind: 'Service', namespaced: true, status: true },
  { group: '', versions: ['v1'], plural: 'pods', kind: 'Pod', namespaced: true, status: true },
  { group: '', versions: ['v1'], plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, status: false },
  { group: '', versions: ['v1'], plural: 'configmaps', kind: 'ConfigMap', namespaced: true, status: false },
  { group: '', versions: ['v1'], plural: 'secrets', kind: 'Secret', namespaced: true, status: false },
  { group: 'discovery.k8s.io', versions: ['v1'], plural: 'endpointslices', kind: 'EndpointSlice', namespaced: true, status: false },
  { group: GATEWAY, versions: ['v1', 'v1beta1'], plural: 'httproutes', kind: 'HTTPRoute', namespaced: true, status: true },
  { group: GATEWAY, versions: ['v1'], plural: 'grpcroutes', kind: 'GRPCRoute', namespaced: true, status: true },
  { group: GATEWAY, versions: ['v1', 'v1beta1'], plural: 'referencegrants', kind: 'ReferenceGrant', namespaced: true, status: false },
  { group: GATEWAY, versions: ['v1'], plural: 'gateways', kind: 'Gateway', namespaced: true, status: true },
  { group: GATEWAY, versions: ['v1'], plural: 'gatewayclasses', kind: 'GatewayClass', namespaced: false, status: true },
  { group: 'weft.dev', versions: ['v1alpha1'], plural: 'workloadentries', kind: 'WorkloadEntry', namespaced: true, status: true },
  { group: 'weft.dev', versions: ['v1alpha1'], plural: 'peerauthentications', kind: 'PeerAuthentication', namespaced: true, status: false },
  { group: 'weft.dev', versions: ['v1alpha1'], plural: 'authorizationpolicies', kind: 'AuthorizationPolicy', namespaced: true, status: false },
  { group: 'coordination.k8s.io', versions: ['v1'], plural: 'leases', kind: 'Lease', namespaced: true, status: false },
  {
    group: 'admissionregistration.k8s.io',
    versions: ['v1'],
    plural: 'mutatingwebhookconfigurations',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
    status: false,
  },
];

/** Built-in kinds omit apiVersion/kind on list items, as the real server does; CRDs keep them. */
const BUILTIN_GROUPS = new Set(['', 'discovery.k8s.io', 'coordination.k8s.io', 'admissionregistration.k8s.io']);

function apiVersionOf(group: string, version: string): string {
  return group ? `${group}/${version}` : version;
}

function typeFor(apiVersion: string, kind: string): ResourceType {
  const [group, version] = apiVersion.includes('/') ? (apiVersion.split('/') as [string, string]) : ['', apiVersion];
  const t = TYPES.find((x) => x.group === group && x.kind === kind && x.versions.includes(version));
  if (!t) throw new Error(`stand-in API server: unknown kind ${apiVersion} ${kind}`);
  return t;
}

interface StoredEvent {
  readonly rv: number;
  readonly type: ResourceType;
  readonly event: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly object: Obj;
}

interface Watcher {
  readonly type: ResourceType;
  readonly version: string;
  readonly namespace: string | undefined;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
  readonly labelSelector: string | null;
  readonly fieldSelector: string | null;
  timers: NodeJS.Timeout[];
}

export interface IssuedToken {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly audiences: readonly string[];
  /** A token bound to a pod stops authenticating once that pod (same uid) is gone. */
  readonly pod?: { readonly name: string; readonly uid: string };
  readonly node?: string;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly contentType: string | undefined;
}

export interface StandInOptions {
  /** Server key and certificate chain (PEM); the kubeconfig trusts `caPem`. */
  readonly tls: { readonly keyPem: string; readonly chainPem: readonly string[]; readonly caPem: string };
  /** The token clients must present (the kubeconfig carries it). */
  readonly adminToken?: string;
  readonly version?: { readonly major: string; readonly minor: string };
  /** How often an open watch that asked for bookmarks gets one. */
  readonly bookmarkIntervalMs?: number;
  /** The audiences a TokenReview without spec.audiences checks (the API server's own). */
  readonly apiAudiences?: readonly string[];
}

function status(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

function qualified(t: ResourceType): string {
  return t.group ? `${t.plural}.${t.group}` : t.plural;
}

/** Custom resources (CRDs) are stored as unstructured JSON, whose keys come back sorted. */
function isCustom(t: ResourceType): boolean {
  return t.group === GATEWAY || t.group === 'weft.dev';
}

/** A value with every object's keys sorted: what the API server sends back for a custom resource. */
export function sortKeys(v: Json): Json {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(sortKeys);
  return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k]!)]));
}

function nowSeconds(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

export class StandInApiServer {
  /** Every request received, in order (for assertions such as "status was written"). */
  readonly requests: RecordedRequest[] = [];
  /** The spec of every TokenReview received (token and audiences). */
  readonly tokenReviews: { token: string; audiences: string[] }[] = [];
  private readonly store = new Map<ResourceType, Map<string, Obj>>(TYPES.map((t) => [t, new Map()]));
  private history: StoredEvent[] = [];
  private rv = 1000;
  /** Watches asking for a resourceVersion older than this get 410 Gone. */
  private oldestRv = 1000;
  private readonly watchers = new Set<Watcher>();
  private readonly tokens = new Map<string, IssuedToken>();
  private server!: https.Server;
  readonly adminToken: string;
  private failNext: { method: string; pathPrefix: string; code: number }[] = [];
  private readonly failAlways: { method: string; pathPrefix: string; code: number }[] = [];

  private constructor(private readonly opts: StandInOptions) {
    this.adminToken = opts.adminToken ?? crypto.randomBytes(16).toString('hex');
  }

  static async start(opts: StandInOptions): Promise<StandInApiServer> {
    const s = new StandInApiServer(opts);
    s.server = https.createServer({ key: opts.tls.keyPem, cert: opts.tls.chainPem.join('') }, (req, res) => s.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(0, '127.0.0.1', () => resolve());
    });
    return s;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** A kubeconfig for this server (what `--kubeconfig` reads), with the admin token. */
  kubeconfigYaml(): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: stand-in',
      '  cluster:',
      `    server: ${this.url}`,
      `    certificate-authority-data: ${Buffer.from(this.opts.tls.caPem).toString('base64')}`,
      'users:',
      '- name: weft',
      '  user:',
      `    token: ${this.adminToken}`,
      'contexts:',
      '- name: stand-in',
      '  context: {cluster: stand-in, user: weft}',
      'current-context: stand-in',
      '',
    ].join('\n');
  }

  kubeConfig(): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromString(this.kubeconfigYaml());
    return kc;
  }

  async stop(): Promise<void> {
    this.endWatches();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- What a test does to the cluster (like kubectl) -------------------------------------

  /** Creates or replaces an object (by apiVersion/kind/namespace/name); returns it as stored. */
  apply(object: object): Obj {
    const o = structuredClone(object) as Obj;
    const meta = (o.metadata ?? {}) as Obj;
    const t = typeFor(String(o.apiVersion), String(o.kind));
    const ns = t.namespaced ? String(meta.namespace ?? 'default') : undefined;
    const existing = this.store.get(t)?.get(this.key(ns, String(meta.name)));
    if (!existing) return this.create(t, ns, o);
    delete meta.resourceVersion;
    const written = this.replace(t, ns, String(meta.name), o, { subresource: undefined });
    // A test's apply stands for every writer at once (the kubelet writes a pod's status too).
    if (!t.status || o.status === undefined) return written;
    return this.replace(t, ns, String(meta.name), { metadata: {}, status: o.status }, { subresource: 'status' });
  }

  /** Deletes an object; true if it existed. */
  remove(apiVersion: string, kind: string, namespace: string | undefined, name: string): boolean {
    const t = typeFor(apiVersion, kind);
    return this.delete(t, t.namespaced ? (namespace ?? 'default') : undefined, name) !== undefined;
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const t = typeFor(apiVersion, kind);
    const o = this.store.get(t)?.get(this.key(t.namespaced ? (namespace ?? 'default') : undefined, name));
    return o ? structuredClone(o) : undefined;
  }

  list(apiVersion: string, kind: string): Obj[] {
    return [...(this.store.get(typeFor(apiVersion, kind))?.values() ?? [])].map((o) => structuredClone(o));
  }

  /** Forgets the event history: a watch resuming from any older resourceVersion gets 410 Gone. */
  compact(): void {
    this.history = [];
    this.oldestRv = this.rv;
  }

  /** Ends every open watch (as an API server does on timeout or restart). */
  endWatches(): void {
    for (const w of [...this.watchers]) this.closeWatch(w);
  }

  openWatches(kind?: string): number {
    return [...this.watchers].filter((w) => kind === undefined || w.type.kind === kind).length;
  }

  /** Sends a BOOKMARK with the current resourceVersion to every watch that asked for them. */
  bookmarkAll(): void {
    for (const w of this.watchers) if (w.bookmarks) this.sendBookmark(w);
  }

  /** Makes the next matching request fail with `code` (e.g. 500), once. */
  failOnce(method: string, pathPrefix: string, code: number): void {
    this.failNext.push({ method, pathPrefix, code });
  }

  /** Makes every matching request fail with `code` until the returned function is called. */
  failAll(method: string, pathPrefix: string, code: number): () => void {
    const rule = { method, pathPrefix, code };
    this.failAlways.push(rule);
    return () => {
      const i = this.failAlways.indexOf(rule);
      if (i >= 0) this.failAlways.splice(i, 1);
    };
  }

  /** A ServiceAccount token as the kubelet would project it; TokenReview knows it. */
  issueToken(t: IssuedToken): string {
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'stand-in' })).toString('base64url');
    const claims = Buffer.from(JSON.stringify({ aud: t.audiences, sub: `system:serviceaccount:${t.namespace}:${t.serviceAccount}` })).toString(
      'base64url',
    );
    const token = `${header}.${claims}.${crypto.randomBytes(32).toString('base64url')}`;
    this.tokens.set(token, t);
    return token;
  }

  currentResourceVersion(): string {
    return String(this.rv);
  }

  // ---- The HTTP side ------------------------------------------------------------------------

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://stand-in');
    this.requests.push({
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers['content-type'],
    });
    const send = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.adminToken}`) {
      send(401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const matches = (f: { method: string; pathPrefix: string }) => f.method === req.method && url.pathname.startsWith(f.pathPrefix);
    const injected = this.failNext.findIndex(matches);
    const always = this.failAlways.find(matches);
    if (injected >= 0 || always) {
      const f = always ?? this.failNext.splice(injected, 1)[0]!;
      send(f.code, status(f.code, f.code === 500 ? 'InternalError' : 'ServiceUnavailable', 'injected failure (stand-in)'));
      return;
    }
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      try {
        this.route(req, res, url, body, send);
      } catch (err) {
        if (err instanceof HttpError) send(err.code, err.body);
        else send(500, status(500, 'InternalError', String(err)));
      }
    });
  }

  private route(req: IncomingMessage, res: ServerResponse, url: URL, body: string, send: (code: number, body: unknown) => void): void {
    const method = req.method ?? 'GET';
    if (url.pathname === '/version') {
      const v = this.opts.version ?? { major: '1', minor: '30' };
      send(200, { major: v.major, minor: v.minor, gitVersion: `v${v.major}.${v.minor}.0`, platform: 'linux/amd64' });
      return;
    }
    if (url.pathname === '/apis/authentication.k8s.io/v1/tokenreviews' && method === 'POST') {
      send(201, this.tokenReview(parseJson(body)));
      return;
    }
    const target = this.parsePath(url.pathname);
    if (!target) {
      send(404, status(404, 'NotFound', `the server could not find the requested resource (${method} ${url.pathname})`));
      return;
    }
    const { type, version, namespace, name, subresource } = target;
    const apiVersion = apiVersionOf(type.group, version);
    const stamp = (o: Obj): Obj => ({ ...o, apiVersion, kind: type.kind });
    if (method === 'GET' && name === undefined) {
      if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
        this.watch(type, version, namespace, url.searchParams, res);
        return;
      }
      const items = [...(this.store.get(type)?.values() ?? [])]
        .filter((o) => namespace === undefined || (o.metadata as Obj).namespace === namespace)
        .filter((o) => matchesLabels(o, url.searchParams.get('labelSelector')))
        .filter((o) => matchesFields(o, url.searchParams.get('fieldSelector')))
        .map((o) => (BUILTIN_GROUPS.has(type.group) ? withoutTypeMeta(o) : stamp(o)));
      send(200, { kind: `${type.kind}List`, apiVersion, metadata: { resourceVersion: String(this.rv) }, items });
      return;
    }
    if (method === 'POST' && name === undefined) {
      const o = parseJson(body) as Obj;
      send(201, stamp(this.create(type, namespace, o)));
      return;
    }
    if (name === undefined) throw new HttpError(405, status(405, 'MethodNotAllowed', `${method} is not allowed on a collection`));
    const existing = this.store.get(type)?.get(this.key(namespace, name));
    if (method === 'GET') {
      if (!existing) throw notFound(type, name);
      send(200, stamp(existing));
      return;
    }
    if (method === 'PUT') {
      send(200, stamp(this.replace(type, namespace, name, parseJson(body) as Obj, { subresource })));
      return;
    }
    if (method === 'PATCH') {
      if (!existing) throw notFound(type, name);
      const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim();
      const patch = parseJson(body);
      let next: Json;
      if (contentType === 'application/json-patch+json') {
        try {
          next = applyPatch(existing, patch as unknown as PatchOperation[]);
        } catch (err) {
          throw new HttpError(422, status(422, 'Invalid', `the JSON patch could not be applied: ${(err as Error).message}`));
        }
      } else if (contentType === 'application/merge-patch+json' || contentType === 'application/strategic-merge-patch+json') {
        // Strategic merge is treated as a plain merge patch here (a stand-in simplification).
        next = mergePatch(existing, patch);
      } else {
        throw new HttpError(415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json`));
      }
      send(200, stamp(this.replace(type, namespace, name, next as Obj, { subresource, patch: true })));
      return;
    }
    if (method === 'DELETE') {
      const gone = this.delete(type, namespace, name);
      if (!gone) throw notFound(type, name);
      send(200, stamp(gone));
      return;
    }
    throw new HttpError(405, status(405, 'MethodNotAllowed', `${method} is not allowed`));
  }

  private parsePath(pathname: string):
    | { type: ResourceType; version: string; namespace: string | undefined; name: string | undefined; subresource: string | undefined }
    | undefined {
    const seg = pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (seg[0] === 'api' && seg.length >= 2) {
      group = '';
      version = seg[1]!;
      rest = seg.slice(2);
    } else if (seg[0] === 'apis' && seg.length >= 3) {
      group = seg[1]!;
      version = seg[2]!;
      rest = seg.slice(3);
    } else {
      return undefined;
    }
    const find = (plural: string | undefined) => TYPES.find((t) => t.group === group && t.plural === plural && t.versions.includes(version));
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const t = find(rest[2]);
      if (t?.namespaced) return { type: t, version, namespace: rest[1], name: rest[3], subresource: rest[4] };
    }
    const t = find(rest[0]);
    if (!t) return undefined;
    // A namespaced kind listed across all namespaces (`/api/v1/pods`), or a cluster-scoped kind.
    return { type: t, version, namespace: undefined, name: rest[1], subresource: rest[2] };
  }

  private key(namespace: string | undefined, name: string): string {
    return namespace === undefined ? name : `${namespace}/${name}`;
  }

  private create(type: ResourceType, namespace: string | undefined, input: Obj): Obj {
    const o = structuredClone(input);
    const meta = ((o.metadata ??= {}) as Obj);
    if (!meta.name && typeof meta.generateName === 'string') meta.name = `${meta.generateName}${crypto.randomBytes(3).toString('hex').slice(0, 5)}`;
    if (typeof meta.name !== 'string' || meta.name === '') {
      throw new HttpError(422, status(422, 'Invalid', `${type.kind} "" is invalid: metadata.name: Required value: name or generateName is required`));
    }
    const ns = type.namespaced ? (namespace ?? (meta.namespace as string | undefined) ?? 'default') : undefined;
    if (ns !== undefined) {
      if (meta.namespace !== undefined && meta.namespace !== ns) {
        throw new HttpError(400, status(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request'));
      }
      meta.namespace = ns;
    }
    const key = this.key(ns, meta.name);
    const objects = this.store.get(type)!;
    if (objects.has(key)) {
      throw new HttpError(409, status(409, 'AlreadyExists', `${qualified(type)} "${meta.name}" already exists`, { name: meta.name, group: type.group, kind: type.plural }));
    }
    meta.uid = crypto.randomUUID();
    meta.creationTimestamp = nowSeconds();
    meta.generation = 1;
    delete o.apiVersion;
    delete o.kind;
    meta.resourceVersion = String(++this.rv);
    const stored = isCustom(type) ? (sortKeys(o) as Obj) : o;
    objects.set(key, stored);
    this.emit(type, 'ADDED', stored);
    return structuredClone(stored);
  }

  private replace(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    input: Obj,
    how: { subresource: string | undefined; patch?: boolean },
  ): Obj {
    const objects = this.store.get(type)!;
    const key = this.key(namespace, name);
    const existing = objects.get(key);
    if (!existing) throw notFound(type, name);
    if (how.subresource !== undefined && (how.subresource !== 'status' || !type.status)) {
      throw new HttpError(404, status(404, 'NotFound', `the server could not find the requested resource (subresource ${how.subresource})`));
    }
    const given = structuredClone(input);
    const meta = ((given.metadata ??= {}) as Obj);
    const oldMeta = existing.metadata as Obj;
    if (meta.resourceVersion !== undefined && meta.resourceVersion !== oldMeta.resourceVersion) {
      throw new HttpError(
        409,
        status(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(type)} "${name}": the object has been modified; please apply your changes to the latest version and try again`),
      );
    }
    if (meta.name !== undefined && meta.name !== name) throw new HttpError(400, status(400, 'BadRequest', 'the name of the object does not match the name on the URL'));
    let next: Obj;
    if (how.subresource === 'status') {
      // The status subresource changes status only.
      next = { ...structuredClone(existing), status: given.status ?? null };
      if (given.status === undefined) delete next.status;
    } else {
      next = { ...given };
      if (type.status) {
        if (existing.status === undefined) delete next.status;
        else next.status = structuredClone(existing.status);
      }
    }
    delete next.apiVersion;
    delete next.kind;
    const nextMeta = { ...(next.metadata as Obj) };
    for (const k of ['uid', 'creationTimestamp', 'namespace', 'name', 'generation'] as const) {
      if (oldMeta[k] === undefined) delete nextMeta[k];
      else nextMeta[k] = oldMeta[k]!;
    }
    const specOf = (o: Obj) => JSON.stringify(sortKeys(Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata' && k !== 'status'))));
    if (specOf(next) !== specOf(existing)) nextMeta.generation = Number(oldMeta.generation ?? 1) + 1;
    next.metadata = nextMeta;
    if (isCustom(type)) next = sortKeys(next) as Obj;
    // Compared as values, whatever the order of keys.
    const unchanged = JSON.stringify(sortKeys({ ...next, metadata: { ...nextMeta, resourceVersion: '' } })) ===
      JSON.stringify(sortKeys({ ...existing, metadata: { ...oldMeta, resourceVersion: '' } }));
    if (unchanged) return structuredClone(existing); // a no-op write does not bump resourceVersion
    (next.metadata as Obj).resourceVersion = String(++this.rv);
    objects.set(key, next);
    this.emit(type, 'MODIFIED', next);
    return structuredClone(next);
  }

  private delete(type: ResourceType, namespace: string | undefined, name: string): Obj | undefined {
    const objects = this.store.get(type)!;
    const key = this.key(namespace, name);
    const existing = objects.get(key);
    if (!existing) return undefined;
    objects.delete(key);
    const gone = structuredClone(existing);
    (gone.metadata as Obj).resourceVersion = String(++this.rv);
    this.emit(type, 'DELETED', gone);
    return gone;
  }

  private emit(type: ResourceType, event: StoredEvent['event'], object: Obj): void {
    const e: StoredEvent = { rv: this.rv, type, event, object: structuredClone(object) };
    this.history.push(e);
    for (const w of this.watchers) if (w.type === type) this.deliver(w, e);
  }

  private deliver(w: Watcher, e: StoredEvent): void {
    if (w.namespace !== undefined && (e.object.metadata as Obj).namespace !== w.namespace) return;
    if (!matchesLabels(e.object, w.labelSelector)) return;
    if (!matchesFields(e.object, w.fieldSelector)) return;
    const object = { ...e.object, apiVersion: apiVersionOf(w.type.group, w.version), kind: w.type.kind };
    w.res.write(`${JSON.stringify({ type: e.event, object })}\n`);
  }

  private sendBookmark(w: Watcher): void {
    const object = { kind: w.type.kind, apiVersion: apiVersionOf(w.type.group, w.version), metadata: { resourceVersion: String(this.rv) } };
    w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
  }

  private watch(type: ResourceType, version: string, namespace: string | undefined, q: URLSearchParams, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const w: Watcher = { type, version, namespace, res, bookmarks: q.get('allowWatchBookmarks') === 'true', labelSelector: q.get('labelSelector'), fieldSelector: q.get('fieldSelector'), timers: [] };
    const from = q.get('resourceVersion') ?? '';
    if (from !== '' && from !== '0' && Number(from) < this.oldestRv) {
      // As the real server does: 200, then one ERROR event carrying a 410 Status, then the end.
      const gone = status(410, 'Expired', `too old resource version: ${from} (${this.oldestRv})`);
      res.end(`${JSON.stringify({ type: 'ERROR', object: gone })}\n`);
      return;
    }
    this.watchers.add(w);
    res.on('close', () => this.closeWatch(w));
    if (from === '' || from === '0') {
      // "Start at most recent" with the current state first, as synthetic ADDED events.
      for (const o of this.store.get(type)!.values()) this.deliver(w, { rv: this.rv, type, event: 'ADDED', object: o });
    } else {
      for (const e of this.history) if (e.type === type && e.rv > Number(from)) this.deliver(w, e);
    }
    if (w.bookmarks) w.timers.push(setInterval(() => this.sendBookmark(w), this.opts.bookmarkIntervalMs ?? 1000));
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timers.push(setTimeout(() => this.closeWatch(w), timeout * 1000));
  }

  private closeWatch(w: Watcher): void {
    if (!this.watchers.delete(w)) return;
    for (const t of w.timers) clearTimeout(t);
    w.res.end();
  }

  private tokenReview(review: Json): Obj {
    const spec = ((review as Obj)?.spec ?? {}) as Obj;
    const token = typeof spec.token === 'string' ? spec.token : '';
    this.tokenReviews.push({ token, audiences: Array.isArray(spec.audiences) ? (spec.audiences as string[]) : [] });
    const wanted = Array.isArray(spec.audiences) && spec.audiences.length > 0 ? (spec.audiences as string[]) : [...(this.opts.apiAudiences ?? ['https://kubernetes.default.svc.cluster.local'])];
    const out = (s: Obj): Obj => ({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', metadata: { creationTimestamp: null }, spec, status: s });
    const issued = this.tokens.get(token);
    if (!issued) return out({ user: {}, error: '[invalid bearer token, square/go-jose: error in cryptographic primitive]' });
    const audiences = issued.audiences.filter((a) => wanted.includes(a));
    if (audiences.length === 0) {
      return out({ user: {}, error: `[invalid bearer token, token audiences ${JSON.stringify(issued.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}]` });
    }
    const extra: Record<string, string[]> = {};
    // As Kubernetes 1.30+ does for a token bound to a pod: the node is the pod's spec.nodeName.
    let node = issued.node;
    if (issued.pod) {
      const pods = this.store.get(TYPES.find((t) => t.kind === 'Pod')!)!;
      const pod = pods.get(`${issued.namespace}/${issued.pod.name}`);
      if (!pod || (pod.metadata as Obj).uid !== issued.pod.uid) {
        return out({ user: {}, error: `[invalid bearer token, pod "${issued.pod.name}" not found or was replaced]` });
      }
      extra['authentication.kubernetes.io/pod-name'] = [issued.pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [issued.pod.uid];
      const podNode = ((pod.spec ?? {}) as Obj).nodeName;
      if (node === undefined && typeof podNode === 'string' && podNode) node = podNode;
    }
    if (node) extra['authentication.kubernetes.io/node-name'] = [node];
    return out({
      authenticated: true,
      user: {
        username: `system:serviceaccount:${issued.namespace}:${issued.serviceAccount}`,
        uid: crypto.createHash('sha256').update(`${issued.namespace}/${issued.serviceAccount}`).digest('hex').slice(0, 36),
        groups: ['system:serviceaccounts', `system:serviceaccounts:${issued.namespace}`, 'system:authenticated'],
        extra,
      },
      audiences,
    });
  }
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly body: Obj,
  ) {
    super(String(body.message));
  }
}

function notFound(type: ResourceType, name: string): HttpError {
  return new HttpError(404, status(404, 'NotFound', `${qualified(type)} "${name}" not found`, { name, group: type.group, kind: type.plural }));
}

function parseJson(body: string): Json {
  try {
    return JSON.parse(body) as Json;
  } catch {
    throw new HttpError(400, status(400, 'BadRequest', 'the request body is not JSON'));
  }
}

function withoutTypeMeta(o: Obj): Obj {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest;
}

/** Equality-based label selectors only (`a=b,c=d`). */
/** `metadata.name=X,metadata.namespace=Y` (equality only); anything else is refused loudly. */
function matchesFields(o: Obj, selector: string | null): boolean {
  if (!selector) return true;
  const meta = o.metadata as Obj;
  return selector.split(',').every((term) => {
    const m = /^metadata\.(name|namespace)=(.*)$/.exec(term);
    if (!m) throw new Error(`stand-in API server: field selector "${term}" is not supported`);
    return meta[m[1]!] === m[2];
  });
}

function matchesLabels(o: Obj, selector: string | null): boolean {
  if (!selector) return true;
  const labels = ((o.metadata as Obj).labels ?? {}) as Record<string, string>;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=') as [string, string | undefined];
    return v === undefined ? k in labels : labels[k] === v;
  });
}
