// The plaintext transport: connects, reports refusals with their code, serves inbound sockets
// without identity or target port.
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { deadPort } from '../http/testkit.js';
import { plainInboundTransport, plainUpstreamTransport } from './plain.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

describe('plain transport', () => {
  it('connects upstream and serves inbound sockets with no peer facts', async () => {
    const seen: net.Socket[] = [];
    const server = plainInboundTransport.createServer((s) => {
      seen.push(s);
      s.end('hi');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;
    const socket = await plainUpstreamTransport.connect({ host: '127.0.0.1', port, alpn: ['http/1.1'], identity: 'ignored', targetPort: 1 });
    const text = await new Promise<string>((resolve) => {
      let t = '';
      socket.on('data', (d) => (t += d));
      socket.on('end', () => resolve(t));
    });
    expect(text).toBe('hi');
    expect(plainUpstreamTransport.secure).toBe(false);
    expect(plainInboundTransport.peerIdentity(seen[0]!)).toBeUndefined();
    expect(plainInboundTransport.targetPort(seen[0]!)).toBeUndefined();
  });

  it('rejects with the socket error code when nothing listens', async () => {
    const port = await deadPort();
    await expect(plainUpstreamTransport.connect({ host: '127.0.0.1', port, alpn: [] })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
