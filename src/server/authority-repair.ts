// Old gRPC clients on a unix socket send the socket's path as the HTTP/2 `:authority`
// (grpc-go up to about 1.5x, as in crictl/critest 1.26, kubelets of that era and many
// CSI sidecars). Node's HTTP/2 server (nghttp2) refuses an authority with a `/` in it
// and resets every such stream with PROTOCOL_ERROR, while containerd and CRI-O (Go's
// HTTP/2) accept it. Nothing in Node turns that check off, so berth repairs the bytes
// before they reach the server:
//
// - acceptConnection sends the server's preface itself (an empty SETTINGS frame: the
//   client waits for one before its first request) and reads the client's bytes up to
//   its first header block and its ACK of that SETTINGS. If the block's authority is one
//   nghttp2 accepts (every current client), the bytes read are put back (without that
//   ACK, which the server never asked for) and the socket itself goes to the server:
//   the connection then costs nothing more than any other (passing every byte through
//   JavaScript cost ~100 µs of CPU per call, ~20% of a status call; bench/polled-calls).
// - Otherwise, or when the client does something unexpected first, the connection is
//   served through an AuthorityRepair, which sees every byte (those read so far first).
// - Otherwise every header block of the connection (that one included) is decoded (HPACK,
//   mirroring the client's dynamic table) and encoded again without the dynamic table,
//   with `:authority: localhost` (what current grpc-go sends for a unix socket). The
//   authority means nothing on a unix socket.
//
// Frames other than HEADERS and CONTINUATION pass unchanged; the server-to-client
// direction is never touched.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import hpack from 'hpack.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_CONTINUATION = 0x9;
const FRAME_SETTINGS = 0x4;
const FLAG_ACK = 0x1;
/** The server connection preface: a SETTINGS frame with no parameters (RFC 9113 §3.4). */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
/** Bytes a client may send before its first request and ACK; past this it gets the JS path. */
const PEEK_LIMIT = 64 * 1024;
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
 *
 * Not a stream.Duplex but the few members Node's HTTP/2 server uses on a connection that
 * is not a native socket (it wraps it in its JSStreamSocket, which needs pause/resume,
 * write/cork/uncork/end/destroy and the data/end/error/close events): each chunk goes
 * from the socket to the server and back without a second stream's buffering between,
 * which cost ~20% of berthd's CPU time per call (measured with bench/polled-calls).
 */
export class AuthorityRepair extends EventEmitter {
  private mode: Mode = 'first-block';
  private readonly reader = new FrameReader();
  private readonly decoder = new HeaderBlockDecoder();
  /** What JSStreamSocket checks before taking each chunk (bytes, never objects). */
  readonly _readableState = { objectMode: false };

  /** A SETTINGS ACK the server never asked for is still to come (acceptConnection's preface). */
  private dropSettingsAck: boolean;

  /**
   * `replay`: bytes already read from the socket (from its first byte on); `dropSettingsAck`:
   * the client's first SETTINGS ACK answers acceptConnection's preface, not the server's.
   */
  constructor(
    private readonly socket: Socket,
    options: { replay?: Buffer; dropSettingsAck?: boolean } = {},
  ) {
    super();
    this.dropSettingsAck = options.dropSettingsAck ?? false;
    const take = (chunk: Buffer) => {
      const bytes = this.mode === 'verbatim' && !this.dropSettingsAck ? chunk : this.repair(chunk);
      if (bytes.length > 0) this.emit('data', bytes);
    };
    // The replayed bytes go out once the server listens (it wraps this object first).
    if (options.replay?.length) process.nextTick(take, options.replay);
    socket.on('data', take);
    socket.on('end', () => this.emit('end'));
    socket.on('error', (err) => this.emit('error', err));
    socket.on('close', () => this.emit('close'));
  }

  /** True once the connection's client turned out to need its authority rewritten. */
  get rewriting(): boolean {
    return this.mode === 'rewrite';
  }

  get readable(): boolean {
    return this.socket.readable;
  }

  get writable(): boolean {
    return this.socket.writable;
  }

  get destroyed(): boolean {
    return this.socket.destroyed;
  }

  pause(): this {
    this.socket.pause();
    return this;
  }

  resume(): this {
    this.socket.resume();
    return this;
  }

  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean {
    return this.socket.write(chunk, callback);
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  end(callback?: () => void): this {
    this.socket.end(callback);
    return this;
  }

  destroy(error?: Error): this {
    this.socket.destroy(error);
    return this;
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
      if (this.dropSettingsAck && frame.type === FRAME_SETTINGS && frame.flags & FLAG_ACK) {
        this.dropSettingsAck = false;
        continue;
      }
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
}

/**
 * Takes a new client connection: sends the server preface, reads up to the client's
 * first request, then hands the connection to `serve` as the socket itself (the bytes
 * read put back) or, for a client whose authority needs repair, as an AuthorityRepair.
 */
export function acceptConnection(socket: Socket, serve: (connection: Socket | AuthorityRepair) => void): void {
  const reader = new FrameReader();
  const decoder = new HeaderBlockDecoder();
  const kept: Buffer[] = [];
  let ackSeen = false;
  let firstBlock: 'accepted' | 'repair' | undefined;
  let read = 0;
  const detach = () => {
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
  };
  const onEnd = () => socket.destroy();
  const onData = (chunk: Buffer) => {
    read += chunk.length;
    let parsed;
    try {
      parsed = reader.push(chunk);
    } catch {
      firstBlock = 'repair';
      parsed = { frames: [] };
    }
    if (parsed.preface) kept.push(parsed.preface);
    for (const frame of parsed.frames) {
      if (!ackSeen && frame.type === FRAME_SETTINGS && frame.flags & FLAG_ACK) {
        // The first ACK can only be for the preface above: the server has sent nothing yet.
        ackSeen = true;
        continue;
      }
      kept.push(frame.raw);
      if (firstBlock === undefined && (frame.type === FRAME_HEADERS || frame.type === FRAME_CONTINUATION)) {
        try {
          const complete = decoder.take(frame);
          if (complete) firstBlock = authorityAccepted(complete.fields.find((field) => field.name === ':authority')?.value ?? '') ? 'accepted' : 'repair';
        } catch {
          firstBlock = 'repair';
        }
      }
    }
    const bytes = Buffer.concat([...kept, reader.rest()]);
    if (firstBlock === 'accepted' && ackSeen) {
      detach();
      socket.unshift(bytes);
      serve(socket);
    } else if (firstBlock === 'repair' || read > PEEK_LIMIT) {
      detach();
      serve(new AuthorityRepair(socket, { replay: bytes, dropSettingsAck: !ackSeen }));
    }
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.write(EMPTY_SETTINGS);
}
