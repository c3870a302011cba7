// The Stream* RPCs (KEP-5825): the answer of their List* twin, same filters, sent in
// batches of at most STREAM_BATCH items so no message nears gRPC's size limit. Each
// item is sent once; nothing is sent for an empty list (the CRI asks for lists of at
// least one item), and the stream ends when all have been sent. Built on the unary
// handlers themselves, so a filter or a field cannot differ between the two.
import { create, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ListContainersRequestSchema,
  ListContainerStatsRequestSchema,
  ListImagesRequestSchema,
  ListPodSandboxRequestSchema,
  ListPodSandboxStatsRequestSchema,
  type ImageService,
  type RuntimeService,
} from '../gen/runtime/v1/api_pb.js';
import type { RpcContext, ServerStreamHandler, UnaryHandler } from '../server/grpc-service.js';

export const STREAM_BATCH = 100;

type R = typeof RuntimeService.method;
type I = typeof ImageService.method;

/** Sends items in batches, stopping early when the client has gone. */
export async function sendInBatches<T>(items: readonly T[], ctx: RpcContext, send: (batch: T[]) => Promise<void>, size = STREAM_BATCH): Promise<void> {
  for (let i = 0; i < items.length && !ctx.signal.aborted; i += size) await send(items.slice(i, i + size));
}

function streamOf<Req extends DescMessage, Item>(
  schema: Req,
  list: (request: ReturnType<typeof create<Req>>, ctx: RpcContext) => Promise<Item[] | undefined>,
  filterOf: (request: { filter?: unknown }) => MessageInitShape<Req>,
) {
  return <Out>(wrap: (batch: Item[]) => Out) =>
    async (request: { filter?: unknown }, ctx: RpcContext, send: (message: Out) => Promise<void>) => {
      const items = (await list(create(schema, filterOf(request)), ctx)) ?? [];
      await sendInBatches(items, ctx, (batch) => send(wrap(batch)));
    };
}

const sameFilter = (request: { filter?: unknown }) => ({ filter: request.filter }) as never;

export function runtimeStreamHandlers(unary: {
  listPodSandbox: UnaryHandler<R['listPodSandbox']>;
  listContainers: UnaryHandler<R['listContainers']>;
  listContainerStats: UnaryHandler<R['listContainerStats']>;
  listPodSandboxStats: UnaryHandler<R['listPodSandboxStats']>;
}): {
  streamPodSandboxes: ServerStreamHandler<R['streamPodSandboxes']>;
  streamContainers: ServerStreamHandler<R['streamContainers']>;
  streamContainerStats: ServerStreamHandler<R['streamContainerStats']>;
  streamPodSandboxStats: ServerStreamHandler<R['streamPodSandboxStats']>;
} {
  return {
    streamPodSandboxes: streamOf(ListPodSandboxRequestSchema, async (req, ctx) => (await unary.listPodSandbox(req, ctx)).items, sameFilter)((podSandboxes) => ({ podSandboxes })),
    streamContainers: streamOf(ListContainersRequestSchema, async (req, ctx) => (await unary.listContainers(req, ctx)).containers, sameFilter)((containers) => ({ containers })),
    streamContainerStats: streamOf(ListContainerStatsRequestSchema, async (req, ctx) => (await unary.listContainerStats(req, ctx)).stats, sameFilter)((containerStats) => ({ containerStats })),
    streamPodSandboxStats: streamOf(ListPodSandboxStatsRequestSchema, async (req, ctx) => (await unary.listPodSandboxStats(req, ctx)).stats, sameFilter)((podSandboxStats) => ({ podSandboxStats })),
  };
}

export function imageStreamHandlers(unary: { listImages: UnaryHandler<I['listImages']> }): { streamImages: ServerStreamHandler<I['streamImages']> } {
  return {
    streamImages: streamOf(ListImagesRequestSchema, async (req, ctx) => (await unary.listImages(req, ctx)).images, sameFilter)((images) => ({ images })),
  };
}
