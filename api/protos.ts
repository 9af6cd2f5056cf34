// Loads Envoy's xDS v3 .proto files from the @grpc/grpc-js-xds dependency (its deps/ folder)
// and Weft's own small protos (api/proto), once per process, into one protobufjs Root: from the
// compact descriptor the build writes beside the compiled module (`protos.json`, see
// api/protos-build.ts) when it matches the files below, else by parsing the .proto files.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { ErrorCode, WeftError } from '../core/errors.js';

const require = createRequire(import.meta.url);

const ENVOY_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'google/protobuf/struct.proto',
  'google/protobuf/wrappers.proto',
  'google/protobuf/duration.proto',
];

/** Weft's own protos (the Istio-compatible CA service), shipped in api/proto. */
const WEFT_FILES = ['istio/v1/auth/ca.proto'];

/** Where the build puts the compact descriptor: beside this module (dist/api/protos.json). */
export const DESCRIPTOR_FILE = fileURLToPath(new URL('./protos.json', import.meta.url));

function ownProtoDirs(): string[] {
  // The protos sit beside the sources; from dist/api we look back at the source tree.
  const here = path.dirname(fileURLToPath(import.meta.url));
  return [path.join(here, 'proto'), path.join(here, '..', '..', 'api', 'proto')].filter((d) => existsSync(d));
}

function includeDirs(): string[] {
  const xdsDeps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));
  return [
    ...ownProtoDirs(),
    protobufjsDir,
    ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xdsDeps, d)),
  ];
}

/** Parses every .proto file (and what they import) as text: ~200 ms and a few MB of garbage. */
export function parseProtoFiles(): protobuf.Root {
  const own = ownProtoDirs()[0];
  if (!own || WEFT_FILES.some((f) => !existsSync(path.join(own, f)))) {
    const here = path.dirname(fileURLToPath(import.meta.url));
    throw new WeftError(ErrorCode.INTERNAL, `Weft's own .proto files (${WEFT_FILES.join(', ')}) are neither in ${path.join(here, 'proto')} nor in the source tree's api/proto above ${here}`, {
      hint: 'build into dist/ inside the repository (npm run build), or copy api/proto beside the compiled api/',
    });
  }
  const dirs = includeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (origin, target) => {
    if (path.isAbsolute(target) && existsSync(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  r.loadSync([...ENVOY_FILES, ...WEFT_FILES], { keepCase: true });
  r.resolveAll();
  return r;
}

// ---- The compact descriptor ------------------------------------------------------------------

/**
 * What a descriptor was made from. A descriptor whose key differs from the running code's (a
 * file added to the lists, another protobufjs or Envoy API version, an edited own .proto) is
 * ignored and the files are parsed instead, so a stale build can be slow but never wrong.
 */
export interface DescriptorKey {
  readonly files: readonly string[];
  readonly protobufjs: string;
  readonly envoyApi: string;
  /** SHA-256 of Weft's own .proto files; absent where they are not shipped (the image holds dist/ only). */
  readonly own?: string;
}

export interface ProtoDescriptor {
  readonly key: DescriptorKey;
  /** protobufjs's JSON form of the Root, without comments, option annotations and option-only types. */
  readonly root: protobuf.INamespace;
}

const versionOf = (pkg: string) => (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;

function ownProtoHash(): string | undefined {
  const dir = ownProtoDirs()[0];
  if (!dir) return undefined;
  const h = createHash('sha256');
  for (const f of WEFT_FILES) h.update(f).update('\0').update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

export function descriptorKey(): DescriptorKey {
  const own = ownProtoHash();
  return {
    files: [...ENVOY_FILES, ...WEFT_FILES],
    protobufjs: versionOf('protobufjs'),
    envoyApi: versionOf('@grpc/grpc-js-xds'),
    ...(own ? { own } : {}),
  };
}

function sameKey(a: DescriptorKey, b: DescriptorKey): boolean {
  return (
    a.protobufjs === b.protobufjs &&
    a.envoyApi === b.envoyApi &&
    (a.own === undefined || b.own === undefined || a.own === b.own) &&
    a.files.length === b.files.length &&
    a.files.every((f, i) => f === b.files[i])
  );
}

/**
 * Files that only define annotations (validation rules, API status, versioning): their types are
 * reached through options alone, which the codec never reads. protobufjs keeps the extension
 * fields and descriptor.proto's ~60 types for them; the descriptor leaves them out.
 */
const OPTION_ONLY_FILES = /(^|\/)(validate\/validate|udpa\/annotations\/[^/]+|xds\/annotations\/v3\/[^/]+|envoy\/annotations\/[^/]+|google\/protobuf\/descriptor)\.proto$/;

/** Options that change how protobufjs encodes or builds a type; every other option is dropped. */
const SEMANTIC_OPTION = /^(packed|default|proto3_optional|allow_alias|features(\..*)?)$/;

type Json = Record<string, unknown>;

function semanticOptions(options: unknown): Json | undefined {
  if (!options) return undefined;
  const kept = Object.entries(options as Json).filter(([k]) => SEMANTIC_OPTION.test(k));
  return kept.length > 0 ? Object.fromEntries(kept) : undefined;
}

function withOptions(json: Json, options: unknown): Json {
  const { options: _dropped, ...rest } = json;
  const kept = semanticOptions(options);
  return kept ? { ...rest, options: kept } : rest;
}

/** Every type, enum and service the codec can reach from the files that are not option-only. */
function reachable(root: protobuf.Root): Set<protobuf.ReflectionObject> {
  const keep = new Set<protobuf.ReflectionObject>();
  const visit = (o: protobuf.ReflectionObject | null | undefined): void => {
    if (!o || keep.has(o)) return;
    keep.add(o);
    if (o instanceof protobuf.Type) for (const f of o.fieldsArray) visit(f.resolvedType);
    if (o instanceof protobuf.Service) {
      for (const m of o.methodsArray) {
        visit(m.resolvedRequestType);
        visit(m.resolvedResponseType);
      }
    }
  };
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      const isDefinition = o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service;
      // Definitions protobufjs bundles itself (google/protobuf/*) have no filename: kept.
      if (isDefinition && !OPTION_ONLY_FILES.test((o.filename ?? '').replace(/\\/g, '/'))) visit(o);
      if (o instanceof protobuf.Namespace) walk(o);
    }
  };
  walk(root);
  return keep;
}

function compactNested(ns: protobuf.NamespaceBase, keep: Set<protobuf.ReflectionObject>): Json | undefined {
  const out: Json = {};
  for (const o of ns.nestedArray) {
    const j = compactObject(o, keep);
    if (j) out[o.name] = j;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function compactObject(o: protobuf.ReflectionObject, keep: Set<protobuf.ReflectionObject>): Json | undefined {
  // Extension fields declared at namespace level exist only to define options.
  if (o instanceof protobuf.Field) return undefined;
  const nested = o instanceof protobuf.Namespace ? compactNested(o, keep) : undefined;
  let json: Json | undefined;
  if (o instanceof protobuf.Type) {
    if (!keep.has(o)) return nested ? { nested } : undefined;
    const j = o.toJSON() as unknown as Json;
    const fields = Object.fromEntries(Object.entries(j.fields as Record<string, Json>).map(([name, f]) => [name, withOptions(f, f.options)]));
    const oneofs = j.oneofs ? Object.fromEntries(Object.entries(j.oneofs as Record<string, Json>).map(([name, x]) => [name, { oneof: x.oneof }])) : undefined;
    json = { ...withOptions(j, j.options), fields, ...(oneofs ? { oneofs } : {}) };
  } else if (o instanceof protobuf.Enum) {
    if (!keep.has(o)) return undefined;
    const { valuesOptions: _dropped, ...j } = o.toJSON() as unknown as Json;
    json = withOptions(j, j.options);
  } else if (o instanceof protobuf.Service) {
    if (!keep.has(o)) return nested ? { nested } : undefined;
    const j = o.toJSON() as unknown as Json;
    const methods = Object.fromEntries(
      Object.entries(j.methods as Record<string, Json>).map(([name, m]) => {
        const { options: _o, parsedOptions: _p, ...rest } = m;
        return [name, rest];
      }),
    );
    json = { ...withOptions(j, undefined), methods };
  } else {
    if (!nested) return undefined;
    json = withOptions(o.toJSON() as unknown as Json, (o as protobuf.Namespace).options);
  }
  delete json.nested;
  return nested ? { ...json, nested } : json;
}

/** The descriptor of a parsed Root: what the codec needs, ~55 % of protobufjs's own JSON. */
export function compactDescriptor(root: protobuf.Root, key: DescriptorKey = descriptorKey()): ProtoDescriptor {
  return { key, root: { nested: compactNested(root, reachable(root)) ?? {} } as protobuf.INamespace };
}

/** The build step: parses the files once and writes their descriptor to `file`. */
export function writeProtoDescriptor(file: string = DESCRIPTOR_FILE): ProtoDescriptor {
  const d = compactDescriptor(parseProtoFiles());
  writeFileSync(file, JSON.stringify(d));
  return d;
}

/** The descriptor at `file` if it was made from what this code loads, else undefined. */
export function readProtoDescriptor(file: string = DESCRIPTOR_FILE): ProtoDescriptor | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const d = JSON.parse(readFileSync(file, 'utf8')) as ProtoDescriptor;
    return d.key && d.root && sameKey(d.key, descriptorKey()) ? d : undefined;
  } catch {
    return undefined; // unreadable or half-written: parsing the files is always correct
  }
}

export function rootFromDescriptor(d: ProtoDescriptor): protobuf.Root {
  const r = protobuf.Root.fromJSON(d.root);
  r.resolveAll();
  return r;
}

// ---- The process's Root ----------------------------------------------------------------------

let root: protobuf.Root | undefined;

/** The shared Root, field names kept in snake_case exactly as in the .proto files. */
export function protoRoot(): protobuf.Root {
  if (root) return root;
  const d = readProtoDescriptor();
  root = d ? rootFromDescriptor(d) : parseProtoFiles();
  dropLookupCaches(root);
  return root;
}

/**
 * Empties protobufjs's per-namespace lookup caches, which resolving the Root fills with every
 * type name it looked up from every namespace (~9,000 entries in ~490 namespaces, 0.4 MiB of heap
 * held for the life of every proxy) and nothing reads again but the odd `lookupType`, which
 * refills only what it asks for. protobufjs empties them itself whenever a namespace changes;
 * `_lookupCache` is its own private field, so a version without it is left alone.
 */
function dropLookupCaches(ns: protobuf.NamespaceBase): void {
  const cached = ns as unknown as { _lookupCache?: object };
  if (cached._lookupCache !== undefined) cached._lookupCache = Object.create(null) as object;
  for (const nested of ns.nestedArray) if (nested instanceof protobuf.Namespace) dropLookupCaches(nested);
}

export function messageType(fullName: string): protobuf.Type {
  return protoRoot().lookupType(fullName);
}

/** Options for toObject that give plain JSON-shaped values (Any as `@type`, enums as names). */
export const TO_PLAIN: protobuf.IConversionOptions = {
  json: true,
  longs: Number,
  enums: String,
  bytes: String,
  defaults: false,
};
