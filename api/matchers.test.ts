// Tests for the RE2 → JavaScript translation (what matches, what is rejected) and the shared
// decoding helpers (string matchers, structural equality).
import { describe, expect, it } from 'vitest';
import { Problems, compileFullMatch, compileSearch, decodeStringMatcher, deepEqual, translateRe2 } from './matchers.js';

function full(pattern: string): RegExp {
  const p = new Problems();
  const re = compileFullMatch(pattern, 'f', p);
  if (!re) throw new Error(JSON.stringify(p.list));
  return re;
}

describe('translateRe2: matching semantics', () => {
  it.each<[string, string, string[], string[]]>([
    ['whole-string match', 'a|ab', ['a', 'ab'], ['abc', 'xab']],
    ['dot excludes only \\n', 'a.c', ['abc', 'a\rc'], ['a\nc']],
    ['(?s) makes dot match \\n', '(?s)a.c', ['a\nc'], []],
    ['(?i) at the start', '(?i)hello', ['HeLLo'], ['help']],
    ['\\s is ASCII only (no \\v, no NBSP)', 'a\\sb', ['a b', 'a\tb'], ['a\u000bb', 'a\u00a0b']],
    ['\\S', 'a\\Sb', ['axb'], ['a b']],
    ['\\S inside a class', '[\\S]+', ['ab\u00a0c'], ['a b']],
    ['named groups (?P<n>)', '/(?P<id>[0-9]+)', ['/42'], ['/x']],
    ['POSIX classes', '[[:alpha:][:digit:]_]+', ['ab_9'], ['a-b']],
    ['\\Q...\\E literal', '\\Q/a.b(c)\\E', ['/a.b(c)'], ['/axb(c)']],
    ['escaped punctuation', '\\-\\/\\:\\#', ['-/:#'], []],
    ['\\x{...} and octal escapes', '\\x{41}\\101\\x41', ['AAA'], []],
    ['\\A and \\z', '\\Aab\\z', ['ab'], []],
    ['literal braces when not a repeat', 'a{,2}}', ['a{,2}}'], ['aa']],
    ['repeat counts', 'a{2,3}', ['aa', 'aaa'], ['a', 'aaaa']],
    ['a leading ] in a class is literal', '[]a]+', [']a]'], ['b']],
    ['\\pL and \\p{Greek}', '\\pL+\\p{Greek}', ['abcα'], ['abc1']],
    ['\\PN', '\\PN+', ['ab'], ['a1']],
    ['(?m) keeps the match whole-string', '(?m)^a$\\n^b$', ['a\nb'], ['xa\nb']],
  ])('%s: /%s/', (_name, pattern, yes, no) => {
    const re = full(pattern);
    for (const s of yes) expect(re.test(s), `${JSON.stringify(s)} should match`).toBe(true);
    for (const s of no) expect(re.test(s), `${JSON.stringify(s)} should not match`).toBe(false);
  });

  it.each([
    ['(', 'unterminated group'],
    ['(a)\\1', 'backreferences'],
    ['a(?=b)', 'lookahead'],
    ['(?<=a)b', 'lookbehind'],
    ['a(?i)b', 'only at the start'],
    ['(?U)a*', 'ungreedy'],
    ['\\Z', 'invalid escape'],
    ['\\C', 'invalid escape'],
    ['[[:^alpha:]]', 'negated POSIX'],
    ['[[:nope:]]', 'unknown POSIX'],
    ['a{1001}', 'exceeds 1000'],
    ['a**', 'nothing to repeat'],
    ['[a', 'missing closing ]'],
    ['(?#comment)', 'unsupported group'],
  ])('rejects /%s/ (%s)', (pattern, why) => {
    const t = translateRe2(pattern);
    expect(t.ok).toBe(false);
    expect(t.ok ? '' : t.error).toContain(why);
  });

  it('counts capture groups for rewrite substitutions', () => {
    const t = translateRe2('(a)(?:b)(?P<c>c)');
    expect(t.ok && t.groups).toBe(2);
  });

  it('search regexes are global and unanchored', () => {
    const s = compileSearch('o', 'f', new Problems())!;
    expect('foo'.replace(s.regex, '0')).toBe('f00');
  });

  it('reports the field path and the pattern', () => {
    const p = new Problems();
    compileFullMatch('a(', 'x.regex', p);
    expect(p.list[0]!.field).toBe('x.regex');
    expect(p.list[0]!.message).toMatch(/^invalid regular expression "a\(": /);
  });
});

describe('decodeStringMatcher', () => {
  it('needs exactly one pattern and non-empty prefix/suffix/contains', () => {
    const p = new Problems();
    expect(decodeStringMatcher({}, 's', p)).toBeUndefined();
    expect(decodeStringMatcher({ prefix: '' }, 't', p)).toEqual({ kind: 'prefix', value: '' });
    expect(p.list.map((x) => x.field)).toEqual(['s', 't.prefix']);
  });

  it('keeps an empty exact value (a oneof member survives unpacking)', () => {
    expect(decodeStringMatcher({ exact: '' }, 's', new Problems())).toEqual({ kind: 'exact', value: '' });
  });
});

describe('deepEqual', () => {
  it('compares regexes by source and flags, sets and maps by content', () => {
    expect(deepEqual({ r: /a/iu }, { r: /a/iu })).toBe(true);
    expect(deepEqual({ r: /a/iu }, { r: /a/u })).toBe(false);
    expect(deepEqual(new Set([1, 2]), new Set([2, 1]))).toBe(true);
    expect(deepEqual(new Set([1]), new Set([2]))).toBe(false);
    expect(deepEqual(new Map([['a', [1]]]), new Map([['a', [1]]]))).toBe(true);
    expect(deepEqual({ a: 1, b: undefined }, { a: 1 })).toBe(true);
    expect(deepEqual([1, 2], [1, 2, 3])).toBe(false);
  });
});
