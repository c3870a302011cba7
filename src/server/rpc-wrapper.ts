// The one wrapper around every RPC berthd serves: the start-up gate, a request id, one
// structured log line per call with its duration and status, the single mapping from
// berth's error catalogue to gRPC status codes, and the one hook where RPC metrics are
// recorded (handlers never record them).
import { randomBytes } from 'node:crypto';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { Logger } from '../util/logger.js';
import { asBerthError, deadlineExceeded, internal, unimplemented, BerthError, type ErrorCode } from '../errors.js';
import { encodingOf, type RpcContext, type ServerStreamHandler, type ServiceHandlers, type UnaryHandler } from './grpc-service.js';
import type { CancelReason, MethodImplementation, ServerCall, ServiceImplementation } from './grpc-server.js';
import { GrpcStatus, type GrpcStatusCode } from './grpc-wire.js';
import type { StartupGate } from './startup-gate.js';

const grpcCodes: Record<ErrorCode, GrpcStatusCode> = {
  InvalidArgument: GrpcStatus.INVALID_ARGUMENT,
  NotFound: GrpcStatus.NOT_FOUND,
  AlreadyExists: GrpcStatus.ALREADY_EXISTS,
  FailedPrecondition: GrpcStatus.FAILED_PRECONDITION,
  PermissionDenied: GrpcStatus.PERMISSION_DENIED,
  Unauthenticated: GrpcStatus.UNAUTHENTICATED,
  ResourceExhausted: GrpcStatus.RESOURCE_EXHAUSTED,
  OutOfRange: GrpcStatus.OUT_OF_RANGE,
  DeadlineExceeded: GrpcStatus.DEADLINE_EXCEEDED,
  Cancelled: GrpcStatus.CANCELLED,
  Aborted: GrpcStatus.ABORTED,
  Unavailable: GrpcStatus.UNAVAILABLE,
  Unimplemented: GrpcStatus.UNIMPLEMENTED,
  DataLoss: GrpcStatus.DATA_LOSS,
  Internal: GrpcStatus.INTERNAL,
  Unknown: GrpcStatus.UNKNOWN,
};

/** A call's outcome on the wire. */
export interface GrpcStatusObject {
  code: GrpcStatusCode;
  details: string;
}

export function grpcStatusOf(err: BerthError): GrpcStatusObject {
  return { code: grpcCodes[err.code], details: err.message };
}

// Calls the kubelet makes every second or so are logged at debug, the rest at info, so
// an idle node's log stays quiet while every change is on record.
const pollingCall = /^(Version|Status|RuntimeConfig|ImageFsInfo|List\w*|\w*Status|\w*Stats)$/;
const logLevelOf = (method: DescMethod): 'debug' | 'info' => (pollingCall.test(method.name) ? 'debug' : 'info');

/** One finished call, as the metrics hook sees it. */
export interface CallOutcome {
  /** The fully qualified service name, e.g. runtime.v1.RuntimeService. */
  service: string;
  method: string;
  code: ErrorCode | 'OK';
  ms: number;
}

export interface WrapDeps {
  gate: StartupGate;
  log: Logger;
  /** Called once per call that passed the gate, when it ends (RPC metrics go here). */
  onCall?: (outcome: CallOutcome) => void;
  /** The program's name in the UNAVAILABLE message of a closed gate (default berthd). */
  program?: string;
}

/** berth's server's implementation of a whole service: every method wrapped, missing ones UNIMPLEMENTED. */
export function implementService<T extends GenServiceMethods>(
  service: GenService<T>,
  handlers: ServiceHandlers<T>,
  deps: WrapDeps,
): ServiceImplementation {
  const methods = new Map<string, MethodImplementation>();
  for (const method of Object.values(service.method) as DescMethod[]) {
    const handler = (handlers as Record<string, unknown>)[method.localName];
    if (method.methodKind === 'server_streaming') {
      methods.set(method.name, wrapServerStream(method, handler as ServerStreamHandler<unknown> | undefined, deps));
    } else if (method.methodKind === 'unary') {
      methods.set(method.name, wrapUnary(method, handler as UnaryHandler<unknown> | undefined, deps));
    } else {
      throw new Error(`berth serves no ${method.methodKind} RPCs (${method.name})`);
    }
  }
  return { name: service.typeName, methods };
}

const encode = (method: DescMethod, message: unknown): Uint8Array =>
  encodingOf(message) ?? toBinary(method.output, create(method.output, message as MessageInitShape<DescMessage>));

function finishWith(call: ServerCall, status: GrpcStatusObject): void {
  call.finish(status.code, status.details);
}

/** The gate, the handler's presence and the request's decoding: the run, or undefined when the call was answered. */
function begin(method: DescMethod, level: 'debug' | 'info', handler: unknown, bytes: Buffer, call: ServerCall, deps: WrapDeps) {
  if (!deps.gate.isOpen) {
    deps.log.debug({ rpc: method.name }, 'refused: start-up recovery is not finished');
    return void finishWith(call, gateClosed(deps));
  }
  const run = new CallRun(method, level, call, deps);
  if (!handler) return void finishWith(call, run.fail(unimplemented(method.name)));
  try {
    return { run, request: fromBinary(method.input, bytes) };
  } catch (err) {
    return void finishWith(call, run.fail(internal(`grpc: error unmarshalling request: ${(err as Error).message}`)));
  }
}

function wrapUnary(method: DescMethod, handler: UnaryHandler<unknown> | undefined, deps: WrapDeps): MethodImplementation {
  return wrap(method, handler, deps, (request, run, call) => handler!(request as never, run).then((response) => call.reply(encode(method, response))));
}

function wrapServerStream(method: DescMethod, handler: ServerStreamHandler<unknown> | undefined, deps: WrapDeps): MethodImplementation {
  return wrap(method, handler, deps, (request, run, call) => {
    const send = (message: unknown) => (run.signal.aborted ? Promise.resolve() : call.send(encode(method, message)));
    return handler!(request as never, run, send).then(() => call.finish(GrpcStatus.OK));
  });
}

/** A method's implementation: `invoke` runs the handler and answers; the wrapper does the rest. */
function wrap(
  method: DescMethod,
  handler: unknown,
  deps: WrapDeps,
  invoke: (request: unknown, run: CallRun, call: ServerCall) => Promise<void>,
): MethodImplementation {
  const level = logLevelOf(method);
  return {
    handle(bytes, call) {
      const started = begin(method, level, handler, bytes, call, deps);
      if (!started) return;
      const { run, request } = started;
      let answered: Promise<void>;
      try {
        answered = invoke(request, run, call);
      } catch (err) {
        // A handler that throws before it returns its promise.
        return finishWith(call, run.fail(err));
      }
      answered.then(
        () => run.ok(),
        (err: unknown) => finishWith(call, run.fail(err)),
      );
    },
  };
}

/**
 * One call that passed the gate: the handler's context (it is the RpcContext handlers
 * get), its log line and its metrics. Kept to one object per call: the polled calls are
 * many and small.
 */
class CallRun implements RpcContext {
  readonly deadline: Date | undefined;
  private readonly started = performance.now();
  private readonly requestNumber = nextRequestNumber();
  // The AbortController is made only when a handler asks for the signal (most polled
  // calls never do); a cancellation that came first is applied to it then.
  private abort: AbortController | undefined;
  private cancelled: CancelReason | undefined;

  constructor(
    private readonly method: DescMethod,
    private readonly level: 'debug' | 'info',
    private readonly call: ServerCall,
    private readonly deps: WrapDeps,
  ) {
    this.deadline = call.deadline;
    call.onCancel = (why) => {
      this.cancelled = why;
      this.abort?.abort(this.cancelReason());
    };
  }

  get requestId(): string {
    return this.requestNumber.toString(16).padStart(8, '0');
  }

  get signal(): AbortSignal {
    if (!this.abort) {
      this.abort = new AbortController();
      if (this.cancelled) this.abort.abort(this.cancelReason());
    }
    return this.abort.signal;
  }

  ok(): void {
    this.call.onCancel = undefined;
    const ms = round(performance.now() - this.started);
    // The line's fields (and the request id's text) are built only when the level is on.
    const { log } = this.deps;
    if (log.enabled(this.level)) log[this.level]({ rpc: this.method.name, req: this.requestId, ms, code: 'OK' }, 'rpc');
    this.record('OK', ms);
  }

  fail(err: unknown): GrpcStatusObject {
    this.call.onCancel = undefined;
    const berthError = asBerthError(err);
    const status = grpcStatusOf(berthError);
    const line = { rpc: this.method.name, req: this.requestId, ms: round(performance.now() - this.started), code: berthError.code, error: berthError.message };
    this.record(berthError.code, line.ms);
    const { log } = this.deps;
    if (berthError.code === 'Internal') log.error({ ...line, stack: (berthError.cause as Error | undefined)?.stack ?? berthError.stack }, 'rpc');
    else log[this.level === 'debug' && berthError.code !== 'Unimplemented' ? 'debug' : 'info'](line, 'rpc');
    return status;
  }

  private cancelReason(): BerthError {
    return this.cancelled === 'deadline'
      ? deadlineExceeded(`${this.method.name}: the client's deadline passed`)
      : new BerthError('Cancelled', `${this.method.name} was cancelled by the client`);
  }

  private record(code: ErrorCode | 'OK', ms: number): void {
    if (!this.deps.onCall) return;
    try {
      this.deps.onCall({ service: this.method.parent.typeName, method: this.method.name, code, ms });
    } catch (err) {
      this.deps.log.warn({ rpc: this.method.name, error: (err as Error).message }, 'the RPC metrics hook failed');
    }
  }
}

// Request ids: 8 hex digits, a random start per process then counting up, so ids stay
// unique across a daemon's life (and unlikely to repeat across restarts) without asking
// the kernel for randomness on every call.
let requestCounter = randomBytes(4).readUInt32BE(0);
function nextRequestNumber(): number {
  requestCounter = (requestCounter + 1) >>> 0;
  return requestCounter;
}

function gateClosed({ gate, program = 'berthd' }: WrapDeps): GrpcStatusObject {
  return { code: GrpcStatus.UNAVAILABLE, details: `${program} is starting (${gate.phase}); try again shortly` };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
