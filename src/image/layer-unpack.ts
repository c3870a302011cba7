// Unpacks one layer tar (gzip, zstd or plain, told apart by their magic bytes) into an
// empty directory in overlayfs form: OCI whiteouts `.wh.NAME` become 0/0 character
// devices and `.wh..wh..opq` an opaque directory (trusted.overlay.opaque=y), so the
// layers mounted as overlay lowerdirs give exactly the union the image spec defines.
//
// Nothing may be created outside the directory: a member whose name is absolute or
// has a `..` component, that would be written through a symlink, or that hard-links
// outside, fails the whole layer with a clear error.
//
// Everything runs synchronously on the calling thread, chunk by chunk (LayerUnpacker):
// gunzip into one reused buffer, the diff ID's sha256, berth's own tar parser
// (tar-reader.ts) and blocking file-system calls. In a layer worker that is all the
// thread does; on the main thread (small layers) each chunk's share is short.
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, rmSync, statSync, symlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { constants, createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { BerthError, invalidArgument } from '../errors.js';
import { makeNodes, setXattrs, type DeviceNode, type XattrSetting } from '../linux/special-files.js';
import { TarReader, type TarHeader, type TarVisitor } from './tar-reader.js';

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

/**
 * A layer's unpack, fed its (compressed) bytes chunk by chunk: each push decompresses,
 * hashes and parses what it can and makes the file-system calls for it, all synchronous,
 * with no stream object or promise per chunk or per member. The chunk is not kept.
 */
export class LayerUnpacker {
  readonly #hash = createHash('sha256');
  #tarSize = 0;
  readonly #writer: LayerWriter;
  readonly #tar: TarReader;
  #decompressor: Decompressor | undefined;
  /** The first bytes, until there are enough to tell the compression by its magic. */
  #head: Buffer | undefined = Buffer.alloc(0);
  readonly #onTar = (chunk: Uint8Array): void => {
    this.#hash.update(chunk);
    this.#tarSize += chunk.byteLength;
    this.#tar.push(chunk);
  };

  constructor(target: string) {
    this.#writer = new LayerWriter(target);
    this.#tar = new TarReader(this.#writer);
  }

  push(chunk: Uint8Array): void {
    try {
      if (this.#head) {
        const head = Buffer.concat([this.#head, chunk]);
        this.#head = head;
        if (head.length < 4) return;
        this.#head = undefined;
        this.#decompressor = decompressorFor(head);
        chunk = head;
      }
      this.#decompressor!.push(chunk, this.#onTar);
    } catch (err) {
      this.abort();
      throw asLayerError(err);
    }
  }

  /** Every byte was pushed: the last members are applied; answers the diff ID. */
  async finish(): Promise<UnpackResult> {
    try {
      if (this.#head) {
        this.#decompressor = decompressorFor(this.#head);
        this.#decompressor.push(this.#head, this.#onTar);
        this.#head = undefined;
      }
      this.#decompressor!.finish(this.#onTar);
      this.#tar.end();
    } catch (err) {
      this.abort();
      throw asLayerError(err);
    }
    await this.#writer.finish();
    return { diffId: `sha256:${this.#hash.digest('hex')}`, tarSize: this.#tarSize };
  }

  /** Stops: the file being written (if any) is closed, the decompressor freed. */
  abort(): void {
    this.#decompressor?.close();
    this.#writer.abort();
  }
}

/** Only failures of decompression and tar parsing (and path checks) mean the layer is bad. */
function asLayerError(err: unknown): unknown {
  if (err instanceof BerthError) return err;
  return invalidArgument(`layer is not a valid tar archive: ${(err as Error).message}`);
}

/** Unpacks a layer blob (its bytes as they come) into target, an empty directory. */
export async function unpackLayer(blob: AsyncIterable<Uint8Array>, target: string): Promise<UnpackResult> {
  const unpacker = new LayerUnpacker(target);
  // A failure of the source itself (a download that stopped) is passed on as it is.
  try {
    for await (const chunk of blob) unpacker.push(chunk);
  } catch (err) {
    unpacker.abort();
    throw err;
  }
  return unpacker.finish();
}

/** A decompressor driven synchronously: each push hands on what it could decompress. */
interface Decompressor {
  push(chunk: Uint8Array, out: (data: Uint8Array) => void): void;
  /** The input ended: hands on the rest; throws if the stream was cut short. */
  finish(out: (data: Uint8Array) => void): void;
  close(): void;
}

/** Layers are told apart by their magic bytes: media types are often wrong. */
function decompressorFor(magic: Buffer): Decompressor {
  if (magic[0] === 0x1f && magic[1] === 0x8b) return new GzipInflater();
  if (magic.length >= 4 && magic.readUInt32LE(0) === 0xfd2fb528) return new ZstdInflater();
  return { push: (chunk, out) => out(chunk), finish: () => undefined, close: () => undefined };
}

/**
 * Output of the inflater per call, reused: the tar parser and the writes take their
 * views of it before the next call. One call per 1 MB of tar costs no thread-pool round
 * trip, no new buffer and no stream machinery.
 */
const INFLATE_CHUNK = 1024 * 1024;

/** What GzipInflater uses of a zlib object: its native handle, driven as zlib's own *Sync functions do. */
interface ZlibHandle {
  writeSync(flush: number, input: Uint8Array, inOffset: number, inLength: number, output: Uint8Array, outOffset: number, outLength: number): void;
  onerror: (message: string, errno: number, code?: string) => void;
}

/**
 * gunzip (concatenated members too, as zlib.gunzipSync) over a stream of chunks,
 * synchronously on this thread. Node has no public streaming synchronous inflate: this
 * drives the handle of a zlib.Gunzip the way zlib's gunzipSync does (node:zlib
 * processChunkSync: `_handle.writeSync` and the `_writeState` it reports into).
 */
class GzipInflater implements Decompressor {
  readonly #zlib = createGunzip();
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  readonly #out = Buffer.allocUnsafe(INFLATE_CHUNK);
  #error: Error | undefined;

  constructor() {
    const internals = this.#zlib as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
    if (typeof internals._handle?.writeSync !== 'function' || !internals._writeState) throw new Error('this Node.js has no zlib handle to drive synchronously');
    this.#handle = internals._handle;
    this.#state = internals._writeState;
    // In place of zlib's own handler, which would emit the error on the (unused) stream.
    this.#handle.onerror = (message, errno, code) => {
      this.#error ??= Object.assign(new Error(`gzip: ${message}`), { errno, code });
    };
  }

  push(chunk: Uint8Array, out: (data: Uint8Array) => void): void {
    this.#run(constants.Z_NO_FLUSH, chunk, out);
  }

  finish(out: (data: Uint8Array) => void): void {
    this.#run(constants.Z_FINISH, new Uint8Array(0), out);
    this.close();
  }

  close(): void {
    this.#zlib.close();
  }

  #run(flush: number, input: Uint8Array, out: (data: Uint8Array) => void): void {
    let inOffset = 0;
    let inLength = input.byteLength;
    for (;;) {
      this.#handle.writeSync(flush, input, inOffset, inLength, this.#out, 0, INFLATE_CHUNK);
      if (this.#error) throw this.#error;
      const availOut = this.#state[0]!;
      const availIn = this.#state[1]!;
      inOffset += inLength - availIn;
      inLength = availIn;
      if (availOut < INFLATE_CHUNK) out(this.#out.subarray(0, INFLATE_CHUNK - availOut));
      // A full output buffer means there may be more; otherwise the input is used up.
      if (availOut !== 0) return;
    }
  }
}

class ZstdInflater implements Decompressor {
  #out: ((data: Uint8Array) => void) | undefined;
  readonly #decompress = new Decompress((data) => this.#out!(data));

  push(chunk: Uint8Array, out: (data: Uint8Array) => void): void {
    this.#out = out;
    // A copy: fzstd may keep input until a block is complete, and the caller's chunk may
    // be reused once this returns (a worker's ring).
    this.#decompress.push(chunk.slice());
  }

  finish(out: (data: Uint8Array) => void): void {
    this.#out = out;
    this.#decompress.push(new Uint8Array(0), true);
  }

  close(): void {}
}

/** Applies tar members one by one, keeping what must be done after the last one. */
class LayerWriter implements TarVisitor {
  readonly #dirs: Array<{ path: string; mode: number; mtime: number; depth: number }> = [];
  readonly #nodes: DeviceNode[] = [];
  readonly #xattrs: XattrSetting[] = [];
  readonly #chmods: Array<{ path: string; mode: number }> = [];
  readonly #canChown = process.getuid?.() === 0;
  /**
   * Whether a new file is already owned 0:0 (root creating it, and no setgid directory
   * above it in the layer: those are only made so at the end): a 0:0 member then needs
   * no chown.
   */
  readonly #createsRootOwned: boolean;
  /** Directories known to be real directories in the layer (none has been removed since). */
  readonly #knownDirs = new Set<string>();
  /** The regular file being written: its data comes in data() calls. */
  #file: { fd: number; path: string; header: TarHeader; mode: number } | undefined;

  constructor(private readonly root: string) {
    const rootStat = statSync(root);
    this.#createsRootOwned = this.#canChown && process.getegid?.() === 0 && (rootStat.mode & 0o2000) === 0;
  }

  header(header: TarHeader): void {
    const relative = safeRelativePath(header.name, 'member');
    if (relative === '') return; // the layer's root directory itself
    const parts = relative.split('/');
    const base = parts[parts.length - 1]!;
    const parentParts = parts.slice(0, -1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      const parent = this.#ensureParents(parentParts);
      if (base === OPAQUE_MARKER) {
        this.#xattrs.push({ path: parent, name: OVERLAY_OPAQUE_XATTR, value: Buffer.from('y') });
      } else if (!base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        const hidden = join(parent, base.slice(WHITEOUT_PREFIX.length));
        this.#remove(hidden);
        this.#nodes.push({ path: hidden, kind: 'c', major: 0, minor: 0 });
      }
      return;
    }

    const parent = this.#ensureParents(parentParts);
    const path = join(parent, base);
    const mode = header.mode & 0o7777;
    const existing = lstatSync(path, { throwIfNoEntry: false });
    if (existing && !(header.type === 'directory' && existing.isDirectory())) this.#remove(path);

    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) mkdirSync(path, { mode: 0o700 });
        this.#knownDirs.add(path);
        this.#dirs.push({ path, mode, mtime: header.mtime, depth: parts.length });
        this.#own(path, header);
        break;
      case 'file':
      case 'contiguous-file':
      case 'unknown': // POSIX: a type this reader does not know is read as a regular file
        this.#file = { fd: openSync(path, 'wx', 0o600), path, header, mode };
        break;
      case 'symlink':
        symlinkSync(header.linkname, path);
        this.#own(path, header);
        lutimesSync(path, header.mtime, header.mtime);
        break;
      case 'link': {
        const target = this.#resolveExisting(safeRelativePath(header.linkname, 'hard link target'), relative);
        linkSync(target, path);
        break;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo':
        this.#nodes.push({
          path,
          kind: header.type === 'fifo' ? 'p' : header.type === 'character-device' ? 'c' : 'b',
          major: header.devmajor,
          minor: header.devminor,
        });
        this.#chmods.push({ path, mode });
        break;
    }
    for (const [key, value] of Object.entries(header.pax)) {
      if (key.startsWith('SCHILY.xattr.')) {
        this.#xattrs.push({ path, name: key.slice('SCHILY.xattr.'.length), value: Buffer.from(value, 'latin1') });
      }
    }
  }

  data(chunk: Uint8Array): void {
    if (!this.#file) return;
    for (let offset = 0; offset < chunk.byteLength; ) offset += writeSync(this.#file.fd, chunk, offset);
  }

  end(): void {
    const file = this.#file;
    if (!file) return;
    this.#file = undefined;
    try {
      const { header } = file;
      if (this.#canChown && !(this.#createsRootOwned && header.uid === 0 && header.gid === 0)) fchownSync(file.fd, header.uid, header.gid);
      // After the chown, which clears setuid and setgid bits.
      fchmodSync(file.fd, file.mode);
      futimesSync(file.fd, header.mtime, header.mtime);
    } finally {
      closeSync(file.fd);
    }
  }

  /** Closes the file being written, if any (the unpack stopped). */
  abort(): void {
    if (!this.#file) return;
    try {
      closeSync(this.#file.fd);
    } catch {
      // Closing is all that is left to do with it.
    }
    this.#file = undefined;
  }

  /** What must wait for the last member: nodes, xattrs, then directory modes and times. */
  async finish(): Promise<void> {
    await makeNodes(this.#nodes);
    // chmod follows symlinks: a later member may have replaced a path with a symlink to
    // outside, so only paths that are still what they were get their mode.
    for (const { path, mode } of this.#chmods) {
      if (!lstatSync(path).isSymbolicLink()) chmodSync(path, mode);
    }
    await setXattrs(this.#xattrs);
    // Deepest first, so setting a parent's mtime is not undone by its children.
    for (const dir of this.#dirs.sort((a, b) => b.depth - a.depth)) {
      if (!lstatSync(dir.path, { throwIfNoEntry: false })?.isDirectory()) continue;
      chmodSync(dir.path, dir.mode);
      lutimesSync(dir.path, dir.mtime, dir.mtime);
    }
  }

  /** Removes what is at path (a later member replaces it, or a whiteout hides it). */
  #remove(path: string): void {
    rmSync(path, { recursive: true, force: true });
    // Whatever was known below it (or it) is gone, and may come back as something else.
    this.#knownDirs.clear();
  }

  /** Creates missing parents; refuses to pass through a symlink or a non-directory. */
  #ensureParents(parts: string[]): string {
    let current = this.root;
    for (const [i, part] of parts.entries()) {
      current = join(current, part);
      if (this.#knownDirs.has(current)) continue;
      const stat = lstatSync(current, { throwIfNoEntry: false });
      if (!stat) {
        mkdirSync(current, { mode: 0o755 });
      } else if (stat.isSymbolicLink()) {
        throw new UnsafeLayerError(`a member would be written through the symlink "${parts.slice(0, i + 1).join('/')}"`);
      } else if (!stat.isDirectory()) {
        throw new UnsafeLayerError(`"${parts.slice(0, i + 1).join('/')}" is not a directory but has members below it`);
      }
      this.#knownDirs.add(current);
    }
    return current;
  }

  /** The path of an existing non-directory in this layer, reached without symlinks. */
  #resolveExisting(relative: string, forMember: string): string {
    if (relative === '') throw new UnsafeLayerError(`hard link "${forMember}" points at the layer root`);
    let current = this.root;
    const parts = relative.split('/');
    for (const [i, part] of parts.entries()) {
      current = join(current, part);
      const stat = lstatSync(current, { throwIfNoEntry: false });
      if (!stat) throw new UnsafeLayerError(`hard link "${forMember}" points at "${relative}", which is not in the layer`);
      if (i < parts.length - 1 && !stat.isDirectory()) throw new UnsafeLayerError(`hard link "${forMember}" points through "${parts.slice(0, i + 1).join('/')}"`);
      if (i === parts.length - 1 && stat.isDirectory()) throw new UnsafeLayerError(`hard link "${forMember}" points at a directory`);
    }
    return current;
  }

  #own(path: string, header: TarHeader): void {
    if (this.#canChown) lchownSync(path, header.uid, header.gid);
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
