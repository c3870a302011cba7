// The handlers' contracts (RpcContext, ServiceHandlers; served by grpc-server.ts through
// rpc-wrapper.ts), and the client side: protobuf-es service descriptors over @grpc/grpc-js.
import * as grpc from '@grpc/grpc-js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
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

function methodDefinition(method: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: methodPath(method),
    originalName: method.localName,
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    requestSerialize: (message) => Buffer.from(toBinary(method.input, message as MessageShape<DescMessage>)),
    requestDeserialize: (bytes) => fromBinary(method.input, bytes),
    responseSerialize: (message) => Buffer.from(toBinary(method.output, message as MessageShape<DescMessage>)),
    responseDeserialize: (bytes) => fromBinary(method.output, bytes),
  };
}

export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

// ---------------------------------------------------------------------------------------
// Client side

export interface CallOptions {
  /** Milliseconds before the call is abandoned; none means no deadline. */
  timeoutMs?: number;
}

type UnaryCall<M> = (request: MessageInitShape<Input<M>>, options?: CallOptions) => Promise<MessageShape<Output<M>>>;
type StreamCall<M> = (request: MessageInitShape<Input<M>>, options?: CallOptions) => AsyncIterable<MessageShape<Output<M>>>;

/** A promise-based client for every method of a service. */
export type ServiceClient<T extends GenServiceMethods> = {
  [K in keyof T]: T[K]['methodKind'] extends 'unary'
    ? UnaryCall<T[K]>
    : T[K]['methodKind'] extends 'server_streaming'
      ? StreamCall<T[K]>
      : never;
} & { close(): void };

/** The service's client over an existing grpc-js channel owner (shared by several services). */
export function serviceClient<T extends GenServiceMethods>(service: GenService<T>, channel: grpc.Client): ServiceClient<T> {
  const client: Record<string, unknown> = { close: () => channel.close() };
  for (const method of Object.values(service.method) as DescMethod[]) {
    const definition = methodDefinition(method);
    if (method.methodKind === 'unary') {
      client[method.localName] = (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
        new Promise((resolve, reject) => {
          channel.makeUnaryRequest(
            definition.path,
            definition.requestSerialize,
            definition.responseDeserialize,
            create(method.input, request),
            new grpc.Metadata(),
            callOptions(options),
            (err, response) => (err ? reject(err) : resolve(response)),
          );
        });
    } else if (method.methodKind === 'server_streaming') {
      client[method.localName] = (request: MessageInitShape<DescMessage>, options: CallOptions = {}) =>
        channel.makeServerStreamRequest(
          definition.path,
          definition.requestSerialize,
          definition.responseDeserialize,
          create(method.input, request),
          new grpc.Metadata(),
          callOptions(options),
        );
    }
  }
  return client as ServiceClient<T>;
}

function callOptions(options: CallOptions): grpc.CallOptions {
  return options.timeoutMs && options.timeoutMs > 0 ? { deadline: new Date(Date.now() + options.timeoutMs) } : {};
}

/** A channel to a gRPC endpoint such as unix:///run/berth/berth.sock. */
export function openChannel(endpoint: string): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
    // CRI responses such as ListContainers on a busy node can be large.
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
}

/** The method table of a generated service, e.g. MethodsOf<typeof RuntimeService>. */
export type MethodsOf<S> = S extends GenService<infer T> ? T : never;
