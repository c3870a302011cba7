// Pinned namespaces: a network, UTS and IPC namespace kept alive by bind mounts on files
// under berth's state dir, made by util-linux's unshare with no process left running
// (the pod needs no pause container for them). Containers and CNI plugins join by path.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError } from '../errors.js';
import { runCommand } from './command.js';

export type PinnableNamespace = 'net' | 'uts' | 'ipc';

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

/** Creates and pins new namespaces at the given files; sets the hostname when UTS is new. */
export async function pinNamespaces(files: Partial<Record<PinnableNamespace, string>>, hostname?: string): Promise<void> {
  const args: string[] = [];
  for (const [kind, file] of Object.entries(files) as Array<[PinnableNamespace, string | undefined]>) {
    if (!file) continue;
    await writeFile(file, '', { mode: 0o444 });
    args.push(`--${kind}=${file}`);
  }
  if (args.length === 0) return;
  const command = files.uts && hostname ? ['hostname', hostname] : ['true'];
  try {
    await runCommand('unshare', [...args, ...command], 'creating the pod namespaces');
  } catch (err) {
    await unpinNamespaces(Object.values(files));
    throw err;
  }
}

/** Unmounts and removes pinned namespace files; missing ones are fine (idempotent). */
export async function unpinNamespaces(files: Array<string | undefined>): Promise<void> {
  const mounted = await mountPoints();
  for (const file of files) {
    if (!file) continue;
    if (mounted.has(file)) {
      // Lazy: a process still inside keeps the namespace, but the pin is gone either way.
      await runCommand('umount', ['-l', file], 'releasing a pod namespace').catch((err: Error) => {
        throw new BerthError('Internal', `cannot unmount ${file}: ${err.message}`);
      });
    }
    await rm(file, { force: true });
  }
}

/** True when the file is a live pin (a bind mount of a namespace). */
export async function isPinned(file: string): Promise<boolean> {
  return (await mountPoints()).has(file);
}

async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).has(path);
}

export interface MountEntry {
  point: string;
  /** Per-mount options (rw, nosuid, nodev…). */
  options: string[];
  /** The optional fields: propagation tags such as shared:N, master:N (none: private). */
  optional: string[];
}

/** The mounts of this mount namespace, from /proc/self/mountinfo, in mount order. */
export async function mountTable(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const point = fields[4];
    if (!point) continue;
    const separator = fields.indexOf('-', 6);
    entries.push({
      point: point.replace(/\\(\d{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
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
 * Removes a directory tree, but never through a mount point: a recursive rm would
 * delete the files of whatever is still mounted below (a volume, a host path).
 */
export async function removeUnmounted(...dirs: string[]): Promise<void> {
  const table = await mountTable();
  for (const dir of dirs) {
    const mounted = mountsBelow(table, dir);
    if (mounted.length > 0) throw new BerthError('Internal', `refusing to remove ${dir}: ${mounted[0]!.point} is still mounted`);
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}

/** The mounts of a table at or below dir. */
export function mountsBelow(table: MountEntry[], dir: string): MountEntry[] {
  return table.filter((m) => m.point === dir || m.point.startsWith(`${dir}/`));
}

/** Mount points of this mount namespace. */
export async function mountPoints(): Promise<Set<string>> {
  return new Set((await mountTable()).map((m) => m.point));
}

/** Where a pod's pinned namespaces live. */
export function namespaceFiles(pinDir: string, podId: string): Record<PinnableNamespace | 'pid', string> {
  return { net: join(pinDir, `${podId}-net`), uts: join(pinDir, `${podId}-uts`), ipc: join(pinDir, `${podId}-ipc`), pid: join(pinDir, `${podId}-pid`) };
}
