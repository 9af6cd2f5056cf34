// HPACK's Huffman code (RFC 7541 §5.2, Appendix B): decoding of Huffman-coded string literals.
// The code is canonical, so the table is its 257 code lengths (symbols 0-255 and EOS); the codes
// follow from them. Decoding walks a 4-bit state machine built once from the code.
import { HpackError } from './hpack-error.js';

/** Code length per symbol (0-255, then EOS), as `A` + (length − 5): RFC 7541 Appendix B. */
const LENGTHS =
  'ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHF' +
  'IBCCCCCCCCCCCCCCCCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIX' +
  'PRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTRQPRRSSQSRRTQRSSQQRQSRSSPRRRSRRS' +
  'VVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSVWVVWWWWWXWWWWWV' +
  'Z';

const EOS = 256;

/** Code length of each symbol, in bits. */
export const CODE_LENGTH: readonly number[] = Array.from(LENGTHS, (c) => c.charCodeAt(0) - 65 + 5);

/** The canonical code of each symbol (right-aligned), from the lengths. */
export const CODE: readonly number[] = (() => {
  const order = [...Array(257).keys()].sort((a, b) => CODE_LENGTH[a]! - CODE_LENGTH[b]! || a - b);
  const codes = new Array<number>(257);
  let code = 0;
  let len = CODE_LENGTH[order[0]!]!;
  for (const s of order) {
    code *= 2 ** (CODE_LENGTH[s]! - len); // lengths reach 30 bits: no 32-bit shifts
    len = CODE_LENGTH[s]!;
    codes[s] = code++;
  }
  return codes;
})();

// ---- the decoding state machine -------------------------------------------------------------
// States are the inner nodes of the code tree (0: the root). For each state and each 4-bit
// nibble: the next state, the symbol emitted on the way (if any), and whether the walk may stop
// there (every bit since the last symbol was a 1: valid padding, RFC 7541 §5.2).

const FAIL = 1;
const EMIT = 2;
const ACCEPT = 4;

interface Built {
  readonly next: Uint16Array;
  readonly sym: Uint8Array;
  readonly flags: Uint8Array;
}

const machine: Built = (() => {
  // The tree: children per node, leaves hold a symbol.
  const left: number[] = [-1];
  const right: number[] = [-1];
  const leaf: number[] = [-1];
  for (let s = 0; s <= EOS; s++) {
    let node = 0;
    const len = CODE_LENGTH[s]!;
    for (let i = len - 1; i >= 0; i--) {
      const bit = Math.floor(CODE[s]! / 2 ** i) % 2;
      const kids = bit ? right : left;
      let child = kids[node]!;
      if (child < 0) {
        child = leaf.length;
        left.push(-1);
        right.push(-1);
        leaf.push(-1);
        kids[node] = child;
      }
      node = child;
    }
    leaf[node] = s;
  }
  // Inner nodes get state numbers; the root is 0.
  const stateOf = new Map<number, number>();
  const nodes: number[] = [];
  for (let n = 0; n < leaf.length; n++) {
    if (leaf[n]! < 0) {
      stateOf.set(n, nodes.length);
      nodes.push(n);
    }
  }
  // Depth below the last emitted symbol made of 1 bits only, per inner node: padding may end
  // at a node reached from the root by ones only (at most 7 of them).
  const allOnes = new Set<number>();
  for (let n = 0, depth = 0; depth < 8 && n >= 0 && leaf[n]! < 0; n = right[n]!, depth++) allOnes.add(n);
  const next = new Uint16Array(nodes.length * 16);
  const sym = new Uint8Array(nodes.length * 16);
  const flags = new Uint8Array(nodes.length * 16);
  nodes.forEach((start, state) => {
    for (let nibble = 0; nibble < 16; nibble++) {
      let n = start;
      let f = 0;
      let emitted = 0;
      for (let i = 3; i >= 0; i--) {
        n = (nibble >> i) & 1 ? right[n]! : left[n]!;
        if (leaf[n]! >= 0) {
          if (leaf[n] === EOS || f & EMIT) {
            // EOS inside a string, or a second symbol in one nibble (impossible: codes are
            // at least 5 bits) — both are decoding errors.
            f = FAIL;
            break;
          }
          f |= EMIT;
          emitted = leaf[n]!;
          n = 0;
        }
      }
      const i = state * 16 + nibble;
      if (f & FAIL) {
        flags[i] = FAIL;
        continue;
      }
      next[i] = stateOf.get(n)!;
      sym[i] = emitted;
      flags[i] = f | (allOnes.has(n) ? ACCEPT : 0);
    }
  });
  return { next, sym, flags };
})();

/**
 * Decodes `src[start, end)` as a Huffman-coded string (latin1). Throws HpackError on an EOS
 * symbol, on padding longer than 7 bits or not made of ones.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number): string {
  const { next, sym, flags } = machine;
  let state = 0;
  let accept = true;
  let out = '';
  // Chunks of at most 512 symbols per String.fromCharCode call.
  const buf: number[] = [];
  for (let i = start; i < end; i++) {
    const byte = src[i]!;
    for (let shift = 4; shift >= 0; shift -= 4) {
      const k = state * 16 + ((byte >> shift) & 0xf);
      const f = flags[k]!;
      if (f & FAIL) throw new HpackError('invalid Huffman-coded string (EOS or bad code)');
      if (f & EMIT) {
        buf.push(sym[k]!);
        if (buf.length === 512) {
          out += String.fromCharCode(...buf);
          buf.length = 0;
        }
      }
      state = next[k]!;
      accept = (f & ACCEPT) !== 0;
    }
  }
  if (!accept) throw new HpackError('invalid Huffman padding');
  return buf.length > 0 ? out + String.fromCharCode(...buf) : out;
}

/** The Huffman-coded length of `s` (latin1) in bytes. */
export function huffmanLength(s: string): number {
  let bits = 0;
  for (let i = 0; i < s.length; i++) bits += CODE_LENGTH[s.charCodeAt(i) & 0xff]!;
  return Math.ceil(bits / 8);
}

/** Writes `s` (latin1) Huffman-coded into `dst` at `at`; returns the end. */
export function huffmanEncode(s: string, dst: Buffer, at: number): number {
  let acc = 0;
  let nbits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i) & 0xff;
    const len = CODE_LENGTH[c]!;
    const code = CODE[c]!;
    // Out in whole bytes as they fill, so `acc` never holds more than 7 + 30 bits.
    for (let b = len - 1; b >= 0; b--) {
      acc = (acc << 1) | (Math.floor(code / 2 ** b) & 1);
      if (++nbits === 8) {
        dst[at++] = acc;
        acc = 0;
        nbits = 0;
      }
    }
  }
  if (nbits > 0) dst[at++] = (acc << (8 - nbits)) | (0xff >> nbits); // EOS's leading ones
  return at;
}
