// `weft wait-ready` (the injected proxy's postStart hook): returns once the readiness URL answers
// 200, and fails with a message naming the URL and the last answer when it never does.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { waitReady } from './inject.js';

let server: http.Server | undefined;

afterEach(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(handler: http.RequestListener): Promise<string> {
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz/ready`;
}

describe('waitReady', () => {
  it('waits through 503s until the proxy answers 200', async () => {
    let calls = 0;
    const url = await serve((_req, res) => {
      calls++;
      res.writeHead(calls < 3 ? 503 : 200).end(calls < 3 ? 'not ready: no certificate yet' : 'ready');
    });
    await waitReady(url, 10);
    expect(calls).toBe(3);
  });

  it('gives up after the timeout, saying what it last heard', async () => {
    const url = await serve((_req, res) => res.writeHead(503).end('not ready: config incomplete'));
    await expect(waitReady(url, 1)).rejects.toThrow(/did not become ready within 1 s \(HTTP 503: not ready: config incomplete\)/);
  });
});
