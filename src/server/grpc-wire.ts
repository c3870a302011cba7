// The gRPC-over-HTTP/2 wire format, once, for berth's own server and client: the
// length-prefixed message frames, the status codes, grpc-timeout and the
// percent-encoded grpc-message trailer (PROTOCOL-HTTP2.md in grpc/grpc).
import type { DescMethod } from '@bufbuild/protobuf';

/** gRPC status codes, numbered as on the wire. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

const STATUS_NAMES: readonly string[] = Object.keys(GrpcStatus);

/** The status code's name as in the gRPC spec ("NOT_FOUND"); undefined for a code outside it. */
export function grpcStatusName(code: number): string | undefined {
  return STATUS_NAMES[code];
}

/** A method's HTTP/2 :path, "/package.Service/Method". */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Bytes of the frame header: a compressed flag and a big-endian length. */
export const FRAME_HEADER_BYTES = 5;

/** A message's gRPC frame header: not compressed (berth sends identity only), then its length. */
export function frameHeader(length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header[0] = 0;
  header.writeUInt32BE(length, 1);
  return header;
}

/** One message as a gRPC frame (never compressed: berth sends identity only). */
export function frameMessage(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, FRAME_HEADER_BYTES);
  return frame;
}

/** Why a peer's frames cannot be read; the caller answers with `status`. */
export class FrameError extends Error {
  constructor(
    readonly status: GrpcStatusCode,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Splits a stream of DATA chunks into whole messages. Chunks may cut a frame anywhere;
 * a frame longer than `maxMessageBytes` or one marked compressed is refused, since
 * berth never announces a compression it would accept.
 */
export class MessageDeframer {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** The messages completed by this chunk, in order. */
  push(chunk: Buffer): Buffer[] {
    if (this.pendingBytes === 0 && chunk.length >= FRAME_HEADER_BYTES) {
      // The common case, one whole frame per chunk, without copying.
      const length = this.headerLength(chunk);
      if (chunk.length === FRAME_HEADER_BYTES + length) return [chunk.subarray(FRAME_HEADER_BYTES)];
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    const messages: Buffer[] = [];
    while (this.pendingBytes >= FRAME_HEADER_BYTES) {
      const buffered = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
      const length = this.headerLength(buffered);
      if (buffered.length < FRAME_HEADER_BYTES + length) {
        this.pending = [buffered];
        break;
      }
      messages.push(buffered.subarray(FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + length));
      const rest = buffered.subarray(FRAME_HEADER_BYTES + length);
      this.pending = rest.length > 0 ? [rest] : [];
      this.pendingBytes = rest.length;
    }
    return messages;
  }

  /** True when a frame was begun and not finished (a truncated message at end of stream). */
  get hasPartialFrame(): boolean {
    return this.pendingBytes > 0;
  }

  private headerLength(buffered: Buffer): number {
    if (buffered[0] !== 0) {
      throw new FrameError(GrpcStatus.UNIMPLEMENTED, 'compressed gRPC messages are not supported: send grpc-encoding identity');
    }
    const length = buffered.readUInt32BE(1);
    if (length > this.maxMessageBytes) {
      throw new FrameError(
        GrpcStatus.RESOURCE_EXHAUSTED,
        `received message larger than max (${length} vs. ${this.maxMessageBytes})`,
      );
    }
    return length;
  }
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** A grpc-timeout header ("100m", "5S"…) in milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  // 1-8 ASCII digits and a unit (every call carries one: read without a regex's match array).
  if (!value || value.length < 2 || value.length > 9) return undefined;
  const unit = TIMEOUT_UNIT_MS[value[value.length - 1]!];
  if (unit === undefined) return undefined;
  let digits = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return undefined;
    digits = digits * 10 + d;
  }
  return digits * unit;
}

/** Milliseconds as a grpc-timeout header: at most 8 digits, in the finest unit that fits. */
export function formatGrpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  if (whole < 1e8) return `${whole}m`;
  const seconds = Math.ceil(whole / 1000);
  if (seconds < 1e8) return `${seconds}S`;
  return `${Math.min(99_999_999, Math.ceil(seconds / 3600))}H`;
}

/** grpc-message's percent-encoding: bytes outside printable ASCII, and '%', as %XX of UTF-8. */
export function encodeGrpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The text of a grpc-message trailer; a malformed escape is kept as it came. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value[i] === '%' ? value.slice(i + 1, i + 3) : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(value[i]!, 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
