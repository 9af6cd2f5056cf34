// The lab's address plan: pod ranges parsed and refused with the reason, given addresses
// checked (range, bridge, network, broadcast, twice), the others assigned lowest-free.
import { describe, expect, it } from 'vitest';
import { assignAddresses, podAddressProblem, podRange } from './addresses.js';

describe('podRange', () => {
  it('puts the bridge on the first host address', () => {
    expect(podRange('10.244.0.0/24')).toMatchObject({ gateway: '10.244.0.1', prefixLength: 24, capacity: 253 });
    expect(podRange('10.8.0.0/16')).toMatchObject({ gateway: '10.8.0.1', capacity: 65533 });
  });

  it.each([
    ['10.244.0.0', /not an IPv4 CIDR/],
    ['10.244.0.0/8', /between \/16 and \/29/],
    ['10.244.0.0/30', /between \/16 and \/29/],
    ['10.244.300.0/24', /not an IPv4 CIDR/],
    ['10.244.0.5/24', /host bits set: the network is 10\.244\.0\.0\/24/],
  ])('refuses %s', (cidr, message) => {
    expect(() => podRange(cidr)).toThrow(message);
  });
});

describe('pod addresses', () => {
  const range = podRange('10.244.0.0/24');

  it.each([
    ['10.244.0.10', undefined],
    ['10.244.1.10', /outside the lab's pod range 10\.244\.0\.0\/24/],
    ['10.244.0.1', /the node's bridge address/],
    ['10.244.0.0', /network address/],
    ['10.244.0.255', /broadcast address/],
    ['127.0.0.1', /outside/],
    ['fd00::1', /not an IPv4 address/],
  ])('%s: %s', (ip, problem) => {
    const p = podAddressProblem(range, ip);
    if (problem === undefined) expect(p).toBeUndefined();
    else expect(p).toMatch(problem);
  });

  it('keeps given addresses and fills the rest lowest-free, skipping taken ones', () => {
    const out = assignAddresses(range, [{ name: 'a' }, { name: 'b', ip: '10.244.0.2' }, { name: 'c' }], ['10.244.0.3']);
    expect(Object.fromEntries(out)).toEqual({ b: '10.244.0.2', a: '10.244.0.4', c: '10.244.0.5' });
  });

  it('names the pod whose address is wrong or taken twice', () => {
    expect(() => assignAddresses(range, [{ name: 'client', ip: '10.1.0.5' }])).toThrow(/pod client: 10\.1\.0\.5 is outside/);
    expect(() => assignAddresses(range, [{ name: 'a', ip: '10.244.0.9' }, { name: 'b', ip: '10.244.0.9' }])).toThrow(/pod b: 10\.244\.0\.9 is already the address of pod a/);
  });

  it('says when the range is full', () => {
    const small = podRange('10.9.0.0/29'); // 8 addresses: network, bridge, 5 pods, broadcast
    expect(() => assignAddresses(small, Array.from({ length: 6 }, (_, i) => ({ name: `p${i}` })))).toThrow(/pod p5: no free address left in 10\.9\.0\.0\/29/);
  });
});
