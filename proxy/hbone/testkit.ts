// Test support for HBONE (imported by *.test.ts only): workload certificates from a throwaway CA,
// MeshTls over a hand-driven identity source, TCP backends that report half-close, an HBONE
// server with a small policy, and a logger that keeps what it was told. Real sockets, 127.0.0.1.
import net from 'node:net';
import type { CertificateAuthority } from '../../certs/ca.js';
import { testCa, testIdentity, workloadCert, type TestWorkloadCert } from '../../certs/testing.js';
import type { Fields, Logger } from '../../core/log.js';
import { connectTcp } from '../capture/tcp.js';
import type { IdentitySource } from '../transport/tls.js';
import { MeshTls } from '../transport/tls.js';
import { createHboneServer, type HboneRequest, type HboneServer } from './server.js';

export const SERVER_ID = testIdentity('apps', 'ratings');
export const ALICE = testIdentity('apps', 'productpage');
export const BOB = testIdentity('apps', 'reviews');

/** An identity source the test drives by hand (rotation). */
export class ManualSource implements IdentitySource {
  private readonly listeners = new Set<() => void>();
  constructor(
    private cert: TestWorkloadCert | undefined,
    private roots: readonly string[],
  ) {}
  set(cert: TestWorkloadCert, roots: readonly string[] = this.roots): void {
    this.cert = cert;
    this.roots = roots;
    for (const l of this.listeners) l();
  }
  current() {
    return this.cert;
  }
  trustBundle() {
    return this.roots;
  }
  subscribe(l: () => void) {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

export interface Pki {
  readonly ca: CertificateAuthority;
  readonly foreign: CertificateAuthority;
  readonly server: TestWorkloadCert;
  readonly alice: TestWorkloadCert;
  readonly bob: TestWorkloadCert;
}

export async function makePki(): Promise<Pki> {
  const [ca, foreign] = await Promise.all([testCa(), testCa()]);
  const [server, alice, bob] = await Promise.all([workloadCert(ca, SERVER_ID), workloadCert(ca, ALICE), workloadCert(ca, BOB)]);
  return { ca, foreign, server, alice, bob };
}

export function meshOf(cert: TestWorkloadCert, roots: readonly string[]): { mesh: MeshTls; source: ManualSource } {
  const source = new ManualSource(cert, roots);
  return { mesh: new MeshTls(source), source };
}

/** A logger that records every line (level, message, fields) for assertions. */
export function recordingLog(): Logger & { readonly lines: Array<{ level: string; msg: string; fields?: Fields }> } {
  const lines: Array<{ level: string; msg: string; fields?: Fields }> = [];
  const log = {
    lines,
    debug: (msg: string, fields?: Fields) => void lines.push({ level: 'debug', msg, fields }),
    info: (msg: string, fields?: Fields) => void lines.push({ level: 'info', msg, fields }),
    warn: (msg: string, fields?: Fields) => void lines.push({ level: 'warn', msg, fields }),
    error: (msg: string, fields?: Fields) => void lines.push({ level: 'error', msg, fields }),
    child: () => log,
  };
  return log;
}

export interface Backend {
  readonly port: number;
  /** What each connection received, in accept order, and how it ended. */
  readonly connections: Array<{ received: string; ended: boolean; error?: string; socket: net.Socket }>;
  close(): Promise<void>;
}

/**
 * A TCP app. 'echo': echoes bytes; on the client's FIN answers `[eof after N bytes]` and ends.
 * 'banner': writes `hello` and half-closes at once, then keeps reading until the client's FIN.
 */
export async function startBackend(mode: 'echo' | 'banner' = 'echo'): Promise<Backend> {
  const connections: Backend['connections'] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const c: Backend['connections'][number] = { received: '', ended: false, socket };
    connections.push(c);
    let bytes = 0;
    socket.on('error', (err: NodeJS.ErrnoException) => (c.error = err.code ?? err.message));
    if (mode === 'banner') socket.end('hello');
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
      if (c.received.length < 4096) c.received += d.toString('latin1');
      if (mode === 'echo') socket.write(d);
    });
    socket.on('end', () => {
      c.ended = true;
      if (mode === 'echo') socket.end(`[eof after ${bytes} bytes]`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((r) => {
        for (const c of connections) c.socket.destroy();
        server.close(() => r());
      }),
  };
}

export interface TestHboneServer {
  readonly hbone: HboneServer;
  readonly port: number;
  /** TLS connections the server accepted (before its certificate checks). */
  readonly handshakes: { value: number };
  /** The server side of every TLS connection, for killing sessions. */
  readonly sockets: net.Socket[];
  /** Every request the handler was asked about. */
  readonly requests: HboneRequest[];
  close(deadlineMs?: number): Promise<void>;
}

/**
 * An HBONE server in front of 127.0.0.1: peers in `deny` get 403; otherwise the target is dialled
 * (503 with the reason when that fails). `port` 0 picks a free one.
 */
export async function startHboneServer(
  mesh: MeshTls,
  opts: { log: Logger; deny?: readonly string[]; settings?: { maxConcurrentStreams?: number }; port?: number },
): Promise<TestHboneServer> {
  const requests: HboneRequest[] = [];
  const hbone = createHboneServer(
    mesh,
    async (req) => {
      requests.push(req);
      if (opts.deny?.includes(req.peer)) return { status: 403, reason: `${req.peer} may not reach ${req.target.host}:${req.target.port}` };
      try {
        return { status: 200, upstream: await connectTcp(req.target.host, req.target.port, { timeoutMs: 2000 }) };
      } catch (err) {
        return { status: 503, reason: `cannot reach ${req.target.host}:${req.target.port}: ${(err as Error).message}` };
      }
    },
    { log: opts.log, ...(opts.settings ? { settings: opts.settings } : {}) },
  );
  const handshakes = { value: 0 };
  const sockets: net.Socket[] = [];
  hbone.server.on('secureConnection', (s: net.Socket) => {
    handshakes.value++;
    sockets.push(s);
  });
  await new Promise<void>((r) => hbone.server.listen(opts.port ?? 0, '127.0.0.1', r));
  return {
    hbone,
    port: (hbone.server.address() as net.AddressInfo).port,
    handshakes,
    sockets,
    requests,
    close: (deadlineMs = 0) => hbone.close(deadlineMs),
  };
}

/** Reads a Duplex to its end (rejects on error), as latin1 text. */
export function readAll(s: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.once('end', () => resolve(out));
    s.once('error', reject);
    s.resume(); // after readBytes() paused it
  });
}

/** Resolves with the first `n` bytes read (as text), without consuming the end. */
export function readBytes(s: NodeJS.ReadableStream, n: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString('latin1');
      if (out.length >= n) {
        s.removeListener('data', onData);
        s.removeListener('error', reject);
        s.pause();
        resolve(out);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

/** Two ends of a real loopback TCP connection, both half-open capable: [app side, proxy side]. */
export async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const app = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  const proxy = await accepted;
  server.close();
  return [app, proxy];
}
