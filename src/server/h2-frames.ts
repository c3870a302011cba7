// HTTP/2 framing (RFC 9113 §4, §6) for berth's server transport: the frame types, flags,
// error codes and settings it uses, the 9-octet frame header, and a reader that cuts a
// connection's bytes into whole frames.

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const H2Error = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;
export type H2ErrorCode = (typeof H2Error)[keyof typeof H2Error];

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** The client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;
/** The smallest SETTINGS_MAX_FRAME_SIZE, the default, and what berth's server announces. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
export const MAX_FRAME_SIZE_LIMIT = 2 ** 24 - 1;
export const DEFAULT_WINDOW = 65535;
export const MAX_WINDOW = 2 ** 31 - 1;

/** A breach of the protocol that ends the connection with GOAWAY and this code. */
export class ConnectionError extends Error {
  constructor(
    readonly code: H2ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Writes a frame header at `offset`. */
export function writeFrameHeader(out: Buffer, offset: number, length: number, type: number, flags: number, streamId: number): void {
  out[offset] = length >>> 16;
  out[offset + 1] = (length >>> 8) & 0xff;
  out[offset + 2] = length & 0xff;
  out[offset + 3] = type;
  out[offset + 4] = flags;
  out.writeUInt32BE(streamId, offset + 5);
}

/** One frame with its payload. */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  writeFrameHeader(out, 0, length, type, flags, streamId);
  if (payload) out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export type FrameVisitor = (type: number, flags: number, streamId: number, payload: Buffer) => void;

/**
 * Cuts bytes into frames, however the chunks fall. A frame longer than `maxPayload` (the
 * SETTINGS_MAX_FRAME_SIZE announced) is a FRAME_SIZE_ERROR.
 */
export class FrameReader {
  // A frame begun and not finished: its chunks so far, and the octets it needs in all.
  private chunks: Buffer[] = [];
  private buffered = 0;
  private needed = 0;

  constructor(private readonly maxPayload: number) {}

  /** Visits each frame completed by this chunk; stops early when `stopped()` turns true. */
  push(chunk: Buffer, visit: FrameVisitor, stopped: () => boolean): void {
    let buffer = chunk;
    if (this.buffered > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered < this.needed) return;
      buffer = Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
    }
    let pos = 0;
    let needed = FRAME_HEADER_BYTES;
    while (buffer.length - pos >= FRAME_HEADER_BYTES) {
      const length = (buffer[pos]! << 16) | (buffer[pos + 1]! << 8) | buffer[pos + 2]!;
      if (length > this.maxPayload) {
        throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, `a frame of ${length} octets, over the ${this.maxPayload} announced`);
      }
      const end = pos + FRAME_HEADER_BYTES + length;
      if (end > buffer.length) {
        needed = FRAME_HEADER_BYTES + length;
        break;
      }
      const type = buffer[pos + 3]!;
      const flags = buffer[pos + 4]!;
      const streamId = buffer.readUInt32BE(pos + 5) & 0x7fffffff;
      visit(type, flags, streamId, buffer.subarray(pos + FRAME_HEADER_BYTES, end));
      pos = end;
      if (stopped()) return;
    }
    if (pos < buffer.length) {
      this.chunks = [buffer.subarray(pos)];
      this.buffered = buffer.length - pos;
      this.needed = needed;
    }
  }
}
