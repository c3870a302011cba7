// Blobs by digest under <root>/content. A download streams into ingest/<hex>.partial
// while its sha256 is computed; only a blob whose digest (and size) match is fsynced
// and renamed into blobs/sha256/<hex>, so a partial or corrupt download is never
// visible. An interrupted download resumes from its partial file; two pulls of the
// same blob share one download.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, unavailable, internal, invalidArgument } from '../errors.js';
import { fsyncDir, writeFileAtomic } from '../store/atomic-file.js';
import { digestPattern } from '../util/image-reference.js';
import { SingleFlight } from '../util/single-flight.js';

/** Opens a byte source at an offset; `resumed` says whether it honoured the offset. */
export type BlobSource = ((offset: number) => Promise<{ body: AsyncIterable<Uint8Array>; resumed: boolean }>) & {
  /** The plain GET of the whole blob that a sink may make itself (BlobSink.fetch), when there is one. */
  direct?: () => DirectRequest | undefined;
};

/**
 * A GET of a whole blob as the registry client would make it first (its base URL, the
 * authorization it holds): a layer worker makes it over node:http itself. Redirects are
 * followed (Authorization dropped when the origin changes); any other answer but 200,
 * or no answer, is refused and the client's own request (auth challenges, retries,
 * fallbacks) follows.
 */
export interface DirectRequest {
  url: string;
  headers: Record<string, string>;
  /** The transfer is cancelled when nothing arrives for this long (DeadlineExceeded, timeoutMessage). */
  timeoutMs: number;
  timeoutMessage: string;
  /** The pull's signal: the transfer stops once it aborts, with abortError(). */
  signal?: AbortSignal;
  abortError: () => Error;
}

export type ChunkObserver = (chunk: Uint8Array) => void | Promise<void>;

/**
 * Where a download's bytes go when not hashed and written here (a layer's worker does
 * both: LayerPipe). The sink writes into the partial file it was opened on.
 */
export interface BlobSink {
  /** Takes the next chunk (waits while the sink is behind). */
  write(chunk: Uint8Array): Promise<void>;
  /** Every byte was given: the file is synced and closed; answers its sha256 digest and size. */
  end(): Promise<{ digest: string; bytes: number }>;
  /** The download stopped: the file is closed holding what was written (a resume reads it). */
  fail(err: unknown): Promise<void>;
  /**
   * Fetches the blob itself (before any write) and stores all of it, as end() answers;
   * undefined when the request was refused (nothing stored: the caller goes on with
   * write()). Throws when the transfer failed midway (the file keeps what came, for a
   * resume) or brought more than `limit` bytes.
   */
  fetch?(request: DirectRequest, limit: number | undefined, digest: string): Promise<{ digest: string; bytes: number } | undefined>;
}

/** Opens a sink on a fresh partial file, or answers undefined to have the store write it. */
export type SinkFactory = (partialPath: string) => BlobSink | undefined;

export class DigestMismatchError extends BerthError {
  constructor(digest: string, actual: string) {
    super('DataLoss', `content digest mismatch: expected ${digest}, got ${actual}`);
  }
}

export class ContentStore {
  readonly #blobs: string;
  readonly #ingest: string;
  readonly #downloads = new SingleFlight<void>();

  constructor(root: string) {
    this.#blobs = join(root, 'content', 'blobs', 'sha256');
    this.#ingest = join(root, 'content', 'ingest');
  }

  async init(): Promise<void> {
    await mkdir(this.#blobs, { recursive: true, mode: 0o700 });
    await mkdir(this.#ingest, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    checkDigest(digest);
    return join(this.#blobs, digest.slice('sha256:'.length));
  }

  async has(digest: string): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number> {
    return (await stat(this.blobPath(digest))).size;
  }

  /** A stored blob, verified again (for small blobs: manifests and configs). */
  async read(digest: string): Promise<Buffer> {
    const bytes = await readFile(this.blobPath(digest));
    const actual = sha256Digest(bytes);
    if (actual !== digest) throw internal(`stored blob ${digest} is corrupt (its content hashes to ${actual}); remove the image and pull it again`);
    return bytes;
  }

  openRead(digest: string): NodeJS.ReadableStream {
    return createReadStream(this.blobPath(digest));
  }

  /** Stores bytes already in memory after checking their digest. */
  async put(digest: string, bytes: Uint8Array): Promise<void> {
    const actual = sha256Digest(bytes);
    if (actual !== digest) throw new DigestMismatchError(digest, actual);
    if (await this.has(digest)) return;
    await writeFileAtomic(this.blobPath(digest), bytes, 0o600);
  }

  /**
   * Downloads a blob unless present. Concurrent calls for one digest share the download.
   * `onChunk` sees every new chunk as it is stored (the puller unpacks from it while
   * the download runs); the download waits for the promise it returns. `sink`, for a
   * download from the first byte (not a resumed one), takes over the hashing and writing.
   */
  ingest(digest: string, expectedSize: number | undefined, source: BlobSource, onChunk?: ChunkObserver, sink?: SinkFactory): Promise<void> {
    checkDigest(digest);
    return this.#downloads.run(digest, () => this.#download(digest, expectedSize, source, onChunk, sink));
  }

  isDownloading(digest: string): boolean {
    return this.#downloads.isRunning(digest);
  }

  async #download(digest: string, expectedSize: number | undefined, source: BlobSource, onChunk?: ChunkObserver, sinkFactory?: SinkFactory): Promise<void> {
    if (await this.has(digest)) return;
    const partial = join(this.#ingest, `${digest.slice('sha256:'.length)}.partial`);
    let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
    if (expectedSize !== undefined && offset > expectedSize) offset = 0;
    // A sink that fetches the blob itself (a layer worker) is given the request first.
    const request = offset === 0 ? source.direct?.() : undefined;
    let sink = request ? sinkFactory?.(partial) : undefined;
    if (request && sink?.fetch) {
      const stored = await sink.fetch(request, expectedSize, digest);
      if (stored) return this.#complete(partial, digest, expectedSize, stored.digest, stored.bytes);
      // Refused: the client's own request follows, into the same sink.
    }
    let opened: Awaited<ReturnType<BlobSource>>;
    try {
      opened = await source(offset);
    } catch (err) {
      await sink?.fail(err);
      throw err;
    }
    const { body, resumed } = opened;
    sink ??= resumed && offset > 0 ? undefined : sinkFactory?.(partial);
    if (sink) {
      const { digest: actual, bytes } = await this.#downloadInto(sink, digest, expectedSize, body);
      return this.#complete(partial, digest, expectedSize, actual, bytes);
    }
    const hash = createHash('sha256');
    let written = 0;
    if (resumed && offset > 0) {
      // The bytes already here count for the digest, and the observer sees them first.
      for await (const chunk of createReadStream(partial, { start: 0, end: offset - 1 })) {
        hash.update(chunk as Buffer);
        await onChunk?.(chunk as Buffer);
      }
      written = offset;
    }
    const file = await open(partial, written > 0 ? 'a' : 'w', 0o600);
    try {
      for await (const chunk of body) {
        written += chunk.length;
        if (expectedSize !== undefined && written > expectedSize) {
          throw new BerthError('DataLoss', `blob ${digest} is larger than the ${expectedSize} bytes its descriptor declares`);
        }
        hash.update(chunk);
        await file.write(chunk);
        await onChunk?.(chunk);
      }
      await file.sync();
    } finally {
      await file.close();
    }
    return this.#complete(partial, digest, expectedSize, `sha256:${hash.digest('hex')}`, written);
  }

  /** Passes a body to a sink: answers what the sink stored (synced). */
  async #downloadInto(sink: BlobSink, digest: string, expectedSize: number | undefined, body: AsyncIterable<Uint8Array>): Promise<{ digest: string; bytes: number }> {
    let written = 0;
    try {
      for await (const chunk of body) {
        written += chunk.length;
        if (expectedSize !== undefined && written > expectedSize) {
          throw new BerthError('DataLoss', `blob ${digest} is larger than the ${expectedSize} bytes its descriptor declares`);
        }
        await sink.write(chunk);
      }
    } catch (err) {
      await sink.fail(err);
      throw err;
    }
    return sink.end();
  }

  /** A complete download in the partial file, `written` bytes hashing to `actual`: checked, then made the blob. */
  async #complete(partial: string, digest: string, expectedSize: number | undefined, actual: string, written: number): Promise<void> {
    if (expectedSize !== undefined && written < expectedSize) {
      // Cut short: keep the partial so the next attempt resumes from it.
      throw unavailable(`download of ${digest} ended after ${written} of ${expectedSize} bytes`);
    }
    if (actual !== digest || (expectedSize !== undefined && written !== expectedSize)) {
      await unlink(partial).catch(() => undefined);
      if (actual !== digest) throw new DigestMismatchError(digest, actual);
      throw new BerthError('DataLoss', `blob ${digest} has ${written} bytes, its descriptor declares ${expectedSize}`);
    }
    await rename(partial, this.blobPath(digest));
    await fsyncDir(this.#blobs);
  }

  /** Stores a stream whose digest is not known in advance; answers its digest and size. */
  async ingestUnknown(body: AsyncIterable<Uint8Array>): Promise<{ digest: string; size: number }> {
    const temp = join(this.#ingest, `unknown-${randomBytes(8).toString('hex')}.partial`);
    const hash = createHash('sha256');
    let size = 0;
    const file = await open(temp, 'w', 0o600);
    try {
      for await (const chunk of body) {
        hash.update(chunk);
        size += chunk.length;
        await file.write(chunk);
      }
      await file.sync();
    } catch (err) {
      await file.close();
      await unlink(temp).catch(() => undefined);
      throw err;
    }
    await file.close();
    const digest = `sha256:${hash.digest('hex')}`;
    if (await this.has(digest)) await unlink(temp);
    else {
      await rename(temp, this.blobPath(digest));
      await fsyncDir(this.#blobs);
    }
    return { digest, size };
  }

  async delete(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.#blobs).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  /** Drops partial downloads (on start: no pull is running then). */
  async clearIngest(): Promise<void> {
    for (const name of await readdir(this.#ingest).catch(() => [] as string[])) {
      await rm(join(this.#ingest, name), { force: true, recursive: true });
    }
  }

  /** Bytes and inodes the blobs take. */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    let bytes = 0;
    let inodes = 0;
    for (const name of await readdir(this.#blobs).catch(() => [] as string[])) {
      const s = await stat(join(this.#blobs, name)).catch(() => undefined);
      if (!s) continue;
      bytes += s.blocks * 512;
      inodes++;
    }
    return { bytes, inodes };
  }
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

function checkDigest(digest: string): void {
  if (!digestPattern.test(digest)) throw invalidArgument(`unsupported or malformed digest "${digest}"`);
}
