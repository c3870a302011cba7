// The worker thread side of unpackInWorker and openLayerPipe (layer-unpack-worker.ts):
// receives a layer's bytes as they come, runs unpackLayer on them (decompression, the
// diff ID's sha256, tar parsing and the file writes, with every path check) and answers
// with the result or the error. One worker per layer, so the layers of a pull unpack on
// other cores than the one serving RPCs.
//
// For a layer being downloaded (openLayerPipe), the worker also stores the compressed
// blob: once told the content store's partial file ('blob-open') it hashes each chunk
// (the blob's sha256) and writes it there with plain blocking writes (this thread does
// nothing else meanwhile), then on 'end' fsyncs and closes the file and answers the
// digest; the content store on the main thread checks it and renames the file into place.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { BerthError } from '../errors.js';
import { unpackLayer } from './layer-unpack.js';
import type { FromWorker, ToWorker } from './layer-unpack-worker.js';

const port = parentPort!;
const { target } = workerData as { target: string };

// Chunks arrive faster than they are unpacked at times: they queue here, and the main
// thread sends no more than its window before this side acknowledges what it took.
const queue: Uint8Array[] = [];
let ended = false;
let failed: string | undefined;
let wake: (() => void) | undefined;
/** The unpack has finished or failed: chunks still to come are only stored. */
let unpackSettled = false;

/** The blob file being written, from 'blob-open' until 'end' or 'fail'. */
let blob: { fd: number; hash: Hash; bytes: number } | undefined;
/** A write to the blob file failed: nothing more is written, the main thread is told once. */
let blobError = false;

function failBlob(err: unknown): void {
  if (blobError) return;
  blobError = true;
  closeBlob();
  const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: `storing the layer blob: ${(err as Error).message ?? String(err)}` };
  port.postMessage({ type: 'blob-error', ...error } satisfies FromWorker);
}

function closeBlob(): void {
  if (!blob) return;
  const { fd } = blob;
  blob = undefined;
  try {
    closeSync(fd);
  } catch {
    // Closing is all that is left to do with it.
  }
}

function storeChunk(chunk: Uint8Array): void {
  if (!blob || blobError) return;
  try {
    blob.hash.update(chunk);
    for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(blob.fd, chunk, offset);
    blob.bytes += chunk.byteLength;
  } catch (err) {
    failBlob(err);
  }
}

port.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'blob-open':
      try {
        blob = { fd: openSync(message.path, 'w', 0o600), hash: createHash('sha256'), bytes: 0 };
      } catch (err) {
        failBlob(err);
      }
      return;
    case 'chunk':
      storeChunk(message.chunk);
      if (!unpackSettled) queue.push(message.chunk);
      break;
    case 'end':
      ended = true;
      if (blob && !blobError) {
        // Synced on the thread pool: the unpack goes on meanwhile.
        const done = { type: 'blob', digest: `sha256:${blob.hash.digest('hex')}`, bytes: blob.bytes } satisfies FromWorker;
        fsync(blob.fd, (err) => {
          if (err) return failBlob(err);
          closeBlob();
          port.postMessage(done);
        });
      }
      break;
    case 'fail':
      failed = message.message;
      if (blob) {
        // Kept as it is for a resumed download (the content store decides).
        closeBlob();
        port.postMessage({ type: 'blob-closed' } satisfies FromWorker);
      }
      break;
  }
  wake?.();
});

async function* source(): AsyncIterable<Uint8Array> {
  for (;;) {
    const chunk = queue.shift();
    if (chunk) {
      port.postMessage({ type: 'ack', bytes: chunk.byteLength } satisfies FromWorker);
      yield chunk;
      continue;
    }
    if (failed !== undefined) throw new Error(failed);
    if (ended) return;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
}

// This thread does nothing else: its file-system calls block it, not berthd.
unpackLayer(source(), target, { blocking: true }).then(
  (result) => {
    unpackSettled = true;
    port.postMessage({ type: 'done', result } satisfies FromWorker);
  },
  (err: unknown) => {
    unpackSettled = true;
    queue.length = 0;
    const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: (err as Error).message ?? String(err) };
    port.postMessage({ type: 'error', ...error } satisfies FromWorker);
  },
);
