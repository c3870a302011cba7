// unpackLayer in a worker thread: the main thread only forwards the layer's bytes (as
// they are downloaded or read from the content store) and waits for the diff ID, so
// decompression, hashing, tar parsing and the file writes of a pull leave berthd's event
// loop free for RPCs, and the layers of one pull use more than one core. The unpack
// itself is the same code (layer-unpack.ts) with the same checks.
//
// A layer being downloaded goes through openLayerPipe instead: the worker then also
// hashes and stores the compressed blob (the content store's partial file), so the main
// thread only receives the HTTP body and hands its bytes on.
import { availableParallelism, loadavg } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { BerthError, type ErrorCode } from '../errors.js';
import type { BlobSink, DirectRequest } from './content-store.js';
// Types only: the unpack code (its tar parser, fzstd) is loaded by the worker, not here.
import type { UnpackResult } from './layer-unpack.js';

export type ToWorker =
  | { type: 'start'; id: number; target: string }
  /** The job's ring of shared memory, before its first chunk. */
  | { type: 'ring'; id: number; ring: SharedArrayBuffer }
  /** Bytes [offset, offset + length) of the ring are the layer's next bytes. */
  | { type: 'chunk'; id: number; offset: number; length: number }
  | { type: 'end'; id: number }
  | { type: 'fail'; id: number; message: string }
  | { type: 'blob-open'; id: number; path: string }
  /** Fetch the blob (into the file of 'blob-open') with this GET: see DirectRequest. */
  | { type: 'fetch'; id: number; url: string; headers: Record<string, string>; timeoutMs: number; timeoutMessage: string; limit?: number; digest: string }
  | { type: 'cancel'; id: number }
  | { type: 'release'; id: number };
export type FromWorker =
  | { type: 'ack'; id: number; bytes: number }
  /** Bytes of a fetched blob received (and taken) since the last. */
  | { type: 'received'; id: number; bytes: number }
  /** The fetch was not answered with the blob; nothing was stored. */
  | { type: 'fetch-refused'; id: number }
  | { type: 'done'; id: number; result: UnpackResult }
  | { type: 'error'; id: number; code?: ErrorCode; message: string }
  | { type: 'blob'; id: number; digest: string; bytes: number }
  | { type: 'blob-closed'; id: number }
  | { type: 'blob-error'; id: number; code?: ErrorCode; message: string };

/**
 * Bytes sent to a worker and not yet taken by its unpack. The worker takes each batch
 * whole as it comes (stores and unpacks it synchronously), so a few batches in flight
 * keep it busy; each pipe's ring (below) is this much shared memory, touched page by page.
 */
const WINDOW_BYTES = 4 * 1024 * 1024;
/**
 * A pipe's bytes go to its worker in messages of up to this size: the HTTP body comes in
 * chunks of ~16-64 KB, and one message per chunk costs the main thread more than a copy.
 */
const BATCH_BYTES = 1024 * 1024;
/**
 * The bytes themselves go through a ring of shared memory per pipe: the main thread
 * copies the body's chunks in (it must copy: they are views of undici's buffers), the
 * worker reads them in place and acknowledges them once stored and unpacked (it keeps no
 * view). No buffer is allocated, transferred or collected per batch. Never more than the
 * ring's size is unacknowledged, so nothing is overwritten before the worker took it.
 */
const RING_BYTES = WINDOW_BYTES + BATCH_BYTES;

/**
 * Layer workers: each runs several layers' jobs side by side, the jobs spread by their
 * bytes (least loaded first). While the machine has idle cores (load average below the
 * cores) the pool is one more than the cores (at least 3, at most 5): a pull's layers are
 * whole jobs, so 5 equal layers on 2 workers are 3 on one and 2 on the other, one core
 * idle for the last fifth; on 3 workers (2, 2, 1) the kernel shares the 2 cores among
 * them and all end together. On a busy machine the cores are shared with others anyway
 * (an idle worker leaves its core to them), so it is one per core (2 to 4): each worker
 * costs its start (an isolate loading the unpack code: ~30-60 ms of CPU measured here,
 * more under load). Workers are started as soon as a pull's manifest shows its big layers
 * (warmLayerWorkers), while the config and the small layers are fetched.
 */
function poolSize(): number {
  const cores = availableParallelism();
  return loadavg()[0]! < cores ? Math.max(3, Math.min(5, cores + 1)) : Math.max(2, Math.min(4, cores));
}
/** A worker with no job for this long ends (idle memory). */
const IDLE_MS = 10_000;

function workerError(message: { code?: ErrorCode; message: string }): Error {
  return message.code ? new BerthError(message.code, message.message) : new Error(message.message);
}

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;
type JobMessage = Distribute<ToWorker>;

/** A layer job on a pooled worker: its messages both ways, and its end. */
interface Job {
  post(message: JobMessage, transfer?: ArrayBuffer[]): void;
  /** Forgets the job here and in its worker (which then takes no more of its messages). */
  release(): void;
}

class PooledWorker {
  // worker_threads is loaded by the first big layer, not at start-up (idle memory).
  readonly worker: Worker = new (process.getBuiltinModule('node:worker_threads').Worker)(new URL('./unpack-worker.js', import.meta.url));
  readonly jobs = new Map<number, (message: FromWorker) => void>();
  /** The bytes of the jobs it runs (their compressed size: what the work grows with). */
  load = 0;
  #idle: NodeJS.Timeout | undefined;

  constructor(private readonly onGone: (w: PooledWorker) => void) {
    this.worker.on('message', (message: FromWorker) => this.jobs.get(message.id)?.(message));
    // Held while it has jobs only; after the 'message' listener, which refs its port again.
    this.worker.unref();
    const died = (err: Error) => {
      this.onGone(this);
      for (const [id, handle] of this.jobs) {
        handle({ type: 'error', id, message: err.message });
        handle({ type: 'blob-error', id, message: err.message });
      }
      this.jobs.clear();
    };
    this.worker.once('error', died);
    this.worker.once('exit', (code) => died(new Error(`the layer worker exited (code ${code})`)));
    this.#endWhenIdle();
  }

  start(id: number, target: string, weight: number, handle: (message: FromWorker) => void): Job {
    clearTimeout(this.#idle);
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(id, handle);
    this.load += weight;
    this.worker.postMessage({ type: 'start', id, target } satisfies ToWorker);
    return {
      post: (message, transfer) => this.worker.postMessage({ ...message, id }, transfer),
      release: () => {
        if (!this.jobs.delete(id)) return;
        this.load -= weight;
        this.worker.postMessage({ type: 'release', id } satisfies ToWorker);
        if (this.jobs.size === 0) this.#endWhenIdle();
      },
    };
  }

  /** Ends the worker after IDLE_MS unless a job comes meanwhile. */
  #endWhenIdle(): void {
    this.worker.unref();
    this.#idle = setTimeout(() => {
      this.onGone(this);
      void this.worker.terminate();
    }, IDLE_MS);
    this.#idle.unref();
  }
}

const pool: PooledWorker[] = [];
let nextJobId = 1;

function addWorker(): PooledWorker {
  const worker = new PooledWorker((gone) => {
    const i = pool.indexOf(gone);
    if (i >= 0) pool.splice(i, 1);
  });
  pool.push(worker);
  return worker;
}

/**
 * Starts workers until there are `count` (at most the pool's size), so that their start
 * overlaps what a pull does before its big layers: the manifest, the config, the small
 * layers.
 */
export function warmLayerWorkers(count: number): void {
  const size = poolSize();
  while (pool.length < Math.min(size, count)) addWorker();
}

/**
 * Which worker a new job goes to: the index of the least loaded (by bytes), or -1 for a
 * new one (while there are fewer than `poolSize` and every worker has a job).
 */
export function pickWorker(workers: ReadonlyArray<{ load: number; jobs: number }>, poolSize: number): number {
  let best = -1;
  for (let i = 0; i < workers.length; i++) if (best < 0 || workers[i]!.load < workers[best]!.load) best = i;
  if (best < 0 || (workers[best]!.jobs > 0 && workers.length < poolSize)) return -1;
  return best;
}

/** The layer workers running now (started and not ended). */
export function layerWorkerCount(): number {
  return pool.length;
}

/** Starts a layer job of `weight` bytes: see pickWorker. */
function startJob(target: string, weight: number, handle: (message: FromWorker) => void): Job {
  const i = pickWorker(pool.map((w) => ({ load: w.load, jobs: w.jobs.size })), poolSize());
  const chosen = i < 0 ? addWorker() : pool[i]!;
  return chosen.start(nextJobId++, target, weight, handle);
}

/**
 * A layer's whole pipeline in a worker thread from its first byte: the compressed blob
 * is hashed and written to the content store's partial file (through `sink`, which
 * ContentStore.ingest uses in place of its own hashing and writing) and unpacked into
 * target at the same time. The main thread only copies the body's chunks into batches
 * it moves to the worker. Without a sink, it unpacks what it is fed (unpackInWorker).
 */
export class LayerPipe {
  /** The unpack's outcome (the diff ID is the caller's to check). */
  readonly unpacked: Promise<UnpackResult>;
  readonly #job: Job;
  /** Settles once the worker's unpack has (whatever the main side decided before). */
  readonly #workerDone: Promise<void>;
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
  #ring: Buffer | undefined;
  /** Bytes copied into the ring, sent to the worker, and acknowledged by it (all counted from the start). */
  #written = 0;
  #sent = 0;
  #acked = 0;
  #ended = false;
  #refused: (() => void) | undefined;

  /**
   * `size`: the blob's (compressed) bytes, when known (how the jobs are spread over the
   * workers). `onReceived` hears of the bytes of a blob the worker fetches itself (progress).
   */
  constructor(target: string, size: number | undefined, private readonly onReceived?: (bytes: number) => void) {
    let workerDone!: () => void;
    this.#workerDone = new Promise<void>((resolve) => (workerDone = resolve));
    let resolveUnpack!: (result: UnpackResult) => void;
    this.unpacked = new Promise<UnpackResult>((resolve, reject) => {
      resolveUnpack = resolve;
      this.#rejectUnpack = reject;
    });
    this.#job = startJob(target, size ?? WORKER_MIN_BYTES, (message) => {
      switch (message.type) {
        case 'ack':
          this.#acked += message.bytes;
          this.#wake();
          break;
        case 'received':
          this.onReceived?.(message.bytes);
          break;
        case 'fetch-refused':
          this.#refused?.();
          break;
        case 'done':
          workerDone();
          resolveUnpack(message.result);
          break;
        case 'error':
          workerDone();
          this.#rejectUnpack(workerError(message));
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
    this.#job.post({ type: 'blob-open', path });
    return {
      write: (chunk) => this.write(chunk),
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
      fetch: (request, limit, digest) => this.#fetch(request, limit, digest),
    };
  }

  /** The worker fetches the blob itself: see BlobSink.fetch. */
  async #fetch(request: DirectRequest, limit: number | undefined, digest: string): Promise<{ digest: string; bytes: number } | undefined> {
    if (request.signal?.aborted) throw request.abortError();
    const refused = new Promise<'refused'>((resolve) => (this.#refused = () => resolve('refused')));
    const { url, headers, timeoutMs, timeoutMessage, signal } = request;
    this.#job.post({ type: 'fetch', url, headers, timeoutMs, timeoutMessage, limit, digest });
    const stop = () => this.#finish({ type: 'fail', message: 'pull cancelled' });
    signal?.addEventListener('abort', stop, { once: true });
    try {
      const outcome = await Promise.race([refused, this.#blob()]);
      if (signal?.aborted) throw request.abortError();
      if (outcome === 'refused') return undefined;
      if (!outcome) throw new Error('the layer worker closed the blob without finishing it');
      return outcome;
    } catch (err) {
      // The download stopped under the unpack: its error is the answer (see `stopped`).
      this.#sinkFailed = true;
      if (signal?.aborted) throw request.abortError();
      throw err;
    } finally {
      this.#refused = undefined;
      signal?.removeEventListener('abort', stop);
    }
  }

  /** Feeds the unpack (without a sink: unpackInWorker); throws once the unpack failed. */
  async write(chunk: Uint8Array): Promise<void> {
    this.#checkFailed();
    if (!this.#ring) {
      const shared = new SharedArrayBuffer(RING_BYTES);
      this.#ring = Buffer.from(shared);
      this.#job.post({ type: 'ring', ring: shared });
    }
    for (let offset = 0; offset < chunk.byteLength; ) {
      let room = RING_BYTES - (this.#written - this.#acked);
      if (room === 0) {
        // A chunk bigger than the window: wait for the worker to take some.
        this.#send();
        await this.#waitForAcks(() => this.#written - this.#acked === RING_BYTES);
        this.#checkFailed();
        continue;
      }
      const at = this.#written % RING_BYTES;
      const n = Math.min(chunk.byteLength - offset, room, RING_BYTES - at, BATCH_BYTES - (this.#written - this.#sent));
      this.#ring.set(chunk.subarray(offset, offset + n), at);
      this.#written += n;
      offset += n;
      // A batch is full, or the ring wraps (a message names one contiguous range).
      if (this.#written - this.#sent === BATCH_BYTES || this.#written % RING_BYTES === 0) this.#send();
    }
    await this.#waitForAcks(() => this.#written - this.#acked >= WINDOW_BYTES);
  }

  /** Waits while `full` holds, until the unpack or the blob settled (the worker may be gone). */
  async #waitForAcks(full: () => boolean): Promise<void> {
    while (full() && !this.#unpackSettled && !this.#blobSettled) {
      await new Promise<void>((resolve) => (this.#resume = resolve));
      this.#resume = undefined;
    }
  }

  #checkFailed(): void {
    if (this.#blobError !== undefined) throw this.#blobError;
    if (this.#unpackError !== undefined) throw this.#unpackError;
  }

  /** Every byte was fed (without a sink), or the source failed with err. */
  finishFeeding(err?: unknown): void {
    if (err === undefined) this.#finish({ type: 'end' });
    else this.#finish({ type: 'fail', message: (err as Error)?.message ?? String(err) });
  }

  /**
   * Ends the job: the blob file it writes (if any) is closed and its unpack has stopped
   * before this returns, so the caller may remove the target.
   */
  async close(): Promise<void> {
    if (this.#sinkOpened && !this.#blobSettled) {
      this.#finish({ type: 'fail', message: 'layer pull stopped' });
      await this.#blob().catch(() => undefined);
    }
    this.#rejectUnpack(new BerthError('Aborted', 'layer pull stopped'));
    this.unpacked.catch(() => undefined);
    this.#finish({ type: 'fail', message: 'layer pull stopped' });
    this.#job.post({ type: 'cancel' });
    await this.#workerDone;
    this.#job.release();
  }

  /** Tells the worker of the bytes copied into the ring since the last message. */
  #send(): void {
    const length = this.#written - this.#sent;
    if (length === 0) return;
    this.#job.post({ type: 'chunk', offset: this.#sent % RING_BYTES, length });
    this.#sent = this.#written;
  }

  #finish(message: JobMessage): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#send();
    this.#job.post(message);
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
export function openLayerPipe(target: string, size: number, onReceived?: (bytes: number) => void): LayerPipe {
  return new LayerPipe(target, size, onReceived);
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
    // Loaded on first use, not at start-up (the unpack code, fzstd: idle memory).
    const { unpackLayer } = await import('./layer-unpack.js');
    return unpackLayer(blob, target);
  }
  return unpackInWorker(blob, target, size);
}

/** Unpacks a layer blob into target (an empty directory) in a worker thread. */
export async function unpackInWorker(blob: AsyncIterable<Uint8Array>, target: string, size?: number): Promise<UnpackResult> {
  const pipe = new LayerPipe(target, size);
  // The source's own failure (a download that stopped) is passed on as it is.
  let sourceError: { err: unknown } | undefined;
  const feeding = (async () => {
    const chunks = blob[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await chunks.next();
      } catch (err) {
        sourceError = { err };
        pipe.finishFeeding(err);
        return;
      }
      if (next.done) break;
      // Throws once the unpack failed: its error is the answer, not this.
      if (!(await pipe.write(next.value).then(() => true, () => false))) return;
    }
    pipe.finishFeeding();
  })();
  try {
    const result = await pipe.unpacked;
    await feeding;
    return result;
  } catch (err) {
    // Not waiting for the feeding loop: it stops at its next chunk (a stalled download
    // must not hold this error back).
    if (sourceError) throw sourceError.err;
    throw err;
  } finally {
    await pipe.close();
  }
}
