// RFC 6902 JSON Patch: computing a minimal patch between two JSON documents (what the webhook
// answers with) and applying one (for tests, `weft inject` checks and the stand-in API server).

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type PatchOperation =
  | { readonly op: 'add'; readonly path: string; readonly value: Json }
  | { readonly op: 'replace'; readonly path: string; readonly value: Json }
  | { readonly op: 'remove'; readonly path: string }
  | { readonly op: 'test'; readonly path: string; readonly value: Json };

/** RFC 6901: `~` → `~0`, `/` → `~1` (annotation keys such as `weft.dev/status` need it). */
export function pointerSegment(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/**
 * The operations that turn `from` into `to`, at the deepest paths that differ. Arrays are
 * compared by their common prefix and suffix, so inserting containers at the front or the end
 * becomes `add /spec/containers/0` rather than a replacement of the whole list.
 */
export function diff(from: Json, to: Json, path = ''): PatchOperation[] {
  if (jsonEqual(from, to)) return [];
  if (isObject(from) && isObject(to)) {
    const ops: PatchOperation[] = [];
    for (const key of Object.keys(from)) {
      if (!Object.hasOwn(to, key)) ops.push({ op: 'remove', path: `${path}/${pointerSegment(key)}` });
    }
    for (const [key, value] of Object.entries(to)) {
      const p = `${path}/${pointerSegment(key)}`;
      if (!Object.hasOwn(from, key)) ops.push({ op: 'add', path: p, value });
      else ops.push(...diff(from[key] as Json, value, p));
    }
    return ops;
  }
  if (Array.isArray(from) && Array.isArray(to)) return diffArrays(from, to, path);
  return [{ op: 'replace', path, value: to }];
}

function diffArrays(from: Json[], to: Json[], path: string): PatchOperation[] {
  let prefix = 0;
  while (prefix < from.length && prefix < to.length && jsonEqual(from[prefix], to[prefix])) prefix++;
  let suffix = 0;
  while (
    suffix < from.length - prefix &&
    suffix < to.length - prefix &&
    jsonEqual(from[from.length - 1 - suffix], to[to.length - 1 - suffix])
  ) {
    suffix++;
  }
  const removed = from.slice(prefix, from.length - suffix);
  const added = to.slice(prefix, to.length - suffix);
  if (removed.length === 0) return added.map((value, i) => ({ op: 'add', path: `${path}/${prefix + i}`, value }));
  if (added.length === 0) {
    // Remove from the end of the range backwards, so earlier indexes stay valid.
    return removed.map((_, i) => ({ op: 'remove', path: `${path}/${prefix + removed.length - 1 - i}` }));
  }
  if (removed.length === added.length) return added.flatMap((value, i) => diff(removed[i] as Json, value, `${path}/${prefix + i}`));
  return [{ op: 'replace', path, value: to }];
}

function parsePointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`JSON pointer "${path}" must start with "/"`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function clone<T extends Json>(v: T): T {
  return structuredClone(v);
}

/** Applies `ops` to a copy of `doc` (RFC 6902 add / replace / remove / test). Throws on a bad path. */
export function applyPatch(doc: Json, ops: readonly PatchOperation[]): Json {
  let root = clone(doc);
  for (const op of ops) {
    const keys = parsePointer(op.path);
    if (keys.length === 0) {
      if (op.op === 'remove') throw new Error('cannot remove the whole document');
      if (op.op === 'test') {
        if (!jsonEqual(root, op.value)) throw new Error('test failed at the document root');
        continue;
      }
      root = clone(op.value);
      continue;
    }
    let parent: Json = root;
    for (const key of keys.slice(0, -1)) {
      const next: Json | undefined = Array.isArray(parent) ? parent[Number(key)] : isObject(parent) ? parent[key] : undefined;
      if (next === undefined) throw new Error(`path ${op.path}: "${key}" does not exist`);
      parent = next;
    }
    const last = keys[keys.length - 1] as string;
    if (Array.isArray(parent)) {
      const index = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(index) || index < 0 || index > parent.length) throw new Error(`path ${op.path}: bad array index`);
      if (op.op === 'add') parent.splice(index, 0, clone(op.value));
      else if (index >= parent.length) throw new Error(`path ${op.path}: no element ${index}`);
      else if (op.op === 'replace') parent[index] = clone(op.value);
      else if (op.op === 'remove') parent.splice(index, 1);
      else if (!jsonEqual(parent[index], op.value)) throw new Error(`test failed at ${op.path}`);
    } else if (isObject(parent)) {
      if (op.op === 'add') parent[last] = clone(op.value);
      else if (!Object.hasOwn(parent, last)) throw new Error(`path ${op.path}: "${last}" does not exist`);
      else if (op.op === 'replace') parent[last] = clone(op.value);
      else if (op.op === 'remove') delete parent[last];
      else if (!jsonEqual(parent[last], op.value)) throw new Error(`test failed at ${op.path}`);
    } else {
      throw new Error(`path ${op.path}: the parent is not a container`);
    }
  }
  return root;
}

/** RFC 7386 JSON Merge Patch (the stand-in API server's merge-patch handling). */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: { [key: string]: Json } = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key] ?? null, value);
  }
  return out;
}
