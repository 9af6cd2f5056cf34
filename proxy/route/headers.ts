// applyHeaderMutations: the pure helper the data path uses to carry out a plan's header
// mutations (Envoy semantics per mutation: removals first, then additions; names case-insensitive).
import type { HeaderMutation } from '../../api/domain.js';

export type Headers = Record<string, string | string[]>;

/**
 * Applies `mutations` in order to a copy of `headers` and returns it. Per mutation, removals
 * come first, then additions: `append` adds a value (a second value makes an array), `overwrite`
 * replaces every value, `addIfAbsent` only adds when the header is missing. Existing names are
 * matched case-insensitively; new names are lower-case. When there is nothing to apply the
 * input object itself is returned (it is never modified).
 */
export function applyHeaderMutations(headers: Readonly<Headers>, mutations: HeaderMutation | readonly HeaderMutation[]): Headers {
  const list: readonly HeaderMutation[] = 'add' in mutations ? [mutations as HeaderMutation] : (mutations as readonly HeaderMutation[]);
  let out: Headers | undefined;
  let keys: Map<string, string[]> | undefined; // lower-case name → actual keys in `out`

  for (const m of list) {
    if (m.add.length === 0 && m.remove.length === 0) continue;
    if (!out || !keys) {
      out = { ...headers };
      keys = new Map();
      for (const k of Object.keys(out)) {
        const lower = k.toLowerCase();
        const ks = keys.get(lower);
        if (ks) ks.push(k);
        else keys.set(lower, [k]);
      }
    }
    for (const name of m.remove) {
      for (const k of keys.get(name) ?? []) delete out[k];
      keys.delete(name);
    }
    for (const h of m.add) {
      const existing = keys.get(h.name);
      if (h.action === 'addIfAbsent') {
        if (existing) continue;
      } else if (h.action === 'overwrite') {
        for (const k of existing ?? []) delete out[k];
      } else if (existing && existing.length > 0) {
        const k = existing[0]!;
        const cur = out[k]!;
        out[k] = Array.isArray(cur) ? [...cur, h.value] : [cur, h.value];
        continue;
      }
      out[h.name] = h.value;
      keys.set(h.name, [h.name]);
    }
  }
  return out ?? (headers as Headers);
}
