// The contract every xDS resource module in api/ implements (one module per type):
// decode bytes, validate with field paths, convert to a domain type, compare for equality.
import type { FieldProblem } from '../core/errors.js';
import type { TypeUrl } from './types.js';

export type DecodeResult<T> =
  | { readonly ok: true; readonly name: string; readonly value: T }
  | { readonly ok: false; readonly name: string | undefined; readonly problems: readonly FieldProblem[] };

/** A resource this one refers to, which the xDS client must also subscribe to. */
export interface ResourceRef {
  readonly typeUrl: TypeUrl;
  readonly name: string;
}

export interface ResourceType<T> {
  readonly typeUrl: TypeUrl;
  /**
   * Decodes one packed resource and validates everything Weft relies on. Never throws: every
   * problem is returned with its field path (e.g. `virtual_hosts[0].routes[2].match.safe_regex`)
   * so that the xDS client can NACK with all of them at once.
   * Called on the xDS client's stream for every resource of every response; must be pure.
   */
  decode(any: { type_url: string; value: Uint8Array }): DecodeResult<T>;
  /** Resources of other types this one names (RDS names of a listener, EDS name of a cluster). */
  references(value: T): readonly ResourceRef[];
  /** Whether two decoded values are the same config (so unchanged resources cause no churn). */
  equals(a: T, b: T): boolean;
}
