// The C load generators, run pinned to the load CPU, and their outputs parsed: wrk (HTTP/1.1
// keep-alive, closed loop) and h2load (h2c, closed loop, streams per connection).
import { runMeasured, runToEnd, type Measured } from './proc.js';

export interface ThroughputResult {
  /** Successful (2xx) responses per second over the measured period. */
  readonly rps: number;
  readonly ok: number;
  readonly errors: number;
  readonly seconds: number;
  /** The tool's mean latency, ms (closed loop: for reference only). */
  readonly meanLatencyMs: number;
}

export interface ClosedLoopOptions {
  readonly url: string;
  /** Host / :authority the request carries. */
  readonly authority: string;
  readonly connections: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly cpu: string | undefined;
  /** Processes under test, measured over the run (not the warm-up). */
  readonly pids: readonly number[];
  /** Called as the measured run (after the warm-up) starts. */
  readonly onMeasureStart?: () => void;
  /** wrk only: every request with `Connection: close`, so each is a new connection. */
  readonly close?: boolean;
}

/** wrk, one thread, `connections` keep-alive connections (or, with `close`, a new connection per
 *  request); a short unmeasured warm-up run first. */
export async function wrk(o: ClosedLoopOptions): Promise<{ result: ThroughputResult; measured: Measured }> {
  const base = ['-t1', `-c${o.connections}`, '-H', `Host: ${o.authority}`, ...(o.close ? ['-H', 'Connection: close'] : [])];
  if (o.warmupSeconds > 0) {
    await runToEnd('wrk-warmup', 'wrk', [...base, `-d${o.warmupSeconds}s`, o.url], { cpu: o.cpu, timeoutMs: (o.warmupSeconds + 20) * 1000 });
  }
  o.onMeasureStart?.();
  const m = await runMeasured('wrk', 'wrk', [...base, `-d${o.seconds}s`, '--timeout', '10s', o.url], { cpu: o.cpu, timeoutMs: (o.seconds + 30) * 1000 }, o.pids);
  return { result: parseWrk(m.stdout, o.seconds), measured: m };
}

export function parseWrk(out: string, seconds: number): ThroughputResult {
  const total = /(\d+) requests in ([\d.]+)(m?s)/.exec(out);
  if (!total) throw new Error(`could not read wrk output:\n${out}`);
  const requests = Number(total[1]);
  const secs = Number(total[2]) / (total[3] === 'ms' ? 1000 : 1) || seconds;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const lat = /Latency\s+([\d.]+)(us|ms|s)/.exec(out);
  const meanLatencyMs = lat ? Number(lat[1]) * (lat[2] === 'us' ? 0.001 : lat[2] === 's' ? 1000 : 1) : NaN;
  const ok = requests - non2xx;
  return { rps: ok / secs, ok, errors: non2xx + sockErrors, seconds: secs, meanLatencyMs };
}

/** h2load over h2c: `connections` clients × `streams` concurrent streams, one thread. */
export async function h2load(o: ClosedLoopOptions & { streams: number }): Promise<{ result: ThroughputResult; measured: Measured }> {
  const base = ['-t1', `-c${o.connections}`, `-m${o.streams}`, '-H', `:authority: ${o.authority}`];
  if (o.warmupSeconds > 0) {
    await runToEnd('h2load-warmup', 'h2load', [...base, `-D${o.warmupSeconds}`, o.url], { cpu: o.cpu, timeoutMs: (o.warmupSeconds + 20) * 1000 });
  }
  o.onMeasureStart?.();
  const m = await runMeasured('h2load', 'h2load', [...base, `-D${o.seconds}`, o.url], { cpu: o.cpu, timeoutMs: (o.seconds + 30) * 1000 }, o.pids);
  return { result: parseH2load(m.stdout, o.seconds), measured: m };
}

export function parseH2load(out: string, seconds: number): ThroughputResult {
  const fin = /finished in ([\d.]+)(m?s)/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const reqs = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  if (!fin || !codes || !reqs) throw new Error(`could not read h2load output:\n${out}`);
  const secs = Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1) || seconds;
  const ok = Number(codes[1]);
  const errors = Number(codes[3]) + Number(codes[4]) + Number(reqs[1]) + Number(reqs[2]) + Number(reqs[3]);
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(out);
  const meanLatencyMs = mean ? Number(mean[1]) * (mean[2] === 'us' ? 0.001 : mean[2] === 's' ? 1000 : 1) : NaN;
  return { rps: ok / secs, ok, errors, seconds: secs, meanLatencyMs };
}
