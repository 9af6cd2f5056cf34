// A minimal gRPC unary server over node:http2 (h2c), run in its own process as the gRPC
// backend: answers every call with one fixed message and grpc-status 0. No grpc-js server on
// purpose: the backend must cost far less than the proxies measured in front of it.
// Usage: node dist/bench/servers/grpc-server.js --port N  (prints "listening <port>")
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { grpcFrame, RESPONSE_MESSAGE } from '../lib/grpc.js';

const portArg = process.argv.indexOf('--port');
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;
const body = grpcFrame(RESPONSE_MESSAGE);
const headers = { ':status': 200, 'content-type': 'application/grpc' };
const trailers = { 'grpc-status': '0' };

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (stream) => {
  stream.on('error', () => {});
  stream.resume();
  stream.once('end', () => {
    if (stream.destroyed) return;
    stream.respond(headers, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(trailers));
    stream.end(body);
  });
});
server.on('sessionError', () => {});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
const stop = () => {
  server.close();
  setTimeout(() => process.exit(0), 100).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
