// The node proxy's settings: defaults from one table, and bad flags refused naming flag and value.
import { describe, expect, it } from 'vitest';
import { nodeProxyConfig } from './config.js';

const base = { xds: '127.0.0.1:15012', node: 'node-a', tokenFile: '/var/run/weft/token' };

describe('nodeProxyConfig', () => {
  it('fills in Istio’s ports and the in-pod listeners', () => {
    const c = nodeProxyConfig(base);
    expect(c).toMatchObject({
      adminPort: 15000,
      statsPort: 15020,
      healthPort: 15021,
      reconcileIntervalMs: 5000,
      ports: { outbound: 15001, inbound: 15006, hbone: 15008 },
      stateFile: '/var/run/weft/ambient-node-a.json',
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{ xds: 'nohost' }, /--xds: expected HOST:PORT, got "nohost"/],
    [{ node: 'Node_A' }, /--node: .*got "Node_A"/],
    [{ tokenFile: '' }, /--token-file/],
    [{ adminPort: 70000 }, /--admin-port: must be a port number, got 70000/],
    [{ reconcileIntervalMs: 10 }, /--reconcile-interval: at least 100 ms, got 10/],
  ])('refuses %j', (bad, message) => {
    expect(() => nodeProxyConfig({ ...base, ...bad })).toThrow(message);
  });
});
