// Validation toolkit for config objects: small typed readers that walk untrusted YAML values
// and record every problem as a FieldProblem with its path, naming the offending value.
import type { FieldProblem } from '../../core/errors.js';

export type Obj = Readonly<Record<string, unknown>>;

/** How a bad value is named in a message: strings quoted, the rest as compact JSON. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}

export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  if (!/^[A-Za-z_][\w-]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path ? `${path}.${key}` : key;
}

export interface StringOpts {
  readonly required?: boolean;
  readonly enum?: readonly string[];
  readonly pattern?: RegExp;
  /** What the pattern means, for the message ("a DNS label", ...). */
  readonly patternHint?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
}

export interface IntOpts {
  readonly required?: boolean;
  readonly min?: number;
  readonly max?: number;
}

/** Collects problems while reading one document. Every reader returns undefined on a problem. */
export class Reader {
  readonly problems: FieldProblem[] = [];

  fail(field: string, message: string): undefined {
    this.problems.push({ field, message });
    return undefined;
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  /**
   * A mapping. With `known`, keys outside it are reported (the API server's strict field
   * validation), which catches typos such as `backendref` before they silently do nothing.
   */
  object(field: string, value: unknown, opts: { required?: boolean; known?: readonly string[] } = {}): Obj | undefined {
    if (value === undefined || value === null) {
      return opts.required ? this.fail(field, 'is required') : undefined;
    }
    if (typeof value !== 'object' || Array.isArray(value)) {
      return this.fail(field, `must be a mapping, got ${show(value)}`);
    }
    const obj = value as Obj;
    if (opts.known) {
      for (const key of Object.keys(obj)) {
        if (!opts.known.includes(key)) {
          this.fail(at(field, key), `unknown field (known fields: ${opts.known.join(', ')})`);
        }
      }
    }
    return obj;
  }

  string(field: string, value: unknown, opts: StringOpts = {}): string | undefined {
    if (value === undefined || value === null) {
      return opts.required ? this.fail(field, 'is required') : undefined;
    }
    if (typeof value !== 'string') {
      const hint = typeof value === 'number' || typeof value === 'boolean' ? ' (quote it in YAML)' : '';
      return this.fail(field, `must be a string${hint}, got ${show(value)}`);
    }
    if (opts.enum && !opts.enum.includes(value)) {
      return this.fail(field, `must be one of ${opts.enum.join(', ')}, got ${show(value)}`);
    }
    if (opts.minLength !== undefined && value.length < opts.minLength) {
      return this.fail(field, opts.minLength === 1 ? 'must not be empty' : `must be at least ${opts.minLength} characters, got ${show(value)}`);
    }
    if (opts.maxLength !== undefined && value.length > opts.maxLength) {
      return this.fail(field, `must be at most ${opts.maxLength} characters, got ${value.length}`);
    }
    if (opts.pattern && !opts.pattern.test(value)) {
      return this.fail(field, `must be ${opts.patternHint ?? `a string matching ${opts.pattern.source}`}, got ${show(value)}`);
    }
    return value;
  }

  int(field: string, value: unknown, opts: IntOpts = {}): number | undefined {
    if (value === undefined || value === null) {
      return opts.required ? this.fail(field, 'is required') : undefined;
    }
    const inRange =
      typeof value === 'number' &&
      Number.isInteger(value) &&
      (opts.min === undefined || value >= opts.min) &&
      (opts.max === undefined || value <= opts.max);
    if (!inRange) {
      // Say "an integer" first when it is not one at all; the full range when it is out of range.
      const what = typeof value === 'number' && Number.isInteger(value) ? describeInt(opts) : describeInt({ ...opts, max: undefined });
      return this.fail(field, `must be ${what}, got ${show(value)}`);
    }
    return value;
  }

  bool(field: string, value: unknown, opts: { required?: boolean } = {}): boolean | undefined {
    if (value === undefined || value === null) {
      return opts.required ? this.fail(field, 'is required') : undefined;
    }
    if (typeof value !== 'boolean') return this.fail(field, `must be true or false, got ${show(value)}`);
    return value;
  }

  /** A list; `each` reads one item (and records its own problems). Items it rejects are left out. */
  list<T>(
    field: string,
    value: unknown,
    each: (itemField: string, item: unknown, index: number) => T | undefined,
    opts: { required?: boolean; minItems?: number; maxItems?: number } = {},
  ): T[] {
    if (value === undefined || value === null) {
      if (opts.required) this.fail(field, 'is required');
      return [];
    }
    if (!Array.isArray(value)) {
      this.fail(field, `must be a list, got ${show(value)}`);
      return [];
    }
    if (opts.minItems !== undefined && value.length < opts.minItems) {
      this.fail(field, opts.minItems === 1 ? 'must not be empty' : `must have at least ${opts.minItems} items`);
    }
    if (opts.maxItems !== undefined && value.length > opts.maxItems) {
      this.fail(field, `must have at most ${opts.maxItems} items, got ${value.length}`);
    }
    const out: T[] = [];
    value.forEach((item, i) => {
      const read = each(at(field, i), item, i);
      if (read !== undefined) out.push(read);
    });
    return out;
  }

  stringList(field: string, value: unknown, opts: StringOpts & { minItems?: number } = {}): string[] {
    const { required, minItems, ...itemOpts } = opts;
    return this.list(field, value, (f, v) => this.string(f, v, { ...itemOpts, required: true }), {
      ...(required === undefined ? {} : { required }),
      ...(minItems === undefined ? {} : { minItems }),
    });
  }

  /** A mapping of string to string (labels, selectors, env). */
  stringMap(field: string, value: unknown, opts: { required?: boolean; keyPattern?: RegExp; keyHint?: string } = {}): Record<string, string> {
    const obj = this.object(field, value, opts.required ? { required: true } : {});
    const out: Record<string, string> = {};
    if (!obj) return out;
    for (const [k, v] of Object.entries(obj)) {
      if (opts.keyPattern && !opts.keyPattern.test(k)) {
        this.fail(at(field, k), `key must be ${opts.keyHint ?? `matching ${opts.keyPattern.source}`}, got ${show(k)}`);
        continue;
      }
      const s = this.string(at(field, k), v, { required: true });
      if (s !== undefined) out[k] = s;
    }
    return out;
  }
}

function describeInt(opts: IntOpts): string {
  if (opts.min !== undefined && opts.max !== undefined) return `an integer from ${opts.min} to ${opts.max}`;
  if (opts.min !== undefined) return `an integer ≥ ${opts.min}`;
  if (opts.max !== undefined) return `an integer ≤ ${opts.max}`;
  return 'an integer';
}

/** Recursively freezes a parsed object so that no consumer can change the shared model. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

// ---- Shared syntax ------------------------------------------------------------------------

/** RFC 1123 DNS label (namespace names, port names). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 DNS subdomain (most object names). */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes IANA_SVC_NAME: what a port name or a named targetPort must look like. */
export const IANA_SVC_NAME = /^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([a-z0-9]|-(?=[a-z0-9]))*$/;
/** Label keys: optional DNS-subdomain prefix and a name part. */
export const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
