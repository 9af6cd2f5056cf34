// Tests for the resource type registry: one decoder per xDS type URL.
import { describe, expect, it } from 'vitest';
import { RESOURCE_TYPES } from './registry.js';
import { TypeUrl } from './types.js';

describe('RESOURCE_TYPES', () => {
  it('has one decoder per xDS type, keyed by its own type URL', () => {
    expect([...RESOURCE_TYPES.keys()].sort()).toEqual(Object.values(TypeUrl).sort());
    for (const [url, t] of RESOURCE_TYPES) expect(t.typeUrl).toBe(url);
  });
});
