// A tar parser that is pushed bytes as they come (any piece sizes) and answers with
// synchronous calls: a header, then the member's data as views of the pushed buffers
// (never copied, valid only during the call), then its end. No stream object and no
// promise per member: the layer unpack hands it the gunzip output of each received chunk.
//
// Reads ustar, GNU (long names 'L', long link names 'K', base-256 numbers) and POSIX pax
// ('x', and 'g' as defaults for the members after it) headers; every header's checksum
// is verified. A member of an unknown type is reported with its type letter (POSIX reads
// it as a regular file).

export type TarMemberType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file' | 'unknown';

export interface TarHeader {
  name: string;
  type: TarMemberType;
  /** The header's type flag as it was (for error messages of unknown types). */
  typeFlag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (pax may give fractions). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  /** The pax records that applied to this member (global ones first). */
  pax: Record<string, string>;
}

export interface TarVisitor {
  /** A member's header; its data (size bytes) follows through data(), then end(). */
  header(header: TarHeader): void;
  data(chunk: Uint8Array): void;
  end(): void;
}

export class TarFormatError extends Error {}

const BLOCK = 512;
/** Names and pax records bigger than this are refused rather than buffered. */
const MAX_META_BYTES = 1024 * 1024;

const TYPES: Record<string, TarMemberType> = {
  '0': 'file',
  '\0': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'character-device',
  '4': 'block-device',
  '5': 'directory',
  '6': 'fifo',
  '7': 'contiguous-file',
};

const enum State {
  Header,
  Data,
  Meta,
  Padding,
}

export class TarReader {
  readonly #visitor: TarVisitor;
  readonly #block = Buffer.alloc(BLOCK);
  #blockFill = 0;
  #state = State.Header;
  /** Bytes of data (or metadata) left in the current member, then padding. */
  #remaining = 0;
  #padding = 0;
  /** A metadata member being gathered: its type and bytes. */
  #meta: { type: string; chunks: Buffer[]; length: number } | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #pax: Record<string, string> | undefined;
  #globalPax: Record<string, string> = {};

  constructor(visitor: TarVisitor) {
    this.#visitor = visitor;
  }

  push(chunk: Uint8Array): void {
    let offset = 0;
    while (offset < chunk.byteLength) {
      switch (this.#state) {
        case State.Header: {
          const n = Math.min(BLOCK - this.#blockFill, chunk.byteLength - offset);
          this.#block.set(chunk.subarray(offset, offset + n), this.#blockFill);
          this.#blockFill += n;
          offset += n;
          if (this.#blockFill === BLOCK) {
            this.#blockFill = 0;
            this.#onHeader(this.#block);
          }
          break;
        }
        case State.Data:
        case State.Meta: {
          // A member's data goes to the visitor; a metadata member's is gathered here.
          const n = Math.min(this.#remaining, chunk.byteLength - offset);
          const piece = chunk.subarray(offset, offset + n);
          const meta = this.#state === State.Meta ? this.#meta! : undefined;
          if (meta) {
            meta.chunks.push(Buffer.from(piece));
            meta.length += n;
          } else {
            this.#visitor.data(piece);
          }
          offset += n;
          this.#remaining -= n;
          if (this.#remaining === 0) {
            if (meta) this.#endMeta();
            else this.#endMember();
          }
          break;
        }
        case State.Padding: {
          const n = Math.min(this.#padding, chunk.byteLength - offset);
          offset += n;
          this.#padding -= n;
          if (this.#padding === 0) this.#state = State.Header;
          break;
        }
      }
    }
  }

  /** No more bytes: throws if a member (or header) was cut short. */
  end(): void {
    if (this.#state === State.Padding) return; // the padding of the last block may be cut
    if (this.#state !== State.Header || this.#blockFill !== 0) throw new TarFormatError('unexpected end of data');
  }

  #onHeader(block: Buffer): void {
    if (isZeroBlock(block)) return; // end-of-archive blocks (and anything zero in between)
    if (!checksumMatches(block)) throw new TarFormatError('invalid tar header (checksum mismatch)');
    const typeFlag = String.fromCharCode(block[156]!);
    const size = readNumber(block, 124, 12, 'size');
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;
    if (typeFlag === 'x' || typeFlag === 'g' || typeFlag === 'L' || typeFlag === 'K') {
      if (size > MAX_META_BYTES) throw new TarFormatError(`a '${typeFlag}' header of ${size} bytes is too big`);
      this.#meta = { type: typeFlag, chunks: [], length: 0 };
      this.#padding = padding;
      this.#remaining = size;
      if (size === 0) this.#endMeta();
      else this.#state = State.Meta;
      return;
    }
    const magic = block.toString('latin1', 257, 263);
    let name = cString(block, 0, 100);
    // POSIX ustar ("ustar\0"): a prefix for long names; GNU ("ustar  ") has none there.
    if (magic === 'ustar\0') {
      const prefix = cString(block, 345, 155);
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    const pax = { ...this.#globalPax, ...this.#pax };
    const header: TarHeader = {
      name: pax.path ?? this.#longName ?? name,
      type: TYPES[typeFlag] ?? 'unknown',
      typeFlag,
      mode: readNumber(block, 100, 8, 'mode'),
      uid: pax.uid !== undefined ? paxInteger(pax.uid, 'uid') : readNumber(block, 108, 8, 'uid'),
      gid: pax.gid !== undefined ? paxInteger(pax.gid, 'gid') : readNumber(block, 116, 8, 'gid'),
      size: pax.size !== undefined ? paxInteger(pax.size, 'size') : size,
      mtime: pax.mtime !== undefined ? paxNumber(pax.mtime, 'mtime') : readNumber(block, 136, 12, 'mtime'),
      linkname: pax.linkpath ?? this.#longLink ?? cString(block, 157, 100),
      devmajor: readNumber(block, 329, 8, 'devmajor'),
      devminor: readNumber(block, 337, 8, 'devminor'),
      pax,
    };
    this.#longName = undefined;
    this.#longLink = undefined;
    this.#pax = undefined;
    // Links, directories and devices carry no data whatever their size field says.
    const dataSize = header.type === 'link' || header.type === 'symlink' || header.type === 'directory' || header.type === 'character-device' || header.type === 'block-device' || header.type === 'fifo' ? 0 : header.size;
    this.#visitor.header(header);
    this.#remaining = dataSize;
    this.#padding = (BLOCK - (dataSize % BLOCK)) % BLOCK;
    if (dataSize === 0) this.#endMember();
    else this.#state = State.Data;
  }

  #endMember(): void {
    this.#visitor.end();
    this.#state = this.#padding > 0 ? State.Padding : State.Header;
  }

  #endMeta(): void {
    const meta = this.#meta!;
    this.#meta = undefined;
    const bytes = Buffer.concat(meta.chunks, meta.length);
    switch (meta.type) {
      case 'L':
        this.#longName = cString(bytes, 0, bytes.length);
        break;
      case 'K':
        this.#longLink = cString(bytes, 0, bytes.length);
        break;
      case 'x':
        this.#pax = { ...this.#pax, ...parsePax(bytes) };
        break;
      case 'g':
        this.#globalPax = { ...this.#globalPax, ...parsePax(bytes) };
        delete this.#globalPax.path;
        delete this.#globalPax.linkpath;
        break;
    }
    this.#state = this.#padding > 0 ? State.Padding : State.Header;
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** The sum of the header's bytes with its checksum field as spaces (unsigned, or signed as some old tars). */
function checksumMatches(block: Buffer): boolean {
  const stored = readNumber(block, 148, 8, 'checksum');
  let unsigned = 8 * 0x20;
  let high = 0; // bytes >= 0x80: a signed sum counts each 256 less
  for (let i = 0; i < 148; i++) {
    const b = block[i]!;
    unsigned += b;
    if (b >= 0x80) high++;
  }
  for (let i = 156; i < BLOCK; i++) {
    const b = block[i]!;
    unsigned += b;
    if (b >= 0x80) high++;
  }
  return stored === unsigned || stored === unsigned - 256 * high;
}

/** A NUL-terminated field as UTF-8. */
function cString(buffer: Buffer, offset: number, length: number): string {
  let end = offset;
  const limit = offset + length;
  while (end < limit && buffer[end] !== 0) end++;
  return buffer.toString('utf8', offset, end);
}

/** An octal field, or GNU base-256 (first byte 0x80 positive, 0xff negative). */
function readNumber(buffer: Buffer, offset: number, length: number, what: string): number {
  const first = buffer[offset]!;
  if (first === 0x80 || first === 0xff) {
    let value = 0;
    for (let i = 1; i < length; i++) value = value * 256 + (first === 0xff ? 0xff - buffer[offset + i]! : buffer[offset + i]!);
    if (first === 0xff) value = -(value + 1);
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`the ${what} field is out of range`);
    return value;
  }
  let value = 0;
  let i = offset;
  const end = offset + length;
  while (i < end && (buffer[i] === 0x20 || buffer[i] === 0)) i++; // leading spaces (or an empty field)
  for (; i < end; i++) {
    const b = buffer[i]!;
    if (b === 0 || b === 0x20) break;
    if (b < 0x30 || b > 0x37) throw new TarFormatError(`the ${what} field is not an octal number`);
    value = value * 8 + (b - 0x30);
  }
  return value;
}

/** pax records: "LEN key=value\n", LEN counting the whole record. */
function parsePax(bytes: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < bytes.length) {
    const space = bytes.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(bytes.toString('latin1', offset, space));
    if (!Number.isInteger(length) || length <= 0 || offset + length > bytes.length) throw new TarFormatError('invalid pax record');
    // Values are bytes (xattrs may be binary): keys as UTF-8, values kept as latin1 bytes.
    const record = bytes.subarray(space + 1, offset + length - 1);
    const equals = record.indexOf(0x3d);
    if (equals < 0) throw new TarFormatError('invalid pax record');
    const key = record.toString('utf8', 0, equals);
    records[key] = key === 'path' || key === 'linkpath' ? record.toString('utf8', equals + 1) : record.toString('latin1', equals + 1);
    offset += length;
  }
  return records;
}

function paxInteger(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new TarFormatError(`pax ${what} "${value}" is not a number`);
  return n;
}

function paxNumber(value: string, what: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new TarFormatError(`pax ${what} "${value}" is not a number`);
  return n;
}
