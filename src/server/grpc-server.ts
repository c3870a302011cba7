// berth's own gRPC server, on berth's own HTTP/2 transport (h2-connection.ts: grpc-js'
// server, then node:http2's JS layer, cost 1.5-2× containerd's CPU per polled
// call: bench/polled-calls). It speaks what grpc-go clients
// (the kubelet, crictl, critest, csi-sanity) expect of a server: unary and
// server-streaming calls, grpc-timeout as a deadline, cancellation by RST_STREAM, status
// in trailers (trailers-only for an early error), grpc-go's wording for unknown services
// and methods, HTTP 415 for a non-gRPC content type, and a graceful shutdown (GOAWAY,
// in-flight calls finish, then the connections end). The wire format is grpc-wire.ts's;
// what a call does is the method implementation's (rpc-wrapper.ts builds them).
import type { Duplex } from 'node:stream';
import { resourceExhausted } from '../errors.js';
import {
  encodeGrpcMessage,
  FrameError,
  frameHeader,
  frameMessage,
  GrpcStatus,
  MessageDeframer,
  parseGrpcTimeout,
  type GrpcStatusCode,
} from './grpc-wire.js';
import { H2Connection, type H2Stream, type StreamListener } from './h2-connection.js';
import { encodeHeaderBlock, type HeaderField } from './hpack.js';

/** Why a call ended before its implementation answered. */
export type CancelReason = 'cancelled' | 'deadline';

/** One call, as a method implementation sees it. */
export interface ServerCall {
  /** The client's deadline (grpc-timeout), when it sent one. */
  readonly deadline: Date | undefined;
  /**
   * Set by the implementation: called once if the call ends before it finished (the
   * client reset the stream or left, or the deadline passed).
   */
  onCancel: ((reason: CancelReason) => void) | undefined;
  /**
   * Sends one response message (the response headers first). Resolves at once while the
   * transport has room, else when it drains or the call ends. Throws ResourceExhausted
   * for a message over the send limit. Ignored once the call has ended.
   */
  send(message: Uint8Array): Promise<void>;
  /**
   * A unary call's answer: its one message and OK, in one go (headers, DATA with
   * END_STREAM, trailers). Throws ResourceExhausted as send does; ignored once the call has ended.
   */
  reply(message: Uint8Array): void;
  /** Ends the call with its status (trailers-only when nothing was sent); later calls are ignored. */
  finish(code: GrpcStatusCode, message?: string): void;
}

/** What runs a method: given the request's one message and the call. */
export interface MethodImplementation {
  handle(request: Buffer, call: ServerCall): void;
}

/** A service as the server routes to it. */
export interface ServiceImplementation {
  /** The fully qualified name, e.g. runtime.v1.RuntimeService. */
  readonly name: string;
  /** By the method's name as on the wire (e.g. PodSandboxStatus). */
  readonly methods: ReadonlyMap<string, MethodImplementation>;
}

export interface GrpcServerOptions {
  /** Largest request message accepted (default 4 MiB, as grpc-go's). */
  maxReceiveMessageBytes?: number;
  /** Largest response message sent (default 64 MiB). */
  maxSendMessageBytes?: number;
  /** Streams a connection may have open at once (default 1000); more are refused. */
  maxConcurrentStreams?: number;
}

const GRPC_CONTENT_TYPE = 'application/grpc';
const READY = Promise.resolve();
// The header blocks every call sends, encoded once.
const RESPONSE_HEADERS = encodeHeaderBlock([
  [':status', '200'],
  ['content-type', GRPC_CONTENT_TYPE],
]);
const OK_TRAILERS = encodeHeaderBlock([['grpc-status', '0']]);
/** application/grpc, alone or with a +subtype or ;parameters (grpc-go's grpcutil.ContentSubtype). */
const isGrpcContentType = (value: string | undefined): boolean =>
  value !== undefined && value.startsWith(GRPC_CONTENT_TYPE) && (value.length === GRPC_CONTENT_TYPE.length || '+;'.includes(value[GRPC_CONTENT_TYPE.length]!));

/** The status as a header block: trailers, or with `httpStatus` a whole trailers-only answer. */
function statusBlock(code: GrpcStatusCode, message: string | undefined, httpStatus?: number): Buffer {
  if (code === GrpcStatus.OK && !message && httpStatus === undefined) return OK_TRAILERS;
  const fields: HeaderField[] = [];
  if (httpStatus !== undefined) fields.push([':status', String(httpStatus)], ['content-type', GRPC_CONTENT_TYPE]);
  fields.push(['grpc-status', String(code)]);
  if (message) fields.push(['grpc-message', encodeGrpcMessage(message)]);
  return encodeHeaderBlock(fields);
}

/** Data of a stream already answered (an early error): read and dropped. */
const DROP: StreamListener = { data: () => undefined, end: () => undefined, abort: () => undefined };

export class GrpcServer {
  private readonly services = new Map<string, ServiceImplementation>();
  /** Every method by its whole :path ("/package.Service/Method"): a call is routed by one lookup. */
  private readonly routes = new Map<string, MethodImplementation>();
  private readonly connections = new Map<H2Connection, Promise<void>>();
  private readonly maxReceive: number;
  private readonly maxSend: number;
  private readonly maxStreams: number;
  private closing = false;

  constructor(options: GrpcServerOptions = {}) {
    this.maxReceive = options.maxReceiveMessageBytes ?? 4 * 1024 * 1024;
    this.maxSend = options.maxSendMessageBytes ?? 64 * 1024 * 1024;
    this.maxStreams = options.maxConcurrentStreams ?? 1000;
  }

  addService(service: ServiceImplementation): void {
    if (this.services.has(service.name)) throw new Error(`service ${service.name} is served twice`);
    this.services.set(service.name, service);
    for (const [name, implementation] of service.methods) this.routes.set(`/${service.name}/${name}`, implementation);
  }

  /** Serves an accepted connection (a socket, or any duplex stream of a client's bytes). */
  injectConnection(socket: Duplex): void {
    if (this.closing) return void socket.destroy();
    let closed!: () => void;
    const done = new Promise<void>((resolve) => (closed = resolve));
    const connection: H2Connection = new H2Connection(socket, {
      maxConcurrentStreams: this.maxStreams,
      onStream: (stream, headers) => this.dispatch(stream, headers),
      onClose: () => {
        this.connections.delete(connection);
        closed();
      },
    });
    this.connections.set(connection, done);
  }

  /**
   * Stops taking calls: every connection gets GOAWAY, calls in flight finish, then the
   * connections end; those still open after `graceMs` are reset.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.closing = true;
    const open = [...this.connections];
    for (const [connection] of open) connection.goAway();
    const force = setTimeout(() => {
      for (const [connection] of open) connection.destroy();
    }, graceMs);
    await Promise.all(open.map(([, done]) => done));
    clearTimeout(force);
  }

  private dispatch(stream: H2Stream, headers: HeaderField[]): void {
    let method: string | undefined;
    let path = '';
    let contentType: string | undefined;
    let timeoutHeader: string | undefined;
    for (const [name, value] of headers) {
      if (name === ':path') path = value;
      else if (name === ':method') method = value;
      else if (name === 'content-type') contentType = value;
      else if (name === 'grpc-timeout') timeoutHeader = value;
    }
    // The checks, in grpc-go's order (http2_server.go operateHeaders, server.go handleStream).
    if (!isGrpcContentType(contentType)) {
      return earlyAbort(stream, 415, GrpcStatus.INVALID_ARGUMENT, `invalid gRPC request content-type "${contentType ?? ''}"`);
    }
    const timeoutMs = parseGrpcTimeout(timeoutHeader);
    if (timeoutHeader !== undefined && timeoutMs === undefined) {
      return earlyAbort(stream, 400, GrpcStatus.INTERNAL, `malformed grpc-timeout: "${timeoutHeader}"`);
    }
    if (method !== 'POST') {
      return earlyAbort(stream, 405, GrpcStatus.INTERNAL, `Received a HEADERS frame with :method "${method ?? ''}" which should be POST`);
    }
    const implementation = this.routes.get(path);
    if (!implementation) return this.unrouted(stream, path);
    stream.listener = new H2Call(stream, timeoutMs, this.maxSend, this.maxReceive, implementation, path);
  }

  /** A :path that names no method served: grpc-go's answers. */
  private unrouted(stream: H2Stream, path: string): void {
    const slash = path.lastIndexOf('/');
    if (slash <= 0 || path[0] !== '/') {
      return earlyAbort(stream, 200, GrpcStatus.UNIMPLEMENTED, `malformed method name: "${path}"`);
    }
    const serviceName = path.slice(1, slash);
    const methodName = path.slice(slash + 1);
    const service = this.services.get(serviceName);
    const why = service ? `unknown method ${methodName} for service ${serviceName}` : `unknown service ${serviceName}`;
    earlyAbort(stream, 200, GrpcStatus.UNIMPLEMENTED, why);
  }
}

/** A status before any call began, in one HEADERS frame, as grpc-go's writeEarlyAbort. */
function earlyAbort(stream: H2Stream, httpStatus: number, code: GrpcStatusCode, message: string): void {
  stream.listener = DROP;
  stream.respond(statusBlock(code, message, httpStatus), true);
}

/** One call: what its implementation sees (ServerCall), and what hears its stream (the request, the client's reset). */
class H2Call implements ServerCall, StreamListener {
  readonly deadline: Date | undefined;
  onCancel: ((reason: CancelReason) => void) | undefined = undefined;
  private finished = false;
  private timer: NodeJS.Timeout | undefined;
  /** Senders waiting for the stream to drain (made with the first). */
  private waiting: (() => void)[] | undefined;
  private readonly deframer: MessageDeframer;
  private request: Buffer | undefined;
  private extra = false;

  constructor(
    private readonly stream: H2Stream,
    timeoutMs: number | undefined,
    private readonly maxSend: number,
    maxReceive: number,
    private readonly implementation: MethodImplementation,
    private readonly path: string,
  ) {
    this.deframer = new MessageDeframer(maxReceive);
    if (timeoutMs !== undefined) {
      this.deadline = new Date(Date.now() + timeoutMs);
      this.timer = setTimeout(() => this.expire(), Math.min(timeoutMs, 2 ** 31 - 1)).unref();
    }
  }

  /** Request data. */
  data(chunk: Buffer): void {
    if (this.finished) return;
    try {
      for (const message of this.deframer.push(chunk)) {
        if (this.request === undefined) this.request = message;
        else this.extra = true;
      }
    } catch (err) {
      const { status, message } = err as FrameError;
      this.finish(status, `grpc: ${message}`);
    }
  }

  /** The request is complete: the call runs. */
  end(): void {
    // The deadline may have passed, or the call failed, while the request came in.
    if (this.finished) return;
    const { request, deframer } = this;
    if (request === undefined || this.extra || deframer.hasPartialFrame) {
      const why = deframer.hasPartialFrame ? 'the request ended inside a message' : request === undefined ? 'no request message' : 'too many request messages';
      return this.finish(GrpcStatus.INTERNAL, `grpc: ${why} for ${this.path}`);
    }
    this.request = undefined;
    this.implementation.handle(request, this);
  }

  /** The client reset the stream or left. */
  abort(): void {
    if (this.finished) return this.release();
    this.settle();
    this.onCancel?.('cancelled');
  }

  reply(message: Uint8Array): void {
    if (this.finished) return;
    this.checkSize(message);
    if (this.stream.headersSent) {
      void this.send(message);
      return this.finish(GrpcStatus.OK);
    }
    this.settle();
    this.stream.reply(RESPONSE_HEADERS, [frameHeader(message.length), message], OK_TRAILERS);
  }

  send(message: Uint8Array): Promise<void> {
    if (this.finished) return READY;
    this.checkSize(message);
    const stream = this.stream;
    if (!stream.headersSent) stream.respond(RESPONSE_HEADERS, false);
    if (stream.write(frameMessage(message))) return READY;
    stream.onDrain ??= () => this.release();
    return new Promise((resolve) => (this.waiting ??= []).push(resolve));
  }

  finish(code: GrpcStatusCode, message?: string): void {
    if (this.finished) return;
    this.settle();
    const stream = this.stream;
    if (stream.localEnded) return;
    if (stream.headersSent) stream.end(statusBlock(code, message));
    // Trailers-only: one HEADERS frame with the status.
    else stream.respond(statusBlock(code, message, 200), true);
  }

  private release(): void {
    const waiting = this.waiting;
    if (!waiting) return;
    this.waiting = undefined;
    for (const resolve of waiting) resolve();
  }

  private checkSize(message: Uint8Array): void {
    if (message.length > this.maxSend) {
      throw resourceExhausted(`grpc: trying to send message larger than max (${message.length} vs. ${this.maxSend})`);
    }
  }

  private expire(): void {
    this.timer = undefined;
    if (this.finished) return;
    this.finish(GrpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded');
    this.onCancel?.('deadline');
  }

  private settle(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.release();
  }
}
