// HPACK (RFC 7541) for berth's HTTP/2 server: a full decoder (static and dynamic
// tables, table size updates, Huffman-coded strings), since grpc-go and nghttp2 clients
// use all of it, and a small encoder that needs no state: static-table indexes and
// literals without indexing, never Huffman (berth's response headers are few and short).

/** A header block that cannot be decoded: the connection ends with COMPRESSION_ERROR. */
export class HpackError extends Error {}

/** RFC 7541 Appendix A. Index 1 is the first entry. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''],
  ['etag', ''], ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''],
  ['if-modified-since', ''], ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''],
  ['last-modified', ''], ['link', ''], ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''],
  ['proxy-authorization', ''], ['range', ''], ['referer', ''], ['refresh', ''], ['retry-after', ''],
  ['server', ''], ['set-cookie', ''], ['strict-transport-security', ''], ['transfer-encoding', ''],
  ['user-agent', ''], ['vary', ''], ['via', ''], ['www-authenticate', ''],
];

// The Huffman code of Appendix B is canonical: each symbol's code follows from the code
// lengths alone (codes of one length are consecutive in symbol order, and the first code
// of a length is the one after the last of the length before, shifted left). So only the
// 257 lengths are data here (symbols 0..255, then EOS), runs written as [length, count].
const HUFFMAN_LENGTH_RUNS: readonly (readonly [number, number])[] = [
  [13, 1], [23, 1], [28, 7], [24, 1], [30, 1], [28, 2], [30, 1], [28, 8], [30, 1], [28, 9], // 0..31
  [6, 1], [10, 2], [12, 1], [13, 1], [6, 1], [8, 1], [11, 1], [10, 2], [8, 1], [11, 1], [8, 1], [6, 3], // ' '..'/'
  [5, 3], [6, 7], [7, 1], [8, 1], [15, 1], [6, 1], [12, 1], [10, 1], // '0'..'?'
  [13, 1], [6, 1], [7, 22], [8, 1], [7, 1], [8, 1], [13, 1], [19, 1], [13, 1], [14, 1], [6, 1], // '@'..'_'
  [15, 1], [5, 1], [6, 1], [5, 1], [6, 1], [5, 1], [6, 3], [5, 1], [7, 2], [6, 3], [5, 1], [6, 1], [7, 1], // '`'..'q'
  [6, 1], [5, 2], [6, 1], [7, 5], [15, 1], [11, 1], [14, 1], [13, 1], [28, 1], // 'r'..127
  [20, 1], [22, 1], [20, 2], [22, 3], [23, 1], [22, 1], [23, 5], [24, 1], [23, 1], [24, 2], [22, 1], [23, 1], // 128..148
  [24, 1], [23, 4], [21, 1], [22, 1], [23, 1], [22, 1], [23, 2], [24, 1], // 149..159
  [22, 1], [21, 1], [20, 1], [22, 2], [23, 2], [21, 1], [23, 1], [22, 2], [24, 1], [21, 1], [22, 1], [23, 2], // 160..175
  [21, 2], [22, 1], [21, 1], [23, 1], [22, 1], [23, 2], [20, 1], [22, 3], [23, 1], [22, 2], [23, 1], // 176..191
  [26, 2], [20, 1], [19, 1], [22, 1], [23, 1], [22, 1], [25, 1], [26, 3], [27, 2], [26, 1], [24, 1], [25, 1], // 192..207
  [19, 1], [21, 1], [26, 1], [27, 2], [26, 1], [27, 1], [24, 1], [21, 2], [26, 2], [28, 1], [27, 3], // 208..223
  [20, 1], [24, 1], [20, 1], [21, 1], [22, 1], [21, 2], [23, 1], [22, 2], [25, 2], [24, 2], [26, 1], [23, 1], // 224..239
  [26, 1], [27, 1], [26, 2], [27, 5], [28, 1], [27, 5], [26, 1], // 240..255
  [30, 1], // EOS
];
const EOS = 256;

/** Each symbol's [code, length], derived from the lengths (exported for the tests). */
export const HUFFMAN_CODES: readonly (readonly [number, number])[] = (() => {
  const lengths: number[] = [];
  for (const [length, count] of HUFFMAN_LENGTH_RUNS) for (let i = 0; i < count; i++) lengths.push(length);
  if (lengths.length !== 257) throw new Error(`the Huffman table has ${lengths.length} symbols, not 257`);
  const codes: [number, number][] = new Array(257);
  let code = 0;
  for (let length = 1; length <= 30; length++) {
    for (let symbol = 0; symbol < 257; symbol++) if (lengths[symbol] === length) codes[symbol] = [code++, length];
    code *= 2;
  }
  return codes;
})();

// The decoding tree: node n's children at [2n] (bit 0) and [2n+1] (bit 1); a child > 0 is
// a node, < 0 a leaf holding -(symbol + 1), 0 none (a code no symbol has).
const HUFFMAN_TREE: Int32Array = (() => {
  const tree = new Int32Array(2 * 512);
  let nodes = 1;
  HUFFMAN_CODES.forEach(([code, length], symbol) => {
    let node = 0;
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (tree[slot] === 0) tree[slot] = nodes++;
      node = tree[slot]!;
    }
    tree[2 * node + (code & 1)] = -(symbol + 1);
  });
  return tree;
})();

/** A Huffman-coded string's text (latin1: one char per octet). */
export function huffmanDecode(bytes: Uint8Array): string {
  let out = '';
  let node = 0;
  // Bits read since the last symbol, and whether all were ones (the only valid padding).
  let depth = 0;
  let allOnes = true;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const one = (byte >>> bit) & 1;
      const next = HUFFMAN_TREE[2 * node + one]!;
      if (next < 0) {
        const symbol = -next - 1;
        if (symbol === EOS) throw new HpackError('a Huffman-coded string holds EOS');
        out += String.fromCharCode(symbol);
        node = 0;
        depth = 0;
        allOnes = true;
      } else if (next === 0) {
        throw new HpackError('an invalid Huffman code');
      } else {
        node = next;
        depth++;
        allOnes &&= one === 1;
      }
    }
  }
  if (depth > 7 || !allOnes) throw new HpackError('invalid padding in a Huffman-coded string');
  return out;
}

/** One decoded header field. */
export type HeaderField = readonly [name: string, value: string];

const ENTRY_OVERHEAD = 32;

/** The decoder of one connection: its dynamic table lives across header blocks. */
export class HpackDecoder {
  // Newest entry last.
  private readonly entries: HeaderField[] = [];
  private size = 0;
  private maxSize: number;

  /** `settingsMaxSize`: the SETTINGS_HEADER_TABLE_SIZE announced to the peer (4096 by default). */
  constructor(private readonly settingsMaxSize = 4096) {
    this.maxSize = settingsMaxSize;
  }

  /** The fields of one whole header block, in order. Throws HpackError. */
  decode(block: Uint8Array): HeaderField[] {
    const fields: HeaderField[] = [];
    let pos = 0;
    // [value, next position] of the integer at pos, with an N-bit prefix.
    const integer = (prefixBits: number): number => {
      const max = (1 << prefixBits) - 1;
      let value = block[pos++]! & max;
      if (value < max) return value;
      for (let shift = 0; ; shift += 7) {
        if (pos >= block.length) throw new HpackError('a header block ends inside an integer');
        if (shift > 21) throw new HpackError('an HPACK integer is too large');
        const byte = block[pos++]!;
        value += (byte & 0x7f) * 2 ** shift;
        if ((byte & 0x80) === 0) return value;
      }
    };
    const string = (): string => {
      if (pos >= block.length) throw new HpackError('a header block ends before a string');
      const huffman = (block[pos]! & 0x80) !== 0;
      const length = integer(7);
      const end = pos + length;
      if (end > block.length) throw new HpackError('a string runs past its header block');
      const bytes = block.subarray(pos, end);
      pos = end;
      return huffman ? huffmanDecode(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
    };
    while (pos < block.length) {
      const first = block[pos]!;
      if (first & 0x80) {
        fields.push(this.field(integer(7)));
      } else if (first & 0x40) {
        const index = integer(6);
        const name = index === 0 ? string() : this.field(index)[0];
        const field: HeaderField = [name, string()];
        fields.push(field);
        this.add(field);
      } else if (first & 0x20) {
        if (fields.length > 0) throw new HpackError('a dynamic table size update after a header field');
        const size = integer(5);
        if (size > this.settingsMaxSize) throw new HpackError(`a dynamic table size update to ${size}, over ${this.settingsMaxSize}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // Without indexing (0000) or never indexed (0001): the same to a decoder.
        const index = integer(4);
        const name = index === 0 ? string() : this.field(index)[0];
        fields.push([name, string()]);
      }
    }
    return fields;
  }

  private field(index: number): HeaderField {
    if (index === 0) throw new HpackError('header index 0');
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1]!;
    const entry = this.entries[this.entries.length - (index - STATIC_TABLE.length)];
    if (!entry) throw new HpackError(`header index ${index} is past the dynamic table`);
    return entry;
  }

  private add(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      // An entry larger than the table empties it and is not added (RFC 7541 §4.4).
      this.entries.length = 0;
      this.size = 0;
      return;
    }
    this.evict(size);
    this.entries.push(field);
    this.size += size;
  }

  /** Evicts oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    let drop = 0;
    while (this.size + room > this.maxSize && drop < this.entries.length) {
      const [name, value] = this.entries[drop++]!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
    if (drop > 0) this.entries.splice(0, drop);
  }
}

const STATIC_FULL = new Map<string, number>();
const STATIC_NAME = new Map<string, number>();
STATIC_TABLE.forEach(([name, value], i) => {
  if (!STATIC_FULL.has(`${name}\0${value}`)) STATIC_FULL.set(`${name}\0${value}`, i + 1);
  if (!STATIC_NAME.has(name)) STATIC_NAME.set(name, i + 1);
});

function pushInteger(out: number[], value: number, prefixBits: number, firstBits: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) return void out.push(firstBits | value);
  out.push(firstBits | max);
  value -= max;
  while (value >= 0x80) {
    out.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
}

function pushString(out: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  pushInteger(out, bytes.length, 7, 0);
  for (const byte of bytes) out.push(byte);
}

/**
 * A header block for these fields (names lower-case), using no dynamic table: a field
 * of the static table is its index, a name of it is indexed with a literal value, any
 * other field is a literal without indexing.
 */
export function encodeHeaderBlock(fields: Iterable<HeaderField>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const full = STATIC_FULL.get(`${name}\0${value}`);
    if (full !== undefined) {
      pushInteger(out, full, 7, 0x80);
      continue;
    }
    const nameIndex = STATIC_NAME.get(name);
    if (nameIndex !== undefined) pushInteger(out, nameIndex, 4, 0);
    else {
      out.push(0);
      pushString(out, name);
    }
    pushString(out, value);
  }
  return Buffer.from(out);
}
