// berthctl's connection to a CRI runtime (berthd, containerd, CRI-O…): one channel per
// endpoint, typed RuntimeService and ImageService clients, and crictl-style errors.
import { ImageService, RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { ImagePullProgress, ImageTransfer } from '../gen/berth/v1/berth_pb.js';
import { openChannel, serviceClient, type MethodsOf, type ServiceClient } from '../server/grpc-client.js';
import { grpcStatusName } from '../server/grpc-wire.js';
import type { ClientSettings } from './settings.js';

export interface CriClients {
  runtime: ServiceClient<MethodsOf<typeof RuntimeService>>;
  image: ServiceClient<MethodsOf<typeof ImageService>>;
  /** berth's own image import/export; other runtimes answer UNIMPLEMENTED. */
  transfer: ServiceClient<MethodsOf<typeof ImageTransfer>>;
  /** berth's per-layer pull progress; other runtimes answer UNIMPLEMENTED. */
  pullProgress: ServiceClient<MethodsOf<typeof ImagePullProgress>>;
  settings: ClientSettings;
  close(): void;
}

export function connect(settings: ClientSettings): CriClients {
  const runtimeChannel = openChannel(settings.runtimeEndpoint);
  const imageChannel = settings.imageEndpoint === settings.runtimeEndpoint ? runtimeChannel : openChannel(settings.imageEndpoint);
  return {
    runtime: serviceClient(RuntimeService, runtimeChannel),
    image: serviceClient(ImageService, imageChannel),
    transfer: serviceClient(ImageTransfer, imageChannel),
    pullProgress: serviceClient(ImagePullProgress, imageChannel),
    settings,
    close() {
      runtimeChannel.close();
      if (imageChannel !== runtimeChannel) imageChannel.close();
    },
  };
}

/** A failed call, worded as crictl words it: "ACTION: rpc error: code = X desc = Y". */
export class CallError extends Error {
  constructor(
    action: string,
    readonly grpcCode: number | undefined,
    detail: string,
  ) {
    super(`${action}: ${detail}`);
  }
}

export function describeCallError(action: string, err: unknown): CallError {
  const status = err as { code?: unknown; details?: string };
  if (typeof status.code === 'number') {
    // berth's client words its own failures (no connection, deadline) as grpc-go does.
    return new CallError(action, status.code, `rpc error: code = ${goCodeName(status.code)} desc = ${status.details ?? ''}`);
  }
  return new CallError(action, undefined, (err as Error).message ?? String(err));
}

/** grpc-go's names for status codes (what crictl prints and scripts grep for). */
export function goCodeName(code: number): string {
  const name = grpcStatusName(code);
  if (name === undefined) return `Code(${code})`;
  if (name === 'CANCELLED') return 'Canceled';
  if (name === 'OK') return 'OK';
  return name
    .toLowerCase()
    .split('_')
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
}

/** Runs one call and rewords its failure as crictl would. */
export async function call<T>(action: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw describeCallError(action, err);
  }
}
