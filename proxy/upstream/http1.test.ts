// The undici Pool and `request` the HTTP/1.1 upstream loads from their own modules (not undici's
// index, which would load all of undici) must be the very ones undici exports: an upgrade that
// moves or replaces them fails here.
import { describe, expect, it } from 'vitest';
import { Pool as UndiciPool } from 'undici';
import { undiciParts } from './http1.js';

describe('the HTTP/1.1 upstream', () => {
  it("uses undici's own Pool class and request method, each loaded from its module", () => {
    const { Pool, request } = undiciParts();
    expect(Pool).toBe(UndiciPool);
    // undici's index installs `request` on every dispatcher's prototype; we call it on the pool.
    expect(request).toBe(UndiciPool.prototype.request);
  });
});
