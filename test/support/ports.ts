// Free loopback ports for tests that must know a port before the server using it starts.
import net from 'node:net';

/** A port that was free a moment ago (bound on 127.0.0.1 and released). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
