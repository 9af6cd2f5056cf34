// `weft demo app`: the demo service for examples/ — answers every request with JSON saying which
// version served it and what it saw (method, path, host, headers), so splits and filters show.
import http from 'node:http';

export interface DemoAppOptions {
  readonly service: string;
  readonly version: string;
  readonly host: string;
  readonly port: number;
}

export function startDemoApp(opts: DemoAppOptions): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.stringify({
        service: opts.service,
        version: opts.version,
        method: req.method,
        path: req.url,
        host: req.headers.host,
        headers: req.headers,
        bodyBytes: Buffer.concat(chunks).length,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-demo-version': opts.version });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve(server));
  });
}
