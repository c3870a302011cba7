// berthctl's connection to a CRI runtime (berthd, containerd, CRI-O…): one channel per
// endpoint, typed RuntimeService and ImageService clients, and crictl-style errors.
import * as grpc from '@grpc/grpc-js';
import { ImageService, RuntimeService } from '../gen/runtime/v1/api_pb.js';
import { ImagePullProgress, ImageTransfer } from '../gen/berth/v1/berth_pb.js';
import { openChannel, serviceClient, type MethodsOf, type ServiceClient } from '../server/grpc-service.js';
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
    readonly grpcCode: grpc.status | undefined,
    detail: string,
  ) {
    super(`${action}: ${detail}`);
  }
}

export function describeCallError(action: string, err: unknown): CallError {
  const status = err as Partial<grpc.StatusObject>;
  if (typeof status.code === 'number') {
    return new CallError(action, status.code, `rpc error: code = ${goCodeName(status.code)} desc = ${clientDetails(status.code, status.details ?? '')}`);
  }
  return new CallError(action, undefined, (err as Error).message ?? String(err));
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

/**
 * The details of a status grpc-js made up on the client side, in the words grpc-go (and
 * so crictl) uses, without grpc-js's internals: its deadline message lists the phases of
 * the call ("name resolution: …, LB pick…") and its connection errors end with a
 * "Resolution note:". A server's own details are passed through as they are.
 */
export function clientDetails(code: grpc.status, details: string): string {
  if (code === grpc.status.DEADLINE_EXCEEDED && /^Deadline exceeded after /.test(details)) return 'context deadline exceeded';
  let text = details.replace(/\s*Resolution note:.*$/s, '').trim();
  if (code === grpc.status.UNAVAILABLE) {
    const lastError = /^No connection established\. Last error: (?:Error: )?(.*?)\.?$/s.exec(text);
    if (lastError) {
      const cause = lastError[1]!;
      const dial = /^connect (E[A-Z]+) (\/.*)$/.exec(cause);
      text = dial
        ? `connection error: dial unix ${dial[2]}: connect: ${ERRNO_TEXT[dial[1]!] ?? dial[1]}`
        : `connection error: ${cause}`;
    } else if (text === 'No connection established') {
      text = 'connection error';
    }
  }
  return text;
}

/** grpc-go's names for status codes (what crictl prints and scripts grep for). */
export function goCodeName(code: grpc.status): string {
  const name = grpc.status[code];
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
