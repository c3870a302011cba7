// Old gRPC clients on a unix socket send the socket's path as the HTTP/2 `:authority`
// (grpc-go up to about 1.5x, as in crictl/critest 1.26, kubelets of that era and many
// CSI sidecars). Node's HTTP/2 server (nghttp2) refuses an authority with a `/` in it
// and resets every such stream with PROTOCOL_ERROR, while containerd and CRI-O (Go's
// HTTP/2) accept it. Nothing in Node turns that check off, so berth repairs the bytes
// before they reach the server:
//
// - Until a connection's first header block, its bytes pass unchanged (the server's
//   SETTINGS must reach the client before the client sends a request). That block is
//   decoded: if its authority is one nghttp2 accepts (every current client), the rest of
//   the connection is passed through verbatim.
// - Otherwise every header block of the connection (that one included) is decoded (HPACK,
//   mirroring the client's dynamic table) and encoded again without the dynamic table,
//   with `:authority: localhost` (what current grpc-go sends for a unix socket). The
//   authority means nothing on a unix socket.
//
// Frames other than HEADERS and CONTINUATION pass unchanged; the server-to-client
// direction is never touched.
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import hpack from 'hpack.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The server's SETTINGS_MAX_FRAME_SIZE, which it always accepts (RFC 9113 §4.2). */
const MAX_FRAME_PAYLOAD = 16384;
/** Decoder table limit: the client's encoder may not exceed what the server announced (4096). */
const HEADER_TABLE_SIZE = 4096;
export const REPLACEMENT_AUTHORITY = 'localhost';

/** The characters nghttp2 accepts in `:authority` (RFC 3986 reg-name, userinfo, port, IP literal). */
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@[\]]*$/;

export function authorityAccepted(authority: string): boolean {
  return VALID_AUTHORITY.test(authority);
}

interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
  /** The frame exactly as it arrived. */
  raw: Buffer;
}

/** Splits a byte stream into HTTP/2 frames after the client preface. */
class FrameReader {
  private buffered: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;

  push(chunk: Buffer): { preface?: Buffer; frames: Frame[] } {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let preface: Buffer | undefined;
    if (!this.prefaceSeen) {
      if (this.buffered.length < PREFACE.length) return { frames: [] };
      preface = this.buffered.subarray(0, PREFACE.length);
      this.buffered = this.buffered.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    const frames: Frame[] = [];
    while (this.buffered.length >= FRAME_HEADER_BYTES) {
      const length = this.buffered.readUIntBE(0, 3);
      if (this.buffered.length < FRAME_HEADER_BYTES + length) break;
      const raw = this.buffered.subarray(0, FRAME_HEADER_BYTES + length);
      frames.push({
        type: raw[3]!,
        flags: raw[4]!,
        streamId: raw.readUInt32BE(5) & 0x7fffffff,
        payload: raw.subarray(FRAME_HEADER_BYTES),
        raw,
      });
      this.buffered = this.buffered.subarray(FRAME_HEADER_BYTES + length);
    }
    return { preface, frames };
  }

  /** Bytes not yet part of a whole frame. */
  rest(): Buffer {
    return this.buffered;
  }
}

interface HeaderField {
  name: string;
  value: string;
  neverIndex: boolean;
}

/** One header block being collected from a HEADERS frame and its CONTINUATIONs. */
interface PendingBlock {
  streamId: number;
  endStream: boolean;
  /** The 5 priority bytes of the HEADERS frame, when it carried them. */
  priority: Buffer | undefined;
  fragments: Buffer[];
  rawFrames: Buffer[];
}

/** Collects header blocks out of frames, decoding them with the client's HPACK state. */
class HeaderBlockDecoder {
  private readonly hpackDecoder = hpack.decompressor.create({ table: { size: HEADER_TABLE_SIZE } });
  private pending: PendingBlock | undefined;

  /** Returns the decoded block when this frame completes one; undefined otherwise. */
  take(frame: Frame): { block: PendingBlock; fields: HeaderField[] } | undefined {
    if (frame.type === FRAME_HEADERS) {
      let payload = frame.payload;
      let padding = 0;
      if (frame.flags & FLAG_PADDED) {
        padding = payload[0] ?? 0;
        payload = payload.subarray(1);
      }
      let priority: Buffer | undefined;
      if (frame.flags & FLAG_PRIORITY) {
        priority = payload.subarray(0, 5);
        payload = payload.subarray(5);
      }
      this.pending = {
        streamId: frame.streamId,
        endStream: (frame.flags & FLAG_END_STREAM) !== 0,
        priority,
        fragments: [payload.subarray(0, payload.length - padding)],
        rawFrames: [frame.raw],
      };
    } else if (frame.type === FRAME_CONTINUATION && this.pending) {
      this.pending.fragments.push(frame.payload);
      this.pending.rawFrames.push(frame.raw);
    } else {
      return undefined;
    }
    if (!(frame.flags & FLAG_END_HEADERS)) return undefined;
    const block = this.pending;
    this.pending = undefined;
    return { block, fields: this.decode(Buffer.concat(block.fragments)) };
  }

  private decode(bytes: Buffer): HeaderField[] {
    this.hpackDecoder.write(bytes);
    this.hpackDecoder.execute();
    const fields: HeaderField[] = [];
    for (let field = this.hpackDecoder.read(); field; field = this.hpackDecoder.read()) fields.push(field);
    return fields;
  }
}

/** The block again, with no dynamic table use, no Huffman and the authority replaced. */
export function encodeHeaderFrames(block: Pick<PendingBlock, 'streamId' | 'endStream' | 'priority'>, fields: HeaderField[]): Buffer {
  const parts: Buffer[] = [];
  for (const field of fields) {
    const value = field.name === ':authority' && !authorityAccepted(field.value) ? REPLACEMENT_AUTHORITY : field.value;
    // Literal header field without indexing (0000) or never indexed (0001), new name.
    parts.push(Buffer.from([field.neverIndex ? 0x10 : 0x00]), hpackString(field.name), hpackString(value));
  }
  const headerBlock = Buffer.concat(parts);
  const frames: Buffer[] = [];
  const first = block.priority ? Buffer.concat([block.priority, headerBlock]) : headerBlock;
  let offset = Math.min(first.length, MAX_FRAME_PAYLOAD);
  const last = offset >= first.length;
  const headersFlags = (block.endStream ? FLAG_END_STREAM : 0) | (block.priority ? FLAG_PRIORITY : 0) | (last ? FLAG_END_HEADERS : 0);
  frames.push(frameHeader(offset, FRAME_HEADERS, headersFlags, block.streamId), first.subarray(0, offset));
  while (offset < first.length) {
    const end = Math.min(first.length, offset + MAX_FRAME_PAYLOAD);
    frames.push(frameHeader(end - offset, FRAME_CONTINUATION, end >= first.length ? FLAG_END_HEADERS : 0, block.streamId), first.subarray(offset, end));
    offset = end;
  }
  return Buffer.concat(frames);
}

function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

/** An HPACK string literal without Huffman coding: a 7-bit-prefix length, then the octets. */
function hpackString(text: string): Buffer {
  const octets = Buffer.from(text, 'latin1');
  return Buffer.concat([hpackInteger(octets.length, 7, 0x00), octets]);
}

function hpackInteger(value: number, prefixBits: number, firstByteFlags: number): Buffer {
  const limit = (1 << prefixBits) - 1;
  if (value < limit) return Buffer.from([firstByteFlags | value]);
  const bytes = [firstByteFlags | limit];
  let rest = value - limit;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

type Mode = 'first-block' | 'verbatim' | 'rewrite';

/**
 * A connection as the HTTP/2 server sees it: server-to-client bytes pass straight to the
 * socket; client-to-server bytes pass unchanged until the first header block, which
 * decides whether the rest of the connection is passed verbatim or rewritten.
 */
export class AuthorityRepair extends Duplex {
  private mode: Mode = 'first-block';
  private readonly reader = new FrameReader();
  private readonly decoder = new HeaderBlockDecoder();

  constructor(private readonly socket: Socket) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(this.mode === 'verbatim' ? chunk : this.repair(chunk))) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /** True once the connection's client turned out to need its authority rewritten. */
  get rewriting(): boolean {
    return this.mode === 'rewrite';
  }

  private repair(chunk: Buffer): Buffer {
    let parsed;
    try {
      parsed = this.reader.push(chunk);
    } catch {
      // Not HTTP/2 as expected: let the server see the bytes and refuse them itself.
      this.mode = 'verbatim';
      return chunk;
    }
    const out: Buffer[] = parsed.preface ? [parsed.preface] : [];
    for (const frame of parsed.frames) {
      if (this.mode === 'verbatim') {
        out.push(frame.raw);
        continue;
      }
      if (frame.type !== FRAME_HEADERS && frame.type !== FRAME_CONTINUATION) {
        out.push(frame.raw);
        continue;
      }
      const complete = this.decoder.take(frame);
      if (!complete) continue;
      if (this.mode === 'first-block') {
        const authority = complete.fields.find((field) => field.name === ':authority')?.value ?? '';
        if (authorityAccepted(authority)) {
          // The server's HPACK state will match the client's from the bytes as sent.
          this.mode = 'verbatim';
          out.push(...complete.block.rawFrames);
          continue;
        }
        this.mode = 'rewrite';
      }
      out.push(encodeHeaderFrames(complete.block, complete.fields));
    }
    if (this.mode === 'verbatim') out.push(this.reader.rest());
    return Buffer.concat(out);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.socket.write(chunk, encoding, callback);
  }

  // The HTTP/2 session writes a response as several small buffers at once (headers,
  // data, trailers): handing them to the socket corked makes them one writev.
  override _writev(chunks: { chunk: Buffer; encoding: BufferEncoding }[], callback: (error?: Error | null) => void): void {
    this.socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.socket.write(chunks[i]!.chunk);
    this.socket.write(chunks[chunks.length - 1]!.chunk, callback);
    this.socket.uncork();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy(error ?? undefined);
    callback(error);
  }
}
