// Protobuf encoding at the edge: plain snake_case objects (nested Any written as
// `{ '@type': url, ...fields }`, as in Envoy's JSON) to and from wire bytes.
import type protobuf from 'protobufjs';
import { messageNameOf } from './types.js';
import { messageType, TO_PLAIN } from './protos.js';

/** A packed google.protobuf.Any as it travels inside a DiscoveryResponse. */
export interface PackedAny {
  readonly type_url: string;
  readonly value: Uint8Array;
}

export type Plain = Record<string, unknown>;

function typeFor(typeUrl: string): protobuf.Type {
  return messageType(messageNameOf(typeUrl));
}

/** Encodes a plain object of the message named by `typeUrl`. Throws on values of the wrong type. */
export function pack(typeUrl: string, value: Plain): PackedAny {
  const t = typeFor(typeUrl);
  const msg = t.fromObject(value);
  return { type_url: typeUrl, value: t.encode(msg).finish() };
}

/** Decodes a packed Any into a plain object (enums as names, 64-bit ints as numbers). */
export function unpack(any: { type_url: string; value: Uint8Array }): Plain {
  const t = typeFor(any.type_url);
  return t.toObject(t.decode(any.value), TO_PLAIN) as Plain;
}

/** Plain object → protobuf Struct message (for node metadata and CA request metadata). */
export function toStruct(json: Record<string, unknown>): Plain {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = toValue(v);
  return { fields };
}

// protobufjs bundles google/protobuf/struct.proto with camelCase field names, whatever keepCase
// says for the other files; write camelCase, read both.
function toValue(v: unknown): Plain {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as Record<string, unknown>) };
}

/** protobuf Struct (decoded) → plain object. */
export function fromStruct(s: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = fromValue(v as Plain);
  return out;
}

function fromValue(v: Plain): unknown {
  // Decoded messages keep defaults on the prototype: only own properties are set fields.
  const own = (k: string) => (Object.prototype.hasOwnProperty.call(v, k) ? v[k] : undefined);
  const pick = (camel: string, snake: string) => own(camel) ?? own(snake);
  const str = pick('stringValue', 'string_value');
  if (str !== undefined && str !== null) return str;
  const num = pick('numberValue', 'number_value');
  if (num !== undefined && num !== null) return num;
  const bool = pick('boolValue', 'bool_value');
  if (bool !== undefined && bool !== null) return bool;
  const struct = pick('structValue', 'struct_value');
  if (struct) return fromStruct(struct);
  const list = pick('listValue', 'list_value') as { values?: Plain[] } | undefined;
  if (list) return (list.values ?? []).map(fromValue);
  return null;
}
