// One JSON file per record in a directory, each written atomically: the on-disk half of
// berth's metadata (images, pods, containers). Callers keep the in-memory half.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isAtomicTempFile, writeJsonAtomic, type AtomicWriteOptions } from './atomic-file.js';

export class RecordStore<T> {
  /** `durable: false`: atomic writes without fsync (see atomic-file.ts for when that is right). */
  constructor(
    private readonly dir: string,
    private readonly options: AtomicWriteOptions = {},
  ) {}

  /** Every record, and a line for each file that could not be read (never fatal). */
  async loadAll(): Promise<{ records: T[]; problems: string[] }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const records: T[] = [];
    const problems: string[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (isAtomicTempFile(name)) {
        // A write that a crash interrupted: the record it was replacing is still whole.
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        records.push(JSON.parse(await readFile(path, 'utf8')) as T);
      } catch (err) {
        problems.push(`${path}: ${(err as Error).message}`);
      }
    }
    return { records, problems };
  }

  put(id: string, record: T): Promise<void> {
    return writeJsonAtomic(this.#path(id), record, this.options);
  }

  async delete(id: string): Promise<void> {
    await rm(this.#path(id), { force: true });
  }

  #path(id: string): string {
    return join(this.dir, `${id.replace(/^sha256:/, '')}.json`);
  }
}
