// What the data path asks of an upstream connection pool: one request out, one response back,
// streamed both ways. Protocol (HTTP/1.1 or HTTP/2) and transport (plain or mTLS) stay inside.
import type { Readable } from 'node:stream';
import type { HeaderMap } from '../http/headers.js';

/** One endpoint as the pools see it. Two targets with the same key share connections. */
export interface UpstreamTarget {
  readonly host: string;
  readonly port: number;
  /** SPIFFE ID the peer must prove (mesh transport only). */
  readonly identity?: string;
  /** App port behind the peer sidecar (mesh transport: SNI `<port>.inbound.weft.internal`). */
  readonly targetPort?: number;
  /** Connect through the mesh transport (the cluster has a TLS context); else plaintext. */
  readonly mesh: boolean;
  /** The endpoint is reached over HBONE (EDS `weft.tunnel`; mesh transport only): `host:port`
   *  is its HBONE listener, the CONNECT authority `host:targetPort`. Part of the pool key. */
  readonly tunnel?: 'hbone';
  /** CONNECT authority instead of `host:targetPort` (EDS `weft.authority`: a waypoint's
   *  Service VIP:port). Part of the pool key. */
  readonly authority?: string;
  readonly protocol: 'http1' | 'http2';
  readonly connectTimeoutMs?: number;
  /** Cluster circuit breaker: most connections an HTTP/1.1 pool opens to this endpoint. */
  readonly maxConnections?: number;
}

export interface UpstreamRequest {
  readonly method: string;
  /** Origin-form path with query. */
  readonly path: string;
  /** Sent as Host (HTTP/1.1) or :authority (HTTP/2). */
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  /** End-to-end headers only: no hop-by-hop, no pseudo-headers, no Host. */
  readonly headers: HeaderMap;
  /** null: no body. A Readable is consumed once. */
  readonly body: Readable | Buffer | null;
  /** Aborts the request in any phase (connect, headers, body). */
  readonly signal: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  /** Lower-case, no pseudo-headers; hop-by-hop still present (the caller strips them). */
  readonly headers: HeaderMap;
  /** Must be consumed or destroyed; destroying it cancels the upstream request. Emits 'error'
   *  when the upstream resets mid-body. */
  readonly body: Readable;
  /** HTTP/2 HEADERS with END_STREAM (e.g. gRPC trailers-only): there is no body at all. */
  readonly endStream: boolean;
  /** Trailers received so far; complete once `body` has ended. */
  trailers(): HeaderMap;
}
