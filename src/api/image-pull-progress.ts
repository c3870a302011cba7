// berth.v1.ImagePullProgress: the per-layer progress of a running pull (the CRI's
// PullImage reports none), for `berthctl pull` on a terminal.
import type { ImagePullProgress } from '../gen/berth/v1/berth_pb.js';
import type { ServerStreamHandler } from '../server/grpc-service.js';
import { invalidArgument } from '../errors.js';
import type { ImageManager } from '../image/image-manager.js';
import type { LayerState } from '../image/pull-progress.js';

/** How long a watch waits for its pull to start. */
const START_WAIT_MS = 10_000;
/** At most one message per this interval (the last state always goes out). */
const INTERVAL_MS = 100;

export function watchPullHandler(images: ImageManager): ServerStreamHandler<typeof ImagePullProgress.method.watchPull> {
  return async (request, ctx, send) => {
    let key: string;
    try {
      key = images.progressKey(request.image);
    } catch (err) {
      throw invalidArgument(`image "${request.image}": ${(err as Error).message}`);
    }
    let latest: LayerState[] | undefined;
    let started = false;
    let ended = false;
    let wake: (() => void) | undefined;
    const unsubscribe = images.progress.watch(key, (layers) => {
      if (layers) {
        latest = layers;
        started = true;
      } else if (started) ended = true;
      wake?.();
    });
    const startBy = Date.now() + START_WAIT_MS;
    try {
      // The watch is in place: the client may start its pull.
      await send({ layers: [] });
      while (!ctx.signal.aborted) {
        if (latest) {
          const layers = latest;
          latest = undefined;
          await send({ layers: layers.map((l) => ({ digest: l.digest, size: BigInt(l.size), fetched: BigInt(l.fetched), done: l.done })) });
          await new Promise((resolve) => setTimeout(resolve, INTERVAL_MS));
          continue;
        }
        if (ended || (!started && Date.now() > startBy)) return;
        let timer: NodeJS.Timeout | undefined;
        const onAbort = () => wake?.();
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        await new Promise<void>((resolve) => {
          wake = resolve;
          timer = setTimeout(resolve, started ? 1000 : Math.max(0, startBy - Date.now()));
        });
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
        wake = undefined;
      }
    } finally {
      unsubscribe();
    }
  };
}
