// One server-side HTTP/2 connection (RFC 9113, "prior knowledge" h2c as gRPC clients
// speak it on a unix socket), lean enough that a unary call costs a frame parse, one
// HPACK decode and one socket write of HEADERS+DATA+trailers: the connection preface,
// SETTINGS and their ACK, PING ACK, flow control both ways (the peer's windows are
// respected and waited for; WINDOW_UPDATE is sent as request data is consumed),
// CONTINUATION, padding and priority, RST_STREAM both ways, max concurrent streams,
// GOAWAY (graceful: streams in flight finish) and protocol errors as GOAWAY with their
// code. What a stream means is the listener's (grpc-server.ts).
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE,
  ConnectionError,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  encodeFrame,
  Flag,
  FRAME_HEADER_BYTES,
  FrameReader,
  FrameType,
  H2Error,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW,
  Setting,
  writeFrameHeader,
  type H2ErrorCode,
} from './h2-frames.js';
import { HpackDecoder, HpackError, type HeaderField } from './hpack.js';

/** What a stream's owner hears from the peer. */
export interface StreamListener {
  /** Request data, in order. */
  data(chunk: Buffer): void;
  /** The peer's END_STREAM. */
  end(): void;
  /** The stream ended before the server finished it: RST_STREAM from the peer, or the connection went. */
  abort(): void;
}

export interface H2ConnectionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS announced; streams beyond get REFUSED_STREAM. */
  maxConcurrentStreams: number;
  /** A new stream: its request headers. Set `stream.listener` to hear the rest. */
  onStream(stream: H2Stream, headers: HeaderField[]): void;
  /** The connection is gone (socket closed). */
  onClose(): void;
}

/** The stream window announced (SETTINGS_INITIAL_WINDOW_SIZE) and the connection's. */
const STREAM_WINDOW = 1024 * 1024;
const CONNECTION_WINDOW = 4 * 1024 * 1024;
/** The largest header block taken (with its CONTINUATIONs) before ENHANCE_YOUR_CALM. */
const MAX_HEADER_BLOCK = 1024 * 1024;

const SERVER_PREFACE = (maxConcurrentStreams: number): Buffer => {
  const settings = Buffer.allocUnsafe(12);
  settings.writeUInt16BE(Setting.MAX_CONCURRENT_STREAMS, 0);
  settings.writeUInt32BE(maxConcurrentStreams, 2);
  settings.writeUInt16BE(Setting.INITIAL_WINDOW_SIZE, 6);
  settings.writeUInt32BE(STREAM_WINDOW, 8);
  const increment = Buffer.allocUnsafe(4);
  increment.writeUInt32BE(CONNECTION_WINDOW - DEFAULT_WINDOW, 0);
  return Buffer.concat([encodeFrame(FrameType.SETTINGS, 0, 0, settings), encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, increment)]);
};
const SETTINGS_ACK = encodeFrame(FrameType.SETTINGS, Flag.ACK, 0);

/** One stream of a connection, as its server side writes it. */
export class H2Stream {
  listener: StreamListener | undefined;
  /** Called when data written earlier has all gone to the socket (see write). */
  onDrain: (() => void) | undefined;
  headersSent = false;
  /** END_STREAM (or RST_STREAM) sent: nothing more goes out. */
  localEnded = false;
  remoteEnded = false;
  sendWindow: number;
  /** What the peer may still send, and what it sent that was not yet given back by WINDOW_UPDATE. */
  recvWindow = STREAM_WINDOW;
  recvUnacked = 0;
  /** Data waiting for window, then trailers to send after it. */
  queue: Buffer[] = [];
  queuedTrailers: Buffer | undefined;

  constructor(
    readonly id: number,
    private readonly connection: H2Connection,
  ) {
    this.sendWindow = connection.peerInitialWindow;
  }

  /** Response headers; with `endStream`, the whole answer (trailers-only). */
  respond(block: Buffer, endStream: boolean): void {
    if (this.localEnded || this.headersSent) return;
    this.headersSent = true;
    this.connection.write(this.connection.headerFrames(this.id, block, endStream));
    if (endStream) this.connection.endedLocally(this);
  }

  /**
   * A unary answer in one write when the windows allow: headers, the DATA frames (their
   * payloads the parts, back to back and cut at the peer's frame size: one copy of a
   * message into the write, none to prefix or join it), trailers. Otherwise the data waits
   * for window as `write`'s does.
   */
  reply(headers: Buffer, parts: readonly Uint8Array[], trailers: Buffer): void {
    if (this.localEnded || this.headersSent) return;
    const connection = this.connection;
    let length = 0;
    for (const part of parts) length += part.length;
    const maxFrame = connection.peerMaxFrameSize;
    if (length > Math.min(this.sendWindow, connection.sendWindow) || headers.length > maxFrame || trailers.length > maxFrame) {
      this.respond(headers, false);
      this.write(Buffer.concat(parts, length));
      return this.end(trailers);
    }
    this.headersSent = true;
    this.sendWindow -= length;
    connection.sendWindow -= length;
    const dataFrames = Math.max(1, Math.ceil(length / maxFrame));
    const dataAt = FRAME_HEADER_BYTES + headers.length;
    const trailersAt = dataAt + dataFrames * FRAME_HEADER_BYTES + length;
    const out = Buffer.allocUnsafe(trailersAt + FRAME_HEADER_BYTES + trailers.length);
    writeFrameHeader(out, 0, headers.length, FrameType.HEADERS, Flag.END_HEADERS, this.id);
    out.set(headers, FRAME_HEADER_BYTES);
    let at = dataAt;
    let left = length;
    // Room left in the DATA frame being filled; a frame header is written as each begins.
    let room = 0;
    if (length === 0) {
      writeFrameHeader(out, at, 0, FrameType.DATA, 0, this.id);
      at += FRAME_HEADER_BYTES;
    }
    for (const part of parts) {
      for (let from = 0; from < part.length; ) {
        if (room === 0) {
          room = Math.min(maxFrame, left);
          writeFrameHeader(out, at, room, FrameType.DATA, 0, this.id);
          at += FRAME_HEADER_BYTES;
        }
        const n = Math.min(room, part.length - from);
        out.set(n === part.length ? part : part.subarray(from, from + n), at);
        at += n;
        from += n;
        room -= n;
        left -= n;
      }
    }
    writeFrameHeader(out, trailersAt, trailers.length, FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM, this.id);
    out.set(trailers, trailersAt + FRAME_HEADER_BYTES);
    connection.write(out);
    connection.endedLocally(this);
  }

  /**
   * Response data (after respond). True when it has all gone to the socket and the socket
   * takes more; false when it waits for the peer's window or the socket to drain, and
   * `onDrain` is called once both have happened.
   */
  write(data: Buffer): boolean {
    if (this.localEnded) return true;
    this.queue.push(data);
    this.connection.flush(this);
    return this.queue.length === 0 && !this.connection.congested;
  }

  /** Trailers, after the data written so far. */
  end(trailers: Buffer): void {
    if (this.localEnded || this.queuedTrailers) return;
    this.queuedTrailers = trailers;
    this.connection.flush(this);
  }

  /** Ends the stream with RST_STREAM. */
  reset(code: H2ErrorCode): void {
    if (this.localEnded) return;
    this.connection.resetStream(this, code);
  }
}

function dataFrame(streamId: number, data: Buffer, endStream: boolean): Buffer {
  return encodeFrame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, data);
}

export class H2Connection {
  /** The peer's settings that shape what is sent. */
  peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  /** Connection-level windows: what may be sent, and what the peer may still send. */
  sendWindow = DEFAULT_WINDOW;
  private recvWindow = CONNECTION_WINDOW;
  private recvUnacked = 0;

  private readonly streams = new Map<number, H2Stream>();
  /** Streams with data waiting for connection window, oldest first. */
  private readonly blocked = new Set<H2Stream>();
  /** Streams whose writer waits for onDrain. */
  private readonly waiting = new Set<H2Stream>();
  private readonly reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE);
  private readonly decoder = new HpackDecoder();
  private preface: Buffer | undefined = Buffer.alloc(0);
  private sawSettings = false;
  private lastStreamId = 0;
  /** A header block being received: its stream, flags and fragments. */
  private continuation: { streamId: number; flags: number; fragments: Buffer[]; bytes: number } | undefined;
  private goingAway = false;
  /** The socket was ended by this side (the check is a flag: Duplex's getters cost per call). */
  private ended = false;
  private dead = false;
  private readonly isDead = () => this.dead;

  constructor(
    private readonly socket: Duplex,
    private readonly options: H2ConnectionOptions,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => this.drained());
    socket.on('error', () => undefined);
    socket.once('close', () => this.closed());
    // The peer's end ends this side too (a server socket is not half-open).
    socket.once('end', () => (this.ended = true));
    this.write(SERVER_PREFACE(options.maxConcurrentStreams));
  }

  /** True while the socket holds more than it wants (its writer should wait for 'drain'). */
  get congested(): boolean {
    return (this.socket as { writableNeedDrain?: boolean }).writableNeedDrain === true;
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  /**
   * Graceful close: GOAWAY with the last stream taken; streams in flight finish, then the
   * connection ends. New streams are refused.
   */
  goAway(): void {
    if (this.goingAway || this.dead) return;
    this.goingAway = true;
    this.write(goAwayFrame(this.lastStreamId, H2Error.NO_ERROR, ''));
    this.closeIfIdle();
  }

  /** Ends the connection now; its open streams are aborted. */
  destroy(): void {
    this.socket.destroy();
  }

  write(bytes: Buffer): void {
    if (!this.dead && !this.ended) this.socket.write(bytes);
  }

  /** A header block as HEADERS (and CONTINUATION frames when over the peer's frame size). */
  headerFrames(streamId: number, block: Buffer, endStream: boolean): Buffer {
    const max = this.peerMaxFrameSize;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (block.length <= max) return encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | endFlag, streamId, block);
    const frames: Buffer[] = [];
    for (let at = 0; at < block.length; at += max) {
      const last = at + max >= block.length;
      const type = at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
      frames.push(encodeFrame(type, (last ? Flag.END_HEADERS : 0) | (at === 0 ? endFlag : 0), streamId, block.subarray(at, at + max)));
    }
    return Buffer.concat(frames);
  }

  /** Sends what the windows allow of a stream's queue, then its trailers once the queue is empty. */
  flush(stream: H2Stream): void {
    if (this.dead || stream.localEnded) return;
    const frames: Buffer[] = [];
    while (stream.queue.length > 0) {
      const room = Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (room <= 0) break;
      const head = stream.queue[0]!;
      const part = head.length <= room ? head : head.subarray(0, room);
      if (part === head) stream.queue.shift();
      else stream.queue[0] = head.subarray(room);
      stream.sendWindow -= part.length;
      this.sendWindow -= part.length;
      frames.push(dataFrame(stream.id, part, false));
    }
    if (stream.queue.length > 0) {
      if (this.sendWindow <= 0) this.blocked.add(stream);
    } else {
      this.blocked.delete(stream);
    }
    const trailers = stream.queue.length === 0 ? stream.queuedTrailers : undefined;
    if (trailers) frames.push(this.headerFrames(stream.id, trailers, true));
    if (frames.length > 0) this.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
    if (trailers) this.endedLocally(stream);
    else if (stream.queue.length > 0 || this.congested) this.waiting.add(stream);
    else if (this.waiting.delete(stream)) stream.onDrain?.();
  }

  resetStream(stream: H2Stream, code: H2ErrorCode): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.write(encodeFrame(FrameType.RST_STREAM, 0, stream.id, payload));
    stream.localEnded = true;
    stream.remoteEnded = true;
    this.forget(stream);
  }

  /** The server sent END_STREAM: a peer still sending is told to stop (as grpc-go does). */
  endedLocally(stream: H2Stream): void {
    stream.localEnded = true;
    if (stream.queue.length > 0) stream.queue = [];
    if (!stream.remoteEnded) return this.resetStream(stream, H2Error.NO_ERROR);
    this.forget(stream);
  }

  private forget(stream: H2Stream): void {
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.waiting.delete(stream);
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (this.goingAway && this.streams.size === 0 && !this.dead) this.endSocket();
  }

  private endSocket(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.end();
  }

  private receive(chunk: Buffer): void {
    if (this.dead) return;
    const socket = this.socket as Duplex & { cork?: () => void; uncork?: () => void };
    socket.cork?.();
    try {
      if (this.preface) {
        const seen = Buffer.concat([this.preface, chunk]);
        const compared = Math.min(seen.length, CLIENT_PREFACE.length);
        if (!seen.subarray(0, compared).equals(CLIENT_PREFACE.subarray(0, compared))) {
          throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the client connection preface is missing');
        }
        if (seen.length < CLIENT_PREFACE.length) {
          this.preface = seen;
          return;
        }
        this.preface = undefined;
        chunk = seen.subarray(CLIENT_PREFACE.length);
      }
      this.reader.push(chunk, (type, flags, streamId, payload) => this.frame(type, flags, streamId, payload), this.isDead);
    } catch (err) {
      if (err instanceof ConnectionError) this.fail(err.code, err.message);
      else this.fail(H2Error.INTERNAL_ERROR, (err as Error).message);
    } finally {
      socket.uncork?.();
    }
  }

  /** A connection error: GOAWAY with its code, then the connection ends. */
  private fail(code: H2ErrorCode, message: string): void {
    if (this.dead) return;
    this.write(goAwayFrame(this.lastStreamId, code, message));
    this.endSocket();
    this.closed();
  }

  private frame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (!this.sawSettings && type !== FrameType.SETTINGS) {
      throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'the client preface did not start with SETTINGS');
    }
    if (this.continuation && type !== FrameType.CONTINUATION) {
      throw new ConnectionError(H2Error.PROTOCOL_ERROR, `a frame of type ${type} inside a header block`);
    }
    switch (type) {
      case FrameType.DATA:
        return this.onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.onHeaders(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.onContinuation(flags, streamId, payload);
      case FrameType.PRIORITY:
        if (streamId === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a PRIORITY frame not of 5 octets');
        return;
      case FrameType.RST_STREAM:
        return this.onReset(streamId, payload);
      case FrameType.SETTINGS:
        return this.onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      case FrameType.PING:
        if (streamId !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a PING not of 8 octets');
        if ((flags & Flag.ACK) === 0) this.write(encodeFrame(FrameType.PING, Flag.ACK, 0, payload));
        return;
      case FrameType.GOAWAY:
        if (streamId !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'GOAWAY on a stream');
        // The client opens no more streams; those open finish.
        this.goingAway = true;
        return this.closeIfIdle();
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(streamId, payload);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  private onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      if (payload.length !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a SETTINGS payload not a multiple of 6 octets');
    this.sawSettings = true;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE ${value}`);
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'a stream window over 2^31-1');
        }
      } else if (id === Setting.MAX_FRAME_SIZE) {
        if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value}`);
        this.peerMaxFrameSize = value;
      } else if (id === Setting.ENABLE_PUSH) {
        if (value > 1) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH ${value}`);
      }
      // HEADER_TABLE_SIZE: berth's encoder uses no dynamic table; the others bind a client.
    }
    this.write(SETTINGS_ACK);
    for (const stream of this.streams.values()) if (stream.queue.length > 0 || stream.queuedTrailers) this.flush(stream);
  }

  private onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a WINDOW_UPDATE not of 4 octets');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a WINDOW_UPDATE of 0');
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'the connection window over 2^31-1');
      for (const stream of [...this.blocked]) this.flush(stream);
      return;
    }
    const stream = this.streams.get(streamId);
    if (!stream) {
      if (streamId > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
      return;
    }
    if (increment === 0) return stream.reset(H2Error.PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return stream.reset(H2Error.FLOW_CONTROL_ERROR);
    if (stream.queue.length > 0 || stream.queuedTrailers) this.flush(stream);
  }

  private onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a RST_STREAM not of 4 octets');
    if (streamId > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
    const stream = this.streams.get(streamId);
    if (!stream) return;
    stream.localEnded = true;
    stream.remoteEnded = true;
    this.forget(stream);
    stream.listener?.abort();
  }

  private onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    // Flow control counts the whole payload, padding included.
    const length = payload.length;
    if (length > this.recvWindow) throw new ConnectionError(H2Error.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.recvWindow -= length;
    this.recvUnacked += length;
    const data = unpad(flags, payload);
    const stream = this.streams.get(streamId);
    if (!stream || stream.remoteEnded) {
      if (streamId > this.lastStreamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      // A stream already closed (reset, or answered): its data is dropped. DATA after the
      // peer's END_STREAM is a stream error (STREAM_CLOSED).
      this.giveBack(undefined);
      if (stream) {
        stream.reset(H2Error.STREAM_CLOSED);
        stream.listener?.abort();
      }
      return;
    }
    if (length > stream.recvWindow) return void (stream.reset(H2Error.FLOW_CONTROL_ERROR), stream.listener?.abort(), this.giveBack(undefined));
    stream.recvWindow -= length;
    stream.recvUnacked += length;
    const end = (flags & Flag.END_STREAM) !== 0;
    if (end) stream.remoteEnded = true;
    // Request data is taken at once (the call holds at most its size limit): its window is given back now.
    this.giveBack(end ? undefined : stream);
    if (data.length > 0) stream.listener?.data(data);
    if (end) this.remoteEnd(stream);
  }

  /** WINDOW_UPDATE for what was consumed, once it is half the window (connection, and stream when given). */
  private giveBack(stream: H2Stream | undefined): void {
    let frames: Buffer | undefined;
    if (this.recvUnacked >= CONNECTION_WINDOW / 2) {
      frames = windowUpdate(0, this.recvUnacked);
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    if (stream && stream.recvUnacked >= STREAM_WINDOW / 2) {
      const update = windowUpdate(stream.id, stream.recvUnacked);
      frames = frames ? Buffer.concat([frames, update]) : update;
      stream.recvWindow += stream.recvUnacked;
      stream.recvUnacked = 0;
    }
    if (frames) this.write(frames);
  }

  private remoteEnd(stream: H2Stream): void {
    if (stream.localEnded) this.forget(stream);
    stream.listener?.end();
  }

  private onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let fragment = unpad(flags, payload);
    if (flags & Flag.PRIORITY) {
      if (fragment.length < 5) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a HEADERS frame too short for its priority');
      if ((fragment.readUInt32BE(0) & 0x7fffffff) === streamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a stream depends on itself');
      fragment = fragment.subarray(5);
    }
    if (flags & Flag.END_HEADERS) return this.headerBlock(streamId, flags, fragment);
    this.continuation = { streamId, flags, fragments: [fragment], bytes: fragment.length };
  }

  private onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const pending = this.continuation;
    if (!pending || pending.streamId !== streamId) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'a CONTINUATION frame out of place');
    pending.fragments.push(payload);
    pending.bytes += payload.length;
    if (pending.bytes > MAX_HEADER_BLOCK) throw new ConnectionError(H2Error.ENHANCE_YOUR_CALM, `a header block over ${MAX_HEADER_BLOCK} octets`);
    if ((flags & Flag.END_HEADERS) === 0) return;
    this.continuation = undefined;
    this.headerBlock(streamId, pending.flags, Buffer.concat(pending.fragments, pending.bytes));
  }

  private headerBlock(streamId: number, flags: number, block: Buffer): void {
    let headers: HeaderField[];
    try {
      // Decoded always: the dynamic table must follow every block, refused streams' too.
      headers = this.decoder.decode(block);
    } catch (err) {
      if (err instanceof HpackError) throw new ConnectionError(H2Error.COMPRESSION_ERROR, err.message);
      throw err;
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    const existing = this.streams.get(streamId);
    if (existing) {
      // Trailers from the client: they must end the stream.
      if (!endStream || existing.remoteEnded) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `a second header block on stream ${streamId} without END_STREAM`);
      existing.remoteEnded = true;
      return this.remoteEnd(existing);
    }
    if (streamId <= this.lastStreamId) {
      throw new ConnectionError(H2Error.STREAM_CLOSED, `HEADERS on closed stream ${streamId}`);
    }
    if (streamId % 2 === 0) throw new ConnectionError(H2Error.PROTOCOL_ERROR, `a client stream with even id ${streamId}`);
    this.lastStreamId = streamId;
    const stream = new H2Stream(streamId, this);
    if (this.goingAway) {
      // After GOAWAY, a stream past the last one announced is not taken (the client retries it).
      return this.resetStream(stream, H2Error.REFUSED_STREAM);
    }
    if (this.streams.size >= this.options.maxConcurrentStreams) return this.resetStream(stream, H2Error.REFUSED_STREAM);
    this.streams.set(streamId, stream);
    stream.remoteEnded = endStream;
    this.options.onStream(stream, headers);
    if (endStream && this.streams.has(streamId)) stream.listener?.end();
  }

  private drained(): void {
    for (const stream of [...this.waiting]) this.flush(stream);
  }

  private closed(): void {
    if (this.dead) return;
    this.dead = true;
    const open = [...this.streams.values()];
    this.streams.clear();
    this.blocked.clear();
    this.waiting.clear();
    for (const stream of open) {
      if (stream.localEnded) continue;
      stream.localEnded = true;
      stream.listener?.abort();
    }
    this.options.onClose();
  }
}

function unpad(flags: number, payload: Buffer): Buffer {
  if ((flags & Flag.PADDED) === 0) return payload;
  if (payload.length < 1) throw new ConnectionError(H2Error.FRAME_SIZE_ERROR, 'a padded frame without its pad length');
  const padding = payload[0]!;
  if (padding >= payload.length) throw new ConnectionError(H2Error.PROTOCOL_ERROR, 'padding as long as the frame');
  return payload.subarray(1, payload.length - padding);
}

function windowUpdate(streamId: number, increment: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(increment, 0);
  return encodeFrame(FrameType.WINDOW_UPDATE, 0, streamId, payload);
}

function goAwayFrame(lastStreamId: number, code: H2ErrorCode, message: string): Buffer {
  const debug = Buffer.from(message, 'utf8');
  const payload = Buffer.allocUnsafe(8 + debug.length);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  debug.copy(payload, 8);
  return encodeFrame(FrameType.GOAWAY, 0, 0, payload);
}
