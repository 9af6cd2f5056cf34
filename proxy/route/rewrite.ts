// URL building for plans: path rewrites (Gateway API ReplacePrefixMatch, full path, RE2-style
// regex substitution) and redirect Location headers (scheme, host, port, path, query).
import type { PathMatch, PathRewrite, RedirectAction } from '../../api/domain.js';

/** The part of `pathOnly` a route's path match consumed (what a prefix rewrite replaces). */
export function matchedPrefix(m: PathMatch, pathOnly: string): string {
  return m.kind === 'prefix' || m.kind === 'segmentPrefix' ? m.value : pathOnly;
}

/**
 * Replaces `matched` at the start of `pathOnly` with `replacement`, per Gateway API
 * ReplacePrefixMatch: the match ends at a segment boundary and slashes are joined without
 * doubling (`/foo` → `/` on `/foo/bar` gives `/bar`, on `/foo` gives `/`). A plain prefix that
 * ends inside a segment (`/fo` on `/foo`) is replaced textually, as Envoy does.
 */
export function replacePrefix(pathOnly: string, matched: string, replacement: string): string {
  let rest = pathOnly.slice(matched.length);
  if (matched.endsWith('/') && rest.charCodeAt(0) !== 47) rest = `/${rest}`;
  if (rest !== '' && rest.charCodeAt(0) !== 47) return replacement + rest;
  let end = replacement.length;
  while (end > 0 && replacement.charCodeAt(end - 1) === 47) end--;
  const out = (end === replacement.length ? replacement : replacement.slice(0, end)) + rest;
  return out === '' ? '/' : out;
}

type Part = string | number; // literal text or a capture group number

const substitutions = new WeakMap<PathRewrite, readonly Part[]>();

/** RE2 rewrite strings: `\N` is group N, `\\` a backslash (validated when decoded). */
function parseSubstitution(sub: string): Part[] {
  const parts: Part[] = [];
  let lit = '';
  for (let i = 0; i < sub.length; i++) {
    const c = sub[i]!;
    if (c !== '\\' || i + 1 >= sub.length) { lit += c; continue; }
    const n = sub[++i]!;
    if (n >= '0' && n <= '9') {
      if (lit) parts.push(lit);
      lit = '';
      parts.push(Number(n));
    } else lit += n;
  }
  if (lit) parts.push(lit);
  return parts;
}

/**
 * RE2::GlobalReplace: every non-overlapping match is replaced; an empty match right after the
 * previous match is skipped (so `.*` on `/a` yields one substitution, not two as in JS).
 */
export function re2GlobalReplace(input: string, regex: RegExp, parts: readonly Part[]): string {
  let out = '';
  let pos = 0;
  let lastEnd = -1;
  let count = 0;
  while (pos <= input.length) {
    regex.lastIndex = pos;
    const m = regex.exec(input);
    if (!m) break;
    const start = m.index;
    if (start > pos) out += input.slice(pos, start);
    if (m[0].length === 0 && start === lastEnd) {
      if (start >= input.length) break;
      const step = (input.codePointAt(start) ?? 0) > 0xffff ? 2 : 1;
      out += input.slice(start, start + step);
      pos = start + step;
      continue;
    }
    for (const p of parts) out += typeof p === 'number' ? (m[p] ?? '') : p;
    pos = start + m[0].length;
    lastEnd = pos;
    count++;
  }
  regex.lastIndex = 0;
  return count === 0 ? input : out + input.slice(pos);
}

/** The upstream path (with the original query) after a route's rewrite. */
export function rewritePath(rw: PathRewrite, match: PathMatch, path: string, pathOnly: string): string {
  const query = path.length > pathOnly.length ? path.slice(pathOnly.length) : '';
  switch (rw.kind) {
    case 'prefix':
      return replacePrefix(pathOnly, matchedPrefix(match, pathOnly), rw.value) + query;
    case 'full':
      return rw.value + query;
    case 'regex': {
      let parts = substitutions.get(rw);
      if (!parts) {
        parts = parseSubstitution(rw.substitution);
        substitutions.set(rw, parts);
      }
      return re2GlobalReplace(pathOnly, rw.regex, parts) + query;
    }
  }
}

const DEFAULT_PORT: Record<string, number> = { http: 80, https: 443 };

/** Splits an authority into host and port (IPv6 brackets kept on the host). */
export function splitAuthority(authority: string): { host: string; port: number | undefined } {
  const close = authority.startsWith('[') ? authority.indexOf(']') : -1;
  const colon = authority.lastIndexOf(':');
  if (colon > close && colon > 0 && (close >= 0 || authority.indexOf(':') === colon)) {
    const port = Number(authority.slice(colon + 1));
    if (Number.isInteger(port) && port > 0 && port <= 65535) return { host: authority.slice(0, colon), port };
  }
  return { host: authority, port: undefined };
}

/**
 * A redirect's Location. Port rules: an explicit port_redirect wins; otherwise, when the scheme
 * changes, the new scheme's default port; otherwise the request's port. The port is left out
 * when it is the scheme's default (80 for http, 443 for https). The query is kept unless
 * strip_query, or unless a full path_redirect carries its own query.
 */
export function redirectLocation(
  a: RedirectAction,
  match: PathMatch,
  request: { scheme: string; authority: string; path: string },
  pathOnly: string,
): string {
  const scheme = a.scheme ?? request.scheme;
  const orig = splitAuthority(request.authority);
  const target = a.host !== undefined ? splitAuthority(a.host) : orig;
  let port: number | undefined;
  if (a.port) port = a.port;
  else if (a.scheme !== undefined && a.scheme !== request.scheme) port = undefined;
  else port = a.host !== undefined ? target.port ?? orig.port : orig.port;
  if (port === DEFAULT_PORT[scheme]) port = undefined;
  const host = target.host.includes(':') && !target.host.startsWith('[') ? `[${target.host}]` : target.host;
  const base = `${scheme}://${host}${port !== undefined ? `:${port}` : ''}`;

  let newPath = pathOnly;
  if (a.path?.kind === 'full') {
    if (a.path.value.includes('?')) return base + a.path.value;
    newPath = a.path.value;
  } else if (a.path?.kind === 'prefix') {
    newPath = replacePrefix(pathOnly, matchedPrefix(match, pathOnly), a.path.value);
  } else if (a.path?.kind === 'regex') {
    newPath = rewritePath(a.path, match, pathOnly, pathOnly);
  }
  const query = a.stripQuery || request.path.length <= pathOnly.length ? '' : request.path.slice(pathOnly.length);
  return base + newPath + query;
}
