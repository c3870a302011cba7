// The worker thread side of LayerPipe (layer-unpack-worker.ts). berthd keeps a small
// pool of these (about one per core) and each runs the layer jobs it is given side by
// side: a job receives a layer's bytes as they come, runs unpackLayer on them
// (decompression, the diff ID's sha256, tar parsing and the file writes, with every
// path check) and answers with the result or the error.
//
// For a layer being downloaded, the job also stores the compressed blob: once told the
// content store's partial file ('blob-open') it hashes each chunk (the blob's sha256)
// and writes it there with plain blocking writes, then on 'end' fsyncs (on the thread
// pool, while the unpack goes on) and closes the file and answers the digest; the
// content store on the main thread checks it and renames the file into place.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { BerthError } from '../errors.js';
import { unpackLayer } from './layer-unpack.js';
import type { FromWorker, ToWorker } from './layer-unpack-worker.js';

const port = parentPort!;

/** Distributive Omit: a message of FromWorker without its job id. */
type Reply = FromWorker extends infer M ? (M extends unknown ? Omit<M, 'id'> : never) : never;

class Job {
  // Chunks arrive faster than they are unpacked at times: they queue here, and the main
  // thread sends no more than its window before this side acknowledges what it took.
  readonly queue: Uint8Array[] = [];
  ended = false;
  failed: string | undefined;
  /** Stop at once, queued bytes or not (the main thread gave the layer up). */
  cancelled = false;
  wake: (() => void) | undefined;
  /** The unpack has finished or failed: chunks still to come are only stored. */
  unpackSettled = false;
  /** The blob file being written, from 'blob-open' until 'end' or 'fail'. */
  blob: { fd: number; hash: Hash; bytes: number } | undefined;
  /** A write to the blob file failed: nothing more is written, the main thread is told once. */
  blobError = false;

  constructor(readonly id: number) {}

  reply(message: Reply): void {
    port.postMessage({ ...message, id: this.id } as FromWorker);
  }

  failBlob(err: unknown): void {
    if (this.blobError) return;
    this.blobError = true;
    this.closeBlob();
    const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: `storing the layer blob: ${(err as Error).message ?? String(err)}` };
    this.reply({ type: 'blob-error', ...error });
  }

  closeBlob(): void {
    if (!this.blob) return;
    const { fd } = this.blob;
    this.blob = undefined;
    try {
      closeSync(fd);
    } catch {
      // Closing is all that is left to do with it.
    }
  }

  storeChunk(chunk: Uint8Array): void {
    if (!this.blob || this.blobError) return;
    try {
      this.blob.hash.update(chunk);
      for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(this.blob.fd, chunk, offset);
      this.blob.bytes += chunk.byteLength;
    } catch (err) {
      this.failBlob(err);
    }
  }

  async *source(): AsyncIterable<Uint8Array> {
    for (;;) {
      if (this.cancelled) throw new BerthError('Aborted', 'layer unpack stopped');
      const chunk = this.queue.shift();
      if (chunk) {
        this.reply({ type: 'ack', bytes: chunk.byteLength });
        yield chunk;
        continue;
      }
      if (this.failed !== undefined) throw new Error(this.failed);
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

const jobs = new Map<number, Job>();

function start(id: number, target: string): void {
  const job = new Job(id);
  jobs.set(id, job);
  // This thread does nothing but layer jobs: its file-system calls block it, not berthd.
  unpackLayer(job.source(), target, { blocking: true }).then(
    (result) => {
      job.unpackSettled = true;
      job.reply({ type: 'done', result });
    },
    (err: unknown) => {
      job.unpackSettled = true;
      job.queue.length = 0;
      const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: (err as Error).message ?? String(err) };
      job.reply({ type: 'error', ...error });
    },
  );
}

port.on('message', (message: ToWorker) => {
  if (message.type === 'start') return start(message.id, message.target);
  const job = jobs.get(message.id);
  if (!job) return;
  switch (message.type) {
    case 'blob-open':
      try {
        job.blob = { fd: openSync(message.path, 'w', 0o600), hash: createHash('sha256'), bytes: 0 };
      } catch (err) {
        job.failBlob(err);
      }
      return;
    case 'chunk':
      job.storeChunk(message.chunk);
      if (!job.unpackSettled) job.queue.push(message.chunk);
      break;
    case 'end':
      job.ended = true;
      if (job.blob && !job.blobError) {
        const blob = job.blob;
        const done = { type: 'blob', digest: `sha256:${blob.hash.digest('hex')}`, bytes: blob.bytes } as const;
        fsync(blob.fd, (err) => {
          if (err) return job.failBlob(err);
          job.closeBlob();
          job.reply(done);
        });
      }
      break;
    case 'fail':
      job.failed = message.message;
      if (job.blob) {
        // Kept as it is for a resumed download (the content store decides).
        job.closeBlob();
        job.reply({ type: 'blob-closed' });
      }
      break;
    case 'cancel':
      job.cancelled = true;
      job.queue.length = 0;
      break;
    case 'release':
      // The main thread is done with the job (its unpack has settled, its blob is closed).
      jobs.delete(message.id);
      return;
  }
  job.wake?.();
});
