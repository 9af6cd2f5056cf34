// Tests for applyHeaderMutations: set / add / addIfAbsent / remove, case-insensitive names,
// removal before addition within a mutation, order across mutations, and purity.
import { describe, expect, it } from 'vitest';
import type { HeaderMutation, HeaderValueOption } from '../../api/domain.js';
import { applyHeaderMutations } from './headers.js';

const add = (name: string, value: string, action: HeaderValueOption['action'] = 'append'): HeaderValueOption => ({ name, value, action });
const m = (adds: HeaderValueOption[], remove: string[] = []): HeaderMutation => ({ add: adds, remove });

describe('applyHeaderMutations', () => {
  it.each<[string, Record<string, string | string[]>, HeaderMutation[], Record<string, string | string[]>]>([
    ['append to a missing header sets it', {}, [m([add('x-a', '1')])], { 'x-a': '1' }],
    ['append to an existing header makes an array', { 'x-a': '1' }, [m([add('x-a', '2')])], { 'x-a': ['1', '2'] }],
    ['append to an array extends it', { 'x-a': ['1', '2'] }, [m([add('x-a', '3')])], { 'x-a': ['1', '2', '3'] }],
    ['overwrite replaces every value', { 'x-a': ['1', '2'] }, [m([add('x-a', '3', 'overwrite')])], { 'x-a': '3' }],
    ['overwrite matches names case-insensitively', { 'X-A': '1', other: 'o' }, [m([add('x-a', '2', 'overwrite')])], { other: 'o', 'x-a': '2' }],
    ['addIfAbsent leaves an existing header', { 'X-A': '1' }, [m([add('x-a', '2', 'addIfAbsent')])], { 'X-A': '1' }],
    ['addIfAbsent adds a missing header', {}, [m([add('x-a', '2', 'addIfAbsent')])], { 'x-a': '2' }],
    ['remove is case-insensitive', { 'X-Secret': 's', keep: 'k' }, [m([], ['x-secret'])], { keep: 'k' }],
    ['within one mutation, removal happens before addition', { 'x-a': 'old' }, [m([add('x-a', 'new')], ['x-a'])], { 'x-a': 'new' }],
    ['later mutations see earlier ones (vhost, then route)', {}, [m([add('x-a', 'vh', 'overwrite')]), m([add('x-a', 'route', 'overwrite')])], { 'x-a': 'route' }],
    ['a later removal undoes an earlier addition', {}, [m([add('x-a', '1')]), m([], ['x-a'])], {}],
    ['append keeps the original spelling of the name', { 'X-Tag': 'a' }, [m([add('x-tag', 'b')])], { 'X-Tag': ['a', 'b'] }],
  ])('%s', (_name, input, mutations, expected) => {
    expect(applyHeaderMutations(input, mutations)).toEqual(expected);
  });

  it('accepts a single mutation', () => {
    expect(applyHeaderMutations({}, m([add('a', '1')]))).toEqual({ a: '1' });
  });

  it('never modifies its input', () => {
    const input = Object.freeze({ 'x-a': Object.freeze(['1']) as unknown as string[], b: '2' });
    const out = applyHeaderMutations(input, [m([add('x-a', '2')], ['b'])]);
    expect(input).toEqual({ 'x-a': ['1'], b: '2' });
    expect(out).toEqual({ 'x-a': ['1', '2'] });
  });

  it('returns the input itself when there is nothing to apply', () => {
    const input = { a: '1' };
    expect(applyHeaderMutations(input, [m([]), m([])])).toBe(input);
  });
});
