// Shared decoding toolkit for the xDS resource modules: problem collection with field paths,
// safe readers for unpacked plain objects, RE2 → JS RegExp translation, Envoy's string /
// header / query matchers, durations, and structural equality of domain values.
import type { FieldProblem } from '../core/errors.js';
import type { HeaderMatch, QueryMatch, StringMatch } from './domain.js';
import { unpack, type Plain } from './codec.js';
import type { DecodeResult } from './resource.js';
import { messageNameOf, type TypeUrl } from './types.js';

// ---- Problems and field paths ---------------------------------------------------------------

/** Collects every problem of one resource; decoders add to it and never throw. */
export class Problems {
  readonly list: FieldProblem[] = [];
  add(field: string, message: string): void {
    this.list.push({ field, message });
  }
  get empty(): boolean {
    return this.list.length === 0;
  }
}

/** `field(a, 'b')` → `a.b`; `field(a, 3)` → `a[3]`; map keys as `a["k"]`. */
export function field(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  return base ? `${base}.${key}` : key;
}

export function mapKey(base: string, key: string): string {
  return `${base}[${JSON.stringify(key)}]`;
}

/** Unpacks an Any of the expected type, turning decode failures into a problem. */
export function unpackChecked(
  any: { type_url: string; value: Uint8Array },
  typeUrl: TypeUrl,
  p: Problems,
): Plain | undefined {
  if (messageNameOf(any.type_url) !== messageNameOf(typeUrl)) {
    p.add('', `expected a ${messageNameOf(typeUrl)}, got type ${JSON.stringify(any.type_url)}`);
    return undefined;
  }
  try {
    return unpack({ type_url: typeUrl, value: any.value });
  } catch (e) {
    p.add('', `cannot decode ${messageNameOf(typeUrl)}: ${(e as Error).message}`);
    return undefined;
  }
}

/** The one way every module turns a decode into a DecodeResult. */
export function result<T>(name: string | undefined, value: T | undefined, p: Problems): DecodeResult<T> {
  if (p.empty && value !== undefined && name !== undefined) return { ok: true, name, value: deepFreeze(value) };
  return { ok: false, name, problems: p.list.length > 0 ? p.list : [{ field: '', message: 'invalid resource' }] };
}

// ---- Readers for unpacked messages (codec.unpack: snake_case, defaults omitted) -------------

export function obj(o: Plain | undefined, key: string): Plain | undefined {
  const v = o?.[key];
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Plain) : undefined;
}

export function list(o: Plain | undefined, key: string): Plain[] {
  const v = o?.[key];
  return Array.isArray(v) ? (v.filter((x) => x !== null && typeof x === 'object') as Plain[]) : [];
}

export function strings(o: Plain | undefined, key: string): string[] {
  const v = o?.[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function str(o: Plain | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' ? v : undefined;
}

export function num(o: Plain | undefined, key: string): number | undefined {
  const v = o?.[key];
  return typeof v === 'number' ? v : undefined;
}

export function bool(o: Plain | undefined, key: string): boolean {
  return o?.[key] === true;
}

export function has(o: Plain | undefined, key: string): boolean {
  return o !== undefined && o[key] !== undefined && o[key] !== null;
}

/** google.protobuf.{UInt32,Bool}Value: present with value omitted means the zero value. */
export function wrappedNum(o: Plain | undefined, key: string): number | undefined {
  const w = obj(o, key);
  if (!w) return undefined;
  return num(w, 'value') ?? 0;
}

export function wrappedBool(o: Plain | undefined, key: string): boolean | undefined {
  const w = obj(o, key);
  if (!w) return undefined;
  return w.value === true;
}

/** The type URL of a nested Any, whether or not its type is loaded. */
export function anyTypeUrl(any: Plain | undefined): string | undefined {
  return str(any, '@type') ?? str(any, 'type_url');
}

/** google.protobuf.Duration → milliseconds (undefined when absent). */
export function durationMs(o: Plain | undefined, key: string, path: string, p: Problems): number | undefined {
  const d = obj(o, key);
  if (!d) return undefined;
  const seconds = num(d, 'seconds') ?? 0;
  const nanos = num(d, 'nanos') ?? 0;
  if (seconds < 0 || nanos < 0) {
    p.add(field(path, key), `duration must not be negative (${seconds}s ${nanos}ns)`);
    return undefined;
  }
  return seconds * 1000 + Math.round(nanos / 1e6);
}

/** core.v3.DataSource, inline forms only (the proxy never reads files the control plane names). */
export function inlineData(ds: Plain | undefined, path: string, p: Problems): string | undefined {
  if (!ds) return undefined;
  const s = str(ds, 'inline_string');
  if (s !== undefined) return s;
  const b = str(ds, 'inline_bytes');
  if (b !== undefined) return Buffer.from(b, 'base64').toString('utf8');
  for (const k of ['filename', 'environment_variable', 'watched_directory']) {
    if (has(ds, k)) {
      p.add(field(path, k), 'only inline_string / inline_bytes data sources are supported');
      return undefined;
    }
  }
  return '';
}

// ---- RE2 → JavaScript ---------------------------------------------------------------------

export type Re2Translation =
  | { readonly ok: true; readonly source: string; readonly flags: string; readonly groups: number }
  | { readonly ok: false; readonly error: string };

const MAX_REPEAT = 1000; // RE2's limit on {n,m}
const LEADING_FLAGS = /^\(\?([imsU]*)(?:-([imsU]*))?\)/;
const RE2_SPACE = '\\t\\n\\f\\r ';
const RE2_NOT_SPACE_IN_CLASS = '\\0-\\x08\\x0B\\x0E-\\x1F!-\\u{10FFFF}';
const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\0-\\x7F',
  blank: '\\t ',
  cntrl: '\\0-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

function hexEscape(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

function isAsciiPunct(ch: string): boolean {
  return /^[!-/:-@[-`{-~]$/.test(ch);
}

/**
 * Translates an RE2 pattern to a JavaScript source for the `u` flag, rejecting what RE2 would
 * reject or JavaScript cannot express the same way (backreferences, lookaround, inline flags
 * other than at the start, `\C`, negated POSIX classes). RE2 differences handled: `.` excludes
 * only `\n`; `\s` is ASCII `[\t\n\f\r ]`; `\A`/`\z`; `\Q..\E`; `(?P<name>..)`; POSIX classes;
 * literal `{`, `}`, `]` where RE2 reads them literally; octal and `\x{...}` escapes.
 */
export function translateRe2(pattern: string): Re2Translation {
  let i = 0;
  let dotAll = false;
  let multiline = false;
  let ignoreCase = false;
  // Leading (?flags) groups apply to the whole pattern; JS has only global flags.
  for (let m = LEADING_FLAGS.exec(pattern); m; m = LEADING_FLAGS.exec(pattern.slice(i))) {
    const [all, on = '', off = ''] = m;
    if (on.includes('U') || off.includes('U')) return { ok: false, error: 'the ungreedy flag (?U) is not supported' };
    if (on.includes('i')) ignoreCase = true;
    if (on.includes('s')) dotAll = true;
    if (on.includes('m')) multiline = true;
    if (off.includes('i')) ignoreCase = false;
    if (off.includes('s')) dotAll = false;
    if (off.includes('m')) multiline = false;
    i += all.length;
  }
  let out = '';
  let groups = 0;
  const fail = (error: string): Re2Translation => ({ ok: false, error });

  // Escapes valid both inside and outside a class. Returns [text, consumed] or an error string.
  const commonEscape = (at: number, inClass: boolean): [string, number] | string => {
    const c = pattern[at + 1];
    if (c === undefined) return 'trailing backslash';
    if ('dDwW'.includes(c)) return [`\\${c}`, 2];
    if ('ftnrv'.includes(c)) return [`\\${c}`, 2];
    if (c === 'a') return ['\\x07', 2];
    if (c === 's') return [inClass ? RE2_SPACE : `[${RE2_SPACE}]`, 2];
    if (c === 'S') return [inClass ? RE2_NOT_SPACE_IN_CLASS : `[^${RE2_SPACE}]`, 2];
    if (c === 'x') {
      const braced = /^\{([0-9A-Fa-f]{1,6})\}/.exec(pattern.slice(at + 2));
      if (braced) {
        const cp = parseInt(braced[1]!, 16);
        if (cp > 0x10ffff) return `invalid escape \\x{${braced[1]}}`;
        return [`\\u{${cp.toString(16)}}`, 2 + braced[0].length];
      }
      const two = /^[0-9A-Fa-f]{2}/.exec(pattern.slice(at + 2));
      if (two) return [`\\x${two[0]}`, 4];
      return 'invalid escape \\x (want \\xHH or \\x{H...})';
    }
    if (c >= '0' && c <= '7') {
      // RE2: \0 starts an octal escape; \1-\7 only when followed by another octal digit
      // (a lone \1 would be a backreference, which RE2 does not support).
      const oct = /^[0-7]{1,3}/.exec(pattern.slice(at + 1))![0];
      if (c !== '0' && oct.length === 1) return `backreferences (\\${c}) are not supported by RE2`;
      return [`\\u{${parseInt(oct, 8).toString(16)}}`, 1 + oct.length];
    }
    if (c === '8' || c === '9') return `backreferences (\\${c}) are not supported by RE2`;
    if (c === 'p' || c === 'P') {
      let name: string;
      let len: number;
      if (pattern[at + 2] === '{') {
        const close = pattern.indexOf('}', at + 3);
        if (close < 0) return 'unterminated \\p{...}';
        name = pattern.slice(at + 3, close);
        len = close + 1 - at;
      } else {
        name = pattern[at + 2] ?? '';
        len = 3;
      }
      let negate = c === 'P';
      if (name.startsWith('^')) {
        negate = !negate;
        name = name.slice(1);
      }
      if (!/^[A-Za-z_]+$/.test(name)) return `invalid Unicode class \\${c}{${name}}`;
      if (name === 'Any') {
        if (negate) return '\\P{Any} matches nothing';
        return [inClass ? '\\0-\\u{10FFFF}' : '[\\s\\S]', len];
      }
      const prop = /^[A-Z][a-z]?$/.test(name) ? name : `Script=${name}`;
      return [`\\${negate ? 'P' : 'p'}{${prop}}`, len];
    }
    if (isAsciiPunct(c)) return [hexEscape(c), 2];
    return `invalid escape sequence \\${c}`;
  };

  while (i < pattern.length) {
    const ch = pattern[i]!;
    if (ch === '\\') {
      const c = pattern[i + 1];
      if (c === 'A') { out += '(?<![\\s\\S])'; i += 2; continue; }
      if (c === 'z') { out += '(?![\\s\\S])'; i += 2; continue; }
      if (c === 'b' || c === 'B') { out += `\\${c}`; i += 2; continue; }
      if (c === 'Q') {
        const end = pattern.indexOf('\\E', i + 2);
        const lit = pattern.slice(i + 2, end < 0 ? undefined : end);
        for (const lc of lit) out += /[A-Za-z0-9_]/.test(lc) || lc.codePointAt(0)! > 0x7f ? lc : hexEscape(lc);
        i = end < 0 ? pattern.length : end + 2;
        continue;
      }
      if (c === 'E') { i += 2; continue; } // a stray \E is ignored by RE2
      const r = commonEscape(i, false);
      if (typeof r === 'string') return fail(r);
      out += r[0];
      i += r[1];
      continue;
    }
    if (ch === '[') {
      out += '[';
      i++;
      if (pattern[i] === '^') { out += '^'; i++; }
      if (pattern[i] === ']') { out += '\\]'; i++; } // RE2: a leading ] is literal
      let closed = false;
      while (i < pattern.length) {
        const cc = pattern[i]!;
        if (cc === ']') { out += ']'; i++; closed = true; break; }
        if (cc === '[' && pattern[i + 1] === ':') {
          const m = /^\[:(\^?)([a-z]+):\]/.exec(pattern.slice(i));
          if (m) {
            if (m[1]) return fail(`negated POSIX class [:^${m[2]}:] is not supported`);
            const cls = POSIX[m[2]!];
            if (!cls) return fail(`unknown POSIX class [:${m[2]}:]`);
            out += cls;
            i += m[0].length;
            continue;
          }
        }
        if (cc === '[') { out += '\\['; i++; continue; }
        if (cc === '\\') {
          const r = commonEscape(i, true);
          if (typeof r === 'string') return fail(r);
          out += r[0];
          i += r[1];
          continue;
        }
        out += cc;
        i++;
      }
      if (!closed) return fail('missing closing ]');
      continue;
    }
    if (ch === '(') {
      if (pattern[i + 1] !== '?') { groups++; out += '('; i++; continue; }
      const rest = pattern.slice(i);
      if (rest.startsWith('(?:')) { out += '(?:'; i += 3; continue; }
      const named = /^\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
      if (named) { groups++; out += `(?<${named[1]}>`; i += named[0].length; continue; }
      if (/^\(\?(=|!|<=|<!)/.test(rest)) return fail('lookahead and lookbehind are not supported by RE2');
      if (/^\(\?[imsU-]+[:)]/.test(rest)) return fail('inline flags are supported only at the start of the pattern');
      return fail(`invalid or unsupported group syntax ${rest.slice(0, 4)}`);
    }
    if (ch === '.') { out += dotAll ? '[\\s\\S]' : '[^\\n]'; i++; continue; }
    if (ch === '{') {
      const m = /^\{(\d+)(?:(,)(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        const lo = Number(m[1]);
        const hi = m[3] ? Number(m[3]) : lo;
        if (lo > MAX_REPEAT || hi > MAX_REPEAT) return fail(`repeat count ${m[0]} exceeds ${MAX_REPEAT}`);
        if (m[2] && m[3] && hi < lo) return fail(`invalid repeat ${m[0]}`);
        out += m[0];
        i += m[0].length;
        continue;
      }
      out += '\\{';
      i++;
      continue;
    }
    if (ch === '}' || ch === ']') { out += `\\${ch}`; i++; continue; }
    out += ch;
    i += ch.length;
  }
  const flags = `u${ignoreCase ? 'i' : ''}${multiline ? 'm' : ''}`;
  try {
    new RegExp(out, flags);
  } catch (e) {
    // V8 quotes the translated source, which is not what the operator wrote: keep the reason only.
    return fail((e as Error).message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '').toLowerCase());
  }
  return { ok: true, source: out, flags, groups };
}

/** Compiles an RE2 pattern for whole-string matching (Envoy's safe_regex semantics). */
export function compileFullMatch(pattern: string, path: string, p: Problems): RegExp | undefined {
  const t = translateRe2(pattern);
  if (!t.ok) {
    p.add(path, `invalid regular expression ${JSON.stringify(pattern)}: ${t.error}`);
    return undefined;
  }
  const src = t.flags.includes('m') ? `(?<![\\s\\S])(?:${t.source})(?![\\s\\S])` : `^(?:${t.source})$`;
  return new RegExp(src, t.flags);
}

/** Compiles an RE2 pattern for searching (rewrites): global, unanchored. */
export function compileSearch(pattern: string, path: string, p: Problems): { regex: RegExp; groups: number } | undefined {
  const t = translateRe2(pattern);
  if (!t.ok) {
    p.add(path, `invalid regular expression ${JSON.stringify(pattern)}: ${t.error}`);
    return undefined;
  }
  return { regex: new RegExp(t.source, `${t.flags}g`), groups: t.groups };
}

/** A regex source matching `literal` as text; valid with the `u` flag. */
export function escapeLiteral(literal: string): string {
  return literal.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** type.matcher.v3.RegexMatcher (`{ regex }`) → full-match RegExp. */
export function decodeRegexMatcher(m: Plain | undefined, path: string, p: Problems): RegExp | undefined {
  const regex = str(m, 'regex');
  if (!regex) {
    p.add(field(path, 'regex'), 'a regular expression is required');
    return undefined;
  }
  return compileFullMatch(regex, field(path, 'regex'), p);
}

// ---- Envoy matchers -----------------------------------------------------------------------

/** type.matcher.v3.StringMatcher → StringMatch. */
export function decodeStringMatcher(m: Plain | undefined, path: string, p: Problems): StringMatch | undefined {
  if (!m) {
    p.add(path, 'a string matcher is required');
    return undefined;
  }
  const ignoreCase = bool(m, 'ignore_case');
  const ic = ignoreCase ? { ignoreCase: true } : {};
  if (typeof m.exact === 'string') return { kind: 'exact', value: m.exact, ...ic };
  for (const kind of ['prefix', 'suffix', 'contains'] as const) {
    const v = str(m, kind);
    if (v !== undefined) {
      if (v === '') p.add(field(path, kind), `${kind} must not be empty`);
      return { kind, value: v, ...ic };
    }
  }
  if (has(m, 'safe_regex')) {
    const regex = decodeRegexMatcher(obj(m, 'safe_regex'), field(path, 'safe_regex'), p);
    return regex && { kind: 'regex', regex };
  }
  if (has(m, 'custom')) p.add(field(path, 'custom'), 'custom string matchers are not supported');
  else p.add(path, 'one of exact, prefix, suffix, contains or safe_regex is required');
  return undefined;
}

/** route.v3.HeaderMatcher (also used by RBAC) → HeaderMatch. */
export function decodeHeaderMatcher(h: Plain, path: string, p: Problems): HeaderMatch | undefined {
  const name = (str(h, 'name') ?? '').toLowerCase();
  if (!name) p.add(field(path, 'name'), 'a header name is required');
  const invert = bool(h, 'invert_match');
  if (bool(h, 'treat_missing_header_as_empty')) {
    p.add(field(path, 'treat_missing_header_as_empty'), 'treat_missing_header_as_empty is not supported');
  }
  let match: StringMatch | undefined;
  let present: boolean | undefined;
  if (has(h, 'string_match')) {
    match = decodeStringMatcher(obj(h, 'string_match'), field(path, 'string_match'), p);
    if (!match) return undefined;
  } else if (typeof h.exact_match === 'string') {
    match = { kind: 'exact', value: h.exact_match };
  } else if (has(h, 'safe_regex_match')) {
    const regex = decodeRegexMatcher(obj(h, 'safe_regex_match'), field(path, 'safe_regex_match'), p);
    if (!regex) return undefined;
    match = { kind: 'regex', regex };
  } else if (typeof h.prefix_match === 'string') {
    match = { kind: 'prefix', value: h.prefix_match };
  } else if (typeof h.suffix_match === 'string') {
    match = { kind: 'suffix', value: h.suffix_match };
  } else if (typeof h.contains_match === 'string') {
    match = { kind: 'contains', value: h.contains_match };
  } else if (typeof h.present_match === 'boolean') {
    present = h.present_match;
  } else if (has(h, 'range_match')) {
    p.add(field(path, 'range_match'), 'range_match is not supported');
    return undefined;
  }
  if (!name) return undefined;
  return { name, invert, ...(match ? { match } : {}), ...(present !== undefined ? { present } : {}) };
}

/** route.v3.QueryParameterMatcher → QueryMatch (no specifier = must be present). */
export function decodeQueryMatcher(q: Plain, path: string, p: Problems): QueryMatch | undefined {
  const name = str(q, 'name') ?? '';
  if (!name) p.add(field(path, 'name'), 'a query parameter name is required');
  if (has(q, 'string_match')) {
    const match = decodeStringMatcher(obj(q, 'string_match'), field(path, 'string_match'), p);
    return match && name ? { name, match } : undefined;
  }
  return name ? { name, present: true } : undefined;
}

// ---- Structural equality and freezing of domain values ------------------------------------

/** Deep structural equality; RegExps compare by source and flags, Sets and Maps by content. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof RegExp || b instanceof RegExp) {
    return a instanceof RegExp && b instanceof RegExp && a.source === b.source && a.flags === b.flags;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (a instanceof Set || b instanceof Set) {
    if (!(a instanceof Set) || !(b instanceof Set) || a.size !== b.size) return false;
    for (const x of a) if (!b.has(x)) return false;
    return true;
  }
  if (a instanceof Map || b instanceof Map) {
    if (!(a instanceof Map) || !(b instanceof Map) || a.size !== b.size) return false;
    for (const [k, v] of a) if (!b.has(k) || !deepEqual(v, b.get(k))) return false;
    return true;
  }
  const ka = Object.keys(a).filter((k) => (a as Plain)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Plain)[k] !== undefined);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Plain)[k], (b as Plain)[k]));
}

/** Freezes plain objects and arrays in place (RegExps stay unfrozen: searches set lastIndex). */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || value instanceof RegExp || Object.isFrozen(value)) return value;
  if (value instanceof Set || value instanceof Map) return value;
  for (const v of Object.values(value as object)) deepFreeze(v);
  return Object.freeze(value);
}
