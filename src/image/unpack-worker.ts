// The worker thread side of LayerPipe (layer-unpack-worker.ts). berthd keeps a small
// pool of these (about one per core) and each runs the layer jobs it is given side by
// side: a job receives a layer's bytes as they come and, for each chunk, at once and
// synchronously: stores it in the blob (when downloading: the content store's partial
// file, with the blob's sha256) and unpacks it (LayerUnpacker: decompression, the diff
// ID's sha256, tar parsing and the file writes, with every path check). The chunk is then
// acknowledged, so the main thread sends the next ones.
//
// On 'end' the blob file is fsynced (on the thread pool, while the unpack's last steps
// run), closed and its digest answered; the content store on the main thread checks it
// and renames the file into place. The unpack answers its result or its error.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { BerthError } from '../errors.js';
import { LayerUnpacker } from './layer-unpack.js';
import type { FromWorker, ToWorker } from './layer-unpack-worker.js';

const port = parentPort!;

/** Distributive Omit: a message of FromWorker without its job id. */
type Reply = FromWorker extends infer M ? (M extends unknown ? Omit<M, 'id'> : never) : never;

class Job {
  /** The unpack, until it has finished or failed: chunks after that are only stored. */
  unpacker: LayerUnpacker | undefined;
  /** The unpack's last steps run (after 'end'): it answers when they are done, whatever comes. */
  finishing = false;
  /** The blob file being written, from 'blob-open' until 'end' or 'fail'. */
  blob: { fd: number; hash: Hash; bytes: number } | undefined;
  /** A write to the blob file failed: nothing more is written, the main thread is told once. */
  blobError = false;
  /** The shared memory the main thread copies the layer's bytes into (LayerPipe). */
  ring: Uint8Array | undefined;

  constructor(
    readonly id: number,
    target: string,
  ) {
    try {
      this.unpacker = new LayerUnpacker(target);
    } catch (err) {
      this.failUnpack(err);
    }
  }

  reply(message: Reply): void {
    port.postMessage({ ...message, id: this.id } as FromWorker);
  }

  /** The unpack stops with err (answered once); the blob goes on being stored. */
  failUnpack(err: unknown): void {
    const unpacker = this.unpacker;
    this.unpacker = undefined;
    unpacker?.abort();
    const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: (err as Error)?.message ?? String(err) };
    this.reply({ type: 'error', ...error });
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

  /**
   * Takes a chunk (a view of the ring: it is overwritten once acknowledged, so nothing
   * here keeps it) and acknowledges it.
   */
  chunk(chunk: Uint8Array): void {
    if (this.blob && !this.blobError) {
      try {
        this.blob.hash.update(chunk);
        for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(this.blob.fd, chunk, offset);
        this.blob.bytes += chunk.byteLength;
      } catch (err) {
        this.failBlob(err);
      }
    }
    if (this.unpacker) {
      try {
        this.unpacker.push(chunk);
      } catch (err) {
        this.failUnpack(err);
      }
    }
    this.reply({ type: 'ack', bytes: chunk.byteLength });
  }

  end(): void {
    if (this.blob && !this.blobError) {
      const blob = this.blob;
      const done = { type: 'blob', digest: `sha256:${blob.hash.digest('hex')}`, bytes: blob.bytes } as const;
      fsync(blob.fd, (err) => {
        if (err) return this.failBlob(err);
        this.closeBlob();
        this.reply(done);
      });
    }
    const unpacker = this.unpacker;
    if (!unpacker) return;
    this.finishing = true;
    unpacker.finish().then(
      (result) => {
        this.unpacker = undefined;
        this.reply({ type: 'done', result });
      },
      (err: unknown) => this.failUnpack(err),
    );
  }
}

const jobs = new Map<number, Job>();

port.on('message', (message: ToWorker) => {
  if (message.type === 'start') {
    jobs.set(message.id, new Job(message.id, message.target));
    return;
  }
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
    case 'ring':
      job.ring = new Uint8Array(message.ring);
      return;
    case 'chunk':
      job.chunk(job.ring!.subarray(message.offset, message.offset + message.length));
      return;
    case 'end':
      job.end();
      return;
    case 'fail':
      if (job.blob) {
        // Kept as it is for a resumed download (the content store decides).
        job.closeBlob();
        job.reply({ type: 'blob-closed' });
      }
      if (job.unpacker && !job.finishing) job.failUnpack(new Error(message.message));
      return;
    case 'cancel':
      // A finishing unpack answers once its last steps are done (the caller then removes the target).
      if (job.unpacker && !job.finishing) job.failUnpack(new BerthError('Aborted', 'layer unpack stopped'));
      return;
    case 'release':
      // The main thread is done with the job (its unpack has settled, its blob is closed).
      jobs.delete(message.id);
      return;
  }
});
