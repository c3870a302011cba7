// The mount table of berthd's mount namespace (/proc/self/mountinfo) and what is
// decided from it: which mount a path is on, what is mounted below a directory, whether
// a directory may be removed, and berth's private mount points.
import { readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { internal } from '../errors.js';
import { runCommand } from './command.js';
import { moveToTrash } from './trash.js';

/**
 * Makes dir a private mount point. Pinned namespace files need one (the kernel refuses
 * nsfs bind mounts that would propagate to peer mounts), and so do mounts berth builds
 * for itself, which must not be copied into other mount namespaces on a host whose
 * mounts are shared (systemd's default).
 */
export async function preparePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  if (await isMountPoint(dir)) return;
  await runCommand('mount', ['--bind', dir, dir], 'preparing the namespace dir');
  await runCommand('mount', ['--make-private', dir], 'preparing the namespace dir');
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).has(path);
}

export interface MountEntry {
  point: string;
  /** Per-mount options (rw, nosuid, nodev…). */
  options: string[];
  /** The optional fields: propagation tags such as shared:N, master:N (none: private). */
  optional: string[];
}

/**
 * The mounts of this mount namespace, from /proc/self/mountinfo, in mount order. Read
 * synchronously: the kernel makes the file from memory, and read through the thread pool
 * it was ~5 round trips (open, fstat, reads, close) several times per pod and container
 * start and stop.
 */
export async function mountTable(): Promise<MountEntry[]> {
  const text = readFileSync('/proc/self/mountinfo', 'utf8');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const point = fields[4];
    if (!point) continue;
    const separator = fields.indexOf('-', 6);
    entries.push({
      point: point.includes('\\') ? unescapeOctal(point) : point,
      options: (fields[5] ?? '').split(','),
      optional: fields.slice(6, separator < 0 ? 6 : separator),
    });
  }
  return entries;
}

/** The mount a path (already free of symlinks) is on: the deepest mount point above it, the top one of a stack. */
export function mountOf(table: MountEntry[], path: string): MountEntry | undefined {
  let found: MountEntry | undefined;
  for (const entry of table) {
    const covers = entry.point === '/' || entry.point === path || path.startsWith(`${entry.point}/`);
    if (covers && (!found || entry.point.length >= found.point.length)) found = entry;
  }
  return found;
}

/**
 * Removes directory trees, but never through a mount point: a recursive rm would delete
 * the files of whatever is still mounted below (a volume, a host path). With `trash`,
 * each tree is renamed into that dir and deleted in the background (trash.ts), so the
 * caller does not wait on the disk; a tree that cannot be renamed there (another
 * filesystem) is removed here.
 */
export async function removeUnmounted(dirs: string[], options: { trash?: string } = {}): Promise<void> {
  const table = await mountTable();
  for (const dir of dirs) {
    const mounted = mountsBelow(table, dir);
    if (mounted.length > 0) throw internal(`refusing to remove ${dir}: ${mounted[0]!.point} is still mounted`);
  }
  for (const dir of dirs) {
    if (options.trash && moveToTrash(dir, options.trash)) continue;
    if (!removeSmallTree(dir)) await rm(dir, { recursive: true, force: true });
  }
}

/** Entries a tree may have to be removed synchronously (a bundle or pod dir has ~10-20). */
const SMALL_TREE = 256;

/**
 * Removes a small tree synchronously: a bundle or pod dir in the state dir is a dozen
 * entries, and fs/promises' recursive rm made a thread-pool round trip of each stat,
 * listing, unlink and rmdir (~40 per container and pod). False (nothing or part removed)
 * when the tree has more than SMALL_TREE entries (a writable layer a container filled)
 * or changed meanwhile: the caller removes the rest off the event loop. True when gone.
 */
function removeSmallTree(dir: string): boolean {
  const files: string[] = [];
  const dirs: string[] = [];
  const walk = (path: string): boolean => {
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && path === dir) return true;
      if (code !== 'ENOTDIR' || path !== dir) return false;
      files.push(path);
      return true;
    }
    dirs.push(path);
    for (const entry of entries) {
      if (files.length + dirs.length > SMALL_TREE) return false;
      const child = `${path}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!walk(child)) return false;
      } else files.push(child);
    }
    return true;
  };
  if (!walk(dir)) return false;
  try {
    for (const file of files) unlinkSync(file);
    for (const d of dirs.reverse()) rmdirSync(d);
  } catch {
    return false;
  }
  return true;
}

/** The mounts of a table at or below dir. */
export function mountsBelow(table: MountEntry[], dir: string): MountEntry[] {
  return table.filter((m) => m.point === dir || m.point.startsWith(`${dir}/`));
}

/**
 * Mount points of this mount namespace: the fifth field of each mountinfo line alone
 * (read several times per pod start and stop, and the table grows with every pod).
 */
export async function mountPoints(): Promise<Set<string>> {
  const points = new Set<string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    let start = 0;
    for (let field = 0; field < 4; field++) {
      const space = line.indexOf(' ', start);
      if (space < 0) {
        start = -1;
        break;
      }
      start = space + 1;
    }
    if (start < 0) continue;
    const end = line.indexOf(' ', start);
    const point = line.slice(start, end < 0 ? undefined : end);
    if (point) points.add(point.includes('\\') ? unescapeOctal(point) : point);
  }
  return points;
}

function unescapeOctal(field: string): string {
  return field.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
