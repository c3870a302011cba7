// Unpacks one layer tar (gzip, zstd or plain, told apart by their magic bytes) into an
// empty directory in overlayfs form: OCI whiteouts `.wh.NAME` become 0/0 character
// devices and `.wh..wh..opq` an opaque directory (trusted.overlay.opaque=y), so the
// layers mounted as overlay lowerdirs give exactly the union the image spec defines.
//
// Nothing may be created outside the directory: a member whose name is absolute or
// has a `..` component, that would be written through a symlink, or that hard-links
// outside, fails the whole layer with a clear error.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import tarStream from 'tar-stream';
import { BerthError } from '../errors.js';
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

/** Unpacks the layer blob at blobPath into target (an empty directory that exists). */
export async function unpackLayer(blobPath: string, target: string): Promise<UnpackResult> {
  const decompressor = await decompressorFor(blobPath);
  const hash = createHash('sha256');
  let tarSize = 0;
  const hasher = new PassThrough();
  hasher.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    tarSize += chunk.length;
  });
  const extract = tarStream.extract();
  const writer = new LayerWriter(target);
  const feeding = pipeline(createReadStream(blobPath), decompressor, hasher, extract);
  try {
    for await (const entry of extract) {
      await writer.apply(entry.header as EntryHeader, entry as unknown as Readable);
    }
    await feeding;
  } catch (err) {
    extract.destroy();
    await feeding.catch(() => undefined);
    if (err instanceof BerthError) throw err;
    throw new BerthError('InvalidArgument', `layer is not a valid tar archive: ${(err as Error).message}`);
  }
  await writer.finish();
  return { diffId: `sha256:${hash.digest('hex')}`, tarSize };
}

async function decompressorFor(blobPath: string): Promise<Transform> {
  const handle = await open(blobPath, 'r');
  const magic = Buffer.alloc(4);
  try {
    await handle.read(magic, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (magic[0] === 0x1f && magic[1] === 0x8b) return createGunzip();
  if (magic.readUInt32LE(0) === 0xfd2fb528) return zstdDecompressor();
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

interface EntryHeader {
  name: string;
  type: string | null | undefined;
  mode?: number;
  uid?: number;
  gid?: number;
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

  constructor(private readonly root: string) {}

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
    const existing = await lstat(path).catch(() => undefined);
    if (existing && !(header.type === 'directory' && existing.isDirectory())) {
      await rm(path, { recursive: true, force: true });
    }

    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) await mkdir(path, { mode: 0o700 });
        this.#dirs.push({ path, mode, mtime: header.mtime, depth: parts.length });
        await this.#own(path, header);
        body.resume();
        break;
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined:
        await pipeline(body, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
        await this.#own(path, header);
        await chmod(path, mode);
        await this.#times(path, header);
        break;
      case 'symlink':
        body.resume();
        await symlink(header.linkname ?? '', path);
        await this.#own(path, header);
        await this.#times(path, header);
        break;
      case 'link': {
        body.resume();
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
      const stat = await lstat(current).catch(() => undefined);
      if (!stat) {
        await mkdir(current, { mode: 0o755 });
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
    await lchown(path, header.uid ?? 0, header.gid ?? 0);
  }

  async #times(path: string, header: EntryHeader): Promise<void> {
    if (header.mtime) await lutimes(path, header.mtime, header.mtime);
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
