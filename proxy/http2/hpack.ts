// HPACK (RFC 7541): the header compression of HTTP/2, one decoder and one encoder per
// connection. Strings are latin1 (one byte per character, as header octets travel). The
// decoder takes any valid block; the encoder indexes what repeats (static table, then its
// dynamic table), never indexes credentials, and writes raw (not Huffman-coded) literals:
// cheaper to make, a few bytes longer.
import { HpackError } from './hpack-error.js';
import { huffmanDecode } from './huffman.js';

/** RFC 7541 Appendix A, indexes 1-61. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'], [':scheme', 'http'],
  [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'], [':status', '304'], [':status', '400'],
  [':status', '404'], [':status', '500'], ['accept-charset', ''], ['accept-encoding', 'gzip, deflate'], ['accept-language', ''],
  ['accept-ranges', ''], ['accept', ''], ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''],
  ['cache-control', ''], ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''], ['expect', ''],
  ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''],
  ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];
const STATIC_LENGTH = STATIC_TABLE.length;

/** Name → its first static index; name → value → the static index of that exact pair (maps,
 *  not `name + value` keys: no string made per field encoded). */
const STATIC_NAME = new Map<string, number>();
const STATIC_PAIR = new Map<string, Map<string, number>>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
  if (value === '') return;
  let byValue = STATIC_PAIR.get(name);
  if (!byValue) STATIC_PAIR.set(name, (byValue = new Map()));
  byValue.set(value, i + 1);
});

/** RFC 7541 §4.1: an entry's size is its name and value lengths plus 32. */
const ENTRY_OVERHEAD = 32;
/** Integers past this are not header sizes or indexes any peer sends on purpose. */
const MAX_INTEGER = 2 ** 28;

/** The default SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2). */
export const DEFAULT_TABLE_SIZE = 4096;

/** A dynamic table: newest entry first (index 0), oldest evicted first. A ring buffer. */
class DynamicTable {
  names: string[] = new Array<string>(32);
  values: string[] = new Array<string>(32);
  /** Position of the newest entry; entries run backwards (mod capacity) from it. */
  private head = 0;
  length = 0;
  size = 0;
  /** Entries inserted so far (the encoder's absolute numbering). */
  inserted = 0;

  constructor(public maxSize: number) {}

  name(i: number): string {
    return this.names[(this.head - i + this.names.length) % this.names.length]!;
  }

  value(i: number): string {
    return this.values[(this.head - i + this.values.length) % this.values.length]!;
  }

  /** Adds an entry, evicting the oldest ones to make room (RFC 7541 §4.4). `evicted` hears of
   *  each entry that goes, by its absolute number. */
  add(name: string, value: string, evicted?: (abs: number, name: string, value: string) => void): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    this.evictTo(this.maxSize - size, evicted);
    this.inserted++;
    if (size > this.maxSize) return; // larger than the table: it empties it, and is not kept
    if (this.length === this.names.length) this.grow();
    this.head = (this.head + 1) % this.names.length;
    this.names[this.head] = name;
    this.values[this.head] = value;
    this.length++;
    this.size += size;
  }

  resize(maxSize: number, evicted?: (abs: number, name: string, value: string) => void): void {
    this.maxSize = maxSize;
    this.evictTo(maxSize, evicted);
  }

  private evictTo(target: number, evicted?: (abs: number, name: string, value: string) => void): void {
    while (this.length > 0 && this.size > target) {
      const i = this.length - 1;
      const name = this.name(i);
      const value = this.value(i);
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      this.length--;
      evicted?.(this.inserted - this.length - 1, name, value);
    }
  }

  private grow(): void {
    const n = this.names.length;
    const names = new Array<string>(n * 2);
    const values = new Array<string>(n * 2);
    for (let i = 0; i < this.length; i++) {
      names[this.length - 1 - i] = this.name(i);
      values[this.length - 1 - i] = this.value(i);
    }
    this.names = names;
    this.values = values;
    this.head = this.length - 1;
  }
}

// ---- decoding --------------------------------------------------------------------------------

export class HpackDecoder {
  private readonly table: DynamicTable;
  /** Where decoding is in the block, and where the block ends. */
  private pos = 0;
  private end = 0;

  /** `limit`: our SETTINGS_HEADER_TABLE_SIZE, the most a size update may ask for. */
  constructor(private readonly limit = DEFAULT_TABLE_SIZE) {
    this.table = new DynamicTable(limit);
  }

  /** Current dynamic table size in bytes and entries (tests). */
  get tableSize(): { bytes: number; entries: number } {
    return { bytes: this.table.size, entries: this.table.length };
  }

  /** Decoded fields land here first; a head gets an exact-size copy (no growing array per head). */
  private readonly scratch: string[] = [];

  /** decode() into a new array of the fields (name, value, name, value…). */
  decodeFields(block: Uint8Array, start: number, end: number): string[] {
    const scratch = this.scratch;
    scratch.length = 0;
    this.decode(block, start, end, scratch);
    const fields = scratch.slice();
    scratch.length = 0;
    return fields;
  }

  /**
   * Decodes a complete header block, appending name, value, name, value… to `out`. Throws
   * HpackError when the block is invalid (the connection must end: its table is unknown now).
   */
  decode(block: Uint8Array, start: number, end: number, out: string[]): void {
    this.end = end;
    this.pos = start;
    let fields = false;
    while (this.pos < end) {
      const b = block[this.pos]!;
      if (b & 0x80) {
        // Indexed field (§6.1).
        const index = this.integer(block, 7);
        out.push(this.nameAt(index), this.valueAt(index));
        fields = true;
      } else if (b & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        this.literal(block, 6, out);
        this.table.add(out[out.length - 2]!, out[out.length - 1]!);
        fields = true;
      } else if (b & 0x20) {
        // Dynamic table size update (§6.3): only before the first field.
        if (fields) throw new HpackError('dynamic table size update after a header field');
        const size = this.integer(block, 5);
        if (size > this.limit) throw new HpackError(`dynamic table size update to ${size} exceeds the limit ${this.limit}`);
        this.table.resize(size);
      } else {
        // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
        this.literal(block, 4, out);
        fields = true;
      }
    }
  }

  private nameAt(index: number): string {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_LENGTH) return STATIC_TABLE[index - 1]![0];
    const i = index - STATIC_LENGTH - 1;
    if (i >= this.table.length) throw new HpackError(`index ${index} beyond the dynamic table (${this.table.length} entries)`);
    return this.table.name(i);
  }

  private valueAt(index: number): string {
    if (index <= STATIC_LENGTH) return STATIC_TABLE[index - 1]![1];
    return this.table.value(index - STATIC_LENGTH - 1);
  }

  /** A literal field's name and value, appended to `out`. */
  private literal(block: Uint8Array, prefix: number, out: string[]): void {
    const index = this.integer(block, prefix);
    const name = index === 0 ? this.string(block) : this.nameAt(index);
    out.push(name, this.string(block));
  }

  /** §5.1: an integer with an N-bit prefix at `pos`. */
  private integer(block: Uint8Array, prefix: number): number {
    const max = (1 << prefix) - 1;
    let value = block[this.pos++]! & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= this.end) throw new HpackError('truncated integer');
      const b = block[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw new HpackError('integer too large');
      if ((b & 0x80) === 0) return value;
      shift += 7;
    }
  }

  /** §5.2: a string literal, raw or Huffman-coded. */
  private string(block: Uint8Array): string {
    if (this.pos >= this.end) throw new HpackError('truncated string');
    const huffman = (block[this.pos]! & 0x80) !== 0;
    const length = this.integer(block, 7);
    const start = this.pos;
    const end = start + length;
    if (end > this.end) throw new HpackError('string longer than its header block');
    this.pos = end;
    if (huffman) return huffmanDecode(block, start, end);
    return latin1(block, start, end);
  }
}

const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** One string for the bytes (no intermediate strings, whatever their length). */
function latin1(b: Uint8Array, start: number, end: number): string {
  return latin1Slice.call(b, start, end);
}

// ---- encoding --------------------------------------------------------------------------------

/** Never indexed (RFC 7541 §7.1.3): credentials a compression side channel could reveal. */
const NEVER_INDEX: ReadonlySet<string> = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
/** Not indexed: values that change with every message, which would only churn the table
 *  (`date` is indexed: it changes once a second, and every response of that second shares it). */
const NO_INDEX: ReadonlySet<string> = new Set([
  ':path', 'x-request-id', 'traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'content-length',
  'etag', 'last-modified', 'x-weft-decision', 'grpc-message', 'x-forwarded-client-cert',
]);
/** Entries bigger than this are sent literally rather than fill the table. */
const MAX_INDEXED_ENTRY = 512;

export class HpackEncoder {
  private readonly table = new DynamicTable(DEFAULT_TABLE_SIZE);
  /** name → value → absolute number of the newest dynamic entry with that pair. */
  private readonly pairs = new Map<string, Map<string, number>>();
  /** name → absolute number of the newest dynamic entry with that name. */
  private readonly names = new Map<string, number>();
  /** A size update owed at the start of the next block (§4.2), or -1. */
  private pendingUpdate = -1;
  private readonly onEvict = (abs: number, name: string, value: string): void => {
    const byValue = this.pairs.get(name);
    if (byValue?.get(value) === abs) {
      byValue.delete(value);
      if (byValue.size === 0) this.pairs.delete(name);
    }
    if (this.names.get(name) === abs) this.names.delete(name);
  };

  /** The peer's SETTINGS_HEADER_TABLE_SIZE changed: the table follows (capped at 4096, as much
   *  as this encoder ever uses), announced in the next block. */
  setMaxSize(size: number): void {
    const target = Math.min(size, DEFAULT_TABLE_SIZE);
    if (target === this.table.maxSize && this.pendingUpdate < 0) return;
    this.table.resize(target, this.onEvict);
    this.pendingUpdate = target;
  }

  /**
   * Appends the header block of `fields` (name, value, name, value…; lower-case names,
   * pseudo-headers first), then of `map`'s fields (arrays as repeated fields), to `out` at
   * `at`; returns the end. `out` must have room: at most blockBound(fields, map) bytes.
   */
  encode(fields: readonly string[], out: Buffer, at: number, map?: Readonly<Record<string, string | string[]>>): number {
    if (this.pendingUpdate >= 0) {
      at = writeInteger(out, at, 0x20, 5, this.pendingUpdate);
      this.pendingUpdate = -1;
    }
    for (let i = 0; i + 1 < fields.length; i += 2) at = this.field(fields[i]!, fields[i + 1]!, out, at);
    if (map) {
      for (const name in map) {
        const v = map[name]!;
        if (typeof v === 'string') at = this.field(name, v, out, at);
        else for (const x of v) at = this.field(name, x, out, at);
      }
    }
    return at;
  }

  private field(name: string, value: string, out: Buffer, at: number): number {
    const exact = STATIC_PAIR.get(name)?.get(value) ?? this.dynamicPair(name, value);
    if (exact !== undefined) return writeInteger(out, at, 0x80, 7, exact);
    const nameIndex = STATIC_NAME.get(name) ?? this.dynamicName(name) ?? 0;
    if (NEVER_INDEX.has(name)) return this.literal(out, writeInteger(out, at, 0x10, 4, nameIndex), nameIndex, name, value);
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (NO_INDEX.has(name) || size > MAX_INDEXED_ENTRY || size > this.table.maxSize) {
      return this.literal(out, writeInteger(out, at, 0x00, 4, nameIndex), nameIndex, name, value);
    }
    at = this.literal(out, writeInteger(out, at, 0x40, 6, nameIndex), nameIndex, name, value);
    this.table.add(name, value, this.onEvict);
    const abs = this.table.inserted - 1;
    let byValue = this.pairs.get(name);
    if (!byValue) this.pairs.set(name, (byValue = new Map()));
    byValue.set(value, abs);
    this.names.set(name, abs);
    return at;
  }

  private literal(out: Buffer, at: number, nameIndex: number, name: string, value: string): number {
    if (nameIndex === 0) at = writeString(out, at, name);
    return writeString(out, at, value);
  }

  private dynamicPair(name: string, value: string): number | undefined {
    const abs = this.pairs.get(name)?.get(value);
    return abs === undefined ? undefined : this.indexOf(abs);
  }

  private dynamicName(name: string): number | undefined {
    const abs = this.names.get(name);
    return abs === undefined ? undefined : this.indexOf(abs);
  }

  /** Absolute entry number → its HPACK index (newest dynamic entry: 62). */
  private indexOf(abs: number): number {
    return STATIC_LENGTH + this.table.inserted - abs;
  }
}

/** The most bytes encode() may write for `fields` and `map`. */
export function blockBound(fields: readonly string[], map?: Readonly<Record<string, string | string[]>>): number {
  let n = 6; // a size update
  for (let i = 0; i + 1 < fields.length; i += 2) n += fields[i]!.length + fields[i + 1]!.length + 15;
  if (map) {
    for (const name in map) {
      const v = map[name]!;
      if (typeof v === 'string') n += name.length + v.length + 15;
      else for (const x of v) n += name.length + x.length + 15;
    }
  }
  return n;
}

/** §5.1: `value` with an N-bit prefix, the prefix's first bits being `flags`. */
export function writeInteger(out: Buffer, at: number, flags: number, prefix: number, value: number): number {
  const max = (1 << prefix) - 1;
  if (value < max) {
    out[at++] = flags | value;
    return at;
  }
  out[at++] = flags | max;
  value -= max;
  while (value >= 128) {
    out[at++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[at++] = value;
  return at;
}

/** §5.2: a raw (not Huffman-coded) string literal. */
function writeString(out: Buffer, at: number, s: string): number {
  at = writeInteger(out, at, 0x00, 7, s.length);
  if (s.length < 24) {
    for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
    return at + s.length;
  }
  return at + out.write(s, at, 'latin1');
}
