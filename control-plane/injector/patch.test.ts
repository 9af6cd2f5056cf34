// JSON Patch (RFC 6902): computed patches are minimal and, applied, give exactly the target.
import { describe, expect, it } from 'vitest';
import { applyPatch, diff, mergePatch, type Json } from './patch.js';

describe('diff', () => {
  const cases: { name: string; from: Json; to: Json; ops: unknown[] }[] = [
    { name: 'equal documents need nothing', from: { a: [1, { b: 2 }] }, to: { a: [1, { b: 2 }] }, ops: [] },
    { name: 'a new key is one add', from: { a: 1 }, to: { a: 1, b: { c: 2 } }, ops: [{ op: 'add', path: '/b', value: { c: 2 } }] },
    {
      name: 'keys with "/" and "~" are escaped (RFC 6901)',
      from: { annotations: {} },
      to: { annotations: { 'weft.dev/status': 'x', 'a~b': 'y' } },
      ops: [
        { op: 'add', path: '/annotations/weft.dev~1status', value: 'x' },
        { op: 'add', path: '/annotations/a~0b', value: 'y' },
      ],
    },
    { name: 'insert at the front of a list', from: { c: ['app'] }, to: { c: ['proxy', 'app'] }, ops: [{ op: 'add', path: '/c/0', value: 'proxy' }] },
    { name: 'append to a list', from: { c: ['a'] }, to: { c: ['a', 'b', 'c'] }, ops: [{ op: 'add', path: '/c/1', value: 'b' }, { op: 'add', path: '/c/2', value: 'c' }] },
    { name: 'remove from a list, last index first', from: { c: [1, 2, 3, 4] }, to: { c: [1, 4] }, ops: [{ op: 'remove', path: '/c/2' }, { op: 'remove', path: '/c/1' }] },
    { name: 'a changed element is patched inside', from: { c: [{ n: 1 }, { n: 2 }] }, to: { c: [{ n: 1 }, { n: 3 }] }, ops: [{ op: 'replace', path: '/c/1/n', value: 3 }] },
    { name: 'a removed key', from: { a: 1, b: 2 }, to: { a: 1 }, ops: [{ op: 'remove', path: '/b' }] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const ops = diff(c.from, c.to);
      expect(ops).toEqual(c.ops);
      expect(applyPatch(c.from, ops)).toEqual(c.to);
    });
  }

  it('round-trips arbitrary nested changes', () => {
    const from: Json = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'a', env: [{ name: 'A' }] }], volumes: [] } };
    const to: Json = {
      metadata: { labels: { app: 'x', 'weft.dev/rev': 'default' }, annotations: { k: 'v' } },
      spec: { initContainers: [{ name: 'i' }], containers: [{ name: 'p' }, { name: 'a', env: [{ name: 'A' }] }], volumes: [{ name: 'v' }] },
    };
    expect(applyPatch(from, diff(from, to))).toEqual(to);
  });
});

describe('applyPatch', () => {
  it('refuses a path that does not exist, and a failing test op', () => {
    expect(() => applyPatch({ a: {} }, [{ op: 'replace', path: '/a/b', value: 1 }])).toThrow(/does not exist/);
    expect(() => applyPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }])).toThrow(/test failed/);
  });
  it('does not modify its input', () => {
    const doc: Json = { a: [1] };
    applyPatch(doc, [{ op: 'add', path: '/a/-', value: 2 }]);
    expect(doc).toEqual({ a: [1] });
  });
});

describe('mergePatch', () => {
  it('merges objects, replaces lists, deletes on null (RFC 7386)', () => {
    expect(mergePatch({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { c: null, d: 3 }, l: [3] })).toEqual({ a: { b: 1, d: 3 }, l: [3] });
  });
});
