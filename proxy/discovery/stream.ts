// One ADS stream's plumbing, shared by the two protocols (sotw.ts, delta.ts): open the call with
// the bearer token, hand each response to the protocol, and resolve with why the stream ended.
import * as grpc from '@grpc/grpc-js';
import type { Node } from '../../api/services.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { HeldConfig } from './held.js';

/** What a protocol's stream needs from the AdsClient that runs it. */
export interface StreamContext {
  readonly client: grpc.Client;
  readonly metadata: grpc.Metadata;
  /** Sent on the first request of each stream. */
  readonly node: Node;
  readonly held: HeldConfig;
  readonly log: Logger;
  /** Called with the open call, so that stop() can cancel it. */
  opened(call: { cancel(): void }): void;
  /** Called on the stream's first response: the control plane is answering. */
  established(): void;
}

/** A protocol's two halves: what it sends when the stream opens, and how it answers a response. */
export interface StreamHandlers<Req, Res> {
  begin(write: (req: Req) => void): void;
  respond(res: Res, write: (req: Req) => void): void;
}

/** Runs one stream until it ends; resolves with the reason (never rejects). */
export function runStream<Req, Res>(
  ctx: StreamContext,
  method: grpc.MethodDefinition<Req, Res>,
  handlers: StreamHandlers<Req, Res>,
): Promise<string> {
  return new Promise((resolve) => {
    const call = ctx.client.makeBidiStreamRequest(method.path, method.requestSerialize, method.responseDeserialize, ctx.metadata);
    ctx.opened(call);
    const write = (req: Req) => {
      call.write(req);
    };
    let first = true;
    let settled = false;
    const finish = (reason: string) => {
      if (settled) return;
      settled = true;
      resolve(reason);
    };
    call.on('data', (res: Res) => {
      if (first) {
        first = false;
        ctx.established();
      }
      try {
        handlers.respond(res, write);
      } catch (err) {
        ctx.log.error('xDS response handling failed', { error: errorMessage(err) });
      }
    });
    call.on('error', (err: grpc.ServiceError) => finish(err.details || err.message));
    call.on('end', () => finish('stream ended by server'));
    call.on('close', () => finish('stream closed'));
    handlers.begin(write);
  });
}
