// Crash-safe writes: a record is written to a temp file in the same directory, fsynced,
// renamed over the old one and the directory fsynced, so after a crash the file is
// either the old version or the new one, never a torn mix.
//
// `durable: false` keeps the temp file and the rename but not the two fsyncs (7-16 ms
// each write on this project's ext4 under load): a killed berthd still finds the old
// version or the new one (the page cache outlives the process), and only a crash of the
// whole host can lose the write. For what a host crash makes moot anyway (records of
// pods and containers, whose processes, mounts, namespaces and state dir a reboot ends;
// files in the state dir), never for what outlives a reboot (images, blobs).
//
// Without the fsyncs the write is done synchronously: a small file into the page cache
// (a record is 1-3 KB) costs a few µs of syscalls, where the same steps through libuv's
// thread pool (mkdir -p, open, write, close, rename) were five round trips of futex
// wake-ups, a large share of berthd's own CPU per pod and container start (measured with
// strace -c and /proc/PID/stat; see the README's Benchmarks).
import { renameSync, unlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { open, rename, unlink, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface AtomicWriteOptions {
  /** fsync the file and its directory (default true): the write survives a host crash. */
  durable?: boolean;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600, options: AtomicWriteOptions = {}): Promise<void> {
  if (!(options.durable ?? true)) {
    writeFileAtomicSync(path, data, mode);
    return;
  }
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const temp = tempPathFor(path);
  const file = await open(temp, 'wx', mode);
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (err) {
    await file.close();
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await file.close();
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/** A temp file beside path, named so no two writers share one. */
function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
}

/** The write without fsyncs, synchronously: temp file (its directory made only if missing), rename. */
function writeFileAtomicSync(path: string, data: string | Uint8Array, mode: number): void {
  const temp = tempPathFor(path);
  const removeTemp = () => {
    try {
      unlinkSync(temp);
    } catch {
      // never made, or already gone
    }
  };
  try {
    try {
      writeFileSync(temp, data, { flag: 'wx', mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(temp, data, { flag: 'wx', mode });
    }
    renameSync(temp, path);
  } catch (err) {
    // A failed write (e.g. ENOSPC) leaves no temp file behind.
    removeTemp();
    throw err;
  }
}

export async function writeJsonAtomic(path: string, value: unknown, options: AtomicWriteOptions = {}): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 1) + '\n', 0o600, options);
}

/** Makes a rename or unlink in dir durable. */
export async function fsyncDir(dir: string): Promise<void> {
  await fsyncFile(dir);
}

/** Flushes a file's (or directory's) data to disk. */
export async function fsyncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** True for the temp files writeFileAtomic leaves behind when killed mid-write. */
export function isAtomicTempFile(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}
