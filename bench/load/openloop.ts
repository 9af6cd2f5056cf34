// An open-loop, fixed-rate load generator for latency, run in its own process: requests are
// scheduled on a fixed clock (rate R over C connections) and each latency is measured from the
// request's *scheduled* time, so a stalled server or proxy is charged for the requests that
// queued behind it (no coordinated omission). HTTP/1.1 (raw keep-alive sockets), h2c
// (node:http2) or gRPC (grpc-js). Prints one BENCH_RESULT line with percentiles in ms.
// Usage: node dist/bench/load/openloop.js --proto http1|h2c|grpc --port N --authority HOST
//          [--host 127.0.0.1] [--rate 1000] [--connections 16] [--duration 10] [--warmup 2]
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { callEcho, connectionOptions } from '../lib/grpc.js';
import { summarise } from '../lib/stats.js';
import { emitResult, flags, markWindow, num, str } from './args.js';
import { Http1Connection } from './http1-connection.js';

const f = flags();
const proto = str(f, 'proto');
const port = num(f, 'port', 0);
/** Where to connect (bench/ambient.ts: a Service VIP or pod IP, from inside a pod). */
const host = str(f, 'host', '127.0.0.1');
const authority = str(f, 'authority', `127.0.0.1:${port}`);
const rate = num(f, 'rate', 1000);
const connections = num(f, 'connections', 16);
const durationS = num(f, 'duration', 10);
const warmupS = num(f, 'warmup', 2);
/** After the last scheduled request, in-flight ones get this long before they count as lost. */
const TAIL_MS = 5_000;

/** Sends one request scheduled at `due`; calls `done(ok)` once when it is over. */
type Sender = (done: (ok: boolean) => void) => void;

interface Transport {
  ready(): Promise<void>;
  /** Sends now or queues; calls done when the response is complete. */
  send: Sender;
  close(): void;
}

function http1Transport(): Transport {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${authority}\r\nUser-Agent: weft-bench\r\n\r\n`, 'latin1');
  const conns = Array.from({ length: connections }, () => new Http1Connection(host, port, request));
  const queue: Array<(ok: boolean) => void> = [];
  const idle: Http1Connection[] = [];
  const pump = () => {
    while (queue.length > 0 && idle.length > 0) {
      const conn = idle.pop()!;
      const done = queue.shift()!;
      conn.send((ok) => {
        idle.push(conn);
        done(ok);
        pump();
      });
    }
  };
  return {
    async ready() {
      await Promise.all(conns.map((c) => c.connect()));
      idle.push(...conns);
    },
    send(done) {
      queue.push(done);
      pump();
    },
    close() {
      for (const c of conns) c.close();
    },
  };
}

function h2cTransport(): Transport {
  const sessions: http2.ClientHttp2Session[] = [];
  let next = 0;
  const headers = { ':method': 'GET', ':path': '/', ':authority': authority, ':scheme': 'http' };
  return {
    async ready() {
      for (let i = 0; i < connections; i++) {
        const s = http2.connect(`http://${host}:${port}`);
        s.on('error', () => {});
        await new Promise<void>((resolve, reject) => {
          s.once('connect', () => resolve());
          s.once('error', reject);
        });
        sessions.push(s);
      }
    },
    send(done) {
      const s = sessions[next++ % sessions.length]!;
      let status = 0;
      const req = s.request(headers, { endStream: true });
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', () => {});
      req.once('end', () => done(status >= 200 && status < 300));
      req.once('error', () => done(false));
    },
    close() {
      for (const s of sessions) s.close();
    },
  };
}

function grpcTransport(): Transport {
  const clients = Array.from({ length: connections }, (_, i) => new grpc.Client(`${host}:${port}`, grpc.credentials.createInsecure(), connectionOptions(authority, i)));
  let next = 0;
  return {
    async ready() {
      await Promise.all(
        clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 10_000, (err) => (err ? reject(err) : resolve())))),
      );
    },
    send(done) {
      void callEcho(clients[next++ % clients.length]!, 10_000).then((code) => done(code === 0));
    },
    close() {
      for (const c of clients) c.close();
    },
  };
}

async function main(): Promise<void> {
  const transport = proto === 'http1' ? http1Transport() : proto === 'h2c' ? h2cTransport() : proto === 'grpc' ? grpcTransport() : undefined;
  if (!transport) throw new Error(`--proto: http1, h2c or grpc, got "${proto}"`);
  await transport.ready();

  const interval = 1000 / rate;
  const total = Math.round(rate * (warmupS + durationS));
  const t0 = performance.now() + 50;
  const measureFrom = t0 + warmupS * 1000;
  markWindow(measureFrom, t0 + (warmupS + durationS) * 1000);
  const latencies = new Float64Array(total);
  const lags = new Float64Array(total);
  let recorded = 0;
  let lagCount = 0;
  let ok = 0;
  let failed = 0;
  let inFlight = 0;
  let issued = 0;

  const issue = (due: number) => {
    const measured = due >= measureFrom;
    if (measured) lags[lagCount++] = performance.now() - due;
    inFlight++;
    transport.send((success) => {
      inFlight--;
      if (!measured) return;
      if (success) {
        ok++;
        latencies[recorded++] = performance.now() - due;
      } else failed++;
    });
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      // Everything due by now goes out now; its latency still counts from when it was due.
      for (let due = t0 + issued * interval; issued < total && due <= now; due = t0 + issued * interval) {
        issued++;
        issue(due);
      }
      if (issued >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + issued * interval - performance.now()));
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  const tailEnd = performance.now() + TAIL_MS;
  for (let i = 0; inFlight > 0 && performance.now() < tailEnd && i < 1000; i++) await new Promise((r) => setTimeout(r, 10));
  const measuredCount = total - Math.round(rate * warmupS);
  transport.close();
  emitResult({
    proto,
    rate,
    connections,
    seconds: durationS,
    scheduled: measuredCount,
    ok,
    failed,
    lost: Math.max(0, measuredCount - ok - failed),
    latencyMs: summarise(latencies.subarray(0, recorded)),
    sendLagMs: summarise(lags.subarray(0, lagCount)),
  });
  setTimeout(() => process.exit(0), 50).unref();
}

main().catch((err: unknown) => {
  process.stderr.write(`openloop: ${(err as Error).message}\n`);
  process.exit(1);
});
