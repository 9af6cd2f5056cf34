// An in-process OTLP/gRPC trace receiver for tests: the collector's TraceService/Export on
// 127.0.0.1, decoding with the OTLP protos (test/support/otlp), keeping every span it gets.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'unspecified';
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
  /** The resource's service.name. */
  readonly service: string;
  readonly statusCode: number;
}

export interface OtlpReceiver {
  /** `http://127.0.0.1:PORT`, for --otlp-endpoint. */
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  close(): Promise<void>;
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const;

interface WireKeyValue {
  key: string;
  value?: { string_value?: string; bool_value?: boolean; int_value?: string; double_value?: number; value?: string };
}

function attributes(list: WireKeyValue[] | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    if (v.string_value !== undefined) out[kv.key] = v.string_value;
    else if (v.bool_value !== undefined) out[kv.key] = v.bool_value;
    else if (v.int_value !== undefined) out[kv.key] = Number(v.int_value);
    else if (v.double_value !== undefined) out[kv.key] = v.double_value;
  }
  return out;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const def = protoLoader.loadSync(path.join(here, 'otlp', 'trace_service.proto'), {
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: false,
    oneofs: false,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { TraceService: grpc.ServiceClientConstructor } } } } };
  };
  const service = pkg.opentelemetry.proto.collector.trace.v1.TraceService.service;
  const spans: ReceivedSpan[] = [];
  const server = new grpc.Server();
  server.addService(service, {
    Export: (call: grpc.ServerUnaryCall<{ resource_spans?: unknown[] }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      for (const rs of (call.request.resource_spans ?? []) as { resource?: { attributes?: WireKeyValue[] }; scope_spans?: { spans?: unknown[] }[] }[]) {
        const svc = String(attributes(rs.resource?.attributes)['service.name'] ?? '');
        for (const ss of rs.scope_spans ?? []) {
          for (const s of (ss.spans ?? []) as {
            trace_id: Buffer;
            span_id: Buffer;
            parent_span_id?: Buffer;
            name: string;
            kind?: number;
            attributes?: WireKeyValue[];
            status?: { code?: number };
          }[]) {
            spans.push({
              traceId: Buffer.from(s.trace_id).toString('hex'),
              spanId: Buffer.from(s.span_id).toString('hex'),
              parentSpanId: s.parent_span_id ? Buffer.from(s.parent_span_id).toString('hex') : '',
              name: s.name,
              kind: KINDS[s.kind ?? 0] ?? 'unspecified',
              attributes: attributes(s.attributes),
              service: svc,
              statusCode: s.status?.code ?? 0,
            });
          }
        }
      }
      callback(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}
