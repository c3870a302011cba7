// Unpacked layers under <root>/snapshots/<chain-id hex>, one directory per layer in
// overlayfs form, shared by every image with the same layer chain. A layer is unpacked
// into a temp directory and renamed into place only once its diff ID is verified, so a
// crash mid-unpack leaves nothing that looks complete (temp dirs are swept on start).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../errors.js';
import { fsyncDir } from '../store/atomic-file.js';
import { SingleFlight } from '../util/single-flight.js';
import { unpackLayerSomewhere } from './layer-unpack-worker.js';
import type { UnpackResult } from './layer-unpack.js';

const TEMP_PREFIX = '.unpack-';

/** chain[0] = diff[0]; chain[i] = sha256(chain[i-1] + " " + diff[i]) (OCI image spec). */
export function chainIds(diffIds: readonly string[]): string[] {
  const chain: string[] = [];
  for (const diffId of diffIds) {
    const previous = chain[chain.length - 1];
    chain.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return chain;
}

export class SnapshotStore {
  readonly #dir: string;
  readonly #unpacks = new SingleFlight<void>();
  /** Snapshots never change once made, so their usage is measured once. */
  readonly #usage = new Map<string, { bytes: number; inodes: number }>();

  constructor(root: string) {
    this.#dir = join(root, 'snapshots');
  }

  async init(): Promise<void> {
    await mkdir(this.#dir, { recursive: true, mode: 0o700 });
  }

  /** The directory of a layer chain, usable as an overlay lowerdir. */
  path(chainId: string): string {
    return join(this.#dir, chainId.replace(/^sha256:/, ''));
  }

  async has(chainId: string): Promise<boolean> {
    return (await stat(this.path(chainId)).catch(() => undefined))?.isDirectory() ?? false;
  }

  /**
   * Unpacks a layer for chainId unless it is there. `blob` gives its bytes (from the
   * content store, or from a download as it runs); `verified` settles once the blob's
   * digest is checked. Only a layer whose blob and diff ID both check out becomes visible.
   * `size` (the blob's, when known) decides where it unpacks: see unpackLayerSomewhere.
   */
  ensure(chainId: string, expectedDiffId: string, blob: () => AsyncIterable<Uint8Array>, verified: Promise<void> = Promise.resolve(), size?: number): Promise<void> {
    return this.ensureWith(chainId, expectedDiffId, async (target) => {
      const result = await unpackLayerSomewhere(blob(), target, size);
      await verified;
      return result;
    });
  }

  /**
   * As ensure, with the unpack into the (empty, temporary) target directory done by
   * `unpack`, which settles only once the layer's blob is verified too.
   */
  ensureWith(chainId: string, expectedDiffId: string, unpack: (target: string) => Promise<UnpackResult>): Promise<void> {
    return this.#unpacks.run(chainId, async () => {
      if (await this.has(chainId)) return;
      const temp = join(this.#dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
      await mkdir(temp, { mode: 0o755 });
      try {
        const { diffId } = await unpack(temp);
        if (diffId !== expectedDiffId) {
          throw new BerthError('DataLoss', `layer content does not match the image config: diff ID ${diffId}, config says ${expectedDiffId}`);
        }
        await rename(temp, this.path(chainId));
        await fsyncDir(this.#dir);
      } catch (err) {
        await rm(temp, { recursive: true, force: true });
        throw err;
      }
    });
  }

  isUnpacking(chainId: string): boolean {
    return this.#unpacks.isRunning(chainId);
  }

  async list(): Promise<string[]> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => `sha256:${n}`);
  }

  async remove(chainId: string): Promise<void> {
    await rm(this.path(chainId), { recursive: true, force: true });
    this.#usage.delete(chainId);
  }

  /** Removes unpacks a crash interrupted (on start, before any pull runs). */
  async clearTemp(): Promise<void> {
    for (const name of await readdir(this.#dir).catch(() => [] as string[])) {
      if (name.startsWith(TEMP_PREFIX)) await rm(join(this.#dir, name), { recursive: true, force: true });
    }
  }

  /** Bytes (allocated blocks) and inodes of all snapshots. */
  async usage(): Promise<{ bytes: number; inodes: number }> {
    const total = { bytes: 0, inodes: 0 };
    for (const chainId of await this.list()) {
      let usage = this.#usage.get(chainId);
      if (!usage) {
        usage = await diskUsage(this.path(chainId));
        this.#usage.set(chainId, usage);
      }
      total.bytes += usage.bytes;
      total.inodes += usage.inodes;
    }
    return total;
  }
}

/** du-like walk: allocated bytes and inode count, hard links counted once. */
export async function diskUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  let inodes = 0;
  const walk = async (path: string): Promise<void> => {
    const s = await lstat(path).catch(() => undefined);
    if (!s) return;
    const key = `${s.dev}:${s.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    bytes += s.blocks * 512;
    inodes++;
    if (s.isDirectory()) {
      for (const name of await readdir(path).catch(() => [] as string[])) await walk(join(path, name));
    }
  };
  await walk(dir);
  return { bytes, inodes };
}
