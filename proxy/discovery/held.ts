// What the proxy's ADS client holds across streams and protocols: the accepted resources of each
// type, their server versions (delta), per-type status for /config_dump, and the names it is
// subscribed to. Decoding, the accept / reject bookkeeping and following references live here
// so that the state-of-the-world and delta streams (sotw.ts, delta.ts) differ only on the wire.
import type { AnyMessage } from '../../api/services.js';
import type { ResourceType } from '../../api/resource.js';
import { PUSH_ORDER, SHORT_NAME, TypeUrl, WILDCARD_TYPES } from '../../api/types.js';
import type { Logger } from '../../core/log.js';

export interface TypeStatus {
  version?: string;
  nonce?: string;
  /** The last NACK we sent, if the current version is not the one we rejected. */
  lastNack?: { nonce: string; message: string; at: string };
  lastUpdate?: string;
  names?: string[];
}

export interface HeldOptions {
  readonly types: ReadonlyMap<string, ResourceType<unknown>>;
  /** Secret names served locally (the workload certificate), never asked of the server. */
  readonly localSecrets?: ReadonlySet<string>;
  readonly onAccepted: (typeUrl: TypeUrl, resources: ReadonlyMap<string, unknown>, version: string) => void;
  readonly log: Logger;
}

/** One resource of a response: its name if the protocol carries one (delta), and its body. */
export interface Entry {
  readonly name?: string;
  readonly any: AnyMessage | null | undefined;
}

/** A change of a by-name subscription: the full new list, and what it adds and drops. */
export interface SubscriptionChange {
  readonly typeUrl: TypeUrl;
  readonly names: readonly string[];
  readonly added: readonly string[];
  readonly removed: readonly string[];
}

const NO_RESOURCES: ReadonlyMap<string, unknown> = new Map();

export class HeldConfig {
  /** Subscribed as wildcards, clusters before listeners (make-before-break), then VHDS. */
  readonly wildcardTypes: readonly TypeUrl[];
  /** Subscribed by the names accepted resources reference: EDS, RDS, SDS. */
  readonly byNameTypes: readonly TypeUrl[];
  private readonly accepted = new Map<TypeUrl, ReadonlyMap<string, unknown>>();
  /** Per type, the server's version of each held resource (delta; initial_resource_versions). */
  private readonly resourceVersions = new Map<TypeUrl, Map<string, string>>();
  private readonly status = new Map<TypeUrl, TypeStatus>();
  private readonly subscribed = new Map<TypeUrl, readonly string[]>();
  private readonly subscribedSets = new Map<TypeUrl, ReadonlySet<string>>();

  constructor(private readonly opts: HeldOptions) {
    this.wildcardTypes = PUSH_ORDER.filter((t) => WILDCARD_TYPES.has(t) && opts.types.has(t));
    this.byNameTypes = PUSH_ORDER.filter((t) => !WILDCARD_TYPES.has(t) && opts.types.has(t));
  }

  type(typeUrl: string): ResourceType<unknown> | undefined {
    return this.opts.types.get(typeUrl);
  }

  resources(typeUrl: TypeUrl): ReadonlyMap<string, unknown> {
    return this.accepted.get(typeUrl) ?? NO_RESOURCES;
  }

  /** The version we last accepted of a type ('' before the first). */
  version(typeUrl: TypeUrl): string {
    return this.status.get(typeUrl)?.version ?? '';
  }

  /** Names of a by-name type we are subscribed to (empty before anything referenced it). */
  names(typeUrl: TypeUrl): readonly string[] {
    return this.subscribed.get(typeUrl) ?? [];
  }

  /** Whether a resource of this type is one we asked for (wildcard types: all are). */
  wants(typeUrl: TypeUrl, name: string): boolean {
    return WILDCARD_TYPES.has(typeUrl) || this.subscribedSets.get(typeUrl)?.has(name) === true;
  }

  /** What we hold of a type as name → server version, for a delta stream's first request. */
  initialVersions(typeUrl: TypeUrl): Record<string, string> {
    return Object.fromEntries(this.resourceVersions.get(typeUrl) ?? []);
  }

  /** Per-type versions, nonces and NACKs, for /config_dump. */
  statusByType(): Record<string, TypeStatus> {
    const out: Record<string, TypeStatus> = {};
    for (const [url, s] of this.status) {
      out[SHORT_NAME[url]] = { ...s, names: WILDCARD_TYPES.has(url) ? ['*'] : [...this.names(url)] };
    }
    return out;
  }

  /**
   * Decodes and validates every resource of one response with its type's ResourceType. Problems
   * name the type, the resource (or its index) and the field path, one line each.
   */
  decode(typeUrl: TypeUrl, type: ResourceType<unknown>, entries: readonly Entry[]): { decoded: Map<string, unknown>; problems: string[] } {
    const decoded = new Map<string, unknown>();
    const problems: string[] = [];
    const short = SHORT_NAME[typeUrl];
    entries.forEach(({ name, any }, i) => {
      const label = name || `resources[${i}]`;
      if (!any) {
        problems.push(`${short} ${label}: resource: missing (a delta response must carry each resource it names)`);
        return;
      }
      if (any.type_url !== typeUrl) {
        problems.push(`${short} ${label}: resources[${i}]: type ${any.type_url} in a ${typeUrl} response`);
        return;
      }
      const r = type.decode(any);
      if (!r.ok) {
        for (const p of r.problems) problems.push(`${short} ${name || r.name || `resources[${i}]`}: ${p.field}: ${p.message}`);
        return;
      }
      // Delta names each resource beside it; the name inside must agree, or the two would be
      // filed under different keys by the client and the server.
      if (name !== undefined && r.name !== name) {
        problems.push(`${short} ${name}: name: the resource calls itself ${JSON.stringify(r.name)}`);
        return;
      }
      if (decoded.has(r.name)) problems.push(`${short} ${r.name}: duplicate resource name`);
      decoded.set(r.name, r.value);
    });
    return { decoded, problems };
  }

  /**
   * Records an accepted response. `next` is the type's whole new set; resources equal to the ones
   * held keep their old objects. Calls onAccepted unless nothing changed; returns whether it did.
   */
  accept(typeUrl: TypeUrl, next: Map<string, unknown>, version: string, nonce: string, resourceVersions?: Map<string, string>): boolean {
    const type = this.opts.types.get(typeUrl)!;
    const before = this.accepted.get(typeUrl);
    let changed = before === undefined || before.size !== next.size;
    for (const [name, value] of next) {
      const old = before?.get(name);
      if (old !== undefined && (old === value || type.equals(old, value))) next.set(name, old);
      else changed = true;
    }
    this.accepted.set(typeUrl, next);
    if (resourceVersions) this.resourceVersions.set(typeUrl, resourceVersions);
    const s = this.statusOf(typeUrl);
    s.version = version;
    s.nonce = nonce;
    s.lastNack = undefined;
    s.lastUpdate = new Date().toISOString();
    if (changed) this.opts.onAccepted(typeUrl, next, version);
    return changed;
  }

  /** Records a NACK: the held resources stay as they are. */
  reject(typeUrl: TypeUrl, message: string, version: string, nonce: string): void {
    const s = this.statusOf(typeUrl);
    s.lastNack = { nonce, message, at: new Date().toISOString() };
    s.nonce = nonce;
    this.opts.log.warn('rejected xDS update (NACK); keeping the last good config', { type: SHORT_NAME[typeUrl] ?? typeUrl, version, problems: message });
  }

  /** The server's version of each held resource of a type (delta), to update in place. */
  versionsOf(typeUrl: TypeUrl): Map<string, string> {
    return new Map(this.resourceVersions.get(typeUrl));
  }

  /**
   * Recomputes the by-name subscriptions from the references of everything held and records
   * the new lists. Returns the types whose subscription changed.
   */
  resubscribe(): SubscriptionChange[] {
    const wanted = new Map<TypeUrl, Set<string>>(this.byNameTypes.map((t) => [t, new Set<string>()]));
    for (const [typeUrl, resources] of this.accepted) {
      const type = this.opts.types.get(typeUrl)!;
      for (const value of resources.values()) {
        for (const ref of type.references(value)) {
          if (ref.typeUrl === TypeUrl.Secret && this.opts.localSecrets?.has(ref.name)) continue;
          wanted.get(ref.typeUrl)?.add(ref.name);
        }
      }
    }
    const changes: SubscriptionChange[] = [];
    for (const t of this.byNameTypes) {
      const names = [...wanted.get(t)!].sort();
      const current = this.subscribed.get(t);
      if (current && current.length === names.length && current.every((n, i) => n === names[i])) continue;
      if (!current && names.length === 0) continue;
      const had = new Set(current);
      const now = new Set(names);
      changes.push({ typeUrl: t, names, added: names.filter((n) => !had.has(n)), removed: (current ?? []).filter((n) => !now.has(n)) });
      this.subscribed.set(t, names);
      this.subscribedSets.set(t, now);
    }
    return changes;
  }

  /**
   * Delta: names we unsubscribed from leave the held set at once (the server need not say so);
   * the state gets the smaller set under the version it already has.
   */
  drop(typeUrl: TypeUrl, names: readonly string[]): void {
    const before = this.accepted.get(typeUrl);
    if (!before || !names.some((n) => before.has(n))) return;
    const next = new Map(before);
    const versions = this.resourceVersions.get(typeUrl);
    for (const n of names) {
      next.delete(n);
      versions?.delete(n);
    }
    this.accepted.set(typeUrl, next);
    this.opts.onAccepted(typeUrl, next, this.version(typeUrl));
  }

  private statusOf(typeUrl: TypeUrl): TypeStatus {
    let s = this.status.get(typeUrl);
    if (!s) this.status.set(typeUrl, (s = {}));
    return s;
  }
}
