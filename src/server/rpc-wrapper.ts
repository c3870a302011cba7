// The one wrapper around every RPC berthd serves: the start-up gate, a request id, one
// structured log line per call with its duration and status, the single mapping from
// berth's error catalogue to gRPC status codes, and the one hook where RPC metrics are
// recorded (handlers never record them).
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import type { Logger } from 'pino';
import { asBerthError, unimplemented, type BerthError, type ErrorCode } from '../errors.js';
import type { RpcContext, ServerStreamHandler, ServiceHandlers, UnaryHandler } from './grpc-service.js';
import type { StartupGate } from './startup-gate.js';

const grpcCodes: Record<ErrorCode, grpc.status> = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  PermissionDenied: grpc.status.PERMISSION_DENIED,
  Unauthenticated: grpc.status.UNAUTHENTICATED,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  OutOfRange: grpc.status.OUT_OF_RANGE,
  DeadlineExceeded: grpc.status.DEADLINE_EXCEEDED,
  Cancelled: grpc.status.CANCELLED,
  Aborted: grpc.status.ABORTED,
  Unavailable: grpc.status.UNAVAILABLE,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  DataLoss: grpc.status.DATA_LOSS,
  Internal: grpc.status.INTERNAL,
  Unknown: grpc.status.UNKNOWN,
};

export function grpcStatusOf(err: BerthError): grpc.StatusObject {
  return { code: grpcCodes[err.code], details: err.message, metadata: new grpc.Metadata() };
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

/** grpc-js implementation of a whole service: every method wrapped, missing ones UNIMPLEMENTED. */
export function implementService<T extends GenServiceMethods>(
  service: GenService<T>,
  handlers: ServiceHandlers<T>,
  deps: WrapDeps,
): grpc.UntypedServiceImplementation {
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of Object.values(service.method) as DescMethod[]) {
    const handler = (handlers as Record<string, unknown>)[method.localName];
    if (method.methodKind === 'server_streaming') {
      implementation[method.localName] = wrapServerStream(method, handler as ServerStreamHandler<unknown> | undefined, deps);
    } else if (method.methodKind === 'unary') {
      implementation[method.localName] = wrapUnary(method, handler as UnaryHandler<unknown> | undefined, deps);
    } else {
      throw new Error(`berth serves no ${method.methodKind} RPCs (${method.name})`);
    }
  }
  return implementation;
}

function wrapUnary(method: DescMethod, handler: UnaryHandler<unknown> | undefined, deps: WrapDeps): grpc.handleUnaryCall<unknown, unknown> {
  const level = logLevelOf(method);
  return (call, callback) => {
    const run = startCall(method, level, call, deps);
    if (!run) return callback(gateClosed(deps));
    if (!handler) return callback(run.fail(unimplemented(method.name)));
    handler(call.request as never, run.ctx).then(
      (response) => {
        callback(null, create(method.output, response as MessageInitShape<DescMessage>));
        run.ok();
      },
      (err: unknown) => callback(run.fail(err)),
    );
  };
}

function wrapServerStream(
  method: DescMethod,
  handler: ServerStreamHandler<unknown> | undefined,
  deps: WrapDeps,
): grpc.handleServerStreamingCall<unknown, unknown> {
  const level = logLevelOf(method);
  return (call) => {
    const run = startCall(method, level, call, deps);
    if (!run) return void call.emit('error', gateClosed(deps));
    if (!handler) return void call.emit('error', run.fail(unimplemented(method.name)));
    const send = (message: unknown) => {
      if (run.ctx.signal.aborted) return Promise.resolve();
      if (call.write(create(method.output, message as MessageInitShape<DescMessage>))) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          call.off('drain', done);
          run.ctx.signal.removeEventListener('abort', done);
          resolve();
        };
        call.on('drain', done);
        run.ctx.signal.addEventListener('abort', done, { once: true });
      });
    };
    handler(call.request as never, run.ctx, send).then(
      () => {
        run.ok();
        call.end();
      },
      (err: unknown) => call.emit('error', run.fail(err)),
    );
  };
}

interface CallRun {
  ctx: RpcContext;
  ok(): void;
  fail(err: unknown): grpc.StatusObject;
}

function startCall(
  method: DescMethod,
  level: 'debug' | 'info',
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
  deps: WrapDeps,
): CallRun | undefined {
  if (!deps.gate.isOpen) {
    deps.log.debug({ rpc: method.name }, 'refused: start-up recovery is not finished');
    return undefined;
  }
  const started = performance.now();
  const requestId = nextRequestId();
  // The AbortController is made only when a handler asks for the signal (most polled
  // calls never do); a cancellation that came first is applied to it then.
  let abort: AbortController | undefined;
  let cancelled = false;
  const cancel = () => {
    cancelled = true;
    abort?.abort(new Error(`${method.name} was cancelled by the client`));
  };
  call.once('cancelled', cancel);
  const rawDeadline = call.getDeadline();
  const deadline = rawDeadline instanceof Date ? rawDeadline : Number.isFinite(rawDeadline) ? new Date(rawDeadline) : undefined;
  const record = (code: ErrorCode | 'OK', ms: number) => {
    if (!deps.onCall) return;
    try {
      deps.onCall({ service: method.parent.typeName, method: method.name, code, ms });
    } catch (err) {
      deps.log.warn({ rpc: method.name, error: (err as Error).message }, 'the RPC metrics hook failed');
    }
  };
  const ctx: RpcContext = {
    requestId,
    deadline,
    get signal() {
      if (!abort) {
        abort = new AbortController();
        if (cancelled) abort.abort(new Error(`${method.name} was cancelled by the client`));
      }
      return abort.signal;
    },
  };
  return {
    ctx,
    ok: () => {
      call.off('cancelled', cancel);
      const ms = round(performance.now() - started);
      // pino's method for a level below the configured one is a no-op: no line is built.
      deps.log[level]({ rpc: method.name, req: requestId, ms, code: 'OK' }, 'rpc');
      record('OK', ms);
    },
    fail: (err) => {
      call.off('cancelled', cancel);
      const berthError = asBerthError(err);
      const status = grpcStatusOf(berthError);
      const line = { rpc: method.name, req: requestId, ms: round(performance.now() - started), code: berthError.code, error: berthError.message };
      record(berthError.code, line.ms);
      if (berthError.code === 'Internal') deps.log.error({ ...line, stack: (berthError.cause as Error | undefined)?.stack ?? berthError.stack }, 'rpc');
      else deps.log[level === 'debug' && berthError.code !== 'Unimplemented' ? 'debug' : 'info'](line, 'rpc');
      return status;
    },
  };
}

// Request ids: 8 hex digits, a random start per process then counting up, so ids stay
// unique across a daemon's life (and unlikely to repeat across restarts) without asking
// the kernel for randomness on every call.
let requestCounter = randomBytes(4).readUInt32BE(0);
function nextRequestId(): string {
  requestCounter = (requestCounter + 1) >>> 0;
  return requestCounter.toString(16).padStart(8, '0');
}

function gateClosed({ gate, program = 'berthd' }: WrapDeps): grpc.StatusObject {
  return {
    code: grpc.status.UNAVAILABLE,
    details: `${program} is starting (${gate.phase}); try again shortly`,
    metadata: new grpc.Metadata(),
  };
}

const round = (ms: number) => Math.round(ms * 100) / 100;
