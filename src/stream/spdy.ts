// SPDY/3.1 as Kubernetes uses it (k8s.io/apimachinery httpstream/spdy over
// moby/spdystream): one TCP connection, upgraded from HTTP/1.1, carrying bidirectional
// streams opened with SYN_STREAM and answered with SYN_REPLY. Header blocks are zlib
// streams (one per direction per connection) primed with SPDY/3's dictionary.
//
// Flow control: each stream starts with a 64 KiB send window. spdystream (the Go side
// of every kubelet, containerd and CRI-O stream) never sends WINDOW_UPDATE, so a sender
// that waited for one would stall; berth therefore only holds data back once the peer
// has shown that it does flow control (a SETTINGS INITIAL_WINDOW_SIZE or any
// WINDOW_UPDATE). berth itself announces its window (a client at once; the server
// once the client has spoken) and acknowledges what its readers consumed, so a
// flow-controlling peer (berth's own client) never overruns a slow reader. A peer that
// ignores windows (spdystream) is held back by TCP instead: once a stream holds a
// window's worth of data its reader has not taken, the session stops reading the
// connection until the reader catches up (every stream of the connection waits then).
import { Duplex } from 'node:stream';
import { EventEmitter } from 'node:events';

/** What a session runs over: a TCP socket, or any byte stream (a WebSocket tunnel). */
export type SpdyTransport = Duplex & { setNoDelay?(noDelay?: boolean): unknown };
import * as zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './spdy-dictionary.js';

export const SPDY_VERSION = 3;
export const enum FrameType {
  SynStream = 1,
  SynReply = 2,
  RstStream = 3,
  Settings = 4,
  Ping = 6,
  GoAway = 7,
  Headers = 8,
  WindowUpdate = 9,
}
export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;
export const SETTINGS_INITIAL_WINDOW_SIZE = 7;
export const RST_PROTOCOL_ERROR = 1;
export const RST_CANCEL = 5;
export const RST_FLOW_CONTROL_ERROR = 7;
const DEFAULT_WINDOW = 64 * 1024;
const MAX_DATA_FRAME = 32 * 1024;
const MAX_FRAME = 16 * 1024 * 1024;

export type SpdyHeaders = Record<string, string>;

export type Frame =
  | { kind: 'data'; streamId: number; flags: number; data: Buffer }
  | { kind: 'control'; type: number; flags: number; payload: Buffer };

/** Splits a byte stream into SPDY frames. Feed it chunks; it returns whole frames. */
export class FrameReader {
  #buffer: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    const frames: Frame[] = [];
    while (this.#buffer.length >= 8) {
      const length = this.#buffer.readUIntBE(5, 3);
      if (length > MAX_FRAME) throw new Error(`SPDY frame of ${length} bytes is too large`);
      if (this.#buffer.length < 8 + length) break;
      const first = this.#buffer.readUInt32BE(0);
      const flags = this.#buffer[4]!;
      const payload = this.#buffer.subarray(8, 8 + length);
      if (first & 0x80000000) {
        const version = (first >>> 16) & 0x7fff;
        if (version !== SPDY_VERSION) throw new Error(`unsupported SPDY version ${version}`);
        frames.push({ kind: 'control', type: first & 0xffff, flags, payload });
      } else {
        frames.push({ kind: 'data', streamId: first & 0x7fffffff, flags, data: payload });
      }
      this.#buffer = this.#buffer.subarray(8 + length);
    }
    return frames;
  }
}

export function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE((0x8000 | SPDY_VERSION) * 0x10000 + type, 0);
  head[4] = flags;
  head.writeUIntBE(payload.length, 5, 3);
  return Buffer.concat([head, payload]);
}

export function dataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head[4] = flags;
  head.writeUIntBE(data.length, 5, 3);
  return Buffer.concat([head, data]);
}

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}

/** The uncompressed name/value block: a count, then length-prefixed names and values. */
export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const parts: Buffer[] = [u32(Object.keys(headers).length)];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(value, 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const headers: SpdyHeaders = {};
  let offset = 0;
  const read = (): string => {
    const length = block.readUInt32BE(offset);
    offset += 4;
    if (offset + length > block.length) throw new Error('SPDY header block is truncated');
    const text = block.toString('utf8', offset, offset + length);
    offset += length;
    return text;
  };
  const count = block.readUInt32BE(0);
  offset = 4;
  for (let i = 0; i < count; i++) {
    const name = read().toLowerCase();
    const value = read();
    // Several values of one name are NUL-separated; the streaming protocols use one.
    headers[name] = headers[name] === undefined ? value : `${headers[name]}\0${value}`;
  }
  return headers;
}

function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < data.length; i++) {
    a = (a + data[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * The sending half of a connection's header compression: one zlib stream that starts
 * with a header naming the SPDY dictionary and carries each header block as a stored
 * (uncompressed) deflate block followed by the empty stored block of a sync flush.
 * Header blocks here are a few dozen bytes: compressing them would save nothing.
 */
export class HeaderCompressor {
  #started = false;

  compress(block: Buffer): Buffer {
    const parts: Buffer[] = [];
    if (!this.#started) {
      this.#started = true;
      // CMF 0x78 (deflate, 32K window), FLG with FDICT and the check bits, DICTID.
      const cmf = 0x78;
      let flg = 0x20 | (2 << 6);
      flg += 31 - ((cmf * 256 + flg) % 31);
      parts.push(Buffer.from([cmf, flg]), u32(adler32(SPDY3_DICTIONARY)));
    }
    for (let offset = 0; offset < block.length || offset === 0; offset += 0xffff) {
      const piece = block.subarray(offset, offset + 0xffff);
      const head = Buffer.alloc(5);
      head[0] = 0; // BFINAL 0, BTYPE 00 (stored)
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      parts.push(head, piece);
      if (block.length === 0) break;
    }
    // The empty stored block a sync flush ends with: Go's inflater hands out a block's
    // data only when the next block begins, so without it the data waits.
    parts.push(Buffer.from([0, 0, 0, 0xff, 0xff]));
    return Buffer.concat(parts);
  }
}

/**
 * The receiving half: one inflater for the connection's whole life. Each block is
 * written and sync-flushed; what the flush produced is read back. Callers await blocks
 * one at a time (the session handles frames strictly in order).
 */
export class HeaderDecompressor {
  readonly #inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  #failure: Error | undefined;

  constructor() {
    this.#inflate.on('error', (err) => (this.#failure = err));
  }

  decompress(block: Buffer): Promise<Buffer> {
    if (block.length === 0) return Promise.resolve(block);
    return new Promise((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#inflate.write(block);
      this.#inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.#failure) return reject(this.#failure);
        const parts: Buffer[] = [];
        for (let chunk = this.#inflate.read() as Buffer | null; chunk !== null; chunk = this.#inflate.read() as Buffer | null) parts.push(chunk);
        resolve(Buffer.concat(parts));
      });
    });
  }

  close(): void {
    this.#inflate.destroy();
  }
}

/** One SPDY stream as a Node duplex: reads are the peer's data, writes become DATA frames. */
export class SpdyStream extends Duplex {
  replied = false;
  #sendWindow: number;
  #unacked = 0;
  #holding = false;
  #waiting: (() => void) | undefined;
  #remoteFinished = false;
  #localFinished = false;
  #peerReset = false;

  constructor(
    readonly session: SpdySession,
    readonly id: number,
    readonly headers: SpdyHeaders,
    sendWindow: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: DEFAULT_WINDOW });
    this.#sendWindow = sendWindow;
  }

  /** The server's answer to a SYN_STREAM; streams are usable once replied. */
  reply(headers: SpdyHeaders = {}, fin = false): void {
    if (this.replied) return;
    this.replied = true;
    this.session.sendControl(FrameType.SynReply, fin ? FLAG_FIN : 0, Buffer.concat([u32(this.id), this.session.compressHeaders(headers)]));
  }

  /** Ends the stream abruptly (RST_STREAM). */
  reset(status = RST_CANCEL): void {
    if (this.destroyed) return;
    this.session.sendControl(FrameType.RstStream, 0, u32(this.id, status));
    this.destroy();
  }

  /**
   * The peer is done with this stream (it reset it, or the connection closed). What was
   * received stays readable and the stream is destroyed once its reader has taken it:
   * destroying it now would drop data still buffered, e.g. the tail of an exec's output
   * when the peer resets or closes right after sending it (containerd's server does).
   */
  endReceived(peerReset: boolean): void {
    if (peerReset) this.#peerReset = true;
    this.remoteFinish();
    this.windowUpdate(0); // a writer waiting for window room learns the stream is over
    if (this.readableEnded || (this.readableLength === 0 && this.readableFlowing === null)) this.destroy();
    else this.once('end', () => this.destroy());
  }

  override _read(): void {
    if (this.#holding) {
      this.#holding = false;
      this.session.release();
    }
    // Window updates go only to a peer that does flow control itself (berthd does; Go's
    // spdystream, in containerd's and the kubelet's stream servers, does not): one that
    // ignores them may close the connection with them unread, and that close is a TCP
    // reset that discards what this side has received but not yet read.
    if (this.#unacked > 0 && !this.#remoteFinished && this.session.peerFlowControl) {
      this.session.sendControl(FrameType.WindowUpdate, 0, u32(this.id, this.#unacked));
      this.#unacked = 0;
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    void this.#send(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.#localFinished = true;
    if (this.#peerReset) return callback();
    // A FIN after the connection closed has nobody to reach: nothing to report.
    this.session.sendData(this.id, FLAG_FIN, Buffer.alloc(0)).catch(() => undefined);
    this.session.maybeForget(this);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#waiting?.();
    if (this.#holding) {
      this.#holding = false;
      this.session.release();
    }
    this.session.forget(this);
    callback(error);
  }

  async #send(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.destroyed || this.#peerReset) throw new Error('stream reset');
      if (this.session.closed) throw new Error('SPDY connection closed');
      let room = MAX_DATA_FRAME;
      if (this.session.peerFlowControl) {
        if (this.#sendWindow <= 0) {
          await new Promise<void>((resolve) => (this.#waiting = resolve));
          this.#waiting = undefined;
          continue;
        }
        room = Math.min(room, this.#sendWindow);
      }
      const piece = chunk.subarray(offset, offset + room);
      this.#sendWindow -= piece.length;
      offset += piece.length;
      await this.session.sendData(this.id, 0, piece);
    }
  }

  /** Called by the session. */
  receive(data: Buffer, fin: boolean): void {
    if (data.length > 0 && !this.destroyed) {
      this.#unacked += data.length;
      // A window's worth not yet read: a peer without flow control is held back by TCP.
      if (!this.push(data) && !this.session.peerFlowControl && !this.#holding) {
        this.#holding = true;
        this.session.hold();
      }
    }
    if (fin) this.remoteFinish();
  }

  remoteFinish(): void {
    if (this.#remoteFinished) return;
    this.#remoteFinished = true;
    this.push(null);
    this.session.maybeForget(this);
  }

  windowUpdate(delta: number): void {
    this.#sendWindow += delta;
    this.#waiting?.();
  }

  get finished(): boolean {
    return this.#remoteFinished && this.#localFinished;
  }
}

export interface SpdySessionEvents {
  stream: [SpdyStream];
  close: [];
  error: [Error];
}

/**
 * One SPDY connection. The server side receives streams ('stream' event; reply to
 * accept them); the client side opens them with openStream.
 */
export class SpdySession extends EventEmitter<SpdySessionEvents> {
  readonly #reader = new FrameReader();
  readonly #compressor = new HeaderCompressor();
  readonly #decompressor = new HeaderDecompressor();
  readonly #streams = new Map<number, SpdyStream>();
  readonly #pendingReplies = new Map<number, { resolve: (s: SpdyStream) => void; reject: (e: Error) => void }>();
  #nextStreamId: number;
  #initialSendWindow = DEFAULT_WINDOW;
  #closed = false;
  #goneAway = false;
  #lastPeerStream = 0;
  #queue: Promise<void> = Promise.resolve();
  peerFlowControl = false;
  #held = 0;
  #queued = 0;
  #queueHeld = false;
  #announced = false;

  constructor(
    readonly socket: SpdyTransport,
    readonly role: 'server' | 'client',
    head?: Buffer,
  ) {
    super();
    this.#nextStreamId = role === 'client' ? 1 : 2;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    // Frames already received are handled before the connection counts as closed.
    socket.on('close', () => void this.#queue.then(() => this.#onClose()));
    // A SPDY connection has no half-closed state; the HTTP server's sockets allow one,
    // so the peer's end is taken as the connection's end.
    socket.on('end', () => void this.#queue.then(() => this.destroy()));
    socket.on('error', (err) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    // A client announces its receive window (the default one): that tells the server
    // berth does flow control (it acknowledges what its readers consume). The server
    // side sends nothing before the client speaks: Go clients read the 101 response
    // through a buffer that may swallow bytes sent right behind it.
    if (role === 'client') this.sendControl(FrameType.Settings, 0, Buffer.concat([u32(1), u32(SETTINGS_INITIAL_WINDOW_SIZE & 0xffffff, DEFAULT_WINDOW)]));
    if (head && head.length > 0) this.#onData(head);
  }

  get closed(): boolean {
    return this.#closed;
  }

  compressHeaders(headers: SpdyHeaders): Buffer {
    return this.#compressor.compress(encodeHeaderBlock(headers));
  }

  sendControl(type: number, flags: number, payload: Buffer): void {
    if (this.#closed || this.socket.destroyed) return;
    this.socket.write(controlFrame(type, flags, payload));
  }

  /** Writes a DATA frame; resolves when the socket has room for more. */
  sendData(streamId: number, flags: number, data: Buffer): Promise<void> {
    if (this.#closed || this.socket.destroyed) return Promise.reject(new Error('SPDY connection closed'));
    const ok = this.socket.write(dataFrame(streamId, flags, data));
    if (ok) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** A stream's reader is a window behind: stop reading the connection. */
  hold(): void {
    if (this.#held++ === 0) this.socket.pause();
  }

  /** That reader caught up. */
  release(): void {
    if (this.#held > 0 && --this.#held === 0 && !this.#closed) this.socket.resume();
  }

  /** Client: opens a stream and waits for the server's SYN_REPLY. */
  openStream(headers: SpdyHeaders, fin = false): Promise<SpdyStream> {
    if (this.#closed) return Promise.reject(new Error('SPDY connection closed'));
    const id = this.#nextStreamId;
    this.#nextStreamId += 2;
    const stream = new SpdyStream(this, id, headers, this.#initialSendWindow);
    this.#streams.set(id, stream);
    const replied = new Promise<SpdyStream>((resolve, reject) => this.#pendingReplies.set(id, { resolve, reject }));
    // associated-to 0, priority 0, slot 0
    this.sendControl(FrameType.SynStream, fin ? FLAG_FIN : 0, Buffer.concat([u32(id, 0), Buffer.from([0, 0]), this.compressHeaders(headers)]));
    if (fin) void stream.end();
    return replied;
  }

  maybeForget(stream: SpdyStream): void {
    if (stream.finished) this.#streams.delete(stream.id);
  }

  forget(stream: SpdyStream): void {
    this.#streams.delete(stream.id);
  }

  /** Sends GOAWAY and closes the connection once written. */
  close(): void {
    if (this.#closed) return;
    if (!this.#goneAway && !this.socket.destroyed) {
      this.#goneAway = true;
      this.socket.write(controlFrame(FrameType.GoAway, 0, u32(this.#lastPeerStream, 0)));
    }
    this.socket.end();
    this.#onClose();
  }

  destroy(): void {
    this.socket.destroy();
    this.#onClose();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#decompressor.close();
    for (const pending of this.#pendingReplies.values()) pending.reject(new Error('SPDY connection closed'));
    this.#pendingReplies.clear();
    for (const stream of this.#streams.values()) stream.endReceived(false);
    this.#streams.clear();
    this.emit('close');
  }

  #onData(chunk: Buffer): void {
    if (!this.#announced && this.role === 'server') {
      // The client has spoken (its buffered read of the 101 is behind it): the server's window.
      this.#announced = true;
      this.sendControl(FrameType.Settings, 0, Buffer.concat([u32(1), u32(SETTINGS_INITIAL_WINDOW_SIZE & 0xffffff, DEFAULT_WINDOW)]));
    }
    let frames: Frame[];
    try {
      frames = this.#reader.push(chunk);
    } catch (err) {
      this.#fail(err as Error);
      return;
    }
    // Header blocks share one zlib stream: frames are handled strictly in order. Frames
    // wait behind a header block's inflate; past a window of them, reading stops too.
    for (const frame of frames) {
      const size = frame.kind === 'data' ? frame.data.length : frame.payload.length;
      this.#queued += size;
      this.#queue = this.#queue
        .then(() => (this.#closed ? undefined : this.#handle(frame)))
        .catch((err: Error) => this.#fail(err))
        .finally(() => {
          this.#queued -= size;
          if (this.#queueHeld && this.#queued < DEFAULT_WINDOW) {
            this.#queueHeld = false;
            this.release();
          }
        });
    }
    if (!this.#queueHeld && this.#queued > DEFAULT_WINDOW) {
      this.#queueHeld = true;
      this.hold();
    }
  }

  #fail(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.destroy();
  }

  async #handle(frame: Frame): Promise<void> {
    if (frame.kind === 'data') {
      const stream = this.#streams.get(frame.streamId);
      if (!stream) return;
      stream.receive(frame.data, (frame.flags & FLAG_FIN) !== 0);
      return;
    }
    const p = frame.payload;
    switch (frame.type) {
      case FrameType.SynStream: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(await this.#decompressor.decompress(p.subarray(10)));
        if (this.#goneAway || id <= this.#lastPeerStream || id % 2 === this.#nextStreamId % 2) {
          this.sendControl(FrameType.RstStream, 0, u32(id, RST_PROTOCOL_ERROR));
          return;
        }
        this.#lastPeerStream = id;
        const stream = new SpdyStream(this, id, headers, this.#initialSendWindow);
        this.#streams.set(id, stream);
        if (frame.flags & FLAG_UNIDIRECTIONAL) void stream.end();
        if (frame.flags & FLAG_FIN) stream.remoteFinish();
        this.emit('stream', stream);
        return;
      }
      case FrameType.SynReply: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        await this.#decompressor.decompress(p.subarray(4));
        const stream = this.#streams.get(id);
        const pending = this.#pendingReplies.get(id);
        this.#pendingReplies.delete(id);
        if (!stream) return;
        stream.replied = true;
        if (frame.flags & FLAG_FIN) stream.remoteFinish();
        pending?.resolve(stream);
        return;
      }
      case FrameType.Headers: {
        await this.#decompressor.decompress(p.subarray(4));
        const stream = this.#streams.get(p.readUInt32BE(0) & 0x7fffffff);
        if (stream && frame.flags & FLAG_FIN) stream.remoteFinish();
        return;
      }
      case FrameType.RstStream: {
        const id = p.readUInt32BE(0) & 0x7fffffff;
        const stream = this.#streams.get(id);
        const pending = this.#pendingReplies.get(id);
        this.#pendingReplies.delete(id);
        pending?.reject(new Error(`stream ${id} was reset (status ${p.readUInt32BE(4)})`));
        stream?.endReceived(true);
        return;
      }
      case FrameType.Settings: {
        const count = p.readUInt32BE(0);
        for (let i = 0; i < count; i++) {
          const id = p.readUInt32BE(4 + i * 8) & 0xffffff;
          const value = p.readUInt32BE(8 + i * 8);
          if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
            const delta = value - this.#initialSendWindow;
            this.#initialSendWindow = value;
            this.peerFlowControl = true;
            for (const stream of this.#streams.values()) stream.windowUpdate(delta);
          }
        }
        return;
      }
      case FrameType.WindowUpdate: {
        this.peerFlowControl = true;
        const stream = this.#streams.get(p.readUInt32BE(0) & 0x7fffffff);
        stream?.windowUpdate(p.readUInt32BE(4) & 0x7fffffff);
        return;
      }
      case FrameType.Ping: {
        // Answer the peer's pings (their ids have the peer's parity).
        const id = p.readUInt32BE(0);
        if (id % 2 !== this.#nextStreamId % 2) this.sendControl(FrameType.Ping, 0, p);
        return;
      }
      case FrameType.GoAway:
        this.#goneAway = true;
        return;
      default:
        return; // unknown control frames are ignored, as SPDY/3 says
    }
  }
}
