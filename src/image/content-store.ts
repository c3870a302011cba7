// Blobs by digest under <root>/content. A download streams into ingest/<hex>.partial
// while its sha256 is computed; only a blob whose digest (and size) match is fsynced
// and renamed into blobs/sha256/<hex>, so a partial or corrupt download is never
// visible. An interrupted download resumes from its partial file; two pulls of the
// same blob share one download.
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../errors.js';
import { fsyncDir, writeFileAtomic } from '../store/atomic-file.js';
import { digestPattern } from './reference.js';
import { SingleFlight } from '../util/single-flight.js';

/** Opens a byte source at an offset; `resumed` says whether it honoured the offset. */
export type BlobSource = (offset: number) => Promise<{ body: AsyncIterable<Uint8Array>; resumed: boolean }>;

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
    if (actual !== digest) throw new BerthError('Internal', `stored blob ${digest} is corrupt (its content hashes to ${actual}); remove the image and pull it again`);
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
   * `onBytes` is told of every chunk (for progress and the no-progress timeout).
   */
  ingest(digest: string, expectedSize: number | undefined, source: BlobSource, onBytes?: (n: number) => void): Promise<void> {
    checkDigest(digest);
    return this.#downloads.run(digest, () => this.#download(digest, expectedSize, source, onBytes));
  }

  async #download(digest: string, expectedSize: number | undefined, source: BlobSource, onBytes?: (n: number) => void): Promise<void> {
    if (await this.has(digest)) return;
    const partial = join(this.#ingest, `${digest.slice('sha256:'.length)}.partial`);
    const hash = createHash('sha256');
    let offset = await resumeOffset(partial, hash);
    if (expectedSize !== undefined && offset > expectedSize) offset = 0;
    const { body, resumed } = await source(offset);
    let written = resumed ? offset : 0;
    const file = await open(partial, resumed && offset > 0 ? 'a' : 'w', 0o600);
    const actualHash = resumed && offset > 0 ? hash : createHash('sha256');
    try {
      for await (const chunk of body) {
        written += chunk.length;
        if (expectedSize !== undefined && written > expectedSize) {
          throw new BerthError('Internal', `blob ${digest} is larger than the ${expectedSize} bytes its descriptor declares`);
        }
        actualHash.update(chunk);
        await file.write(chunk);
        onBytes?.(chunk.length);
      }
      await file.sync();
    } finally {
      await file.close();
    }
    const actual = `sha256:${actualHash.digest('hex')}`;
    if (actual !== digest || (expectedSize !== undefined && written !== expectedSize)) {
      await unlink(partial).catch(() => undefined);
      if (actual !== digest) throw new DigestMismatchError(digest, actual);
      throw new BerthError('Internal', `blob ${digest} has ${written} bytes, its descriptor declares ${expectedSize}`);
    }
    await rename(partial, this.blobPath(digest));
    await fsyncDir(this.#blobs);
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
  if (!digestPattern.test(digest)) throw new BerthError('InvalidArgument', `unsupported or malformed digest "${digest}"`);
}

/** Size of a partial download with its bytes fed to the hash, or 0 when there is none. */
async function resumeOffset(partial: string, hash: Hash): Promise<number> {
  let size: number;
  try {
    size = (await stat(partial)).size;
  } catch {
    return 0;
  }
  if (size === 0) return 0;
  for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
  return size;
}
