// `weft demo client`: steady traffic to a URL through the HTTP proxy in HTTP_PROXY (the sidecar),
// printing one stats line per second: successes per version (from x-demo-version) and errors.
import http from 'node:http';

export interface DemoClientOptions {
  readonly target: string;
  readonly rps: number;
  /** `http://host:port` of the sidecar's outbound listener; absent = connect directly. */
  readonly proxy: string | undefined;
  /** Stop after this many seconds (0 = run until signalled). */
  readonly durationSec: number;
  readonly write: (line: string) => void;
}

export interface DemoStats {
  t: number;
  ok: number;
  errors: number;
  byVersion: Record<string, number>;
  lastError?: string;
}

export const STATS_PREFIX = 'weft-demo-stats ';

export function runDemoClient(opts: DemoClientOptions): { stop(): void; done: Promise<void> } {
  const target = new URL(opts.target);
  const proxy = opts.proxy ? new URL(opts.proxy) : undefined;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let window: DemoStats = { t: Date.now(), ok: 0, errors: 0, byVersion: {} };
  let stopped = false;

  const once = () => {
    const req = http.request(
      {
        agent,
        host: proxy ? proxy.hostname : target.hostname,
        port: proxy ? Number(proxy.port || 80) : Number(target.port || 80),
        // Through a proxy the request target is absolute-form, as HTTP_PROXY clients send it.
        path: proxy ? target.href : target.pathname + target.search,
        method: 'GET',
        headers: { host: target.host },
        timeout: 5_000,
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) {
            const v = String(res.headers['x-demo-version'] ?? 'unknown');
            window.ok++;
            window.byVersion[v] = (window.byVersion[v] ?? 0) + 1;
          } else {
            window.errors++;
            window.lastError = `HTTP ${res.statusCode}`;
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => {
      window.errors++;
      window.lastError = err.message;
    });
    req.end();
  };

  const interval = Math.max(1, Math.round(1000 / opts.rps));
  const sender = setInterval(() => !stopped && once(), interval);
  const reporter = setInterval(() => {
    opts.write(STATS_PREFIX + JSON.stringify(window));
    window = { t: Date.now(), ok: 0, errors: 0, byVersion: {} };
  }, 1000);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const stop = () => {
    if (stopped) return;
    stopped = true;
    clearInterval(sender);
    clearInterval(reporter);
    agent.destroy();
    resolveDone();
  };
  if (opts.durationSec > 0) setTimeout(stop, opts.durationSec * 1000).unref();
  return { stop, done };
}
