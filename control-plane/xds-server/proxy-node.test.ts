// Table tests for who an ADS stream is: a sidecar or waypoint must be the workload its token
// proves, a node proxy `ambient~<node>` of the node its token proves; every mismatch is refused
// with a message saying what does not match.
import { describe, expect, it } from 'vitest';
import { toStruct } from '../../api/codec.js';
import { ErrorCode, isWeftError } from '../../core/errors.js';
import type { CallerIdentity } from '../ca/authenticator.js';
import { identifyProxy, proxyNodeOf } from './proxy-node.js';

const WORKLOAD: CallerIdentity = { namespace: 'shop', serviceAccount: 'cart', workload: 'cart-1.shop', node: 'node-a' };
const NODE_A: CallerIdentity = { namespace: '', serviceAccount: '', node: 'node-a', nodeProxy: true };
const node = (id: string, metadata: Record<string, unknown>) => ({ id, metadata: toStruct(metadata) });

describe('identifyProxy', () => {
  it('a sidecar: its workload, namespace and metadata', () => {
    const info = identifyProxy(node('cart-1.shop', { MODE: 'sidecar', INBOUND_PORT: 15006 }), WORKLOAD);
    expect(info).toEqual({ id: 'cart-1.shop', workload: 'cart-1.shop', namespace: 'shop', metadata: { MODE: 'sidecar', INBOUND_PORT: 15006 }, mode: 'sidecar' });
    expect(proxyNodeOf(info)).toEqual({ id: 'cart-1.shop', workload: 'cart-1', namespace: 'shop', mode: 'sidecar' });
    expect(identifyProxy({ id: 'cart-1.shop' }, WORKLOAD).mode).toBe('sidecar');
  });

  it('a waypoint: a workload too, in mode waypoint', () => {
    const info = identifyProxy(node('cart-1.shop', { MODE: 'waypoint' }), WORKLOAD);
    expect(proxyNodeOf(info)).toEqual({ id: 'cart-1.shop', workload: 'cart-1', namespace: 'shop', mode: 'waypoint' });
  });

  it('a node proxy: ambient~<node> of the node its token proves', () => {
    const info = identifyProxy(node('ambient~node-a', { MODE: 'ambient', NODE_NAME: 'node-a' }), NODE_A);
    expect(info).toMatchObject({ id: 'ambient~node-a', workload: '', namespace: '', mode: 'ambient', node: 'node-a' });
    expect(proxyNodeOf(info)).toEqual({ id: 'ambient~node-a', workload: '', namespace: '', mode: 'ambient', nodeName: 'node-a' });
  });

  const refusals: [string, { id: string; metadata: Record<string, unknown> }, CallerIdentity, string][] = [
    ['a workload token claiming another workload', { id: 'pay-1.shop', metadata: {} }, WORKLOAD, 'node id "pay-1.shop" does not match the workload its token belongs to ("cart-1.shop")'],
    ['a workload token opening a node proxy stream', { id: 'ambient~node-a', metadata: { MODE: 'ambient', NODE_NAME: 'node-a' } }, WORKLOAD, 'MODE "ambient" is for node proxies, and the token belongs to workload cart-1.shop'],
    ['a node token claiming another node', { id: 'ambient~node-b', metadata: { MODE: 'ambient', NODE_NAME: 'node-b' } }, NODE_A, 'node id "ambient~node-b" does not match the node its token belongs to (want "ambient~node-a")'],
    ['a NODE_NAME that is not the token\'s node', { id: 'ambient~node-a', metadata: { MODE: 'ambient', NODE_NAME: 'node-b' } }, NODE_A, 'node metadata NODE_NAME "node-b" does not match the node its token belongs to ("node-a")'],
    ['a node token opening a sidecar stream', { id: 'cart-1.shop', metadata: { MODE: 'sidecar' } }, NODE_A, 'a node proxy\'s token (node node-a) opens only a node proxy\'s stream: MODE "ambient", node id "ambient~node-a"'],
    ['an unknown MODE', { id: 'cart-1.shop', metadata: { MODE: 'gateway' } }, WORKLOAD, 'node metadata MODE "gateway" is not one Weft serves (sidecar, waypoint or ambient)'],
  ];
  it.each(refusals)('refuses %s (AUTH_FAILED, saying what does not match)', (_name, n, caller, message) => {
    let err: unknown;
    try {
      identifyProxy(node(n.id, n.metadata), caller);
    } catch (e) {
      err = e;
    }
    expect(isWeftError(err, ErrorCode.AUTH_FAILED)).toBe(true);
    expect((err as Error).message).toBe(message);
  });
});
