// A minimal node:http2 reverse proxy, run by hand to calibrate the HTTP/2 benchmarks: what the
// node:http2 core API itself allows on this machine (no routing, no telemetry, one upstream
// session), so Weft's h2c/gRPC figures can be read against the floor node:http2 sets.
// Usage: node dist/bench/servers/bare-h2-proxy.js --port N --upstream 127.0.0.1:PORT
//          (prints "listening <port>")
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { flags, num, str } from '../load/args.js';

const f = flags();
const port = num(f, 'port', 0);
const upstreamAddress = str(f, 'upstream');
const { HTTP2_HEADER_STATUS, NGHTTP2_CANCEL } = http2.constants;

let upstream: http2.ClientHttp2Session | undefined;
function session(): http2.ClientHttp2Session {
  if (upstream && !upstream.closed && !upstream.destroyed) return upstream;
  const s = http2.connect(`http://${upstreamAddress}`);
  s.on('error', () => {});
  s.on('goaway', () => upstream === s && (upstream = undefined));
  s.on('close', () => upstream === s && (upstream = undefined));
  upstream = s;
  return s;
}

const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('stream', (down, headers, flags) => {
  down.on('error', () => {});
  const endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
  let up: http2.ClientHttp2Stream;
  try {
    up = session().request(headers, { endStream });
  } catch {
    down.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    return;
  }
  up.on('error', () => {});
  // The request side must be read to its end (even an empty one) for the stream to close.
  if (endStream) down.resume();
  else down.pipe(up);
  up.once('response', (h, rflags) => {
    if (down.destroyed) return;
    const status = h[HTTP2_HEADER_STATUS];
    delete h[HTTP2_HEADER_STATUS];
    if ((rflags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
      down.respond({ ...h, ':status': status }, { endStream: true });
      return;
    }
    down.respond({ ...h, ':status': status }, { waitForTrailers: true });
    let trailers: http2.OutgoingHttpHeaders | undefined;
    up.once('trailers', (t) => (trailers = t));
    // No trailers: node ends the stream with an empty DATA frame (END_STREAM), as compat does.
    down.once('wantTrailers', () => down.sendTrailers(trailers ?? {}));
    up.pipe(down);
  });
  down.once('close', () => {
    if (!up.closed) up.close(NGHTTP2_CANCEL);
  });
  up.once('close', () => {
    if (!down.closed && !down.headersSent) down.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  });
});
server.on('sessionError', () => {});
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
const stop = () => {
  server.close();
  upstream?.close();
  setTimeout(() => process.exit(0), 100).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
