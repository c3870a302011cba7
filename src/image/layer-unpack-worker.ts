// unpackLayer in a worker thread: the main thread only forwards the layer's bytes (as
// they are downloaded or read from the content store) and waits for the diff ID, so
// decompression, hashing, tar parsing and the file writes of a pull leave berthd's event
// loop free for RPCs, and the layers of one pull use more than one core. The unpack
// itself is the same code (layer-unpack.ts) with the same checks.
//
// A layer being downloaded goes through openLayerPipe instead: the worker then also
// hashes and stores the compressed blob (the content store's partial file), so the main
// thread only receives the HTTP body and hands its bytes on.
import { Worker } from 'node:worker_threads';
import { BerthError, type ErrorCode } from '../errors.js';
import type { BlobSink } from './content-store.js';
// Types only: the unpack code (tar-stream, fzstd) is loaded by the worker, not here.
import type { UnpackResult } from './layer-unpack.js';

export type ToWorker =
  | { type: 'chunk'; chunk: Uint8Array }
  | { type: 'end' }
  | { type: 'fail'; message: string }
  | { type: 'blob-open'; path: string };
export type FromWorker =
  | { type: 'ack'; bytes: number }
  | { type: 'done'; result: UnpackResult }
  | { type: 'error'; code?: ErrorCode; message: string }
  | { type: 'blob'; digest: string; bytes: number }
  | { type: 'blob-closed' }
  | { type: 'blob-error'; code?: ErrorCode; message: string };

/** Bytes sent to a worker and not yet taken by its unpack. */
const WINDOW_BYTES = 8 * 1024 * 1024;
/**
 * A pipe's bytes go to its worker in messages of this size: the HTTP body comes in
 * chunks of ~16-64 KB, and one message per chunk costs the main thread more than the
 * copy into a batch (which it needs anyway: the chunks are views of undici's buffers).
 */
const BATCH_BYTES = 1024 * 1024;

function workerError(message: { code?: ErrorCode; message: string }): Error {
  return message.code ? new BerthError(message.code, message.message) : new Error(message.message);
}

function unpackWorker(target: string): Worker {
  return new Worker(new URL('./unpack-worker.js', import.meta.url), { workerData: { target } });
}

/**
 * A layer's whole pipeline in one worker thread from its first byte: the compressed blob
 * is hashed and written to the content store's partial file (through `sink`, which
 * ContentStore.ingest uses in place of its own hashing and writing) and unpacked into
 * target at the same time. The main thread only copies the body's chunks into batches
 * it moves to the worker.
 */
export class LayerPipe {
  /** The unpack's outcome (the diff ID is the caller's to check). */
  readonly unpacked: Promise<UnpackResult>;
  readonly #worker: Worker;
  #inFlight = 0;
  #resume: (() => void) | undefined;
  #unpackSettled = false;
  #unpackError: unknown;
  #rejectUnpack!: (err: unknown) => void;
  #sinkOpened = false;
  #sinkFailed = false;
  #blobSettled = false;
  #blobError: unknown;
  #blobWaiters: Array<{ resolve: (value: { digest: string; bytes: number } | undefined) => void; reject: (err: unknown) => void }> = [];
  #blobOutcome: { digest: string; bytes: number } | undefined;
  #batch: Buffer | undefined;
  #batchLength = 0;
  #ended = false;

  constructor(target: string) {
    this.#worker = unpackWorker(target);
    this.unpacked = new Promise<UnpackResult>((resolve, reject) => {
      this.#rejectUnpack = reject;
      this.#worker.on('message', (message: FromWorker) => {
        switch (message.type) {
          case 'ack':
            this.#inFlight -= message.bytes;
            if (this.#inFlight < WINDOW_BYTES) this.#wake();
            break;
          case 'done':
            resolve(message.result);
            break;
          case 'error':
            reject(workerError(message));
            break;
          case 'blob':
            this.#settleBlob(undefined, { digest: message.digest, bytes: message.bytes });
            break;
          case 'blob-closed':
            this.#settleBlob(undefined, undefined);
            break;
          case 'blob-error':
            this.#settleBlob(workerError(message), undefined);
            break;
        }
      });
      this.#worker.once('error', (err) => {
        reject(err);
        this.#settleBlob(err, undefined);
      });
      this.#worker.once('exit', (code) => {
        const err = new Error(`the layer worker exited (code ${code})`);
        reject(err);
        this.#settleBlob(err, undefined);
      });
    });
    this.unpacked.then(
      () => {
        this.#unpackSettled = true;
        this.#wake();
      },
      (err: unknown) => {
        this.#unpackSettled = true;
        this.#unpackError = err;
        this.#wake();
      },
    );
  }

  /** Whether the content store took this pipe's sink (it may have joined another download). */
  get used(): boolean {
    return this.#sinkOpened;
  }

  /**
   * Whether the download stopped under the unpack (the sink failed): the unpack's own
   * failure then says nothing, the download's outcome does.
   */
  get stopped(): boolean {
    return this.#sinkFailed;
  }

  /** This pipe's unpack gets no more bytes (the download restarts or failed): it fails with err. */
  abandon(err: unknown): void {
    this.#rejectUnpack(err);
  }

  /** The sink ContentStore.ingest writes the blob through, into the file at `path`. */
  sink(path: string): BlobSink {
    if (this.#sinkOpened) throw new Error('a layer pipe stores one blob');
    this.#sinkOpened = true;
    this.#worker.postMessage({ type: 'blob-open', path } satisfies ToWorker);
    return {
      write: (chunk) => this.#write(chunk),
      end: async () => {
        this.#finish({ type: 'end' });
        const outcome = await this.#blob();
        if (!outcome) throw new Error('the layer worker closed the blob without finishing it');
        return outcome;
      },
      fail: async (err) => {
        this.#sinkFailed = true;
        this.#finish({ type: 'fail', message: (err as Error)?.message ?? String(err) });
        await this.#blob().catch(() => undefined);
      },
    };
  }

  /** Ends the worker, once the blob file it writes (if any) is closed. */
  async close(): Promise<void> {
    if (this.#sinkOpened && !this.#blobSettled) {
      this.#finish({ type: 'fail', message: 'layer pull stopped' });
      await this.#blob().catch(() => undefined);
    }
    this.#rejectUnpack(new BerthError('Aborted', 'layer pull stopped'));
    this.unpacked.catch(() => undefined);
    await this.#worker.terminate();
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (this.#blobError !== undefined) throw this.#blobError;
    if (this.#unpackError !== undefined) throw this.#unpackError;
    for (let offset = 0; offset < chunk.byteLength; ) {
      this.#batch ??= Buffer.allocUnsafeSlow(BATCH_BYTES);
      const n = Math.min(chunk.byteLength - offset, BATCH_BYTES - this.#batchLength);
      this.#batch.set(chunk.subarray(offset, offset + n), this.#batchLength);
      this.#batchLength += n;
      offset += n;
      if (this.#batchLength === BATCH_BYTES) this.#send();
    }
    while (this.#inFlight >= WINDOW_BYTES && !this.#unpackSettled && !this.#blobSettled) {
      await new Promise<void>((resolve) => (this.#resume = resolve));
      this.#resume = undefined;
    }
  }

  /** Moves the batch (its own ArrayBuffer) to the worker. */
  #send(): void {
    if (!this.#batch || this.#batchLength === 0) return;
    const chunk = this.#batchLength === this.#batch.length ? this.#batch : this.#batch.subarray(0, this.#batchLength);
    this.#inFlight += chunk.byteLength;
    this.#worker.postMessage({ type: 'chunk', chunk } satisfies ToWorker, [chunk.buffer as ArrayBuffer]);
    this.#batch = undefined;
    this.#batchLength = 0;
  }

  #finish(message: ToWorker): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#send();
    this.#worker.postMessage(message);
  }

  #blob(): Promise<{ digest: string; bytes: number } | undefined> {
    if (this.#blobSettled) return this.#blobError !== undefined ? Promise.reject(this.#blobError) : Promise.resolve(this.#blobOutcome);
    return new Promise((resolve, reject) => this.#blobWaiters.push({ resolve, reject }));
  }

  #settleBlob(err: unknown, outcome: { digest: string; bytes: number } | undefined): void {
    if (this.#blobSettled) return;
    this.#blobSettled = true;
    this.#blobError = err;
    this.#blobOutcome = outcome;
    for (const waiter of this.#blobWaiters.splice(0)) {
      if (err !== undefined) waiter.reject(err);
      else waiter.resolve(outcome);
    }
    this.#wake();
  }

  #wake(): void {
    this.#resume?.();
  }
}

/** Starts a layer's pipeline into target (an empty directory): see LayerPipe. */
export function openLayerPipe(target: string): LayerPipe {
  return new LayerPipe(target);
}

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
  const worker = unpackWorker(target);
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
      } else if (message.type === 'error') {
        reject(workerError(message));
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
