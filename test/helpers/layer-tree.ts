// What a stack of layers should look like once unioned (the OCI image spec's rules for
// whiteouts and opaque directories), and what a directory tree does look like, in one
// comparable shape: path → "type mode [target|sha]".
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LayerEntry } from './image-builder.js';

export type TreeListing = Map<string, string>;

const clean = (path: string) => path.replace(/^\.?\/+/, '').replace(/\/+$/, '');

/** The expected union of layers, bottom first. Entries give type, mode and content. */
export function expectedUnion(layers: LayerEntry[][]): TreeListing {
  const tree = new Map<string, LayerEntry>();
  const removeBelow = (dir: string) => {
    for (const path of [...tree.keys()]) if (path.startsWith(`${dir}/`)) tree.delete(path);
  };
  for (const layer of layers) {
    const opaque = layer.filter((e) => e.path.endsWith('.wh..wh..opq')).map((e) => clean(e.path).split('/').slice(0, -1).join('/'));
    for (const dir of opaque) removeBelow(dir);
    for (const entry of layer) {
      const path = clean(entry.path);
      const base = path.split('/').pop()!;
      if (base === '.wh..wh..opq') continue;
      if (base.startsWith('.wh.')) {
        const hidden = [...path.split('/').slice(0, -1), base.slice(4)].join('/');
        tree.delete(hidden);
        removeBelow(hidden);
        continue;
      }
      if (entry.type !== 'dir') removeBelow(path);
      tree.set(path, entry);
      // Parents a layer implies without listing them exist as directories.
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const parent = parts.slice(0, i).join('/');
        if (!tree.has(parent)) tree.set(parent, { type: 'dir', path: parent, mode: 0o755 });
      }
    }
  }
  const listing: TreeListing = new Map();
  for (const [path, entry] of tree) {
    let line: string;
    switch (entry.type) {
      case 'dir':
        line = `dir ${mode(entry.mode ?? 0o755)}`;
        break;
      case 'file':
        line = `file ${mode(entry.mode ?? 0o644)} ${sha(Buffer.from(entry.content))}`;
        break;
      case 'symlink':
        line = `symlink -> ${entry.target}`;
        break;
      case 'hardlink': {
        const target = tree.get(clean(entry.target));
        if (target?.type !== 'file') throw new Error(`test layer: hard link ${path} to a non-file`);
        line = `file ${mode(target.mode ?? 0o644)} ${sha(Buffer.from(target.content))}`;
        break;
      }
      case 'char':
      case 'block':
        line = `${entry.type} ${mode(entry.mode ?? 0o644)} ${entry.major}:${entry.minor}`;
        break;
      case 'fifo':
        line = `fifo ${mode(entry.mode ?? 0o644)}`;
        break;
    }
    listing.set(path, line);
  }
  return listing;
}

/** The same listing read from a real directory (e.g. an overlay mount of the layers). */
export async function listTree(root: string): Promise<TreeListing> {
  const listing: TreeListing = new Map();
  const walk = async (relative: string): Promise<void> => {
    for (const name of await readdir(join(root, relative))) {
      const path = relative ? `${relative}/${name}` : name;
      const full = join(root, path);
      const s = await lstat(full);
      if (s.isDirectory()) {
        listing.set(path, `dir ${mode(s.mode)}`);
        await walk(path);
      } else if (s.isSymbolicLink()) listing.set(path, `symlink -> ${await readlink(full)}`);
      else if (s.isFile()) listing.set(path, `file ${mode(s.mode)} ${sha(await readFile(full))}`);
      else if (s.isCharacterDevice()) listing.set(path, `char ${mode(s.mode)} ${Math.floor(s.rdev / 256)}:${s.rdev % 256}`);
      else if (s.isBlockDevice()) listing.set(path, `block ${mode(s.mode)} ${Math.floor(s.rdev / 256)}:${s.rdev % 256}`);
      else if (s.isFIFO()) listing.set(path, `fifo ${mode(s.mode)}`);
      else listing.set(path, 'other');
    }
  };
  await walk('');
  return listing;
}

const mode = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);
