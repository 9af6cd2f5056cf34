// HPACK against RFC 7541 Appendix C (integers, fields, request and response sequences, with and
// without Huffman coding), the Huffman code's own properties, and the encoder round-tripping
// through the decoder with its dynamic table in step.
import { describe, expect, it } from 'vitest';
import { HpackError } from './hpack-error.js';
import { blockBound, HpackDecoder, HpackEncoder, writeInteger } from './hpack.js';
import { CODE, CODE_LENGTH, huffmanDecode, huffmanEncode, huffmanLength } from './huffman.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (flat: string[]) => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i]!, flat[2 * i + 1]!]);

function decodeAll(decoder: HpackDecoder, block: Buffer): string[][] {
  const out: string[] = [];
  decoder.decode(block, 0, block.length, out);
  return pairs(out);
}

describe('integers (C.1)', () => {
  it.each([
    [10, 5, 'C.1.1', [0b01010]],
    [1337, 5, 'C.1.2', [0b11111, 0b10011010, 0b00001010]],
    [42, 8, 'C.1.3', [0b00101010]],
  ])('%i with a %i-bit prefix (%s)', (value, prefix, _name, bytes) => {
    const out = Buffer.alloc(8);
    const end = writeInteger(out, 0, 0, prefix, value);
    expect([...out.subarray(0, end)]).toEqual(bytes);
    // Through the decoder: an indexed field carries a 7-bit integer, so decode 1337 as a size
    // update's 5-bit one instead (within a large enough limit).
    if (prefix === 5) {
      const d = new HpackDecoder(4096);
      const block = Buffer.from([0x20 | bytes[0]!, ...bytes.slice(1)]);
      d.decode(block, 0, block.length, []);
    }
  });
});

describe('header field representations (C.2)', () => {
  it('C.2.1 literal with indexing', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'))).toEqual([['custom-key', 'custom-header']]);
    expect(d.tableSize).toEqual({ bytes: 55, entries: 1 });
  });
  it('C.2.2 literal without indexing', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('040c 2f73 616d 706c 652f 7061 7468'))).toEqual([[':path', '/sample/path']]);
    expect(d.tableSize).toEqual({ bytes: 0, entries: 0 });
  });
  it('C.2.3 literal never indexed', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('1008 7061 7373 776f 7264 0673 6563 7265 74'))).toEqual([['password', 'secret']]);
    expect(d.tableSize.entries).toBe(0);
  });
  it('C.2.4 indexed', () => {
    expect(decodeAll(new HpackDecoder(), hex('82'))).toEqual([[':method', 'GET']]);
  });
});

const REQUESTS = [
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']],
  [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com'], ['cache-control', 'no-cache']],
  [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']],
];
const REQUEST_TABLE_SIZES = [57, 110, 164];

describe.each([
  ['C.3 requests without Huffman', ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65']],
  ['C.4 requests with Huffman', ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf']],
])('%s', (_name, blocks) => {
  it('decodes the three requests with one decoder, its table in step', () => {
    const d = new HpackDecoder();
    blocks.forEach((b, i) => {
      expect(decodeAll(d, hex(b))).toEqual(REQUESTS[i]);
      expect(d.tableSize.bytes).toBe(REQUEST_TABLE_SIZES[i]);
    });
  });
});

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSES = [
  [[':status', '302'], ['cache-control', 'private'], ['date', DATE1], ['location', 'https://www.example.com']],
  [[':status', '307'], ['cache-control', 'private'], ['date', DATE1], ['location', 'https://www.example.com']],
  [[':status', '200'], ['cache-control', 'private'], ['date', DATE2], ['location', 'https://www.example.com'], ['content-encoding', 'gzip'], ['set-cookie', COOKIE]],
];
const RESPONSE_TABLE_SIZES = [222, 222, 215];

describe.each([
  [
    'C.5 responses without Huffman',
    [
      '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
      '4803 3330 37c1 c0bf',
      '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
    ],
  ],
  [
    'C.6 responses with Huffman',
    [
      '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
      '4883 640e ffc1 c0bf',
      '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
    ],
  ],
])('%s (table size 256)', (_name, blocks) => {
  it('decodes the three responses with one decoder, evicting as the RFC shows', () => {
    const d = new HpackDecoder(256);
    d.decode(hex('3fe1 01'), 0, 3, []); // a size update to 256 (5-bit prefix: 31 + 225)
    blocks.forEach((b, i) => {
      expect(decodeAll(d, hex(b))).toEqual(RESPONSES[i]);
      expect(d.tableSize.bytes).toBe(RESPONSE_TABLE_SIZES[i]);
    });
  });
});

describe('decoding errors', () => {
  it.each([
    ['index 0', '80'],
    ['an index past both tables', 'ff 00'],
    ['a truncated integer', 'ff'],
    ['a string longer than the block', '40 0a 61 62'],
    ['a size update above the limit', '3f e2 1f'],
    ['a size update after a field', '82 20'],
    ['Huffman padding of zeros', '40 81 00 00'],
  ])('%s', (_name, block) => {
    expect(() => new HpackDecoder().decode(hex(block), 0, hex(block).length, [])).toThrow(HpackError);
  });

  it('refuses EOS and over-long padding in Huffman strings', () => {
    // EOS (30 ones) then padding.
    expect(() => huffmanDecode(hex('ffff fffc'), 0, 4)).toThrow(HpackError);
    // 'a' (00011, 5 bits) then 11 bits of ones: more than 7 bits of padding.
    expect(() => huffmanDecode(hex('1fff'), 0, 2)).toThrow(HpackError);
    expect(huffmanDecode(hex('1f'), 0, 1)).toBe('a');
  });
});

describe('the Huffman code', () => {
  it('is complete and prefix-free (Kraft sum 1), with the RFC\'s first codes', () => {
    expect(CODE_LENGTH.reduce((a, l) => a + 2 ** -l, 0)).toBe(1);
    expect([CODE[0], CODE_LENGTH[0]]).toEqual([0x1ff8, 13]);
    expect([CODE[48], CODE_LENGTH[48]]).toEqual([0x0, 5]); // '0'
    expect([CODE[256], CODE_LENGTH[256]]).toEqual([0x3fffffff, 30]); // EOS
  });

  it('round-trips every byte value', () => {
    const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    const buf = Buffer.alloc(huffmanLength(all));
    const end = huffmanEncode(all, buf, 0);
    expect(end).toBe(buf.length);
    expect(huffmanDecode(buf, 0, end)).toBe(all);
  });
});

describe('HpackEncoder', () => {
  function roundTrip(encoder: HpackEncoder, decoder: HpackDecoder, fields: string[]): { block: Buffer; out: string[] } {
    const buf = Buffer.alloc(blockBound(fields));
    const end = encoder.encode(fields, buf, 0);
    const out: string[] = [];
    decoder.decode(buf, 0, end, out);
    return { block: buf.subarray(0, end), out };
  }

  it('round-trips requests, and sends what repeats as one-byte indexes', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const req = [':method', 'GET', ':scheme', 'http', ':path', '/x?y=1', ':authority', 'echo.default:8080', 'user-agent', 'test/1.0', 'x-request-id', 'abc', 'authorization', 'Bearer t'];
    const first = roundTrip(enc, dec, req);
    expect(first.out).toEqual(req);
    const second = roundTrip(enc, dec, req);
    expect(second.out).toEqual(req);
    // :method, :scheme, :authority and user-agent indexed; :path, x-request-id and the credential literal.
    expect(second.block.length).toBeLessThan(first.block.length - 20);
    // The credential was never indexed: 0001xxxx.
    const at = second.block.indexOf(Buffer.from('Bearer t'));
    expect(at).toBeGreaterThan(0);
  });

  it('stays in step through evictions and a smaller table the peer asks for', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    for (let i = 0; i < 300; i++) {
      const fields = [':status', '200', `x-h${i % 37}`, `v${i % 11}`.repeat(1 + (i % 5)), 'content-type', 'text/plain'];
      if (i === 150) enc.setMaxSize(256);
      expect(roundTrip(enc, dec, fields).out).toEqual(fields);
    }
    expect(dec.tableSize.bytes).toBeLessThanOrEqual(256);
  });

  it('writes values of any length and every latin1 byte', () => {
    const enc = new HpackEncoder();
    const dec = new HpackDecoder();
    const long = 'x'.repeat(70_000);
    const odd = String.fromCharCode(...Array.from({ length: 200 }, (_, i) => 0x20 + (i % 0xdf)));
    const fields = ['x-long', long, 'x-odd', odd];
    expect(roundTrip(enc, dec, fields).out).toEqual(fields);
  });
});
