// Entry point for turning one untrusted YAML/JSON document into a typed, defaulted, frozen
// config object, or into the list of every problem found in it (each with its field path).
import type { FieldProblem } from '../../core/errors.js';
import { deepFreeze, Reader, show, type Obj } from './read.js';
import { parseEndpointSlice, parseMetadata, parseNamespace, parseService, type MetaOpts } from './parse-core.js';
import { parseGateway, parseGRPCRoute, parseHTTPRoute, parseReferenceGrant } from './parse-routes.js';
import { parseAuthorizationPolicy, parsePeerAuthentication, parseWorkloadEntry } from './parse-weft.js';
import type { ConfigObject, ObjectMeta } from './types.js';

export type ParseResult =
  | { readonly ok: true; readonly object: ConfigObject }
  | {
      readonly ok: false;
      readonly problems: readonly FieldProblem[];
      /** `Kind namespace/name` when the document got that far, for messages. */
      readonly object?: string;
    };

interface KindSpec {
  readonly meta: MetaOpts;
  /** Top-level fields besides apiVersion, kind, metadata and status. */
  readonly fields: readonly string[];
  readonly parse: (r: Reader, doc: Obj, metadata: ObjectMeta, apiVersion: string) => ConfigObject | undefined;
}

const NAMESPACED: MetaOpts = { namespaced: true };

const SERVICE: KindSpec = { meta: { namespaced: true, nameIsLabel: 'dns1035' }, fields: ['spec'], parse: parseService };
const NAMESPACE: KindSpec = { meta: { namespaced: false, nameIsLabel: 'dns1123' }, fields: ['spec'], parse: parseNamespace };
const ENDPOINT_SLICE: KindSpec = { meta: NAMESPACED, fields: ['addressType', 'endpoints', 'ports'], parse: parseEndpointSlice };
const HTTP_ROUTE: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseHTTPRoute };
const GRPC_ROUTE: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseGRPCRoute };
const REFERENCE_GRANT: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseReferenceGrant };
const GATEWAY: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseGateway };
const WORKLOAD_ENTRY: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseWorkloadEntry };
const PEER_AUTHN: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parsePeerAuthentication };
const AUTHZ: KindSpec = { meta: NAMESPACED, fields: ['spec'], parse: parseAuthorizationPolicy };

/** apiVersion → kind → how to read it. The one table of what Weft understands. */
const KINDS: Readonly<Record<string, Readonly<Record<string, KindSpec>>>> = {
  v1: { Service: SERVICE, Namespace: NAMESPACE },
  'discovery.k8s.io/v1': { EndpointSlice: ENDPOINT_SLICE },
  'gateway.networking.k8s.io/v1': { HTTPRoute: HTTP_ROUTE, GRPCRoute: GRPC_ROUTE, ReferenceGrant: REFERENCE_GRANT, Gateway: GATEWAY },
  'gateway.networking.k8s.io/v1beta1': { HTTPRoute: HTTP_ROUTE, ReferenceGrant: REFERENCE_GRANT },
  'weft.dev/v1alpha1': { WorkloadEntry: WORKLOAD_ENTRY, PeerAuthentication: PEER_AUTHN, AuthorizationPolicy: AUTHZ },
};

export function supportedKinds(): string {
  return Object.entries(KINDS)
    .map(([version, kinds]) => `${version} (${Object.keys(kinds).join(', ')})`)
    .join('; ');
}

export function parseObject(doc: unknown): ParseResult {
  const r = new Reader();
  const top = r.object('', doc, { required: true });
  if (!top) {
    return { ok: false, problems: [{ field: '', message: `a document must be a mapping with apiVersion, kind and metadata, got ${show(doc)}` }] };
  }
  const apiVersion = r.string('apiVersion', top.apiVersion, { required: true });
  const kind = r.string('kind', top.kind, { required: true });
  if (apiVersion === undefined || kind === undefined) return { ok: false, problems: r.problems };
  const versionKinds = KINDS[apiVersion];
  if (!versionKinds) {
    const sameKind = Object.entries(KINDS).filter(([, ks]) => kind in ks).map(([v]) => v);
    const hint = sameKind.length > 0 ? `; ${kind} is read as apiVersion ${sameKind.map((v) => show(v)).join(' or ')}` : '';
    r.fail('apiVersion', `${show(apiVersion)} is not a config group Weft reads${hint} (Weft reads: ${supportedKinds()})`);
    return { ok: false, problems: r.problems };
  }
  const spec = versionKinds[kind];
  if (!spec) {
    r.fail('kind', `${show(kind)} is not a kind Weft reads in ${apiVersion} (it reads: ${Object.keys(versionKinds).join(', ')})`);
    return { ok: false, problems: r.problems };
  }
  r.object('', top, { known: ['apiVersion', 'kind', 'metadata', 'status', ...spec.fields] });
  const metadata = parseMetadata(r, top.metadata, spec.meta);
  const object = metadata ? spec.parse(r, top, metadata, apiVersion) : undefined;
  const described = metadata ? `${kind} ${metadata.namespace ? `${metadata.namespace}/` : ''}${metadata.name}` : undefined;
  if (!r.ok || !object) {
    return { ok: false, problems: r.problems, ...(described ? { object: described } : {}) };
  }
  return { ok: true, object: deepFreeze(object) };
}
