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

function toValue(v: unknown): Plain {
  if (v === null || v === undefined) return { null_value: 0 };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  return { struct_value: toStruct(v as Record<string, unknown>) };
}

/** protobuf Struct (decoded, snake_case) → plain object. */
export function fromStruct(s: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (s as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = fromValue(v as Plain);
  return out;
}

function fromValue(v: Plain): unknown {
  if ('string_value' in v && v.string_value !== undefined) return v.string_value;
  if ('number_value' in v && v.number_value !== undefined) return v.number_value;
  if ('bool_value' in v && v.bool_value !== undefined) return v.bool_value;
  if ('struct_value' in v && v.struct_value) return fromStruct(v.struct_value);
  if ('list_value' in v && v.list_value) {
    const values = (v.list_value as { values?: Plain[] }).values ?? [];
    return values.map(fromValue);
  }
  return null;
}
