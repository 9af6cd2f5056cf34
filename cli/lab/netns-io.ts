// Reaching into a lab namespace from this process without leaving its own namespace (sockets
// made in the namespace by the native addon): an HTTP request to a port that only listens
// there (a proxy's 127.0.0.1 admin port), and a TCP relay that listens inside a pod and forwards
// to an address of this process's namespace (a pod's way to the control plane on loopback).
import http from 'node:http';
import net from 'node:net';
import { connectInNetns, listenInNetns } from '../../proxy/ambient/netns.js';

export interface InNetnsResponse {
  readonly status: number;
  readonly body: string;
}

/** One HTTP/1.1 request to host:port as seen from inside the namespace at `nsPath`. */
export async function httpInNetns(
  nsPath: string,
  port: number,
  urlPath: string,
  opts: { host?: string; method?: string; timeoutMs?: number } = {},
): Promise<InNetnsResponse> {
  const host = opts.host ?? '127.0.0.1';
  const timeoutMs = opts.timeoutMs ?? 2_000;
  // Mark 0: this is a visitor's connection, not the node proxy's; a pod's rules may redirect it.
  const socket = await connectInNetns(nsPath, host, port, { timeoutMs, mark: 0 });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { createConnection: () => socket, method: opts.method ?? 'GET', path: urlPath, headers: { host: `${host}:${port}`, connection: 'close' }, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${opts.method ?? 'GET'} http://${host}:${port}${urlPath} in ${nsPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      socket.destroy();
      reject(err);
    });
    req.end();
  });
}

export interface Relay {
  close(): Promise<void>;
}

/**
 * Listens on listenHost:listenPort inside the namespace at `nsPath` and relays each connection
 * to `target` in this process's own namespace, bytes both ways, half-close respected.
 */
export async function relayIntoNetns(nsPath: string, listenHost: string, listenPort: number, target: { host: string; port: number }): Promise<Relay> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (inner) => {
    const outer = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    for (const s of [inner, outer]) {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      s.on('error', () => {
        inner.destroy();
        outer.destroy();
      });
    }
    inner.pipe(outer);
    outer.pipe(inner);
  });
  await listenInNetns(server, nsPath, listenHost, listenPort, 0);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
