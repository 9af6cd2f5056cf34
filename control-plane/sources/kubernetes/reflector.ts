// A reflector: keeps an up-to-date copy of one kind's objects with the API's list + watch
// protocol (client-node's Watch for the stream). It lists, then watches from the list's
// resourceVersion with bookmarks; a watch that ends is resumed from the last resourceVersion
// seen (bookmarks keep it fresh); `410 Gone` (history compacted) means list again, and the new
// list replaces the copy, so an object deleted meanwhile disappears too: no event is lost.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { Backoff, delay } from '../../../core/backoff.js';
import type { Logger } from '../../../core/log.js';
import { apiErrorMessage, apiStatusCode } from './client.js';

/** An object as the API sends it (JSON), with the fields the reflector reads. */
export interface RawObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; uid?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ListResult {
  readonly items: readonly RawObject[];
  readonly resourceVersion: string;
}

export interface ReflectorOptions {
  readonly kc: KubeConfig;
  /** Stamped on every object (list items of built-in kinds come without it). */
  readonly apiVersion: string;
  readonly kind: string;
  /** The collection URL path, e.g. `/api/v1/pods` (all namespaces). */
  readonly path: string;
  readonly list: () => Promise<ListResult>;
  readonly labelSelector?: string;
  /** E.g. `metadata.name=NAME`: one object, which RBAC can grant by resourceNames. */
  readonly fieldSelector?: string;
  /** Called after every change of the copy: a list, or an ADDED / MODIFIED / DELETED event. */
  readonly onChange: () => void;
  /** A 404 on list means the kind is not served (a CRD not installed): empty, and retried slowly. */
  readonly optional?: boolean;
  readonly log: Logger;
  /** Server-side watch timeout; the watch is then resumed. Default 300 s. */
  readonly watchTimeoutSeconds?: number;
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export interface ReflectorStats {
  lists: number;
  watches: number;
  events: number;
  bookmarks: number;
  /** Watches that ended with 410 Gone / Expired and caused a new list. */
  expired: number;
  errors: number;
  resourceVersion: string;
}

type WatchEnd = { kind: 'closed' } | { kind: 'expired' } | { kind: 'error'; error: unknown };

/** `namespace/name`, or `name` for cluster-scoped objects. */
export function keyOf(o: RawObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name ?? ''}` : (o.metadata?.name ?? '');
}

export class Reflector {
  readonly stats: ReflectorStats = { lists: 0, watches: 0, events: 0, bookmarks: 0, expired: 0, errors: 0, resourceVersion: '' };
  private store = new Map<string, RawObject>();
  private resourceVersion = '';
  private readonly abort = new AbortController();
  private watchController: AbortController | undefined;
  private running: Promise<void> | undefined;
  private synced = false;
  private served = true;
  private readonly backoff: Backoff;

  constructor(private readonly opts: ReflectorOptions) {
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 30_000 });
  }

  get kind(): string {
    return this.opts.kind;
  }

  /** Whether the first list has completed (the copy is complete). */
  hasSynced(): boolean {
    return this.synced;
  }

  /** False while the kind is not served by the API (its CRD is missing). */
  isServed(): boolean {
    return this.served;
  }

  items(): RawObject[] {
    return [...this.store.values()];
  }

  get(namespace: string | undefined, name: string): RawObject | undefined {
    return this.store.get(namespace ? `${namespace}/${name}` : name);
  }

  /**
   * Starts the loop; resolves once the first list succeeded (or the kind is known not to be
   * served). Rejects only if `stop()` is called first.
   */
  start(): Promise<void> {
    const first = new Promise<void>((resolve, reject) => {
      this.firstSync = resolve;
      this.abort.signal.addEventListener('abort', () => reject(new Error(`stopped before ${this.opts.kind} was listed`)), { once: true });
    });
    first.catch(() => {});
    this.running ??= this.loop();
    return first;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    this.watchController?.abort();
    await this.running;
  }

  private firstSync: () => void = () => {};

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === '') {
          const listed = await this.relist();
          if (!listed) {
            await delay(30_000, signal); // not served: look again later
            continue;
          }
        }
        const end = await this.watchOnce();
        if (signal.aborted) break;
        if (end.kind === 'expired') {
          this.stats.expired++;
          this.opts.log.info('watch expired (410 Gone); listing again', { kind: this.opts.kind, resourceVersion: this.resourceVersion });
          this.resourceVersion = '';
          continue;
        }
        if (end.kind === 'error') throw end.error;
        // A normal end (timeout, server restart): resume from the last resourceVersion seen.
      } catch (err) {
        if (signal.aborted) break;
        if (apiStatusCode(err) === 410) {
          this.stats.expired++;
          this.resourceVersion = '';
          continue;
        }
        this.stats.errors++;
        const wait = this.backoff.next();
        this.opts.log.warn('list/watch failed; retrying', { kind: this.opts.kind, error: apiErrorMessage(err), retryMs: wait });
        await delay(wait, signal);
      }
    }
  }

  /** Lists and replaces the copy. False when the kind is not served (optional kinds only). */
  private async relist(): Promise<boolean> {
    let result: ListResult;
    try {
      result = await this.opts.list();
    } catch (err) {
      if (this.opts.optional && apiStatusCode(err) === 404) {
        if (this.served) this.opts.log.warn(`${this.opts.kind} is not served by the API server (is its CRD installed?); treating it as empty`);
        this.served = false;
        if (this.store.size > 0) {
          this.store = new Map();
          this.opts.onChange();
        }
        this.markSynced();
        return false;
      }
      throw err;
    }
    this.served = true;
    this.stats.lists++;
    const next = new Map<string, RawObject>();
    for (const item of result.items) {
      const o = { ...item, apiVersion: this.opts.apiVersion, kind: this.opts.kind };
      next.set(keyOf(o), o);
    }
    this.store = next;
    this.resourceVersion = result.resourceVersion;
    this.stats.resourceVersion = this.resourceVersion;
    this.markSynced();
    this.opts.onChange();
    return true;
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.firstSync();
  }

  private watchOnce(): Promise<WatchEnd> {
    const timeoutSeconds = this.opts.watchTimeoutSeconds ?? 300;
    return new Promise<WatchEnd>((resolve) => {
      let expired = false;
      let delivered = false;
      const params: Record<string, string | boolean | number> = {
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds,
      };
      if (this.opts.labelSelector) params.labelSelector = this.opts.labelSelector;
      if (this.opts.fieldSelector) params.fieldSelector = this.opts.fieldSelector;
      // Should the server never end the watch (a silently dead connection), end it ourselves.
      const watchdog = setTimeout(() => this.watchController?.abort(), (timeoutSeconds + 30) * 1000);
      const done = (err: unknown) => {
        clearTimeout(watchdog);
        if (delivered) this.backoff.reset();
        if (expired || apiStatusCode(err) === 410) resolve({ kind: 'expired' });
        else if (err && !this.abort.signal.aborted && !isAbort(err)) resolve({ kind: 'error', error: err });
        else resolve({ kind: 'closed' });
      };
      this.stats.watches++;
      new Watch(this.opts.kc)
        .watch(
          this.opts.path,
          params,
          (type: string, object: RawObject) => {
            delivered = true;
            if (type === 'ERROR') {
              const code = (object as { code?: unknown }).code;
              if (code === 410) expired = true;
              else this.opts.log.warn('watch error event', { kind: this.opts.kind, status: JSON.stringify(object) });
              return;
            }
            const rv = object.metadata?.resourceVersion;
            if (rv) {
              this.resourceVersion = rv;
              this.stats.resourceVersion = rv;
            }
            if (type === 'BOOKMARK') {
              this.stats.bookmarks++;
              return;
            }
            const o = { ...object, apiVersion: this.opts.apiVersion, kind: this.opts.kind };
            this.stats.events++;
            if (type === 'DELETED') this.store.delete(keyOf(o));
            else if (type === 'ADDED' || type === 'MODIFIED') this.store.set(keyOf(o), o);
            else return;
            this.opts.onChange();
          },
          done,
        )
        .then(
          (controller) => {
            this.watchController = controller;
            if (this.abort.signal.aborted) controller.abort();
          },
          (err: unknown) => done(err),
        );
    });
  }
}

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && ((err as { name?: string }).name === 'AbortError' || (err as { type?: string }).type === 'aborted');
}
