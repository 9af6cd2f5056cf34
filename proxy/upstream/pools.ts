// Upstream connection pools, keyed by endpoint (address, target port, identity, protocol,
// transport) — never by config generation, so connections survive config swaps. Idle pools
// are closed after a while; pools no cluster uses any more (retainOnly) close as soon as their
// requests end; close() ends them all. Each cluster's circuit breaker lives here too, as
// Envoy's do beside its connection pools.
import type net from 'node:net';
import type { Cluster } from '../../api/domain.js';
import { createLogger, type Logger } from '../../core/log.js';
import type { UpstreamTransport } from '../transport/index.js';
import { plainUpstreamTransport } from '../transport/plain.js';
import { isProxyError, proxyErrors } from '../http/errors.js';
import { Http1Upstream } from './http1.js';
import { Http2Upstream } from './http2.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { UpstreamRequest, UpstreamResponse, UpstreamTarget } from './types.js';

export interface UpstreamPoolsOptions {
  /** The mesh transport (mTLS between sidecars; plaintext in local mode without identity).
   *  Used for targets with `mesh: true`. */
  readonly transport: UpstreamTransport;
  /** Used for targets with `mesh: false` (the app hop, pass-through). Default: plaintext. */
  readonly plainTransport?: UpstreamTransport;
  /** A pool with no request for this long is closed. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /** Idle keep-alive HTTP/1.1 sockets are closed after this. Default 4 s (below Node's 5 s
   *  server keep-alive, so we close first and never reuse a socket the server is closing). */
  readonly keepAliveTimeoutMs?: number;
  readonly log?: Logger;
}

export interface PoolInfo {
  readonly key: string;
  readonly protocol: 'http1' | 'http2';
  readonly address: string;
  readonly active: number;
  readonly connections: number;
  readonly idleMs: number;
  /** Retired by a config change: closes once `active` reaches 0. */
  readonly retiring: boolean;
}

/**
 * The data path's only way upstream. Called per request try by forward.ts (and per tunnel by
 * tunnel.ts). Created once per proxy process by the composition root and shared by listeners.
 */
export interface UpstreamPools {
  /** Sends one request; resolves at response headers. Rejects with a ProxyError
   *  (upstream_connect / upstream_reset / upstream_refused_stream / bad_request) or with the
   *  signal's abort reason. */
  request(target: UpstreamTarget, req: UpstreamRequest): Promise<UpstreamResponse>;
  /** A fresh, unpooled connection (Upgrade / CONNECT tunnels). Rejects with upstream_connect. */
  openTunnel(target: UpstreamTarget): Promise<net.Socket>;
  /** The circuit breaker of `cluster` (one per cluster name, its thresholds following the
   *  cluster's config, its counts kept). Called once per request by carry-out.ts. */
  breaker(cluster: Cluster): CircuitBreaker;
  /**
   * Config changed: only these targets are still used by some cluster. Every other pool is
   * retired — new requests to its endpoint get a fresh pool, and it closes once the requests
   * running on it end (a removed cluster drains instead of being cut). Called by the
   * composition root on every config swap.
   */
  retainOnly(targets: Iterable<UpstreamTarget>): void;
  /** For /clusters in the admin endpoint. */
  describe(): PoolInfo[];
  /** Closes every pool; running requests are cut. Later calls reject. */
  close(): Promise<void>;
}

interface Entry {
  readonly key: string;
  readonly target: UpstreamTarget;
  readonly conn: Http1Upstream | Http2Upstream;
  active: number;
  lastUsed: number;
  /** No cluster uses this endpoint any more: close when idle, take no new requests. */
  retiring: boolean;
}

export function poolKey(t: UpstreamTarget, transport: UpstreamTransport): string {
  const key = [t.protocol, transport.secure ? 'tls' : 'plain', `${t.host}:${t.port}`, t.targetPort ?? '', t.identity ?? ''].join('|');
  if (!t.tunnel) return key;
  return t.authority ? `${key}|${t.tunnel}|${t.authority}` : `${key}|${t.tunnel}`;
}

export function createUpstreamPools(opts: UpstreamPoolsOptions): UpstreamPools {
  const log = opts.log ?? createLogger('upstream');
  const plain = opts.plainTransport ?? plainUpstreamTransport;
  const idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  const keepAliveTimeoutMs = opts.keepAliveTimeoutMs ?? 4_000;
  const entries = new Map<string, Entry>();
  /** Retired pools still finishing requests. */
  const retiring = new Set<Entry>();
  /** `used`: asked for since the last sweep, which turns that into `lastUsed` (no clock read per request). */
  const breakers = new Map<string, { cluster: Cluster; breaker: CircuitBreaker; lastUsed: number; used: boolean }>();
  let closed = false;

  /** Closes a retired pool once nothing runs on it. */
  const closeIfDone = (e: Entry) => {
    if (!e.retiring || e.active > 0 || !retiring.has(e)) return;
    // undici counts a request as running until just after its body ended: look again shortly.
    if (e.conn.busy) return void setTimeout(() => closeIfDone(e), 50).unref();
    retiring.delete(e);
    void e.conn.close();
  };

  const sweep = setInterval(() => {
    const now = Date.now();
    for (const e of entries.values()) {
      if (e.active === 0 && !e.conn.busy && now - e.lastUsed >= idleTimeoutMs) {
        entries.delete(e.key);
        void e.conn.close();
      }
    }
    for (const e of retiring) closeIfDone(e);
    for (const [name, b] of breakers) {
      if (b.used) {
        b.used = false;
        b.lastUsed = now;
      } else if (b.breaker.idle && now - b.lastUsed >= idleTimeoutMs) breakers.delete(name);
    }
  }, Math.max(250, Math.min(idleTimeoutMs / 2, 30_000)));
  sweep.unref();

  const transportFor = (t: UpstreamTarget) => (t.mesh ? opts.transport : plain);

  function entryFor(target: UpstreamTarget): Entry {
    const transport = transportFor(target);
    const key = poolKey(target, transport);
    let e = entries.get(key);
    if (!e) {
      const conn =
        target.protocol === 'http2'
          ? new Http2Upstream(target, transport, log)
          : new Http1Upstream(target, transport, { keepAliveTimeoutMs });
      e = { key, target, conn, active: 0, lastUsed: Date.now(), retiring: false };
      entries.set(key, e);
    }
    return e;
  }

  return {
    async request(target, req) {
      if (closed) throw proxyErrors.upstreamConnect(`${target.host}:${target.port}`, new Error('upstream pools are closed'));
      const e = entryFor(target);
      e.active++;
      e.lastUsed = Date.now();
      try {
        const res = await e.conn.request(req);
        // Count the pool busy until the body is done, so the sweep never closes it mid-stream.
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          e.active--;
          e.lastUsed = Date.now();
          closeIfDone(e);
        };
        if (res.endStream) finish();
        else {
          res.body.once('end', finish);
          res.body.once('close', finish);
          res.body.once('error', finish);
        }
        return res;
      } catch (err) {
        e.active--;
        e.lastUsed = Date.now();
        closeIfDone(e);
        throw err;
      }
    },

    breaker(cluster) {
      const perConnection = cluster.protocol !== 'http2';
      let b = breakers.get(cluster.name);
      if (!b) {
        b = { cluster, breaker: new CircuitBreaker(cluster.name, cluster.circuitBreakers, perConnection), lastUsed: Date.now(), used: true };
        breakers.set(cluster.name, b);
      } else if (b.cluster !== cluster) {
        b.cluster = cluster;
        b.breaker.update(cluster.circuitBreakers, perConnection);
      }
      b.used = true;
      return b.breaker;
    },

    retainOnly(targets) {
      const keep = new Set<string>();
      for (const t of targets) keep.add(poolKey(t, transportFor(t)));
      for (const e of entries.values()) {
        if (keep.has(e.key)) continue;
        entries.delete(e.key);
        e.retiring = true;
        retiring.add(e);
        closeIfDone(e);
      }
    },

    async openTunnel(target) {
      const address = `${target.host}:${target.port}`;
      if (closed) throw proxyErrors.upstreamConnect(address, new Error('upstream pools are closed'));
      try {
        return await transportFor(target).connect({
          host: target.host,
          port: target.port,
          identity: target.identity,
          targetPort: target.targetPort,
          alpn: ['http/1.1'],
          connectTimeoutMs: target.connectTimeoutMs,
          tunnel: target.tunnel,
          authority: target.authority,
        });
      } catch (err) {
        throw isProxyError(err) ? err : proxyErrors.upstreamConnect(address, err);
      }
    },

    describe() {
      const now = Date.now();
      return [...entries.values(), ...retiring].map((e) => ({
        key: e.key,
        protocol: e.target.protocol,
        address: `${e.target.host}:${e.target.port}`,
        active: e.active,
        connections: e.conn.connections,
        idleMs: e.active > 0 ? 0 : now - e.lastUsed,
        retiring: e.retiring,
      }));
    },

    async close() {
      closed = true;
      clearInterval(sweep);
      const all = [...entries.values(), ...retiring];
      entries.clear();
      retiring.clear();
      await Promise.all(all.map((e) => e.conn.close()));
    },
  };
}
