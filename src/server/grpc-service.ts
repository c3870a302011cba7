// The handlers' contracts: what a handler knows of its call and the shape of a service's
// handlers (served by grpc-server.ts through rpc-wrapper.ts; the client is grpc-client.ts).
import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';

/** What a handler knows about the call it serves. */
export interface RpcContext {
  /** Short id that ties the call to its log line. */
  readonly requestId: string;
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal: AbortSignal;
  /** The client's deadline, when it sent one. */
  readonly deadline: Date | undefined;
}

type Input<M> = M extends { input: infer I extends DescMessage } ? I : never;
type Output<M> = M extends { output: infer O extends DescMessage } ? O : never;

export type UnaryHandler<M> = (request: MessageShape<Input<M>>, ctx: RpcContext) => Promise<MessageInitShape<Output<M>>>;
/**
 * A server-streaming handler. `send` resolves once the message may be followed by the
 * next: at once while the transport has room, else when it drains (or the call ends),
 * so a client that reads slowly holds back the handler instead of filling memory.
 */
export type ServerStreamHandler<M> = (
  request: MessageShape<Input<M>>,
  ctx: RpcContext,
  send: (message: MessageInitShape<Output<M>>) => Promise<void>,
) => Promise<void>;

/** Handlers for a service: any method left out answers UNIMPLEMENTED. */
export type ServiceHandlers<T extends GenServiceMethods> = {
  [K in keyof T]?: T[K]['methodKind'] extends 'unary'
    ? UnaryHandler<T[K]>
    : T[K]['methodKind'] extends 'server_streaming'
      ? ServerStreamHandler<T[K]>
      : never;
};

/** The method table of a generated service, e.g. MethodsOf<typeof RuntimeService>. */
export type MethodsOf<S> = S extends GenService<infer T> ? T : never;

const ENCODING = Symbol('berth.encoding');

/**
 * An answer whose protobuf encoding the handler already has (e.g. cached per record): the
 * server sends `bytes` instead of encoding the fields. The fields stay readable (other
 * handlers build on an answer's fields, e.g. the Stream* calls on the List* answers), and
 * must say what the bytes say.
 */
export function withEncoding<T extends object>(message: T, bytes: Uint8Array): T {
  Object.defineProperty(message, ENCODING, { value: bytes });
  return message;
}

/** The encoding withEncoding gave an answer, if any. */
export function encodingOf(message: unknown): Uint8Array | undefined {
  return typeof message === 'object' && message !== null ? ((message as Record<symbol, Uint8Array | undefined>)[ENCODING]) : undefined;
}
