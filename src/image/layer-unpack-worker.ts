// unpackLayer in a worker thread: the main thread only forwards the layer's bytes (as
// they are downloaded or read from the content store) and waits for the diff ID, so
// decompression, hashing, tar parsing and the file writes of a pull leave berthd's event
// loop free for RPCs, and the layers of one pull use more than one core. The unpack
// itself is the same code (layer-unpack.ts) with the same checks.
import { BerthError, type ErrorCode } from '../errors.js';
// Types only: the unpack code (tar-stream, fzstd) is loaded by the worker, not here.
import type { UnpackResult } from './layer-unpack.js';

export type ToWorker = { type: 'chunk'; chunk: Uint8Array } | { type: 'end' } | { type: 'fail'; message: string };
export type FromWorker =
  | { type: 'ack'; bytes: number }
  | { type: 'done'; result: UnpackResult }
  | { type: 'error'; code?: ErrorCode; message: string };

/** Bytes sent to a worker and not yet taken by its unpack. */
const WINDOW_BYTES = 8 * 1024 * 1024;

/**
 * Layers up to this size (compressed) unpack on the main thread: a worker's start (an
 * isolate loading the unpack code) costs more than the unpack of a small layer (a ~1 MB
 * pull took 440 ms through a worker, 84 ms without; measured A/B).
 */
export const WORKER_MIN_BYTES = 8 * 1024 * 1024;

/** Unpacks a layer blob into target: in a worker when it is big or of unknown size. */
export async function unpackLayerSomewhere(blob: AsyncIterable<Uint8Array>, target: string, size: number | undefined): Promise<UnpackResult> {
  if (size !== undefined && size < WORKER_MIN_BYTES) {
    // Loaded on first use, not at start-up (tar-stream, fzstd: idle memory).
    const { unpackLayer } = await import('./layer-unpack.js');
    return unpackLayer(blob, target);
  }
  return unpackInWorker(blob, target);
}

/** Unpacks a layer blob into target (an empty directory) in a worker thread. */
export async function unpackInWorker(blob: AsyncIterable<Uint8Array>, target: string): Promise<UnpackResult> {
  // Loaded by the first big layer, not at start-up (idle memory).
  const { Worker } = await import('node:worker_threads');
  const worker = new Worker(new URL('./unpack-worker.js', import.meta.url), { workerData: { target } });
  let inFlight = 0;
  let resume: (() => void) | undefined;
  let settled = false;
  const outcome = new Promise<UnpackResult>((resolve, reject) => {
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'ack') {
        inFlight -= message.bytes;
        if (inFlight < WINDOW_BYTES) resume?.();
      } else if (message.type === 'done') {
        resolve(message.result);
      } else {
        reject(message.code ? new BerthError(message.code, message.message) : new Error(message.message));
      }
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the unpack worker exited (code ${code})`)));
  }).finally(() => {
    settled = true;
    resume?.();
  });
  // The source's own failure (a download that stopped) is passed on as it is.
  let sourceError: { err: unknown } | undefined;
  const feeding = (async () => {
    try {
      for await (const chunk of blob) {
        if (settled) return;
        inFlight += chunk.byteLength;
        // A copy of just these bytes, moved (not cloned) to the worker: the chunk may be a
        // view of a larger pooled buffer, and the content store still writes it.
        const copy = Uint8Array.prototype.slice.call(chunk);
        worker.postMessage({ type: 'chunk', chunk: copy } satisfies ToWorker, [copy.buffer]);
        while (inFlight >= WINDOW_BYTES && !settled) await new Promise<void>((r) => (resume = r));
        resume = undefined;
      }
      worker.postMessage({ type: 'end' } satisfies ToWorker);
    } catch (err) {
      sourceError = { err };
      worker.postMessage({ type: 'fail', message: (err as Error).message ?? String(err) } satisfies ToWorker);
    }
  })();
  try {
    const result = await outcome;
    await feeding;
    return result;
  } catch (err) {
    // Not waiting for the feeding loop: it stops at its next chunk (a stalled download
    // must not hold this error back), and its own errors are caught where it runs.
    if (sourceError) throw sourceError.err;
    throw err;
  } finally {
    await worker.terminate();
  }
}
