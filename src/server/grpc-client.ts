// berth's gRPC client, on node:http2 directly (no grpc-js): typed promise-based clients
// for protobuf-es service descriptors, used by berthctl, the tests and the benches, and
// spoken to berthd and to grpc-go runtimes (containerd) alike. The wire format is
// grpc-wire.ts's. node:http2 and node:net are loaded at the first call, not when this
// module loads, so that berthctl's start-up (and a V8 startup snapshot of it) does not
// pay for them.
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders, IncomingHttpStatusHeader } from 'node:http2';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import {
  decodeGrpcMessage,
  formatGrpcTimeout,
  frameMessage,
  FrameError,
  grpcStatusName,
  GrpcStatus,
  methodPath,
  MessageDeframer,
  type GrpcStatusCode,
} from './grpc-wire.js';

/** The largest message a call accepts (CRI lists on a busy node can be large). */
export const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface CallOptions {
  /** Milliseconds before the call is abandoned; none means no deadline. */
  timeoutMs?: number;
}

/** A failed call: `code` and `details` as grpc-js's ServiceError had them. */
export class GrpcCallError extends Error {
  constructor(
    readonly code: GrpcStatusCode,
    readonly details: string,
    /** The response's trailers (or trailers-only headers), when the server sent any. */
    readonly metadata: Record<string, string> = {},
  ) {
    super(`${code} ${grpcStatusName(code) ?? 'UNKNOWN'}: ${details}`);
    this.name = 'GrpcCallError';
  }
}

/** A server-streaming call's messages; `cancel()` ends the call (RST_STREAM CANCEL). */
export interface ServerStream<T> extends AsyncIterable<T> {
  cancel(): void;
}

type Input<M> = M extends { input: infer I extends DescMessage } ? I : never;
type Output<M> = M extends { output: infer O extends DescMessage } ? O : never;
type UnaryCall<M> = (request: MessageInitShape<Input<M>>, options?: CallOptions) => Promise<MessageShape<Output<M>>>;
type StreamCall<M> = (request: MessageInitShape<Input<M>>, options?: CallOptions) => ServerStream<MessageShape<Output<M>>>;

/** A promise-based client for every method of a service. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? UnaryCall<T[K]>
    : T[K]['methodKind'] extends 'server_streaming'
      ? StreamCall<T[K]>
      : never;
} & { close(): void };

/** The method table of a generated service (type only: grpc-service.ts is not loaded). */
export type { MethodsOf } from './grpc-service.js';

/** The service's client over a channel (which several services may share). */
export function serviceClient<T extends GenServiceMethods>(service: GenService<T>, channel: Channel): ServiceClient<T> {
  const client: Record<string, unknown> = { close: () => channel.close() };
  for (const method of Object.values(service.method) as DescMethod[]) {
    const path = methodPath(method);
    const encode = (request: MessageInitShape<DescMessage>) => toBinary(method.input, create(method.input, request));
    const decode = (bytes: Uint8Array) => fromBinary(method.output, bytes);
    if (method.methodKind === 'unary') {
      client[method.localName] = (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
        unaryCall(channel, path, encode(request), decode, options);
    } else if (method.methodKind === 'server_streaming') {
      client[method.localName] = (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
        new MessageStream(channel, path, encode(request), decode, options);
    }
  }
  return client as ServiceClient<T>;
}

/** A channel to a gRPC endpoint such as unix:///run/berth/berth.sock (or a bare socket path). */
export function openChannel(endpoint: string): Channel {
  return new Channel(endpoint);
}

/** Where a channel connects: crictl's endpoints, unix sockets only. */
export function socketPath(endpoint: string): string {
  if (endpoint.startsWith('unix://')) {
    const path = endpoint.slice('unix://'.length);
    if (path !== '') return path;
  } else if (endpoint.startsWith('unix:')) {
    if (endpoint.length > 'unix:'.length) return endpoint.slice('unix:'.length);
  } else if (endpoint.startsWith('/')) {
    return endpoint;
  }
  throw new Error(`endpoint "${endpoint}" is not supported: use unix:///path/to/socket`);
}

/** How a call ended. */
interface CallStatus {
  code: GrpcStatusCode;
  details: string;
  metadata?: Record<string, string>;
}

/**
 * One HTTP/2 session per channel, made at the first call and made again after the server
 * sent GOAWAY or the connection closed. It holds the process open only while calls run.
 */
export class Channel {
  private session: ClientHttp2Session | undefined;
  private closed = false;
  /** Calls in flight per session, which holds the process open while there are any. */
  private readonly active = new WeakMap<ClientHttp2Session, number>();
  readonly path: string;

  constructor(readonly endpoint: string) {
    this.path = socketPath(endpoint);
  }

  /** Ends the channel: calls in flight finish, new ones fail. */
  close(): void {
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    if (!session) return;
    if ((this.active.get(session) ?? 0) === 0) session.destroy();
    else session.close();
  }

  /** Starts a call's stream, or says why it cannot start. */
  startStream(path: string, timeoutMs: number | undefined): { stream: ClientHttp2Stream; release: () => void } | CallStatus {
    if (this.closed) return { code: GrpcStatus.UNAVAILABLE, details: 'grpc: the client connection is closing' };
    const headers: Record<string, string> = {
      ':method': 'POST',
      ':scheme': 'http',
      // grpc-go sends "localhost" for a unix socket.
      ':authority': 'localhost',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      'user-agent': 'berth-grpc-client',
    };
    if (timeoutMs !== undefined) headers['grpc-timeout'] = formatGrpcTimeout(timeoutMs);
    let stream: ClientHttp2Stream;
    const session = this.connection();
    try {
      stream = session.request(headers, { endStream: false });
    } catch (err) {
      // A session that is going away refuses new streams: the next call makes another.
      if (this.session === session) this.session = undefined;
      return { code: GrpcStatus.UNAVAILABLE, details: connectionErrorDetails(err as Error) };
    }
    const calls = this.active.get(session) ?? 0;
    this.active.set(session, calls + 1);
    if (calls === 0) session.ref();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = this.active.get(session)! - 1;
      this.active.set(session, left);
      if (left > 0 || session.destroyed) return;
      // A closed channel's session goes as its last call ends, whether the peer
      // acknowledges the cancel or not.
      if (this.session !== session) session.destroy();
      else session.unref();
    };
    stream.once('close', release);
    return { stream, release };
  }

  private connection(): ClientHttp2Session {
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const http2 = process.getBuiltinModule('node:http2');
    const net = process.getBuiltinModule('node:net');
    const socket = this.path;
    const session = http2.connect('http://localhost', {
      createConnection: () => net.connect(socket),
      settings: { enablePush: false, initialWindowSize: 4 * 1024 * 1024 },
    });
    session.unref();
    const forget = () => {
      if (this.session === session) this.session = undefined;
    };
    // The error also reaches the streams, which report it; the session is just dropped.
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    session.on('connect', () => session.setLocalWindowSize(16 * 1024 * 1024));
    this.session = session;
    return session;
  }
}

/** The details grpc-go (and so crictl) gives a call that found no connection. */
export function connectionErrorDetails(error: Error): string {
  // A stream that never started carries the socket's error as its cause.
  let err = error as Error & { code?: string; syscall?: string; address?: string };
  while (err.cause instanceof Error && !err.syscall) err = err.cause as typeof err;
  const text = (err.code && ERRNO_TEXT[err.code]) ?? err.code ?? err.message;
  if (err.syscall === 'connect' && err.address) return `connection error: dial unix ${err.address}: connect: ${text}`;
  if (err.syscall) return `connection error: ${err.syscall}: ${text}`;
  return `connection error: ${err.message}`;
}

const ERRNO_TEXT: Record<string, string> = {
  ENOENT: 'no such file or directory',
  ECONNREFUSED: 'connection refused',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTSOCK: 'socket operation on non-socket',
  ECONNRESET: 'connection reset by peer',
  EPIPE: 'broken pipe',
  ETIMEDOUT: 'connection timed out',
};

/** gRPC's mapping of an HTTP status other than 200 to a status code. */
function httpStatusCode(status: number): GrpcStatusCode {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

// RST_STREAM codes (RFC 9113 section 7).
const NGHTTP2_NO_ERROR = 0;
const NGHTTP2_REFUSED_STREAM = 7;
const NGHTTP2_CANCEL = 8;
const NGHTTP2_ENHANCE_YOUR_CALM = 11;
const NGHTTP2_INADEQUATE_SECURITY = 12;

function rstStatus(rstCode: number): CallStatus {
  switch (rstCode) {
    case NGHTTP2_REFUSED_STREAM:
      return { code: GrpcStatus.UNAVAILABLE, details: 'the server refused the stream (REFUSED_STREAM)' };
    case NGHTTP2_CANCEL:
      return { code: GrpcStatus.CANCELLED, details: 'the server cancelled the stream' };
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return { code: GrpcStatus.RESOURCE_EXHAUSTED, details: 'the server reset the stream: ENHANCE_YOUR_CALM' };
    case NGHTTP2_INADEQUATE_SECURITY:
      return { code: GrpcStatus.PERMISSION_DENIED, details: 'the server reset the stream: INADEQUATE_SECURITY' };
    default:
      return { code: GrpcStatus.INTERNAL, details: `stream terminated by RST_STREAM with error code: ${rstCode}` };
  }
}

function metadataOf(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(headers)) {
    if (!key.startsWith(':') && value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

function statusFrom(headers: IncomingHttpHeaders): CallStatus | undefined {
  const raw = headers['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(raw);
  const message = headers['grpc-message'];
  return {
    code: (Number.isInteger(code) && code >= 0 && code <= 16 ? code : GrpcStatus.UNKNOWN) as GrpcStatusCode,
    details: typeof message === 'string' ? decodeGrpcMessage(message) : '',
    metadata: metadataOf(headers),
  };
}

/**
 * One call on the wire: the request sent, response frames handed to `onMessage`, and
 * exactly one `onEnd` with the status (from the trailers, a trailers-only HEADERS frame,
 * RST_STREAM, the connection, or the local deadline or cancel).
 */
class Call {
  private stream: ClientHttp2Stream | undefined;
  private release: () => void = () => undefined;
  private ended = false;
  private timer: NodeJS.Timeout | undefined;
  private status: CallStatus | undefined;
  private streamError: (Error & { code?: string }) | undefined;
  private readonly deframer = new MessageDeframer(MAX_RECEIVE_MESSAGE_BYTES);
  private readonly deadline: number | undefined;
  private answered = false;
  private retried = false;

  constructor(
    private readonly channel: Channel,
    private readonly path: string,
    private readonly request: Uint8Array,
    options: CallOptions,
    private readonly onMessage: (message: Buffer) => void,
    private readonly onEnd: (status: CallStatus) => void,
  ) {
    const timeoutMs = options.timeoutMs && options.timeoutMs > 0 ? options.timeoutMs : undefined;
    if (timeoutMs !== undefined) {
      this.deadline = Date.now() + timeoutMs;
      this.timer = setTimeout(() => this.cancel(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded'), timeoutMs);
    }
    this.start();
  }

  private start(): void {
    const started = this.channel.startStream(this.path, this.deadline === undefined ? undefined : Math.max(1, this.deadline - Date.now()));
    if (!('stream' in started)) {
      queueMicrotask(() => this.end(started));
      return;
    }
    const stream = (this.stream = started.stream);
    this.release = started.release;
    stream.on('response', (headers) => this.onHeaders(headers));
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('trailers', (trailers) => {
      this.status ??= statusFrom(trailers);
    });
    stream.on('error', (err: Error) => {
      this.streamError ??= err;
    });
    stream.on('close', () => this.onClose(stream));
    stream.end(frameMessage(this.request));
  }

  /** Ends the call from this side: RST_STREAM CANCEL, and `code` as its status. */
  cancel(code: GrpcStatusCode, details: string): void {
    if (this.ended) return;
    const stream = this.stream;
    if (stream && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
    this.end({ code, details });
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }

  private onHeaders(headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void {
    this.answered = true;
    const trailersOnly = statusFrom(headers);
    if (trailersOnly) {
      this.status = trailersOnly;
      return;
    }
    const httpStatus = headers[':status'] ?? 0;
    const contentType = headers['content-type'] ?? '';
    if (httpStatus !== 200) {
      this.cancel(httpStatusCode(httpStatus), `unexpected HTTP status code received from server: ${httpStatus}; content-type "${contentType}"`);
    } else if (!contentType.startsWith('application/grpc')) {
      this.cancel(GrpcStatus.UNKNOWN, `transport: received unexpected content-type "${contentType}"`);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    let messages: Buffer[];
    try {
      messages = this.deframer.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.cancel(err.status, `grpc: ${err.message}`);
      return;
    }
    for (const message of messages) {
      if (this.ended) return;
      this.onMessage(message);
    }
  }

  private onClose(stream: ClientHttp2Stream): void {
    if (this.ended || stream !== this.stream) return;
    if (this.status) {
      if (this.status.code === GrpcStatus.OK && this.deframer.hasPartialFrame) {
        this.end({ code: GrpcStatus.INTERNAL, details: 'the server ended the stream in the middle of a message' });
      } else this.end(this.status);
      return;
    }
    if (stream.rstCode === NGHTTP2_REFUSED_STREAM && !this.answered && !this.retried) {
      // The server never saw the call (it refused the stream, or a GOAWAY it sent did
      // not cover it): tried once more, on a new session if that one is going away.
      this.retried = true;
      this.release();
      this.streamError = undefined;
      this.start();
      return;
    }
    const err = this.streamError;
    if (stream.session?.destroyed || stream.session === undefined || err?.code === 'ERR_HTTP2_GOAWAY_SESSION') {
      // The connection failed, closed or went away before the status came.
      this.end({ code: GrpcStatus.UNAVAILABLE, details: err ? connectionErrorDetails(err) : 'error reading from server: EOF' });
    } else if (stream.rstCode !== undefined && stream.rstCode !== NGHTTP2_NO_ERROR) {
      this.end(rstStatus(stream.rstCode));
    } else if (err) {
      this.end({ code: GrpcStatus.INTERNAL, details: err.message });
    } else {
      this.end({ code: GrpcStatus.INTERNAL, details: 'server closed the stream without sending trailers' });
    }
  }

  private end(status: CallStatus): void {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearTimeout(this.timer);
    this.release();
    this.onEnd(status);
  }
}

function callError(status: CallStatus): GrpcCallError {
  return new GrpcCallError(status.code, status.details, status.metadata);
}

function unaryCall<T>(channel: Channel, path: string, request: Uint8Array, decode: (bytes: Uint8Array) => T, options: CallOptions): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let response: Buffer | undefined;
    let count = 0;
    const call: Call = new Call(
      channel,
      path,
      request,
      options,
      (message) => {
        if (++count > 1) call.cancel(GrpcStatus.INTERNAL, 'cardinality violation: expected one response message, received more');
        else response = message;
      },
      (status) => {
        if (status.code !== GrpcStatus.OK) return reject(callError(status));
        if (response === undefined) return reject(callError({ code: GrpcStatus.INTERNAL, details: 'cardinality violation: received no response message', metadata: status.metadata }));
        try {
          resolve(decode(response));
        } catch (err) {
          reject(callError({ code: GrpcStatus.INTERNAL, details: `grpc: failed to unmarshal the response: ${(err as Error).message}` }));
        }
      },
    );
  });
}

/** Messages the consumer has not taken yet before the stream stops reading. */
const STREAM_BUFFER = 16;

/**
 * A server-streaming call, started at once. It is read as an AsyncIterable; the reader
 * stopping early (`break`, `return()`) cancels the call, `cancel()` does too and makes
 * further reads fail CANCELLED, as grpc-js's did. A slow reader holds the server back
 * through HTTP/2 flow control.
 */
class MessageStream<T> implements ServerStream<T>, AsyncIterator<T> {
  private readonly queue: T[] = [];
  private waiter: { resolve: (result: IteratorResult<T>) => void; reject: (err: unknown) => void } | undefined;
  private final: CallStatus | undefined;
  private returned = false;
  private paused = false;
  private readonly call: Call;

  constructor(channel: Channel, path: string, request: Uint8Array, decode: (bytes: Uint8Array) => T, options: CallOptions) {
    this.call = new Call(
      channel,
      path,
      request,
      options,
      (bytes) => {
        let message: T;
        try {
          message = decode(bytes);
        } catch (err) {
          this.call.cancel(GrpcStatus.INTERNAL, `grpc: failed to unmarshal the response: ${(err as Error).message}`);
          return;
        }
        if (this.waiter) {
          const { resolve } = this.waiter;
          this.waiter = undefined;
          resolve({ value: message, done: false });
        } else {
          this.queue.push(message);
          if (this.queue.length >= STREAM_BUFFER && !this.paused) {
            this.paused = true;
            this.call.pause();
          }
        }
      },
      (status) => {
        this.final = status;
        const waiter = this.waiter;
        this.waiter = undefined;
        if (!waiter) return;
        if (status.code === GrpcStatus.OK || this.returned) waiter.resolve({ value: undefined, done: true });
        else waiter.reject(callError(status));
      },
    );
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.queue.length > 0) {
      const value = this.queue.shift()!;
      if (this.paused && this.queue.length < STREAM_BUFFER / 2) {
        this.paused = false;
        this.call.resume();
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.final) {
      if (this.final.code === GrpcStatus.OK || this.returned) return Promise.resolve({ value: undefined, done: true });
      return Promise.reject(callError(this.final));
    }
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<T>> {
    this.returned = true;
    this.queue.length = 0;
    this.call.cancel(GrpcStatus.CANCELLED, 'context canceled');
    return Promise.resolve({ value: undefined, done: true });
  }

  cancel(): void {
    this.call.cancel(GrpcStatus.CANCELLED, 'context canceled');
  }
}
