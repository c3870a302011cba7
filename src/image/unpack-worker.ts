// The worker thread side of LayerPipe (layer-unpack-worker.ts). berthd keeps a small
// pool of these (about one per core) and each runs the layer jobs it is given side by
// side: a job receives a layer's bytes as they come and, for each chunk, at once and
// synchronously: stores it in the blob (when downloading: the content store's partial
// file, with the blob's sha256) and unpacks it (LayerUnpacker: decompression, the diff
// ID's sha256, tar parsing and the file writes, with every path check). The chunk is then
// acknowledged, so the main thread sends the next ones.
//
// A fresh download may instead be fetched here ('fetch'): the worker makes the GET itself
// (plain http on a socket of its own whose reads land in a 1 MB batch buffer; https with
// node:https, its chunks copied into the batch) and takes each batch the same way, so
// the bytes never pass through the main thread; it only hears of the progress.
// An answer other than 200 (after redirects), or no connection, is refused with nothing
// stored, and the main thread makes its own request (auth, retries) into the same job.
//
// On 'end' the blob file is fsynced (on the thread pool, while the unpack's last steps
// run), closed and its digest answered; the content store on the main thread checks it
// and renames the file into place. The unpack answers its result or its error.
import { createHash, type Hash } from 'node:crypto';
import { closeSync, fsync, openSync, writeSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { parentPort } from 'node:worker_threads';
import { BerthError, type ErrorCode } from '../errors.js';
import { LayerUnpacker } from './layer-unpack.js';
import type { FromWorker, ToWorker } from './layer-unpack-worker.js';

const port = parentPort!;

/** A fetched body is taken in batches of this size (socket reads bring ~64 KB). */
const BATCH_BYTES = 1024 * 1024;
/** The main thread hears of a fetch's progress every this many bytes (each message costs both threads ~0.1 ms). */
const PROGRESS_BYTES = 8 * 1024 * 1024;
/** Room a socket read is given (the batch is taken once less is left). */
const READ_ROOM = 64 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

type FetchMessage = Extract<ToWorker, { type: 'fetch' }>;

/** The status line and the headers plainGet needs (names are case-insensitive). */
function parseHead(text: string): { status: number; length?: number; location?: string } {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
  let length: number | undefined;
  let location: string | undefined;
  let chunked = false;
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-length' && /^\d+$/.test(value)) length = Number(value);
    else if (name === 'location') location = value;
    else if (name === 'transfer-encoding') chunked = true;
  }
  return { status, length: chunked ? undefined : length, location };
}

/** An error of the fetch with the status the pull fails with. */
function fetchError(code: ErrorCode, message: string): BerthError {
  return new BerthError(code, message);
}

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
    this.stopFetch();
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
   * Takes a chunk (a view of the ring or of the batch buffer: it is overwritten once this
   * returns, so nothing here keeps it): stores it in the blob and unpacks it.
   */
  take(chunk: Uint8Array): void {
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
  }

  /** The transfer running (fetch), and its batch of received bytes not yet taken. */
  request: { destroy(error?: Error): void } | undefined;
  batch: Buffer | undefined;
  batched = 0;
  received = 0;
  /** Bytes taken but not yet reported as received. */
  unreported = 0;

  /** Fetches the blob (see the top of this file). */
  fetch(message: FetchMessage): void {
    this.get(message, message.url, message.headers, 0);
  }

  get(message: FetchMessage, url: string, headers: Record<string, string>, hop: number): void {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return this.refuse();
    }
    if (target.protocol === 'http:') return this.plainGet(message, target, headers, hop);
    const client = target.protocol === 'https:' ? process.getBuiltinModule('node:https') : undefined;
    if (!client) return this.refuse();
    let answered = false;
    const request = client.get(target, { headers }, (response) => {
      answered = true;
      if (this.request !== request) return void response.destroy();
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      if (REDIRECTS.has(status) && location && hop < MAX_REDIRECTS) {
        response.resume();
        return this.redirect(message, target, location, headers, hop);
      }
      if (status !== 200) {
        response.resume();
        return this.refuse();
      }
      this.body(message, request, response);
    });
    this.request = request;
    request.setTimeout(message.timeoutMs, () => request.destroy(fetchError('DeadlineExceeded', message.timeoutMessage)));
    request.on('error', (err) => {
      if (this.request !== request) return;
      // No connection (refused, TLS) before an answer: the main thread's request decides.
      if (!answered && !(err instanceof BerthError)) return this.refuse();
      this.fetchFailed(err);
    });
  }

  redirect(message: FetchMessage, from: URL, location: string, headers: Record<string, string>, hop: number): void {
    let next: URL;
    try {
      next = new URL(location, from);
    } catch {
      return this.refuse();
    }
    // Our credentials stay with the registry (blob storage gets none).
    const { authorization: _dropped, ...rest } = headers;
    this.get(message, next.href, next.origin === from.origin ? headers : rest, hop + 1);
  }

  /**
   * A GET over plain http on a socket of its own whose reads land straight in the batch
   * buffer (net's `onread`): no buffer per read, no stream, no copy. A 200 with a
   * Content-Length is taken; a redirect is followed; anything else (chunked bodies too)
   * is refused, and the main thread's client takes over.
   */
  plainGet(message: FetchMessage, target: URL, headers: Record<string, string>, hop: number): void {
    const lines = [`GET ${target.pathname}${target.search} HTTP/1.1`, `Host: ${target.host}`, 'User-Agent: berth', 'Accept-Encoding: identity', 'Connection: close'];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    const scratch = Buffer.allocUnsafe(READ_ROOM);
    let head = Buffer.alloc(0);
    let length = -1;
    let answered = false;
    const batch = (this.batch ??= Buffer.allocUnsafe(BATCH_BYTES));
    const socket: Socket = connect({
      host: target.hostname.replace(/^\[|\]$/g, ''),
      port: Number(target.port || 80),
      onread: {
        buffer: () => (length < 0 ? scratch : batch.subarray(this.batched)),
        callback: (n: number) => {
          if (this.request !== socket) return false;
          if (length >= 0) return this.bodyBytes(message, socket, n, length);
          head = Buffer.concat([head, scratch.subarray(0, n)]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) {
            if (head.length > 64 * 1024) this.refuseSocket(socket);
            return true;
          }
          answered = true;
          const answer = parseHead(head.subarray(0, end).toString('latin1'));
          if (answer.status !== 200 || answer.length === undefined) {
            if (REDIRECTS.has(answer.status) && answer.location && hop < MAX_REDIRECTS) {
              this.request = undefined;
              socket.destroy();
              this.redirect(message, target, answer.location, headers, hop);
              return false;
            }
            this.refuseSocket(socket);
            return false;
          }
          length = answer.length;
          const rest = head.subarray(end + 4);
          rest.copy(batch, this.batched);
          return this.bodyBytes(message, socket, rest.length, length);
        },
      },
    });
    this.request = socket;
    socket.on('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    socket.setTimeout(message.timeoutMs, () => socket.destroy(fetchError('DeadlineExceeded', message.timeoutMessage)));
    socket.on('error', (err) => {
      if (this.request !== socket) return;
      if (!answered && !(err instanceof BerthError)) return this.refuse();
      this.fetchFailed(err);
    });
    socket.on('close', () => {
      if (this.request !== socket) return;
      if (!answered) return this.refuse();
      this.fetchFailed(new Error('connection closed before the blob was complete'));
    });
  }

  /** n more body bytes landed in the batch buffer (plainGet). */
  bodyBytes(message: FetchMessage, socket: Socket, n: number, length: number): boolean {
    this.batched += n;
    this.received += n;
    if (this.received > length || (message.limit !== undefined && this.received > message.limit)) {
      const error = this.received > length ? new Error('the registry sent more than its Content-Length') : fetchError('DataLoss', `blob ${message.digest} is larger than the ${message.limit} bytes its descriptor declares`);
      socket.destroy();
      this.fetchFailed(error);
      return false;
    }
    if (this.received === length) {
      this.request = undefined;
      socket.destroy();
      this.flush();
      this.progress(0);
      this.batch = undefined;
      if (message.limit !== undefined && this.received < message.limit) {
        this.fetchFailed(fetchError('Unavailable', `download of ${message.digest} ended after ${this.received} of ${message.limit} bytes`));
        return false;
      }
      this.end();
      return false;
    }
    if (BATCH_BYTES - this.batched < READ_ROOM) this.flush();
    return true;
  }

  refuseSocket(socket: Socket): void {
    this.request = undefined;
    socket.destroy();
    this.refuse();
  }

  /** A 200 answer: its body is stored and unpacked as it comes. */
  body(message: FetchMessage, request: ClientRequest, response: IncomingMessage): void {
    response.on('data', (chunk: Buffer) => {
      if (this.request !== request) return;
      this.received += chunk.byteLength;
      if (message.limit !== undefined && this.received > message.limit) {
        return void request.destroy(fetchError('DataLoss', `blob ${message.digest} is larger than the ${message.limit} bytes its descriptor declares`));
      }
      if (this.batched + chunk.byteLength > BATCH_BYTES) this.flush();
      if (chunk.byteLength >= BATCH_BYTES) {
        this.take(chunk);
        this.progress(chunk.byteLength);
        return;
      }
      this.batch ??= Buffer.allocUnsafe(BATCH_BYTES);
      chunk.copy(this.batch, this.batched);
      this.batched += chunk.byteLength;
    });
    response.on('end', () => {
      if (this.request !== request) return;
      this.flush();
      this.progress(0);
      this.request = undefined;
      this.batch = undefined;
      if (message.limit !== undefined && this.received < message.limit) {
        // Kept for a resume (the content store's partial file).
        return this.fetchFailed(fetchError('Unavailable', `download of ${message.digest} ended after ${this.received} of ${message.limit} bytes`));
      }
      this.end();
    });
    // A body cut short ends with 'aborted'/'error' (or a close without 'end').
    response.on('error', (err) => this.request === request && this.fetchFailed(err));
    response.on('close', () => this.request === request && !response.complete && this.fetchFailed(new Error('connection closed before the blob was complete')));
  }

  /** Takes the batch gathered so far. */
  flush(): void {
    if (this.batched === 0) return;
    const bytes = this.batched;
    this.batched = 0;
    this.take(this.batch!.subarray(0, bytes));
    this.progress(bytes);
  }

  /** Counts bytes taken; tells the main thread every PROGRESS_BYTES, and at the end (bytes 0). */
  progress(bytes: number): void {
    this.unreported += bytes;
    if (this.unreported < (bytes === 0 ? 1 : PROGRESS_BYTES)) return;
    this.reply({ type: 'received', bytes: this.unreported });
    this.unreported = 0;
  }

  /** The request was not answered with the blob: nothing was stored. */
  refuse(): void {
    this.request = undefined;
    this.reply({ type: 'fetch-refused' });
  }

  /** The transfer failed midway: the blob keeps what came (a resume reads it), the unpack stops. */
  fetchFailed(err: unknown): void {
    const request = this.request;
    this.request = undefined;
    request?.destroy();
    this.flush();
    this.progress(0);
    this.batch = undefined;
    const error = err instanceof BerthError ? err : fetchError('Unavailable', `blob download interrupted: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    if (this.blob && !this.blobError) this.failBlob(error);
    if (this.unpacker && !this.finishing) this.failUnpack(error);
  }

  /** Stops a running transfer (the main thread gave the job up). */
  stopFetch(): void {
    const request = this.request;
    this.request = undefined;
    this.batch = undefined;
    request?.destroy();
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
      job.take(job.ring!.subarray(message.offset, message.offset + message.length));
      job.reply({ type: 'ack', bytes: message.length });
      return;
    case 'fetch':
      job.fetch(message);
      return;
    case 'end':
      job.end();
      return;
    case 'fail':
      job.stopFetch();
      if (job.blob) {
        // Kept as it is for a resumed download (the content store decides).
        job.closeBlob();
        job.reply({ type: 'blob-closed' });
      }
      if (job.unpacker && !job.finishing) job.failUnpack(new Error(message.message));
      return;
    case 'cancel':
      job.stopFetch();
      // A finishing unpack answers once its last steps are done (the caller then removes the target).
      if (job.unpacker && !job.finishing) job.failUnpack(new BerthError('Aborted', 'layer unpack stopped'));
      return;
    case 'release':
      // The main thread is done with the job (its unpack has settled, its blob is closed).
      jobs.delete(message.id);
      return;
  }
});
