// The proxy's ADS client: one state-of-the-world stream, LDS/CDS as wildcards and RDS/EDS/SDS by
// the names accepted resources reference. Every response is decoded and validated as a whole:
// all good → applied and ACKed; any problem → NACKed with every problem, last good kept.
// The stream reconnects with jittered backoff forever; the proxy serves its last config meanwhile.
import * as grpc from '@grpc/grpc-js';
import { toStruct } from '../../api/codec.js';
import type { ResourceType } from '../../api/resource.js';
import { adsService, type DiscoveryRequest, type DiscoveryResponse } from '../../api/services.js';
import { SHORT_NAME, TypeUrl } from '../../api/types.js';
import { Backoff, delay } from '../../core/backoff.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';

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
}

export interface TypeStatus {
  version?: string;
  nonce?: string;
  /** The last NACK we sent, if the current version is not the one we rejected. */
  lastNack?: { nonce: string; message: string; at: string };
  lastUpdate?: string;
  names?: string[];
}

/** Types subscribed as wildcards; the rest follow references, in this order of dependency. */
const WILDCARD: readonly TypeUrl[] = [TypeUrl.Cluster, TypeUrl.Listener];
const BY_NAME: readonly TypeUrl[] = [TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration, TypeUrl.Secret];

export class AdsClient {
  private readonly client: grpc.Client;
  private readonly accepted = new Map<TypeUrl, ReadonlyMap<string, unknown>>();
  private readonly status = new Map<TypeUrl, TypeStatus>();
  private readonly subscribed = new Map<TypeUrl, string[]>();
  /** The last nonce received per type, per stream (nonces mean nothing across streams). */
  private readonly streamNonces = new WeakMap<object, Map<TypeUrl, string>>();
  private stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> | undefined;
  private readonly abort = new AbortController();
  private readonly backoff: Backoff;
  private connectedFlag = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly opts: AdsClientOptions) {
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
  }

  get connected(): boolean {
    return this.connectedFlag;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.stream?.cancel();
    await this.loop;
    this.client.close();
  }

  /** Per-type versions, nonces and NACKs, for /config_dump. */
  statusByType(): Record<string, TypeStatus> {
    const out: Record<string, TypeStatus> = {};
    for (const [url, s] of this.status) out[SHORT_NAME[url]] = { ...s, names: this.subscribed.get(url) };
    return out;
  }

  private async run(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const started = Date.now();
      const reason = await this.oneStream();
      this.connectedFlag = false;
      if (this.abort.signal.aborted) break;
      // A stream that lived a while was healthy: start the backoff again from the bottom.
      if (Date.now() - started > 30_000) this.backoff.reset();
      const wait = this.backoff.next();
      this.opts.log.warn('xDS stream closed; retrying', { target: this.opts.target, reason, retryInMs: wait });
      await delay(wait, this.abort.signal);
    }
  }

  private oneStream(): Promise<string> {
    return new Promise((resolve) => {
      const md = new grpc.Metadata();
      const token = this.opts.token();
      if (token) md.set('authorization', `Bearer ${token}`);
      const stream = this.client.makeBidiStreamRequest(
        adsService.StreamAggregatedResources.path,
        adsService.StreamAggregatedResources.requestSerialize,
        adsService.StreamAggregatedResources.responseDeserialize,
        md,
      ) as grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
      this.stream = stream;
      let first = true;
      let settled = false;
      const finish = (reason: string) => {
        if (settled) return;
        settled = true;
        this.stream = undefined;
        resolve(reason);
      };
      stream.on('data', (res: DiscoveryResponse) => {
        if (first) {
          first = false;
          this.connectedFlag = true;
          this.opts.log.info('xDS stream established', { target: this.opts.target });
        }
        try {
          this.onResponse(stream, res);
        } catch (err) {
          this.opts.log.error('xDS response handling failed', { error: errorMessage(err) });
        }
      });
      stream.on('error', (err: grpc.ServiceError) => finish(err.details || err.message));
      stream.on('end', () => finish('stream ended by server'));
      stream.on('close', () => finish('stream closed'));

      // Wildcards first, then whatever we already know we need (after a reconnect).
      for (const t of WILDCARD) this.request(stream, t, []);
      for (const t of BY_NAME) {
        const names = this.subscribed.get(t);
        if (names && names.length > 0) this.request(stream, t, names);
      }
    });
  }

  /**
   * Sends a request for one type. The first request of a type on a stream carries no nonce (and
   * the version we already hold, so a restarted server knows); later ones answer `nonce`.
   */
  private request(
    stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    typeUrl: TypeUrl,
    names: string[],
    nack?: string,
    nonce?: string,
  ): void {
    let perStream = this.streamNonces.get(stream);
    if (!perStream) this.streamNonces.set(stream, (perStream = new Map()));
    this.subscribed.set(typeUrl, names);
    if (nonce !== undefined) perStream.set(typeUrl, nonce);
    const req: DiscoveryRequest = {
      type_url: typeUrl,
      resource_names: names,
      version_info: this.status.get(typeUrl)?.version ?? '',
      response_nonce: perStream.get(typeUrl) ?? '',
    };
    if (perStream.size === 0 || !perStream.has(typeUrl)) {
      req.node = { id: this.opts.node.id, metadata: toStruct(this.opts.node.metadata), user_agent_name: 'weft' };
    }
    if (nack !== undefined) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: nack };
    stream.write(req);
  }

  private onResponse(stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>, res: DiscoveryResponse): void {
    const typeUrl = res.type_url as TypeUrl;
    const type = this.opts.types.get(typeUrl);
    let s = this.status.get(typeUrl);
    if (!s) this.status.set(typeUrl, (s = {}));
    if (!type) {
      this.opts.log.warn('xDS response of an unknown type; rejecting', { type: res.type_url });
      this.request(stream, typeUrl, this.subscribed.get(typeUrl) ?? [], `unsupported type ${res.type_url}`, res.nonce);
      return;
    }
    const decoded = new Map<string, unknown>();
    const problems: string[] = [];
    res.resources.forEach((any, i) => {
      if (any.type_url !== typeUrl) {
        problems.push(`resources[${i}]: type ${any.type_url} in a ${typeUrl} response`);
        return;
      }
      const r = type.decode(any);
      if (!r.ok) {
        for (const p of r.problems) problems.push(`${SHORT_NAME[typeUrl]} ${r.name ?? `resources[${i}]`}: ${p.field}: ${p.message}`);
        return;
      }
      if (decoded.has(r.name)) problems.push(`${SHORT_NAME[typeUrl]} ${r.name}: duplicate resource name`);
      decoded.set(r.name, r.value);
    });

    const names = this.subscribed.get(typeUrl) ?? [];
    if (problems.length > 0) {
      const message = problems.join('\n');
      s.lastNack = { nonce: res.nonce, message, at: new Date().toISOString() };
      this.opts.log.warn('rejected xDS update (NACK); keeping the last good config', {
        type: SHORT_NAME[typeUrl],
        version: res.version_info,
        problems: message,
      });
      s.nonce = res.nonce;
      this.request(stream, typeUrl, names, message, res.nonce);
      return;
    }

    // SotW for by-name types: the response holds the requested names; keep what it omits out.
    const unchanged = sameResources(type, this.accepted.get(typeUrl), decoded);
    this.accepted.set(typeUrl, decoded);
    s.version = res.version_info;
    s.nonce = res.nonce;
    s.lastNack = undefined;
    s.lastUpdate = new Date().toISOString();
    if (!unchanged) this.opts.onAccepted(typeUrl, decoded, res.version_info);
    this.request(stream, typeUrl, names, undefined, res.nonce);
    this.followReferences(stream);
  }

  /** Subscribes RDS/EDS/SDS to exactly the names the accepted resources reference. */
  private followReferences(stream: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const wanted = new Map<TypeUrl, Set<string>>(BY_NAME.map((t) => [t, new Set<string>()]));
    for (const [typeUrl, resources] of this.accepted) {
      const type = this.opts.types.get(typeUrl)!;
      for (const value of resources.values()) {
        for (const ref of type.references(value)) {
          if (ref.typeUrl === TypeUrl.Secret && this.opts.localSecrets?.has(ref.name)) continue;
          wanted.get(ref.typeUrl)?.add(ref.name);
        }
      }
    }
    for (const t of BY_NAME) {
      const names = [...wanted.get(t)!].sort();
      const current = this.subscribed.get(t);
      if (current && current.length === names.length && current.every((n, i) => n === names[i])) continue;
      if (!current && names.length === 0) continue;
      this.request(stream, t, names);
    }
  }
}

function sameResources(
  type: ResourceType<unknown>,
  before: ReadonlyMap<string, unknown> | undefined,
  after: ReadonlyMap<string, unknown>,
): boolean {
  if (!before || before.size !== after.size) return false;
  for (const [name, value] of after) {
    const old = before.get(name);
    if (old === undefined || !type.equals(old, value)) return false;
  }
  return true;
}
