// Unpacks one layer tar (gzip, zstd or plain, told apart by their magic bytes) into an
// empty directory in overlayfs form: OCI whiteouts `.wh.NAME` become 0/0 character
// devices and `.wh..wh..opq` an opaque directory (trusted.overlay.opaque=y), so the
// layers mounted as overlay lowerdirs give exactly the union the image spec defines.
//
// Nothing may be created outside the directory: a member whose name is absolute or
// has a `..` component, that would be written through a symlink, or that hard-links
// outside, fails the whole layer with a clear error.
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, fchmodSync, fchownSync, futimesSync, lchownSync, lstatSync, lutimesSync, mkdirSync, openSync, writeSync, writevSync, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import tarStream from 'tar-stream';
import { BerthError, invalidArgument } from '../errors.js';
import { makeNodes, setXattrs, type DeviceNode, type XattrSetting } from '../linux/special-files.js';

export interface UnpackResult {
  /** sha256 of the uncompressed tar: must equal the config's rootfs.diff_ids entry. */
  diffId: string;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

export class UnsafeLayerError extends BerthError {
  constructor(message: string) {
    super('InvalidArgument', `refusing layer: ${message}`);
  }
}

export interface UnpackOptions {
  /**
   * File-system calls made blocking, on this thread (for a worker thread that does
   * nothing else): each file costs its system calls only, where the asynchronous ones
   * each take a trip through libuv's thread pool (4 threads shared by berthd's every
   * thread) and a promise.
   */
  blocking?: boolean;
}

/** Unpacks a layer blob (its bytes as they come) into target, an empty directory. */
export async function unpackLayer(blob: AsyncIterable<Uint8Array>, target: string, options: UnpackOptions = {}): Promise<UnpackResult> {
  // A failure of the source itself (a download that stopped) is passed on as it is;
  // only failures of decompression and tar parsing mean the layer is bad.
  let sourceError: unknown;
  const source = (async function* () {
    try {
      yield* blob;
    } catch (err) {
      sourceError = err;
      throw err;
    }
  })();
  const hash = createHash('sha256');
  let tarSize = 0;
  const hasher = new PassThrough();
  hasher.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    tarSize += chunk.length;
  });
  const extract = tarStream.extract();
  const writer = new LayerWriter(target, options.blocking ?? false);
  let feeding: Promise<void> | undefined;
  try {
    const { head, rest } = await peek(source, 4);
    feeding = pipeline(Readable.from(replay(head, rest)), decompressorFor(head), hasher, extract);
    for await (const entry of extract) {
      await writer.apply(entry.header as EntryHeader, entry as unknown as Readable);
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    await feeding?.catch(() => undefined);
    if (sourceError !== undefined) throw sourceError;
    if (err instanceof BerthError) throw err;
    throw invalidArgument(`layer is not a valid tar archive: ${(err as Error).message}`);
  }
  await writer.finish();
  return { diffId: `sha256:${hash.digest('hex')}`, tarSize };
}

/** The first `n` bytes of a stream, and an iterator over the rest. */
async function peek(blob: AsyncIterable<Uint8Array>, n: number): Promise<{ head: Buffer; rest: AsyncIterator<Uint8Array> }> {
  const rest = blob[Symbol.asyncIterator]();
  let head = Buffer.alloc(0);
  while (head.length < n) {
    const next = await rest.next();
    if (next.done) break;
    head = Buffer.concat([head, next.value]);
  }
  return { head, rest };
}

async function* replay(head: Buffer, rest: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  if (head.length > 0) yield head;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

/**
 * Output chunk of the gunzip stream: zlib's default (16 KB) costs a round trip through
 * the thread pool and the stream machinery per 16 KB of tar (a 52 MB layer: 240 ms of
 * gunzip alone here, 80 ms in one piece).
 */
const INFLATE_CHUNK = 256 * 1024;

/** Layers are told apart by their magic bytes: media types are often wrong. */
function decompressorFor(magic: Buffer): Transform {
  if (magic[0] === 0x1f && magic[1] === 0x8b) return createGunzip({ chunkSize: INFLATE_CHUNK });
  if (magic.length >= 4 && magic.readUInt32LE(0) === 0xfd2fb528) return zstdDecompressor();
  return new PassThrough();
}

function zstdDecompressor(): Transform {
  const transform: Transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      try {
        decompressor.push(chunk);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done) {
      try {
        decompressor.push(new Uint8Array(0), true);
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  const decompressor = new Decompress((data) => transform.push(Buffer.from(data)));
  return transform;
}

/** Files up to this size are buffered and written in the background. */
const BACKGROUND_FILE_LIMIT = 4 * 1024 * 1024;
const MAX_BACKGROUND_WRITES = 32;
const MAX_BACKGROUND_BYTES = 32 * 1024 * 1024;

interface EntryHeader {
  name: string;
  type: string | null | undefined;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: Date;
  linkname?: string | null;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Applies tar members one by one, keeping what must be done after the last one. */
class LayerWriter {
  readonly #dirs: Array<{ path: string; mode: number; mtime?: Date; depth: number }> = [];
  readonly #nodes: DeviceNode[] = [];
  readonly #xattrs: XattrSetting[] = [];
  readonly #chmods: Array<{ path: string; mode: number }> = [];
  readonly #canChown = process.getuid?.() === 0;
  /** File writes still running in the background, and the paths they write. */
  readonly #writes = new Set<Promise<void>>();
  readonly #writingPaths = new Set<string>();
  #writingBytes = 0;
  #writeError: unknown;

  constructor(
    private readonly root: string,
    private readonly blocking: boolean,
  ) {}

  /** lstat, or undefined when nothing is there. */
  async #lstat(path: string): Promise<Stats | undefined> {
    if (!this.blocking) return lstat(path).catch(() => undefined);
    return lstatSync(path, { throwIfNoEntry: false });
  }

  async #mkdir(path: string, mode: number): Promise<void> {
    if (this.blocking) mkdirSync(path, { mode });
    else await mkdir(path, { mode });
  }

  /** Waits for every background write; rethrows the first that failed. */
  async #flush(): Promise<void> {
    await Promise.all(this.#writes);
    if (this.#writeError !== undefined) throw this.#writeError;
  }

  /**
   * Small files are read whole and written in the background while the next members are
   * parsed: a layer of many files then costs file-system round trips in parallel rather
   * than one after another. Anything that could touch such a file first waits for it.
   */
  async #writeFile(path: string, body: Readable, header: EntryHeader, mode: number): Promise<void> {
    const size = header.size ?? 0;
    if (size > BACKGROUND_FILE_LIMIT) {
      await pipeline(body, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
      await this.#own(path, header);
      await chmod(path, mode);
      await this.#times(path, header);
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    if (this.blocking) {
      const fd = openSync(path, 'wx', 0o600);
      try {
        writeAllSync(fd, chunks);
        if (this.#canChown) fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
        fchmodSync(fd, mode);
        if (header.mtime) futimesSync(fd, header.mtime, header.mtime);
      } finally {
        closeSync(fd);
      }
      return;
    }
    while (this.#writes.size >= MAX_BACKGROUND_WRITES || this.#writingBytes > MAX_BACKGROUND_BYTES) await Promise.race(this.#writes);
    if (this.#writeError !== undefined) throw this.#writeError;
    const write = (async () => {
      const file = await open(path, 'wx', 0o600);
      try {
        if (chunks.length > 0) await file.writev(chunks);
        if (this.#canChown) await file.chown(header.uid ?? 0, header.gid ?? 0);
        await file.chmod(mode);
        if (header.mtime) await file.utimes(header.mtime, header.mtime);
      } finally {
        await file.close();
      }
    })()
      .catch((err: unknown) => {
        this.#writeError ??= err;
      })
      .finally(() => {
        this.#writes.delete(write);
        this.#writingPaths.delete(path);
        this.#writingBytes -= size;
      });
    this.#writes.add(write);
    this.#writingPaths.add(path);
    this.#writingBytes += size;
  }

  async apply(header: EntryHeader, body: Readable): Promise<void> {
    const relative = safeRelativePath(header.name, 'member');
    if (relative === '') {
      body.resume();
      return; // the layer's root directory itself
    }
    const parts = relative.split('/');
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      body.resume();
      await this.#flush();
      const parent = await this.#ensureParents(parentParts);
      if (base === OPAQUE_MARKER) {
        this.#xattrs.push({ path: parent, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from('y') });
      } else if (!base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        const hidden = join(parent, base.slice(WHITEOUT_PREFIX.length));
        await rm(hidden, { recursive: true, force: true });
        this.#nodes.push({ path: hidden, kind: 'c', major: 0, minor: 0 });
      }
      return;
    }

    const parent = await this.#ensureParents(parentParts);
    const path = join(parent, base);
    const mode = (header.mode ?? 0o644) & 0o7777;
    if (this.#writingPaths.has(path)) await this.#flush();
    const existing = await this.#lstat(path);
    if (existing && !(header.type === 'directory' && existing.isDirectory())) {
      await this.#flush();
      await rm(path, { recursive: true, force: true });
    }

    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) await this.#mkdir(path, 0o700);
        this.#dirs.push({ path, mode, mtime: header.mtime, depth: parts.length });
        await this.#own(path, header);
        body.resume();
        break;
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined:
        await this.#writeFile(path, body, header, mode);
        break;
      case 'symlink':
        body.resume();
        await symlink(header.linkname ?? '', path);
        await this.#own(path, header);
        await this.#times(path, header);
        break;
      case 'link': {
        body.resume();
        await this.#flush();
        const target = await this.#resolveExisting(safeRelativePath(header.linkname ?? '', 'hard link target'), relative);
        await link(target, path);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        body.resume();
        this.#nodes.push({
          path,
          kind: header.type === 'fifo' ? 'p' : header.type === 'character-device' ? 'c' : 'b',
          major: header.devmajor ?? 0,
          minor: header.devminor ?? 0,
        });
        this.#chmods.push({ path, mode });
        break;
      default:
        body.resume();
        throw new UnsafeLayerError(`member "${header.name}" has unsupported type ${header.type}`);
    }
    for (const [key, value] of Object.entries(header.pax ?? {})) {
      if (key.startsWith('SCHILY.xattr.')) {
        this.#xattrs.push({ path, name: key.slice('SCHILY.xattr.'.length), value: Buffer.from(value, 'binary') });
      }
    }
  }

  /** What must wait for the last member: nodes, xattrs, then directory modes and times. */
  async finish(): Promise<void> {
    await this.#flush();
    await makeNodes(this.#nodes);
    // chmod follows symlinks: a later member may have replaced a path with a symlink to
    // outside, so only paths that are still what they were get their mode.
    for (const { path, mode } of this.#chmods) {
      if (!(await lstat(path)).isSymbolicLink()) await chmod(path, mode);
    }
    await setXattrs(this.#xattrs);
    // Deepest first, so setting a parent's mtime is not undone by its children.
    for (const dir of this.#dirs.sort((a, b) => b.depth - a.depth)) {
      if (!(await lstat(dir.path).catch(() => undefined))?.isDirectory()) continue;
      await chmod(dir.path, dir.mode);
      if (dir.mtime) await lutimes(dir.path, dir.mtime, dir.mtime);
    }
  }

  /** Creates missing parents; refuses to pass through a symlink or a non-directory. */
  async #ensureParents(parts: string[]): Promise<string> {
    let current = this.root;
    for (const part of parts) {
      current = join(current, part);
      const stat = await this.#lstat(current);
      if (!stat) {
        await this.#mkdir(current, 0o755);
      } else if (stat.isSymbolicLink()) {
        throw new UnsafeLayerError(`a member would be written through the symlink "${parts.slice(0, parts.indexOf(part) + 1).join('/')}"`);
      } else if (!stat.isDirectory()) {
        throw new UnsafeLayerError(`"${parts.slice(0, parts.indexOf(part) + 1).join('/')}" is not a directory but has members below it`);
      }
    }
    return current;
  }

  /** The path of an existing non-directory in this layer, reached without symlinks. */
  async #resolveExisting(relative: string, forMember: string): Promise<string> {
    if (relative === '') throw new UnsafeLayerError(`hard link "${forMember}" points at the layer root`);
    let current = this.root;
    const parts = relative.split('/');
    for (const [i, part] of parts.entries()) {
      current = join(current, part);
      const stat = await lstat(current).catch(() => undefined);
      if (!stat) throw new UnsafeLayerError(`hard link "${forMember}" points at "${relative}", which is not in the layer`);
      if (i < parts.length - 1 && !stat.isDirectory()) throw new UnsafeLayerError(`hard link "${forMember}" points through "${parts.slice(0, i + 1).join('/')}"`);
      if (i === parts.length - 1 && stat.isDirectory()) throw new UnsafeLayerError(`hard link "${forMember}" points at a directory`);
    }
    return current;
  }

  async #own(path: string, header: EntryHeader): Promise<void> {
    if (!this.#canChown) return;
    if (this.blocking) lchownSync(path, header.uid ?? 0, header.gid ?? 0);
    else await lchown(path, header.uid ?? 0, header.gid ?? 0);
  }

  async #times(path: string, header: EntryHeader): Promise<void> {
    if (!header.mtime) return;
    if (this.blocking) lutimesSync(path, header.mtime, header.mtime);
    else await lutimes(path, header.mtime, header.mtime);
  }
}

/** Writes every chunk (writev at most IOV_MAX at a time, and on after a short write). */
function writeAllSync(fd: number, chunks: Buffer[]): void {
  for (let i = 0; i < chunks.length; ) {
    const batch = chunks.slice(i, i + 1024);
    let written = writevSync(fd, batch);
    for (const chunk of batch) {
      i++;
      if (written >= chunk.length) {
        written -= chunk.length;
        continue;
      }
      for (let offset = written; offset < chunk.length; ) offset += writeSync(fd, chunk, offset);
      written = 0;
    }
  }
}

/**
 * A member name as a path inside the layer: "./a/b/" → "a/b". Absolute names and `..`
 * components are refused rather than rewritten, as the layer is then not what it claims.
 */
export function safeRelativePath(name: string, what: string): string {
  if (name.startsWith('/')) throw new UnsafeLayerError(`${what} "${name}" is an absolute path`);
  if (name.includes('\0')) throw new UnsafeLayerError(`${what} "${name}" contains a NUL byte`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnsafeLayerError(`${what} "${name}" leaves the layer with ".."`);
  return parts.join('/');
}
