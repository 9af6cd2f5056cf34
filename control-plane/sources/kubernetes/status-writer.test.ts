// The status the writer sends, against what the API server holds: a custom resource comes back
// with its keys sorted, so the writer must recognise its own earlier entries and conditions in
// that form, and keep their lastTransitionTime while their status holds.
import { describe, expect, it } from 'vitest';
import { CONTROLLER_NAME, type RouteStatus } from '../../status/index.js';
import type { GatewayStatus } from '../../status/gateways.js';
import type { Json } from '../../injector/patch.js';
import { sortKeys } from '../../../test/k8s/apiserver.js';
import { desiredGatewayStatus, desiredParents } from './status-writer.js';

const EARLIER = Date.parse('2026-01-01T00:00:00Z');
const NOW = Date.parse('2026-06-01T12:00:00Z');

/** What the API server sends back: every object's keys sorted (as the stand-in API server does). */
const asServed = <T>(v: T): T => sortKeys(v as Json) as T;

describe('the status writer', () => {
  it("finds its own entry for a parent however the server ordered the parentRef's keys, and keeps the transition times", () => {
    const status: RouteStatus = {
      kind: 'HTTPRoute',
      namespace: 'shop',
      name: 'r',
      parents: [
        {
          parentRef: { group: '', kind: 'Service', namespace: 'other', name: 'cart', port: 80 },
          controllerName: CONTROLLER_NAME,
          conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', observedGeneration: 2 }],
        },
      ],
    };
    const written = asServed(desiredParents(status, [], EARLIER));
    expect(Object.keys(written[0]!.parentRef)).toEqual(['group', 'kind', 'name', 'namespace', 'port']);
    const again = desiredParents(status, written, NOW);
    expect(again[0]!.conditions[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    // A condition whose status changed gets the new time.
    const rejected: RouteStatus = { ...status, parents: [{ ...status.parents[0]!, conditions: [{ type: 'Accepted', status: 'False', reason: 'NoMatchingParent', message: 'gone' }] }] };
    expect(desiredParents(rejected, written, NOW)[0]!.conditions[0]!.lastTransitionTime).toBe('2026-06-01T12:00:00Z');
  });

  it("keeps a waypoint Gateway's and its listeners' transition times while their status holds", () => {
    const status: GatewayStatus = {
      namespace: 'shop',
      name: 'wp',
      conditions: [{ type: 'Programmed', status: 'True', reason: 'Programmed', message: 'Served by 1 replica: 10.0.0.3' }],
      addresses: [{ type: 'IPAddress', value: '10.0.0.3' }],
      listeners: [{ name: 'mesh', supportedKinds: [], attachedRoutes: 0, conditions: [{ type: 'Accepted', status: 'True', reason: 'Accepted', message: 'HBONE' }] }],
    };
    const written = asServed(desiredGatewayStatus(status, undefined, EARLIER));
    const again = desiredGatewayStatus(status, written, NOW);
    expect(again.conditions[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
    expect(again.listeners[0]!.conditions[0]!.lastTransitionTime).toBe('2026-01-01T00:00:00Z');
  });
});
