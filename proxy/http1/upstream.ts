// The fast path's side of an HTTP/1.1 upstream: a keep-alive pool of connections per endpoint
// (connection.ts); one lives inside each upstream/http1.ts pool, so the shared UpstreamPools
// still own, show, retire and close it. Requests reach it through UpstreamPools (marked RAW), or
// straight through the target's lane while the pools keep it theirs.
import { isProxyError, proxyErrors } from '../http/errors.js';
import type { Duplex } from 'node:stream';
import type { UpstreamRequest, UpstreamTarget } from '../upstream/types.js';
import { UpstreamConnection, type Job, type RawOutcome, type RawRequest, type RawResponse } from './connection.js';

export { RawResponse, UpstreamConnection, type BodySink, type RawOutcome, type RawRequest } from './connection.js';

/** Marks an UpstreamRequest as the fast path's: the HTTP/1.1 pool sends it with RawPool. */
export const RAW = Symbol('weft.http1.raw');

export type RawUpstreamRequest = UpstreamRequest & { readonly [RAW]: RawRequest };

export interface RawPoolOptions {
  /** `host:port`, for errors. */
  readonly address: string;
  /** Opens a connected socket (TLS handshake done) through the endpoint's transport. */
  readonly connect: () => Promise<Duplex>;
  /** At most this many connections (the cluster's max_connections); undefined: no limit. */
  readonly maxConnections: number | undefined;
  /** Idle connections are closed after this long (below the server's keep-alive timeout). */
  readonly keepAliveTimeoutMs: number;
}

function settleHead(this: Job, r: RawResponse): void {
  this.outcome!.onUpstreamHead(r);
}

function settleFailed(this: Job, err: unknown): void {
  this.outcome!.onUpstreamFailed(err);
}

/** The pools with idle connections to look at, and the one timer that does (no socket timers:
 *  refreshing them on every read and write costs more than a sweep). */
const sweeping = new Set<RawPool>();
let sweeper: NodeJS.Timeout | undefined;
const SWEEP_MS = 250;
/**
 * The sweep's clock (Date.now() at the last tick, or when the sweeper started), stamped on a
 * connection as it goes idle instead of reading the clock per request. It is never ahead of
 * the true time, so a connection is closed early by at most one tick, never late: still before
 * the server's own keep-alive timeout.
 */
let sweepNow = Date.now();

function sweepIdle(): void {
  const now = (sweepNow = Date.now());
  for (const pool of sweeping) pool.expireIdle(now);
  if (sweeping.size === 0 && sweeper) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
}

/**
 * Lanes: the raw pool of each target the shared pools made one for. A request may go straight to
 * it (callbacks, no promise chain through UpstreamPools) while the pools have seen a request for
 * that target recently enough to keep the pool theirs (not idle, not swept); otherwise it goes
 * through UpstreamPools, which refreshes the lane.
 */
const lanes = new WeakMap<UpstreamTarget, RawPool>();

/** The pool a request for `target` may use directly at `now` (performance.now()), if any. */
export function laneFor(target: UpstreamTarget, now: number): RawPool | undefined {
  const pool = lanes.get(target);
  return pool !== undefined && pool.usable && now - pool.viaPoolsAt < pool.keepAliveTimeoutMs ? pool : undefined;
}

/** The connections to one endpoint. Requests beyond maxConnections wait, in order. */
export class RawPool {
  readonly address: string;
  readonly keepAliveTimeoutMs: number;
  /** performance.now() of the last request that came through the shared pools. */
  viaPoolsAt = -Infinity;
  private readonly idleConns: UpstreamConnection[] = [];
  private readonly conns = new Set<UpstreamConnection>();
  private readonly waiting: Job[] = [];
  private connecting = 0;
  private closed = false;

  constructor(private readonly opts: RawPoolOptions) {
    this.address = opts.address;
    this.keepAliveTimeoutMs = opts.keepAliveTimeoutMs;
  }

  get usable(): boolean {
    return !this.closed;
  }

  /** Sends `req` for the shared pools; resolves at the response head. Rejects with
   *  upstream_connect / upstream_reset ProxyErrors, or with `req.cancelled` when the exchange
   *  gave up first. Keeps the target's lane open. */
  request(req: RawRequest): Promise<RawResponse> {
    this.viaPoolsAt = performance.now();
    lanes.set(req.target, this);
    return new Promise<RawResponse>((resolve, reject) => this.dispatch({ req, resolve, reject, outcome: undefined, replayed: false }, false));
  }

  /** The same through a lane: `outcome` hears once, as the promise would settle. */
  send(req: RawRequest, outcome: RawOutcome): void {
    this.dispatch({ req, resolve: settleHead, reject: settleFailed, outcome, replayed: false }, false);
  }

  /** @internal Gives `job` a connection: an idle one (unless `fresh`), a new one, or a place in line. */
  dispatch(job: Job, fresh: boolean): void {
    if (this.closed) return job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
    if (job.req.cancelled !== undefined) return job.reject(job.req.cancelled);
    const idle = fresh ? undefined : this.idleConns.pop();
    if (idle) return idle.send(job);
    const max = this.opts.maxConnections;
    if (max !== undefined && this.conns.size + this.connecting >= max) {
      this.waiting.push(job);
      return;
    }
    this.open(job);
  }

  private open(job: Job): void {
    this.connecting++;
    this.opts.connect().then(
      (socket) => {
        this.connecting--;
        if (this.closed) {
          socket.destroy();
          return job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
        }
        const conn = new UpstreamConnection(socket, this);
        this.conns.add(conn);
        if (job.req.cancelled !== undefined) {
          job.reject(job.req.cancelled);
          return this.release(conn, true);
        }
        conn.send(job);
      },
      (err: unknown) => {
        this.connecting--;
        job.reject(isProxyError(err) ? err : proxyErrors.upstreamConnect(this.address, err));
        this.next();
      },
    );
  }

  /** @internal A connection finished a request: reuse it, or close it. */
  release(conn: UpstreamConnection, reusable: boolean): void {
    if (!reusable || this.closed) return conn.abort(undefined);
    for (let job = this.waiting.shift(); job; job = this.waiting.shift()) {
      if (job.req.cancelled !== undefined) {
        job.reject(job.req.cancelled);
        continue;
      }
      return conn.send(job);
    }
    if (!sweeper) {
      sweepNow = Date.now();
      sweeper = setInterval(sweepIdle, SWEEP_MS).unref();
    }
    conn.idleSince = sweepNow;
    this.idleConns.push(conn);
    sweeping.add(this);
  }

  /** @internal Closes connections idle for keepAliveTimeoutMs (oldest first in the stack). */
  expireIdle(now: number): void {
    while (this.idleConns.length > 0 && now - this.idleConns[0]!.idleSince >= this.keepAliveTimeoutMs) this.idleConns[0]!.expire();
    if (this.idleConns.length === 0) sweeping.delete(this);
  }

  /** @internal A connection closed: it leaves the pool, and its slot may open another. */
  forget(conn: UpstreamConnection): void {
    if (!this.conns.delete(conn)) return;
    const i = this.idleConns.indexOf(conn);
    if (i >= 0) this.idleConns.splice(i, 1);
    this.next();
  }

  /** A connection slot freed up: open one for the first live waiter. */
  private next(): void {
    const max = this.opts.maxConnections;
    while (this.waiting.length > 0 && (max === undefined || this.conns.size + this.connecting < max)) {
      const job = this.waiting.shift()!;
      if (job.req.cancelled !== undefined) {
        job.reject(job.req.cancelled);
        continue;
      }
      this.open(job);
      return;
    }
  }

  /** Requests running or waiting. */
  get busy(): boolean {
    return this.connecting > 0 || this.waiting.length > 0 || this.conns.size > this.idleConns.length;
  }

  get connections(): number {
    return this.conns.size;
  }

  close(): void {
    this.closed = true;
    sweeping.delete(this);
    for (const job of this.waiting.splice(0)) job.reject(proxyErrors.upstreamConnect(this.address, new Error('upstream pool is closed')));
    for (const conn of [...this.conns]) conn.fail(proxyErrors.upstreamReset(this.address, new Error('upstream pool closed')));
    this.conns.clear();
    this.idleConns.length = 0;
  }
}
