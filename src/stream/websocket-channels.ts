// The Kubernetes WebSocket channel protocols (k8s.io/apimachinery httpstream/wsstream
// and KEP-3396) over one `ws` WebSocket, for both ends of a connection:
//
// - binary protocols (`channel.k8s.io`, `v4.channel.k8s.io`, `v5.channel.k8s.io`, and no
//   subprotocol at all): every message is a binary frame whose first byte is the channel
//   number, the rest its data;
// - base64 protocols (`base64.channel.k8s.io`, `v4.base64.channel.k8s.io`): text frames
//   whose first character is the channel as an ASCII digit, the rest the data in base64;
// - v5 adds a close signal: a message on channel 255 whose one byte of data names the
//   channel the sender has finished writing to (stdin's end, which v4 cannot express).
//
// Each channel is a Node duplex: its readable side is what the peer sent on it, its
// writable side becomes messages. Flow control: a channel whose reader falls behind
// pauses the whole connection (TCP's window then holds the peer back) until it catches
// up; a writer waits while more than HIGH_WATER bytes are queued on the socket.
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

export const CLOSE_CHANNEL = 255;
/** The largest data one message carries (Go's x/net/websocket refuses messages over 32 MiB). */
const MAX_MESSAGE_DATA = 32 * 1024;
const HIGH_WATER = 256 * 1024;

export type ChannelCodec = 'binary' | 'base64';

export interface ChannelProtocol {
  codec: ChannelCodec;
  /** v5: the close signal (channel 255) is understood. */
  closeSignal: boolean;
}

/** What a negotiated subprotocol means on the wire ('' is binary without a version). */
export function channelProtocol(subprotocol: string): ChannelProtocol {
  return {
    codec: subprotocol.includes('base64.') ? 'base64' : 'binary',
    closeSignal: subprotocol === 'v5.channel.k8s.io',
  };
}

/** Encodes one message of a channel. */
export function encodeChannelMessage(codec: ChannelCodec, channel: number, data: Buffer): Buffer | string {
  if (codec === 'base64') return String.fromCharCode(48 + channel) + data.toString('base64');
  const message = Buffer.allocUnsafe(data.length + 1);
  message[0] = channel;
  data.copy(message, 1);
  return message;
}

/** Decodes one message: its channel and data (undefined: empty or malformed). */
export function decodeChannelMessage(codec: ChannelCodec, message: Buffer): { channel: number; data: Buffer } | undefined {
  if (message.length === 0) return undefined;
  if (codec === 'base64') {
    const channel = message[0]! - 48;
    const text = message.subarray(1).toString('latin1');
    if (channel < 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
    return { channel, data: Buffer.from(text, 'base64') };
  }
  return { channel: message[0]!, data: message.subarray(1) };
}

export interface ChannelOptions {
  /** Sends the v5 close signal when the writable side ends (a client's stdin). */
  signalClose?: boolean;
  /** Data the peer sends first on this channel and that is not the channel's (port-forward's port). */
  skipPrefix?: number;
}

/** One channel of a ChannelConnection. */
export class WsChannel extends Duplex {
  #blocked = false;
  #remoteEnded = false;
  #skip: number;

  constructor(
    private readonly connection: ChannelConnection,
    readonly channel: number,
    private readonly options: ChannelOptions,
  ) {
    super({ allowHalfOpen: true });
    this.#skip = options.skipPrefix ?? 0;
  }

  override _read(): void {
    if (this.#blocked) {
      this.#blocked = false;
      this.connection.unblock();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.connection.send(this.channel, chunk).then(
      () => callback(),
      () => callback(),
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.options.signalClose && this.connection.protocol.closeSignal) {
      this.connection.sendRaw(CLOSE_CHANNEL, Buffer.from([this.channel])).then(() => callback(), () => callback());
      return;
    }
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#blocked) {
      this.#blocked = false;
      this.connection.unblock();
    }
    callback(error);
  }

  /** Called by the connection with the channel's data. */
  receive(data: Buffer): void {
    if (this.#remoteEnded || this.destroyed) return;
    if (this.#skip > 0) {
      const skipped = Math.min(this.#skip, data.length);
      this.#skip -= skipped;
      data = data.subarray(skipped);
    }
    if (data.length === 0) return;
    if (!this.push(data) && !this.#blocked) {
      this.#blocked = true;
      this.connection.block();
    }
  }

  /** The peer has finished writing to this channel (close signal or the connection's end). */
  remoteEnd(): void {
    if (this.#remoteEnded) return;
    this.#remoteEnded = true;
    if (!this.destroyed) this.push(null);
  }
}

/**
 * A WebSocket carrying numbered channels. Channels not created are ignored (their
 * messages dropped), as wsstream does for channels a request did not ask for.
 */
export class ChannelConnection {
  readonly #channels = new Map<number, WsChannel>();
  readonly closed: Promise<void>;
  #blockers = 0;
  #isClosed = false;

  constructor(
    readonly ws: WebSocket,
    readonly protocol: ChannelProtocol,
  ) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer | Buffer[] | ArrayBuffer) => this.#onMessage(Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)));
    ws.on('error', () => undefined);
    if (ws.isPaused) ws.resume();
    this.closed = new Promise((resolve) => {
      ws.once('close', () => {
        this.#isClosed = true;
        // What was received stays readable (destroying would drop it); what is written
        // from now on is dropped (the session's abort signal ends whoever writes).
        for (const channel of this.#channels.values()) channel.remoteEnd();
        resolve();
      });
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  channel(number: number, options: ChannelOptions = {}): WsChannel {
    let channel = this.#channels.get(number);
    if (!channel) {
      channel = new WsChannel(this, number, options);
      channel.on('error', () => undefined);
      this.#channels.set(number, channel);
      if (this.#isClosed) channel.remoteEnd();
    }
    return channel;
  }

  /** Sends data on a channel in messages of at most MAX_MESSAGE_DATA; resolves when the socket can take more. */
  async send(channel: number, data: Buffer): Promise<void> {
    for (let offset = 0; offset < data.length || (offset === 0 && data.length === 0); offset += MAX_MESSAGE_DATA) {
      await this.sendRaw(channel, data.subarray(offset, offset + MAX_MESSAGE_DATA));
      if (data.length === 0) break;
    }
  }

  /** Sends one message; waits for it to be written only while the socket's queue is long. */
  sendRaw(channel: number, data: Buffer): Promise<void> {
    if (this.#isClosed || this.ws.readyState !== this.ws.OPEN) return Promise.reject(new Error('WebSocket connection closed'));
    const message = encodeChannelMessage(this.protocol.codec, channel, data);
    return new Promise((resolve, reject) => {
      let settled = false;
      this.ws.send(message, { binary: typeof message !== 'string' }, (err) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      });
      if (!settled && this.ws.bufferedAmount < HIGH_WATER) {
        settled = true;
        resolve();
      }
    });
  }

  /** Closes the connection (1000, normal closure: the peer's readers see their end). */
  close(code = 1000, reason = ''): void {
    if (this.#isClosed) return;
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
    // A peer that never answers the close frame is not waited for long.
    const timer = setTimeout(() => this.ws.terminate(), 5000);
    timer.unref();
  }

  terminate(): void {
    this.ws.terminate();
  }

  block(): void {
    if (this.#blockers++ === 0) this.ws.pause();
  }

  unblock(): void {
    if (--this.#blockers === 0) this.ws.resume();
  }

  #onMessage(message: Buffer): void {
    const decoded = decodeChannelMessage(this.protocol.codec, message);
    if (!decoded) return;
    if (decoded.channel === CLOSE_CHANNEL && this.protocol.closeSignal) {
      const target = decoded.data[0];
      if (target !== undefined) this.#channels.get(target)?.remoteEnd();
      return;
    }
    this.#channels.get(decoded.channel)?.receive(decoded.data);
  }
}
