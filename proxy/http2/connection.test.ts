// The HTTP/2 connection engine against node:http2 (nghttp2) on the other end, both roles: heads,
// bodies under flow control, trailers, resets, GOAWAY, PING, CONTINUATION, the peer's
// concurrency limit; and raw frames a broken peer might send, answered as RFC 9113 says.
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../http/testkit.js';
import { H2Connection, type H2Stream, type StreamHandler } from './connection.js';
import { Flag, Frame, H2Error, PREFACE } from './frames.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Records what a stream hears; consumes data as it comes (or not, when `hold`). */
class Recorder implements StreamHandler {
  head: string[] | undefined;
  headEnd = false;
  chunks: Buffer[] = [];
  trailers: string[] | undefined;
  ended = false;
  closed: { code: number; byPeer: boolean } | undefined;
  writable = 0;
  constructor(private readonly hold = false) {}
  onHead(_s: H2Stream, fields: string[], end: boolean): void {
    this.head = fields;
    this.headEnd = end;
  }
  onData(s: H2Stream, buf: Buffer, start: number, end: number): void {
    this.chunks.push(Buffer.from(buf.subarray(start, end)));
    if (!this.hold) s.consumed(end - start);
  }
  onEnd(_s: H2Stream, trailers: string[] | undefined): void {
    this.ended = true;
    this.trailers = trailers;
  }
  onClose(_s: H2Stream, code: number, byPeer: boolean): void {
    this.closed = { code, byPeer };
  }
  onWritable(): void {
    this.writable++;
  }
  get body(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const field = (fields: string[] | undefined, name: string) => {
  if (!fields) return undefined;
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
};

async function listen(server: net.Server | http2.Http2Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/** Our engine as the server; `onStream` answers each request. */
async function ourServer(onStream: (stream: H2Stream, fields: string[], end: boolean) => void, opts: { streamWindow?: number } = {}) {
  const conns: H2Connection[] = [];
  const server = net.createServer((socket) => {
    const c = new H2Connection(socket, { role: 'server', onStream, ...opts });
    conns.push(c);
    c.start();
  });
  const port = await listen(server);
  cleanups.push(() => new Promise<void>((r) => {
    for (const c of conns) c.destroy();
    server.close(() => r());
  }));
  return { port, conns };
}

function nodeClient(port: number): http2.ClientHttp2Session {
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  cleanups.push(() => s.destroy());
  return s;
}

async function ourClient(port: number, onGoaway?: (code: number) => void): Promise<H2Connection> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((r, j) => socket.once('connect', r).once('error', j));
  const c = new H2Connection(socket, { role: 'client', onGoaway });
  c.start();
  cleanups.push(() => c.destroy());
  return c;
}

async function nodeServer(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void, settings: http2.Settings = {}) {
  const server = http2.createServer({ settings });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => sessions.add(s));
  server.on('stream', (s, h) => {
    s.on('error', () => {});
    onStream(s, h);
  });
  const port = await listen(server);
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sessions) s.destroy();
    server.close(() => r());
  }));
  return { port, server, sessions };
}

/** A stream handler that echoes the request body back with its sha256 in trailers. */
function echoStream(stream: H2Stream, fields: string[], end: boolean): void {
  const hash = createHash('sha256');
  let n = 0;
  const respond = () => {
    stream.sendHead([':status', '200', 'x-path', field(fields, ':path') ?? '', 'x-bytes', String(n)], false);
    stream.write(Buffer.from(`got ${n}`));
    stream.endWithTrailers(['x-sha256', hash.digest('hex')]);
  };
  stream.handler = {
    onHead() {},
    onData(s, buf, start, end) {
      n += end - start;
      hash.update(buf.subarray(start, end));
      s.consumed(end - start);
    },
    onEnd: respond,
    onClose() {},
    onWritable() {},
  };
  if (end) respond();
}

function bigBody(bytes: number): { chunks: Buffer[]; sha: string } {
  const chunk = Buffer.alloc(64 * 1024);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 7) % 251;
  const chunks: Buffer[] = [];
  const h = createHash('sha256');
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    chunks.push(chunk);
    h.update(chunk);
  }
  return { chunks, sha: h.digest('hex') };
}

describe('H2Connection as a server, node:http2 as the client', () => {
  it('answers heads, bodies and trailers; uploads 8 MB through a 256 KiB stream window', async () => {
    const { port } = await ourServer(echoStream);
    const session = nodeClient(port);
    const get = await new Promise<{ h: http2.IncomingHttpHeaders; body: string; t: http2.IncomingHttpHeaders | undefined }>((resolve, reject) => {
      const s = session.request({ ':path': '/hello?x=1', 'x-a': 'b' });
      let h: http2.IncomingHttpHeaders = {};
      let t: http2.IncomingHttpHeaders | undefined;
      let body = '';
      s.on('response', (x) => (h = x));
      s.on('trailers', (x) => (t = x));
      s.on('data', (c: Buffer) => (body += c.toString()));
      s.on('end', () => resolve({ h, body, t }));
      s.on('error', reject);
    });
    expect(get.h[':status']).toBe(200);
    expect(get.h['x-path']).toBe('/hello?x=1');
    expect(get.body).toBe('got 0');
    expect(get.t?.['x-sha256']).toBe(createHash('sha256').digest('hex'));

    const { chunks, sha } = bigBody(8 * 1024 * 1024);
    const up = await new Promise<{ body: string; t: http2.IncomingHttpHeaders | undefined }>((resolve, reject) => {
      const s = session.request({ ':method': 'POST', ':path': '/up' });
      let t: http2.IncomingHttpHeaders | undefined;
      let body = '';
      s.on('trailers', (x) => (t = x));
      s.on('data', (c: Buffer) => (body += c.toString()));
      s.on('end', () => resolve({ body, t }));
      s.on('error', reject);
      let i = 0;
      const pump = () => {
        while (i < chunks.length) if (!s.write(chunks[i++])) return void s.once('drain', pump);
        s.end();
      };
      pump();
    });
    expect(up.body).toBe(`got ${8 * 1024 * 1024}`);
    expect(up.t?.['x-sha256']).toBe(sha);
  });

  it('streams 16 MB down with backpressure (onWritable), and carries 40 KB of headers in CONTINUATION frames', async () => {
    const { chunks, sha } = bigBody(16 * 1024 * 1024);
    let writables = 0;
    const { port } = await ourServer((stream, fields) => {
      let i = 0;
      const pump = (s: H2Stream) => {
        while (i < chunks.length) if (!s.write(chunks[i++]!)) return;
        s.end();
      };
      stream.handler = { onHead() {}, onData: (s, _b, start, end) => s.consumed(end - start), onEnd() {}, onClose() {}, onWritable: (s) => (writables++, pump(s)) };
      stream.sendHead([':status', '200', 'x-big-echo', field(fields, 'x-big') ?? ''], false);
      pump(stream);
    });
    const session = nodeClient(port);
    const big = 'v'.repeat(40_000);
    const got = await new Promise<{ sha: string; n: number; echo: number }>((resolve, reject) => {
      const s = session.request({ ':path': '/down', 'x-big': big });
      const h = createHash('sha256');
      let n = 0;
      let echo = 0;
      s.on('response', (x) => (echo = String(x['x-big-echo']).length));
      s.on('data', (c: Buffer) => {
        n += c.length;
        h.update(c);
      });
      s.on('end', () => resolve({ sha: h.digest('hex'), n, echo }));
      s.on('error', reject);
    });
    expect(got).toEqual({ sha, n: 16 * 1024 * 1024, echo: 40_000 });
    expect(writables).toBeGreaterThan(0);
  });

  it('tells the handler of a client reset, answers PING, and drains with GOAWAY', async () => {
    const streams: Recorder[] = [];
    const { port, conns } = await ourServer((stream, _f, end) => {
      const r = new Recorder();
      streams.push(r);
      stream.handler = r;
      if (end) stream.sendHead([':status', '200'], false); // never ends: a long response
    });
    const session = nodeClient(port);
    const s = session.request({ ':path': '/long' });
    s.on('error', () => {});
    await eventually(() => expect(streams).toHaveLength(1));
    s.close(http2.constants.NGHTTP2_CANCEL);
    await eventually(() => expect(streams[0]!.closed).toEqual({ code: H2Error.Cancel, byPeer: true }));
    const rtt = await new Promise<number>((resolve, reject) => session.ping((err, d) => (err ? reject(err) : resolve(d))));
    expect(rtt).toBeGreaterThanOrEqual(0);
    // Drain: GOAWAY, the open stream finishes, then the connection closes.
    const s2 = session.request({ ':path': '/long2' });
    s2.on('error', () => {});
    let body = '';
    s2.on('data', (c: Buffer) => (body += c.toString()));
    await eventually(() => expect(streams).toHaveLength(2));
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    conns[0]!.drain();
    await eventually(() => expect(goaway).toBe(true));
    const stream2 = [...conns[0]!.streams.values()][0]!;
    stream2.write(Buffer.from('done'));
    stream2.end();
    await new Promise<void>((r) => s2.on('close', () => r()));
    expect(body).toBe('done');
    await eventually(() => expect(session.closed || session.destroyed).toBe(true));
  });
});

describe('H2Connection as a client, node:http2 as the server', () => {
  it('sends requests, reads responses and trailers, moves 8 MB each way', async () => {
    const { chunks, sha } = bigBody(8 * 1024 * 1024);
    const { port } = await nodeServer((s, h) => {
      if (h[':path'] === '/down') {
        s.respond({ ':status': 200, 'x-kind': 'down' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        let i = 0;
        const pump = () => {
          while (i < chunks.length) if (!s.write(chunks[i++])) return void s.once('drain', pump);
          s.end();
        };
        pump();
        return;
      }
      const hash = createHash('sha256');
      let n = 0;
      s.on('data', (c: Buffer) => {
        n += c.length;
        hash.update(c);
      });
      s.on('end', () => s.respond({ ':status': 201, 'x-n': String(n), 'x-sha': hash.digest('hex') }, { endStream: true }));
    });
    const c = await ourClient(port);
    const down = new Recorder();
    c.request([':method', 'GET', ':scheme', 'http', ':authority', 'x', ':path', '/down'], true, down);
    await eventually(() => expect(down.closed).toBeDefined(), { timeoutMs: 10_000 });
    expect(field(down.head, ':status')).toBe('200');
    expect(field(down.head, 'x-kind')).toBe('down');
    expect(createHash('sha256').update(down.body).digest('hex')).toBe(sha);
    expect(down.trailers).toEqual(['grpc-status', '0']);
    expect(down.closed).toEqual({ code: 0, byPeer: false });

    const up = new Recorder();
    const stream = c.request([':method', 'POST', ':scheme', 'http', ':authority', 'x', ':path', '/up'], false, up);
    let i = 0;
    const pump = () => {
      while (i < chunks.length) if (!stream.write(chunks[i++]!)) return;
      stream.end();
    };
    up.onWritable = () => pump();
    pump();
    await eventually(() => expect(up.closed).toBeDefined(), { timeoutMs: 10_000 });
    expect(field(up.head, ':status')).toBe('201');
    expect(field(up.head, 'x-n')).toBe(String(8 * 1024 * 1024));
    expect(field(up.head, 'x-sha')).toBe(sha);
    expect(up.headEnd).toBe(true);
  });

  it('waits for a slot under the peer\'s MAX_CONCURRENT_STREAMS, and hears resets and GOAWAY', async () => {
    const held: http2.ServerHttp2Stream[] = [];
    const { port, sessions } = await nodeServer((s, h) => {
      if (h[':path'] === '/reset') return s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      held.push(s);
    }, { maxConcurrentStreams: 1 });
    let goaway = -1;
    const c = await ourClient(port, (code) => (goaway = code));
    const req = (path: string, r: Recorder) => c.request([':method', 'GET', ':scheme', 'http', ':authority', 'x', ':path', path], true, r);
    // Let the server's SETTINGS arrive first.
    const warm = new Recorder();
    req('/reset', warm);
    await eventually(() => expect(warm.closed).toEqual({ code: H2Error.RefusedStream, byPeer: true }));
    const a = new Recorder();
    const b = new Recorder();
    req('/a', a);
    req('/b', b);
    await eventually(() => expect(held).toHaveLength(1));
    expect(c.activeStreams).toBe(2); // b waits for a's slot
    held[0]!.respond({ ':status': 200 }, { endStream: true });
    await eventually(() => expect(held).toHaveLength(2));
    expect(a.closed).toEqual({ code: 0, byPeer: false });
    // GOAWAY naming stream a as the last: b (past it) is refused, so it may be retried elsewhere.
    const session = [...sessions][0]!;
    session.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    await eventually(() => expect(b.closed).toEqual({ code: H2Error.RefusedStream, byPeer: true }));
    expect(goaway).toBe(0);
    expect(c.usable).toBe(false);
  });

  it('sends 40 KB of headers as HEADERS + CONTINUATION', async () => {
    let got = 0;
    const { port } = await nodeServer((s, h) => {
      got = String(h['x-big']).length;
      s.respond({ ':status': 204 }, { endStream: true });
    });
    const c = await ourClient(port);
    const r = new Recorder();
    c.request([':method', 'GET', ':scheme', 'http', ':authority', 'x', ':path', '/', 'x-big', 'b'.repeat(40_000)], true, r);
    await eventually(() => expect(r.closed).toBeDefined());
    expect(got).toBe(40_000);
    expect(field(r.head, ':status')).toBe('204');
  });
});

// ---- raw frames from a broken peer --------------------------------------------------------------

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** Frames the server sends back, parsed, until it closes or `until` holds. */
async function exchange(port: number, bytes: Buffer, until: (frames: { type: number; flags: number; stream: number; payload: Buffer }[]) => boolean) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  cleanups.push(() => sock.destroy());
  sock.write(bytes);
  let buf = Buffer.alloc(0);
  const frames: { type: number; flags: number; stream: number; payload: Buffer }[] = [];
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    sock.on('close', done);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        frames.push({ type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5), payload: buf.subarray(9, 9 + len) });
        buf = buf.subarray(9 + len);
      }
      if (until(frames)) done();
    });
  });
  return frames;
}

const SETTINGS = frame(Frame.Settings, 0, 0);
/** HPACK for :method GET, :scheme http, :path /, :authority a (indexed + one literal). */
const GET_HEAD = Buffer.from([0x82, 0x86, 0x84, 0x01, 0x01, 0x61]);
const goawayCode = (frames: { type: number; payload: Buffer }[]) => frames.find((f) => f.type === Frame.Goaway)?.payload.readUInt32BE(4);
const rstCode = (frames: { type: number; payload: Buffer; stream: number }[], id: number) => frames.find((f) => f.type === Frame.RstStream && f.stream === id)?.payload.readUInt32BE(0);

describe('H2Connection facing a broken peer', () => {
  async function server() {
    return (await ourServer((stream) => (stream.handler = new Recorder()))).port;
  }
  const hasGoaway = (f: { type: number }[]) => f.some((x) => x.type === Frame.Goaway);

  it.each([
    ['DATA on stream 0', frame(Frame.Data, 0, 0, Buffer.from('x')), H2Error.ProtocolError],
    ['a frame larger than SETTINGS_MAX_FRAME_SIZE', frame(Frame.Data, 0, 1, Buffer.alloc(16_385)), H2Error.FrameSizeError],
    ['PING of 7 bytes', frame(Frame.Ping, 0, 0, Buffer.alloc(7)), H2Error.FrameSizeError],
    ['an even stream id from a client', frame(Frame.Headers, Flag.EndHeaders | Flag.EndStream, 2, GET_HEAD), H2Error.ProtocolError],
    ['CONTINUATION without HEADERS', frame(Frame.Continuation, Flag.EndHeaders, 1, GET_HEAD), H2Error.ProtocolError],
    ['a header block broken by another frame', Buffer.concat([frame(Frame.Headers, 0, 1, GET_HEAD), frame(Frame.Ping, 0, 0, Buffer.alloc(8))]), H2Error.ProtocolError],
    ['an undecodable header block', frame(Frame.Headers, Flag.EndHeaders, 1, Buffer.from([0x80])), H2Error.CompressionError],
    ['WINDOW_UPDATE of 0 on the connection', frame(Frame.WindowUpdate, 0, 0, Buffer.alloc(4)), H2Error.ProtocolError],
    ['a window past 2^31-1', frame(Frame.WindowUpdate, 0, 0, Buffer.from([0x7f, 0xff, 0xff, 0xff])), H2Error.FlowControlError],
    ['SETTINGS_ENABLE_PUSH of 2', frame(Frame.Settings, 0, 0, Buffer.from([0, 2, 0, 0, 0, 2])), H2Error.ProtocolError],
    ['PUSH_PROMISE', frame(Frame.PushPromise, Flag.EndHeaders, 1, Buffer.alloc(4)), H2Error.ProtocolError],
  ])('%s: GOAWAY with the RFC\'s error', async (_name, bytes, code) => {
    const port = await server();
    const frames = await exchange(port, Buffer.concat([PREFACE, SETTINGS, bytes]), hasGoaway);
    expect(goawayCode(frames)).toBe(code);
  });

  it('closes a connection that does not start with the preface', async () => {
    const port = await server();
    const frames = await exchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), hasGoaway);
    expect(goawayCode(frames)).toBe(H2Error.ProtocolError);
  });

  it.each([
    ['an upper-case field name', Buffer.concat([GET_HEAD, Buffer.from([0x00, 0x01, 0x58, 0x01, 0x79])])],
    ['a connection-specific field', Buffer.concat([GET_HEAD, Buffer.from([0x00, 0x0a]), Buffer.from('connection'), Buffer.from([0x05]), Buffer.from('close')])],
    ['no :path', Buffer.from([0x82, 0x86, 0x01, 0x01, 0x61])],
  ])('resets a request with %s (PROTOCOL_ERROR), and the connection goes on', async (_name, block) => {
    const port = await server();
    const bytes = Buffer.concat([PREFACE, SETTINGS, frame(Frame.Headers, Flag.EndHeaders | Flag.EndStream, 1, block), frame(Frame.Ping, 0, 0, Buffer.alloc(8))]);
    const frames = await exchange(port, bytes, (f) => f.some((x) => x.type === Frame.Ping && x.flags & Flag.Ack));
    expect(rstCode(frames, 1)).toBe(H2Error.ProtocolError);
    expect(goawayCode(frames)).toBeUndefined();
  });

  it('resets a body longer than its Content-Length, and refuses streams past its limit', async () => {
    const { port } = await ourServer((stream) => (stream.handler = new Recorder()), {});
    const head = Buffer.concat([Buffer.from([0x83, 0x86, 0x84, 0x01, 0x01, 0x61]), Buffer.from([0x0f, 0x0d, 0x01, 0x31])]); // POST, content-length: 1
    const bytes = Buffer.concat([
      PREFACE, SETTINGS,
      frame(Frame.Headers, Flag.EndHeaders, 1, head),
      frame(Frame.Data, Flag.EndStream, 1, Buffer.from('too long')),
      frame(Frame.Ping, 0, 0, Buffer.alloc(8)),
    ]);
    const frames = await exchange(port, bytes, (f) => f.some((x) => x.type === Frame.Ping && x.flags & Flag.Ack));
    expect(rstCode(frames, 1)).toBe(H2Error.ProtocolError);
  });
});
