// gRPC echo apps for routing tests, with @grpc/grpc-js and JSON messages (no .proto needed):
// service `weft.test.Echo` has all four streaming kinds and reports which app answered, the
// metadata it received, and sends initial metadata and trailers of its own; `weft.test.Other`
// and `weft.test.Missing` exist to test service matching.
import * as grpc from '@grpc/grpc-js';

export interface EchoReply {
  readonly name: string;
  readonly method: string;
  /** Request metadata as received (lower-case keys, first value). */
  readonly metadata: Record<string, string>;
  readonly text: string;
  /** Streaming: how many request messages were received so far. */
  readonly count: number;
}

export interface EchoRequest {
  readonly text: string;
  /** Server streaming: how many replies to send. */
  readonly replies?: number;
  /** Answer with this gRPC status code (and the trailers) instead of a reply. */
  readonly failWith?: number;
  /** Unary: wait this long before answering; server streaming: between the first message and the rest. */
  readonly delayMs?: number;
}

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString('utf8')) as unknown,
};

function method(service: string, name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${service}/${name}`,
    requestStream,
    responseStream,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  };
}

/** A service definition with the four streaming kinds under `service`. */
export function echoService(service: string): grpc.ServiceDefinition {
  return {
    Unary: method(service, 'Unary', false, false),
    ServerStream: method(service, 'ServerStream', false, true),
    ClientStream: method(service, 'ClientStream', true, false),
    Bidi: method(service, 'Bidi', true, true),
  };
}

export const ECHO = 'weft.test.Echo';
export const OTHER = 'weft.test.Other';
export const MISSING = 'weft.test.Missing';

function metadataOf(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

function trailers(name: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-trailer', name);
  return md;
}

function initial(name: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('x-initial', name);
  return md;
}

function failure(code: number, name: string): Partial<grpc.StatusObject> {
  return { code, details: `failed on purpose by ${name}`, metadata: trailers(name) };
}

export interface GrpcEchoApp {
  readonly name: string;
  readonly port: number;
  /** Calls received, by method path. */
  readonly calls: Map<string, number>;
  close(): Promise<void>;
}

/** A gRPC server serving `weft.test.Echo` and `weft.test.Other` (all answering as `name`). */
export async function startGrpcEcho(name: string): Promise<GrpcEchoApp> {
  const calls = new Map<string, number>();
  const server = new grpc.Server();
  const count = (path: string) => calls.set(path, (calls.get(path) ?? 0) + 1);
  for (const service of [ECHO, OTHER]) {
    const reply = (m: string, md: grpc.Metadata, text: string, n: number): EchoReply => ({
      name,
      method: `/${service}/${m}`,
      metadata: metadataOf(md),
      text,
      count: n,
    });
    server.addService(echoService(service), {
      Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
        count(`/${service}/Unary`);
        const answer = () => {
          call.sendMetadata(initial(name));
          if (call.request.failWith !== undefined) cb(failure(call.request.failWith, name) as grpc.ServiceError);
          else cb(null, reply('Unary', call.metadata, call.request.text, 1), trailers(name));
        };
        if (call.request.delayMs) setTimeout(answer, call.request.delayMs).unref();
        else answer();
      },
      ServerStream: (call: grpc.ServerWritableStream<EchoRequest, EchoReply>) => {
        count(`/${service}/ServerStream`);
        call.sendMetadata(initial(name));
        const n = call.request.replies ?? 3;
        const rest = () => {
          for (let i = 2; i <= n; i++) call.write(reply('ServerStream', call.metadata, `${call.request.text}#${i}`, i));
          if (call.request.failWith !== undefined) call.emit('error', failure(call.request.failWith, name));
          else call.end(trailers(name));
        };
        call.write(reply('ServerStream', call.metadata, `${call.request.text}#1`, 1));
        // delayMs holds the stream open after the first message.
        if (call.request.delayMs) setTimeout(() => !call.cancelled && rest(), call.request.delayMs).unref();
        else rest();
      },
      ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
        count(`/${service}/ClientStream`);
        const texts: string[] = [];
        call.on('data', (r: EchoRequest) => texts.push(r.text));
        call.on('end', () => cb(null, reply('ClientStream', call.metadata, texts.join(','), texts.length), trailers(name)));
      },
      Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
        count(`/${service}/Bidi`);
        call.sendMetadata(initial(name));
        let n = 0;
        call.on('data', (r: EchoRequest) => call.write(reply('Bidi', call.metadata, r.text, ++n)));
        call.on('end', () => call.end(trailers(name)));
      },
    });
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    name,
    port,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** A client for `service` through a sidecar's outbound listener, addressed to `authority`. */
export function grpcClient(outbound: string, authority: string, service = ECHO): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const Ctor = grpc.makeGenericClientConstructor(echoService(service), service.split('.').pop() ?? service);
  const target = new URL(outbound);
  return new Ctor(`${target.hostname}:${target.port}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': authority,
    // Every call of a test must see the config of that moment, not a cached failure.
    'grpc.enable_retries': 0,
  }) as unknown as grpc.Client & Record<string, (...args: unknown[]) => unknown>;
}

export interface UnaryResult {
  readonly error: grpc.ServiceError | null;
  readonly reply: EchoReply | undefined;
  readonly headers: Record<string, string>;
  readonly trailers: Record<string, string>;
  readonly code: number;
  readonly details: string;
}

/** One unary call; never rejects (the status is in the result). */
export function unary(client: grpc.Client & Record<string, (...args: unknown[]) => unknown>, req: EchoRequest, md: Record<string, string> = {}, deadlineMs = 20_000): Promise<UnaryResult> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise((resolve) => {
    let headers: Record<string, string> = {};
    let error: grpc.ServiceError | null = null;
    let reply: EchoReply | undefined;
    let status: grpc.StatusObject | undefined;
    let done = 0;
    const finish = () => {
      if (++done < 2 || !status) return;
      resolve({ error, reply, headers, trailers: metadataOf(status.metadata), code: status.code, details: status.details });
    };
    const call = client.Unary!(req, metadata, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, r: EchoReply | undefined) => {
      error = err;
      reply = r;
      finish();
    }) as grpc.ClientUnaryCall;
    call.on('metadata', (m: grpc.Metadata) => (headers = metadataOf(m)));
    call.on('status', (s: grpc.StatusObject) => {
      status = s;
      finish();
    });
  });
}
