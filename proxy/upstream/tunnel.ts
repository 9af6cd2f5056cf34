// Byte tunnels for HTTP/1.1 Upgrade (WebSocket) and CONNECT: open one unpooled connection,
// send the request head (or answer CONNECT ourselves), then copy bytes both ways until
// either side closes. No retries: a tunnel cannot be replayed.
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import { kindOf, proxyErrors } from '../http/errors.js';
import type { HeaderMap } from '../http/headers.js';
import { writeRawAnswer } from '../http/respond.js';
import { countError, type ProxyStats } from '../http/stats.js';
import type { UpstreamPools } from './pools.js';
import type { EndpointChooser } from './target.js';

export interface TunnelRequest {
  readonly cluster: string;
  readonly choose: EndpointChooser;
  /**
   * 'upgrade': forward the request head (with its Upgrade) and relay whatever comes back.
   * 'connect-forward': send `CONNECT authority` to the next proxy (a peer sidecar) and relay.
   * 'connect-terminate': we are the last proxy: answer 200 ourselves and relay raw bytes.
   */
  readonly mode: 'upgrade' | 'connect-forward' | 'connect-terminate';
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  /** End-to-end headers to send (mutations applied); Connection/Upgrade are added here. */
  readonly headers: HeaderMap;
  /** The client's Upgrade header value (mode 'upgrade'). */
  readonly upgrade?: string;
  /** The request's consistent-hash value (a WebSocket stays with its user's endpoint). */
  readonly hash?: number;
}

export interface TunnelDeps {
  readonly pools: UpstreamPools;
  readonly stats: ProxyStats;
  readonly log: Logger;
}

/** Runs one tunnel; resolves when it is established (or refused). Never throws. */
export async function tunnel(t: TunnelRequest, client: Duplex, head: Buffer, deps: TunnelDeps): Promise<void> {
  const counters = deps.stats.cluster(t.cluster);
  counters.requests++;
  const endpoint = t.choose.pick(new Set(), t.hash);
  let upstream: net.Socket;
  let first: string;
  const started = Date.now();
  try {
    first = t.mode === 'connect-terminate' ? '' : tunnelHead(t);
    if (!endpoint) throw proxyErrors.noHealthyUpstream(t.cluster);
    upstream = await deps.pools.openTunnel(endpoint.target);
  } catch (err) {
    endpoint?.done({ ok: false, latencyMs: Date.now() - started });
    countError(counters.errors, kindOf(err));
    deps.log.debug('tunnel failed', { cluster: t.cluster, error: err });
    writeRawAnswer(client, err);
    return;
  }
  if (client.destroyed) {
    upstream.destroy();
    endpoint.done({ ok: false, latencyMs: Date.now() - started });
    return;
  }
  counters.inFlight++;
  // The latency sample is the connect time: a tunnel's lifetime says nothing about the endpoint.
  const connectMs = Date.now() - started;
  upstream.once('close', () => {
    counters.inFlight--;
    endpoint.done({ ok: true, latencyMs: connectMs });
  });
  if (t.mode === 'connect-terminate') client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
  else upstream.write(first);
  if (head.length > 0) upstream.write(head);
  splice(client, upstream);
}

function tunnelHead(t: TunnelRequest): string {
  const headers: HeaderMap = { ...t.headers, host: t.authority };
  if (t.mode === 'upgrade') {
    headers.connection = 'Upgrade';
    headers.upgrade = t.upgrade ?? 'websocket';
    return requestHead(t.method, t.path, headers);
  }
  return requestHead('CONNECT', t.authority, headers);
}

/** Copies bytes both ways; either side failing or closing ends both. */
export function splice(a: Duplex, b: Duplex): void {
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.on('error', end);
  b.on('error', end);
  a.once('close', end);
  b.once('close', end);
  a.pipe(b);
  b.pipe(a);
}

/** An HTTP/1.1 request head. Header values with CR/LF are refused (header injection). */
export function requestHead(method: string, target: string, headers: HeaderMap): string {
  let out = `${method} ${target} HTTP/1.1\r\n`;
  for (const [k, v] of Object.entries(headers)) {
    for (const value of Array.isArray(v) ? v : [v]) {
      if (/[\r\n]/.test(value) || /[\r\n:]/.test(k)) throw proxyErrors.badRequest(`invalid header ${JSON.stringify(k)}`);
      out += `${k}: ${value}\r\n`;
    }
  }
  return out + '\r\n';
}
