// The worker thread side of unpackInWorker (layer-unpack-worker.ts): receives a layer's
// bytes as they come, runs unpackLayer on them (decompression, the diff ID's sha256, tar
// parsing and the file writes, with every path check) and answers with the result or
// the error. One worker per layer, so the layers of a pull unpack on other cores than
// the one serving RPCs.
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

port.on('message', (message: ToWorker) => {
  if (message.type === 'chunk') queue.push(message.chunk);
  else if (message.type === 'end') ended = true;
  else failed = message.message;
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

unpackLayer(source(), target).then(
  (result) => port.postMessage({ type: 'done', result } satisfies FromWorker),
  (err: unknown) => {
    const error = err instanceof BerthError ? { code: err.code, message: err.message } : { message: (err as Error).message ?? String(err) };
    port.postMessage({ type: 'error', ...error } satisfies FromWorker);
  },
);
