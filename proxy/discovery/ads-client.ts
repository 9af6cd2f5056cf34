// The proxy's ADS client: one stream to the control plane, incremental (delta, the default) or
// state of the world, with LDS/CDS/VHDS as wildcards and RDS/EDS/SDS by the names accepted
// resources reference. Every response is decoded and validated as a whole: all good → applied
// and ACKed; any problem → NACKed with every problem, last good kept (held.ts). The two wire
// protocols are delta.ts and sotw.ts. The stream reconnects with jittered backoff forever; the
// proxy serves its last config meanwhile.
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '../../api/codec.js';
import type { ResourceType } from '../../api/resource.js';
import { adsService } from '../../api/services.js';
import type { TypeUrl } from '../../api/types.js';
import { Backoff, delay } from '../../core/backoff.js';
import { ErrorCode, WeftError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { deltaStream } from './delta.js';
import { HeldConfig, type TypeStatus } from './held.js';
import { sotwStream } from './sotw.js';
import type { StreamContext } from './stream.js';

export type { TypeStatus } from './held.js';

/** `delta`: incremental xDS (only changed resources are sent); `sotw`: state of the world. */
export type XdsProtocol = 'delta' | 'sotw';
export const XDS_PROTOCOLS: readonly XdsProtocol[] = ['delta', 'sotw'];

export interface AdsClientOptions {
  /** `host:port` of the control plane. */
  readonly target: string;
  readonly credentials: grpc.ChannelCredentials;
  readonly channelOptions?: grpc.ChannelOptions;
  readonly node: { readonly id: string; readonly metadata: Record<string, unknown> };
  /** The bearer token, read fresh for every stream (the file may be rotated). */
  readonly token: () => string | undefined;
  readonly types: ReadonlyMap<string, ResourceType<unknown>>;
  /** Secret names served locally (the workload certificate), never asked of the server. */
  readonly localSecrets?: ReadonlySet<string>;
  /** Called with the whole accepted set of one type; the state swaps its snapshot here. */
  readonly onAccepted: (typeUrl: TypeUrl, resources: ReadonlyMap<string, unknown>, version: string) => void;
  readonly log: Logger;
  readonly backoff?: Backoff;
  /** Default `delta`. */
  readonly protocol?: XdsProtocol;
}

export class AdsClient {
  readonly protocol: XdsProtocol;
  private readonly client: grpc.Client;
  private readonly held: HeldConfig;
  private call: { cancel(): void } | undefined;
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private connectedFlag = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: AdsClientOptions) {
    this.protocol = opts.protocol ?? 'delta';
    if (!XDS_PROTOCOLS.includes(this.protocol)) {
      throw new WeftError(ErrorCode.USAGE, `xDS protocol: delta or sotw, got ${JSON.stringify(this.protocol)}`);
    }
    const Ctor = grpc.makeGenericClientConstructor(adsService, 'AggregatedDiscoveryService');
    this.client = new Ctor(opts.target, opts.credentials, {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 5_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      ...opts.channelOptions,
    });
    this.backoff = opts.backoff ?? new Backoff({ initialMs: 200, maxMs: 10_000 });
    this.held = new HeldConfig({ types: opts.types, localSecrets: opts.localSecrets, onAccepted: opts.onAccepted, log: opts.log });
  }

  get connected(): boolean {
    return this.connectedFlag;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.call?.cancel();
    await this.loop;
    this.client.close();
  }

  /** Per-type versions, nonces and NACKs, for /config_dump. */
  statusByType(): Record<string, TypeStatus> {
    return this.held.statusByType();
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const started = Date.now();
      const reason = await this.oneStream();
      this.connectedFlag = false;
      this.call = undefined;
      if (this.abort.signal.aborted) break;
      // A stream that lived a while was healthy: start the backoff again from the bottom.
      if (Date.now() - started > 30_000) this.backoff.reset();
      const wait = this.backoff.next();
      this.opts.log.warn('xDS stream closed; retrying', { target: this.opts.target, reason, retryInMs: wait });
      await delay(wait, this.abort.signal);
    }
  }

  private oneStream(): Promise<string> {
    const metadata = new grpc.Metadata();
    const token = this.opts.token();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    const ctx: StreamContext = {
      client: this.client,
      metadata,
      node: { id: this.opts.node.id, metadata: toStruct(this.opts.node.metadata), user_agent_name: 'weft' },
      held: this.held,
      log: this.opts.log,
      opened: (call) => {
        this.call = call;
        // stop() may have run while the stream was being set up.
        if (this.abort.signal.aborted) call.cancel();
      },
      established: () => {
        this.connectedFlag = true;
        this.opts.log.info('xDS stream established', { target: this.opts.target, protocol: this.protocol });
      },
    };
    return this.protocol === 'delta' ? deltaStream(ctx) : sotwStream(ctx);
  }
}
