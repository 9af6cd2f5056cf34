// Loopback helpers for the benchmarks: free ports, and waiting (bounded) for an HTTP endpoint.
import http from 'node:http';
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A port that was free a moment ago on 127.0.0.1 (for tools that cannot bind port 0 and report). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, LOOPBACK, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** One GET; resolves with status and body, rejects on error or after `timeoutMs`. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/** Polls `url` until it answers `status` (default 200); bounded by `timeoutMs`. */
export async function waitHttp(url: string, opts: { timeoutMs: number; status?: number; headers?: Record<string, string> }): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer';
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    try {
      const r = await get(url, opts.headers ?? {}, 1_000);
      if (r.status === (opts.status ?? 200)) return;
      last = `${r.status} ${r.body.trim().slice(0, 200)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${opts.timeoutMs} ms (last: ${last})`);
}

/** Polls a TCP port until it accepts a connection; bounded by `timeoutMs`. */
export async function waitPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, LOOPBACK);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listening on ${LOOPBACK}:${port} within ${timeoutMs} ms`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
