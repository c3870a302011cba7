// Glue between protobuf-es service descriptors and @grpc/grpc-js's server: one generic
// way to serve a service, used by berthd and berth-csi (the client is grpc-client.ts).
import * as grpc from '@grpc/grpc-js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, DescMethod, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { methodPath } from './grpc-wire.js';

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

/** Builds the grpc-js definition of a service from its protobuf-es descriptor. */
export function grpcServiceDefinition(service: GenService<GenServiceMethods>): grpc.ServiceDefinition {
  return Object.fromEntries(Object.values(service.method).map((method) => [method.localName, methodDefinition(method)]));
}

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

/** The method table of a generated service, e.g. MethodsOf<typeof RuntimeService>. */
export type MethodsOf<S> = S extends GenService<infer T> ? T : never;
