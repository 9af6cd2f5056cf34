// gRPC service definitions for the two wire APIs the control plane serves: Envoy's ADS
// (state-of-the-world and delta) and Istio's CA. Messages are protobufjs objects, snake_case.
import type * as grpc from '@grpc/grpc-js';
import { messageType } from './protos.js';

function codec<T>(fullName: string) {
  // Resolved on first use so that importing this module never loads the protos.
  let type: ReturnType<typeof messageType> | undefined;
  const t = () => (type ??= messageType(fullName));
  return {
    serialize: (m: T): Buffer => Buffer.from(t().encode(m as object).finish()),
    deserialize: (b: Buffer): T => t().decode(b) as unknown as T,
  };
}

function method<Req, Res>(path: string, req: string, res: string, requestStream: boolean, responseStream: boolean) {
  const rq = codec<Req>(req);
  const rs = codec<Res>(res);
  return {
    path,
    requestStream,
    responseStream,
    requestSerialize: rq.serialize,
    requestDeserialize: rq.deserialize,
    responseSerialize: rs.serialize,
    responseDeserialize: rs.deserialize,
  } satisfies grpc.MethodDefinition<Req, Res>;
}

// ---- Envoy ADS -----------------------------------------------------------------------------

export interface Node {
  id?: string;
  cluster?: string;
  metadata?: unknown; // google.protobuf.Struct; use fromStruct()
  user_agent_name?: string;
}

export interface Status {
  code?: number;
  message?: string;
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: Node | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: Status | null;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
  control_plane?: { identifier?: string };
}

export interface DeltaDiscoveryRequest {
  node?: Node | null;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: Status | null;
}

export interface Resource {
  name: string;
  version: string;
  resource: AnyMessage;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: Resource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const D = 'envoy.service.discovery.v3';

export const adsService = {
  StreamAggregatedResources: method<DiscoveryRequest, DiscoveryResponse>(
    `${ADS}/StreamAggregatedResources`, `${D}.DiscoveryRequest`, `${D}.DiscoveryResponse`, true, true,
  ),
  DeltaAggregatedResources: method<DeltaDiscoveryRequest, DeltaDiscoveryResponse>(
    `${ADS}/DeltaAggregatedResources`, `${D}.DeltaDiscoveryRequest`, `${D}.DeltaDiscoveryResponse`, true, true,
  ),
} satisfies grpc.ServiceDefinition;

// ---- Istio CA ------------------------------------------------------------------------------

export interface IstioCertificateRequest {
  csr: string;
  validity_duration?: number | { toNumber(): number };
  metadata?: unknown; // google.protobuf.Struct
}

export interface IstioCertificateResponse {
  cert_chain: string[];
}

export const caService = {
  CreateCertificate: method<IstioCertificateRequest, IstioCertificateResponse>(
    '/istio.v1.auth.IstioCertificateService/CreateCertificate',
    'istio.v1.auth.IstioCertificateRequest',
    'istio.v1.auth.IstioCertificateResponse',
    false,
    false,
  ),
} satisfies grpc.ServiceDefinition;
