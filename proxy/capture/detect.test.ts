// Protocol detection: the classifier on a table of first bytes, and the sniffer on real sockets
// (a client-first protocol is decided at once, a server-first one after the deadline).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { classify, sniff } from './detect.js';

const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

describe('classify', () => {
  it.each([
    ['a GET request line', 'GET / HTTP/1.1\r\nHost: x\r\n', 'http1'],
    ['an HTTP/1.0 request line with LF only', 'POST /a?b=c HTTP/1.0\n', 'http1'],
    ['any token as method', 'PROPFIND /dav HTTP/1.1\r\n', 'http1'],
    ['an absolute-form target', 'GET http://reviews:9080/x HTTP/1.1\r\n', 'http1'],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'http2'],
    ['a TLS ClientHello record', [0x16, 0x03, 0x01, 0x02, 0x00, 0x01], 'tls'],
    ['a line protocol', 'hello world\n', 'tcp'],
    ['a Redis command', '*1\r\n$4\r\nPING\r\n', 'tcp'],
    ['HTTP/2 without prior knowledge framing', 'PRI * HTTP/2.0\r\n\r\nXX', 'tcp'],
    ['a request line with HTTP/2 version', 'GET / HTTP/2.0\r\n', 'tcp'],
    ['0x16 that is not TLS', [0x16, 0x09, 0x00], 'tcp'],
    ['binary', [0x00, 0x01, 0x02], 'tcp'],
  ])('%s → %s', (_name, bytes, want) => expect(classify(b(bytes as string))).toBe(want));

  it.each([
    ['nothing', ''],
    ['a method', 'GET'],
    ['a method and part of the target', 'GET /reviews'],
    ['a request line without its end', 'GET / HTTP/1.'],
    ['part of the HTTP/2 preface', 'PRI * HTTP/2'],
    ['a TLS record header start', [0x16, 0x03]],
  ])('%s → undecided (read more)', (_name, bytes) => expect(classify(b(bytes as string))).toBeUndefined());
});

describe('sniff', () => {
  const closers: Array<() => void> = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  /** A server whose first connection is sniffed; returns the result and how long it took. */
  async function sniffOne(timeoutMs: number, client: (s: net.Socket) => void) {
    let done!: (v: { result: Awaited<ReturnType<typeof sniff>>; ms: number }) => void;
    const out = new Promise<{ result: Awaited<ReturnType<typeof sniff>>; ms: number }>((r) => (done = r));
    const server = net.createServer({ allowHalfOpen: true }, (s) => {
      const t0 = performance.now();
      void sniff(s, timeoutMs).then((result) => done({ result, ms: performance.now() - t0 }));
      closers.push(() => s.destroy());
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => server.close());
    const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => client(c));
    c.on('error', () => {});
    closers.push(() => c.destroy());
    return out;
  }

  it('decides HTTP/1.1 as soon as the request line is complete, keeping every byte', async () => {
    const { result, ms } = await sniffOne(5_000, (c) => {
      c.write('GET /x HT');
      setTimeout(() => c.write('TP/1.1\r\nHost: a\r\n'), 20);
    });
    expect(result?.kind).toBe('http1');
    expect(result?.head.toString()).toBe('GET /x HTTP/1.1\r\nHost: a\r\n');
    expect(ms).toBeLessThan(1_000);
  });

  it('gives a silent (server-first) client up as TCP after the deadline, not later', async () => {
    const { result, ms } = await sniffOne(80, () => {});
    expect(result).toMatchObject({ kind: 'tcp', timedOut: true, ended: false });
    expect(result?.head.length).toBe(0);
    expect(ms).toBeGreaterThanOrEqual(70);
    expect(ms).toBeLessThan(1_000);
  });

  it('reports a client that half-closed before the bytes told', async () => {
    const { result } = await sniffOne(5_000, (c) => c.end('hi'));
    expect(result).toMatchObject({ kind: 'tcp', ended: true });
    expect(result?.head.toString()).toBe('hi');
  });
});
