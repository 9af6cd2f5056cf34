// Loads Envoy's xDS v3 .proto files from the @grpc/grpc-js-xds dependency (its deps/ folder)
// and Weft's own small protos (api/proto), once per process, into one protobufjs Root.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

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
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'google/protobuf/struct.proto',
  'google/protobuf/wrappers.proto',
  'google/protobuf/duration.proto',
];

/** Weft's own protos (the Istio-compatible CA service), shipped in api/proto. */
const WEFT_FILES = ['istio/v1/auth/ca.proto'];

function includeDirs(): string[] {
  const xdsDeps = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const protobufjsDir = path.dirname(require.resolve('protobufjs/package.json'));
  // The protos sit beside the sources; from dist/api we look back at the source tree.
  const here = path.dirname(fileURLToPath(import.meta.url));
  const own = [path.join(here, 'proto'), path.join(here, '..', '..', 'api', 'proto')].filter((d) => existsSync(d));
  return [
    ...own,
    protobufjsDir,
    ...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(xdsDeps, d)),
  ];
}

let root: protobuf.Root | undefined;

/** The shared Root, field names kept in snake_case exactly as in the .proto files. */
export function protoRoot(): protobuf.Root {
  if (root) return root;
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
  root = r;
  return r;
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
