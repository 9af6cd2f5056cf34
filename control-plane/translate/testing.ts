// Test support: proves a plain Envoy object is what it claims to be. `pack()` silently drops
// unknown fields, so every key is checked against Envoy's .proto types (through Any and maps),
// then the object is encoded and decoded.
import protobuf from 'protobufjs';
import { pack, unpack, type Plain } from '../../api/codec.js';
import { messageNameOf } from '../../api/types.js';
import { messageType, protoRoot } from '../../api/protos.js';

function checkValue(field: protobuf.Field, value: unknown, path: string, out: string[]): void {
  const t = field.resolvedType;
  if (t instanceof protobuf.Enum) {
    if (typeof value === 'string' && !(value in t.values)) out.push(`${path}: ${JSON.stringify(value)} is not a value of ${t.name}`);
  } else if (t instanceof protobuf.Type) {
    checkMessage(t, value, path, out);
  }
}

function checkMessage(type: protobuf.Type, value: unknown, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    out.push(`${path}: expected a ${type.name} message, got ${JSON.stringify(value)}`);
    return;
  }
  let t = type;
  const obj = value as Plain;
  if (type.fullName === '.google.protobuf.Any') {
    const url = obj['@type'];
    if (typeof url !== 'string') {
      out.push(`${path}: Any without @type`);
      return;
    }
    t = protoRoot().lookupType(messageNameOf(url));
  }
  for (const [key, v] of Object.entries(obj)) {
    if (key === '@type' && t !== type) continue;
    const field = t.fields[key];
    const at = path ? `${path}.${key}` : key;
    if (!field) {
      out.push(`${at}: no such field in ${t.fullName.slice(1)}`);
      continue;
    }
    field.resolve();
    if (field.map) {
      for (const [k, item] of Object.entries(v as Plain)) checkValue(field, item, `${at}[${k}]`, out);
    } else if (field.repeated) {
      if (!Array.isArray(v)) out.push(`${at}: expected a list`);
      else v.forEach((item, i) => checkValue(field, item, `${at}[${i}]`, out));
    } else {
      checkValue(field, v, at, out);
    }
  }
}

/** Fields of `plain` that the Envoy message named by `typeUrl` does not have (empty = all known). */
export function unknownEnvoyFields(typeUrl: string, plain: Plain): string[] {
  const out: string[] = [];
  checkMessage(messageType(messageNameOf(typeUrl)), plain, '', out);
  return out;
}

/** Checks every field, then encodes and decodes; returns the decoded object. */
export function roundTrip(typeUrl: string, plain: Plain): Plain {
  const unknown = unknownEnvoyFields(typeUrl, plain);
  if (unknown.length > 0) throw new Error(`not a valid ${messageNameOf(typeUrl)}: ${unknown.join('; ')}`);
  return unpack(pack(typeUrl, plain));
}
