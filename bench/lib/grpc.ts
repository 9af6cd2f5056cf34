// The benchmark's gRPC method, as raw bytes both ways (no protobuf on the load generator's or
// server's hot path): one unary method, a fixed request and a fixed response message.
import type * as grpc from '@grpc/grpc-js';

export const ECHO_PATH = '/weft.bench.Echo/Echo';

/** A small request message (opaque bytes; the server does not parse it). */
export const REQUEST_MESSAGE = Buffer.from('weft-bench-request-0123456789abcdef');
/** The server's fixed answer. */
export const RESPONSE_MESSAGE = Buffer.from('weft-bench-response-0123456789abcdef');

const identity = (b: Buffer) => b;

/** One unary call on `client`; resolves when it ends, with the gRPC status code. */
export function callEcho(client: grpc.Client, deadlineMs: number): Promise<number> {
  return new Promise((resolve) => {
    client.makeUnaryRequest<Buffer, Buffer>(
      ECHO_PATH,
      identity,
      identity,
      REQUEST_MESSAGE,
      { deadline: Date.now() + deadlineMs },
      (err) => resolve(err ? (err.code ?? 2) : 0),
    );
  });
}

/** A message with gRPC's 5-byte length prefix (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Channel options for the i-th connection: its own subchannel, so N clients = N connections. */
export function connectionOptions(authority: string, i: number): grpc.ChannelOptions {
  return {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.default_authority': authority,
    'grpc.primary_user_agent': `weft-bench/${i}`,
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
  };
}
