// Free loopback ports for tests that must know a port before the server using it starts.
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** The kernel's ephemeral range: ports it hands out to outgoing connections and to listen(0). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // not Linux: fall through to the IANA range
  }
  return [49152, 65535];
}

function canBind(port: number): Promise<boolean> {
  const s = net.createServer();
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port that was free a moment ago, chosen *below* the ephemeral range. A test that stops a
 * server and starts it again on the same port needs that: while the port is unbound, any outgoing
 * connection on the machine (a parallel test, or a client retrying against that very port, which
 * Linux can connect to itself) may take an ephemeral port as its source port. Ports below the
 * range are never handed out that way, so only another test's explicit bind can take one.
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  const low = 10_000;
  const high = Math.max(low + 1000, ephemeralLow) - 1;
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low + 1));
    if (await canBind(port)) return port;
  }
  throw new Error(`freePort: no free port in 127.0.0.1:${low}-${high} after 100 attempts`);
}
