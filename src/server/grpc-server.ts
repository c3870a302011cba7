// berth's own gRPC server, on node:http2 directly (grpc-js' server cost about twice
// containerd's CPU per polled call: bench/polled-calls). It speaks what grpc-go clients
// (the kubelet, crictl, critest, csi-sanity) expect of a server: unary and
// server-streaming calls, grpc-timeout as a deadline, cancellation by RST_STREAM, status
// in trailers (trailers-only for an early error), grpc-go's wording for unknown services
// and methods, HTTP 415 for a non-gRPC content type, and a graceful shutdown (GOAWAY,
// in-flight calls finish, then the connections end). The wire format is grpc-wire.ts's;
// what a call does is the method implementation's (rpc-wrapper.ts builds them).
import * as http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import { resourceExhausted } from '../errors.js';
import {
  encodeGrpcMessage,
  FrameError,
  frameMessage,
  GrpcStatus,
  MessageDeframer,
  parseGrpcTimeout,
  type GrpcStatusCode,
} from './grpc-wire.js';

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
}

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH } = http2.constants;
const GRPC_CONTENT_TYPE = 'application/grpc';
const READY = Promise.resolve();
const ignore = () => undefined;
const responseHeaders = (): http2.OutgoingHttpHeaders => ({ [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE });
/** A 'wantTrailers' listener (called on the stream) for a call that ended OK. */
function sendOkTrailers(this: http2.ServerHttp2Stream): void {
  try {
    this.sendTrailers({ 'grpc-status': '0' });
  } catch {
    // The stream was reset meanwhile: the client is gone.
  }
}
/** application/grpc, alone or with a +subtype or ;parameters (grpc-go's grpcutil.ContentSubtype). */
const isGrpcContentType = (value: string | undefined): boolean =>
  value !== undefined && value.startsWith(GRPC_CONTENT_TYPE) && (value.length === GRPC_CONTENT_TYPE.length || '+;'.includes(value[GRPC_CONTENT_TYPE.length]!));

export class GrpcServer {
  private readonly services = new Map<string, ServiceImplementation>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly http2Server: http2.Http2Server;
  private readonly maxReceive: number;
  private readonly maxSend: number;
  private closing = false;

  constructor(options: GrpcServerOptions = {}) {
    this.maxReceive = options.maxReceiveMessageBytes ?? 4 * 1024 * 1024;
    this.maxSend = options.maxSendMessageBytes ?? 64 * 1024 * 1024;
    this.http2Server = http2.createServer({
      // Node's default (10 MB of buffered frames per connection) answers a busy client
      // with ENHANCE_YOUR_CALM; the message limits above bound what a call may hold.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
    });
    this.http2Server.on('session', (session) => {
      if (this.closing) return void session.destroy();
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      // A client that breaks its connection ends its calls (each sees 'close'); nothing to report.
      session.on('error', ignore);
    });
    this.http2Server.on('sessionError', ignore);
    this.http2Server.on('stream', (stream, headers) => this.dispatch(stream, headers));
  }

  addService(service: ServiceImplementation): void {
    if (this.services.has(service.name)) throw new Error(`service ${service.name} is served twice`);
    this.services.set(service.name, service);
  }

  /** Serves an accepted connection (a socket, or anything with a socket's stream members). */
  injectConnection(connection: Duplex): void {
    if (this.closing) return void connection.destroy();
    this.http2Server.emit('connection', connection);
  }

  /**
   * Stops taking calls: every connection gets GOAWAY, calls in flight finish, then the
   * connections end; those still open after `graceMs` are reset.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.closing = true;
    const open = [...this.sessions];
    const closed = open.map((session) => new Promise<void>((resolve) => (session.destroyed ? resolve() : session.close(() => resolve()))));
    const force = setTimeout(() => {
      for (const session of open) session.destroy(undefined, http2.constants.NGHTTP2_CANCEL);
    }, graceMs);
    await Promise.all(closed);
    clearTimeout(force);
  }

  private dispatch(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // A reset stream emits 'error' (its 'close' tells the call); nothing to report.
    stream.on('error', ignore);
    // The checks, in grpc-go's order (http2_server.go operateHeaders, server.go handleStream).
    const contentType = headers[HTTP2_HEADER_CONTENT_TYPE] as string | undefined;
    if (!isGrpcContentType(contentType)) {
      return earlyAbort(stream, 415, GrpcStatus.INVALID_ARGUMENT, `invalid gRPC request content-type "${contentType ?? ''}"`);
    }
    const timeoutHeader = headers['grpc-timeout'];
    const timeoutMs = parseGrpcTimeout(timeoutHeader as string | undefined);
    if (timeoutHeader !== undefined && timeoutMs === undefined) {
      return earlyAbort(stream, 400, GrpcStatus.INTERNAL, `malformed grpc-timeout: "${String(timeoutHeader)}"`);
    }
    const method = headers[HTTP2_HEADER_METHOD];
    if (method !== 'POST') {
      return earlyAbort(stream, 405, GrpcStatus.INTERNAL, `Received a HEADERS frame with :method "${method ?? ''}" which should be POST`);
    }
    const path = (headers[HTTP2_HEADER_PATH] as string | undefined) ?? '';
    const slash = path.lastIndexOf('/');
    if (slash <= 0 || path[0] !== '/') {
      return earlyAbort(stream, 200, GrpcStatus.UNIMPLEMENTED, `malformed method name: "${path}"`);
    }
    const serviceName = path.slice(1, slash);
    const methodName = path.slice(slash + 1);
    const service = this.services.get(serviceName);
    const implementation = service?.methods.get(methodName);
    if (!implementation) {
      const why = service ? `unknown method ${methodName} for service ${serviceName}` : `unknown service ${serviceName}`;
      return earlyAbort(stream, 200, GrpcStatus.UNIMPLEMENTED, why);
    }
    const call = new Http2Call(stream, timeoutMs, this.maxSend);
    const deframer = new MessageDeframer(this.maxReceive);
    let request: Buffer | undefined;
    let extra = false;
    const onData = (chunk: Buffer) => {
      try {
        for (const message of deframer.push(chunk)) {
          if (request === undefined) request = message;
          else extra = true;
        }
      } catch (err) {
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.resume();
        const { status, message } = err as FrameError;
        call.finish(status, `grpc: ${message}`);
      }
    };
    const onEnd = () => {
      // The deadline may have passed, or the client reset, while the request came in.
      if (call.ended) return;
      if (request === undefined || extra || deframer.hasPartialFrame) {
        const why = deframer.hasPartialFrame ? 'the request ended inside a message' : request === undefined ? 'no request message' : 'too many request messages';
        return call.finish(GrpcStatus.INTERNAL, `grpc: ${why} for ${path}`);
      }
      implementation.handle(request, call);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
  }
}

/** A status before any call began, in one HEADERS frame, as grpc-go's writeEarlyAbort. */
function earlyAbort(stream: http2.ServerHttp2Stream, httpStatus: number, code: GrpcStatusCode, message: string): void {
  stream.resume();
  if (stream.destroyed || stream.headersSent) return;
  stream.respond(
    {
      [HTTP2_HEADER_STATUS]: httpStatus,
      [HTTP2_HEADER_CONTENT_TYPE]: GRPC_CONTENT_TYPE,
      'grpc-status': String(code),
      'grpc-message': encodeGrpcMessage(message),
    },
    { endStream: true },
  );
}

class Http2Call implements ServerCall {
  readonly deadline: Date | undefined;
  onCancel: ((reason: CancelReason) => void) | undefined = undefined;
  private finished = false;
  private timer: NodeJS.Timeout | undefined;
  private trailers: http2.OutgoingHttpHeaders | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    timeoutMs: number | undefined,
    private readonly maxSend: number,
  ) {
    if (timeoutMs !== undefined) {
      this.deadline = new Date(Date.now() + timeoutMs);
      this.timer = setTimeout(() => this.expire(), Math.min(timeoutMs, 2 ** 31 - 1)).unref();
    }
    stream.once('close', () => {
      if (this.finished) return;
      this.end();
      this.onCancel?.('cancelled');
    });
  }

  get ended(): boolean {
    return this.finished;
  }

  reply(message: Uint8Array): void {
    if (this.finished || this.stream.destroyed) return;
    this.checkSize(message);
    if (this.stream.headersSent) {
      void this.send(message);
      return this.finish(GrpcStatus.OK);
    }
    this.end();
    this.stream.respond(responseHeaders(), { waitForTrailers: true });
    this.stream.once('wantTrailers', sendOkTrailers);
    this.stream.end(frameMessage(message));
  }

  send(message: Uint8Array): Promise<void> {
    if (this.finished || this.stream.destroyed) return READY;
    this.checkSize(message);
    if (!this.stream.headersSent) {
      this.stream.respond(responseHeaders(), { waitForTrailers: true });
      this.stream.once('wantTrailers', () => {
        try {
          this.stream.sendTrailers(this.trailers ?? { 'grpc-status': '0' });
        } catch {
          // The stream was reset meanwhile: the client is gone.
        }
      });
    }
    if (this.stream.write(frameMessage(message))) return READY;
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('close', done);
    });
  }

  finish(code: GrpcStatusCode, message?: string): void {
    if (this.finished) return;
    this.end();
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    const status: http2.OutgoingHttpHeaders = { 'grpc-status': String(code) };
    if (message) status['grpc-message'] = encodeGrpcMessage(message);
    if (stream.headersSent) {
      this.trailers = status;
      stream.end();
    } else {
      // Trailers-only: one HEADERS frame with the status.
      status[HTTP2_HEADER_STATUS] = 200;
      status[HTTP2_HEADER_CONTENT_TYPE] = GRPC_CONTENT_TYPE;
      stream.respond(status, { endStream: true });
    }
    // A request still being sent (an early error) is read and dropped.
    if (!stream.readableEnded) stream.resume();
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

  private end(): void {
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
