// The filesystem a path lives on: its device (the mount's source, as cAdvisor names it)
// and its size and inodes from statfs.
import { readFile, stat, statfs } from 'node:fs/promises';

export interface FilesystemInfo {
  device: string;
  bytes: number;
  freeBytes: number;
  inodes: number;
  freeInodes: number;
}

/** The source of the mount holding `path`: the deepest mountinfo entry on its device whose point is a prefix of it. */
export function mountSourceOf(mountinfo: string, path: string, major: number, minor: number): string | undefined {
  let best: { point: string; source: string } | undefined;
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const fields = before.split(' ');
    const point = (fields[4] ?? '').replace(/\\040/g, ' ');
    if (fields[2] !== `${major}:${minor}`) continue;
    if (!(path === point || point === '/' || path.startsWith(`${point}/`))) continue;
    if (!best || point.length >= best.point.length) best = { point, source: after.split(' ')[1] ?? '' };
  }
  return best?.source;
}

/**
 * A device's mount source, by device number: one filesystem has one source, and the
 * metrics calls ask it for every container's writable layer (all on berth's root), so
 * mountinfo (which grows with every pod's mounts) is read once per device, not per call.
 */
const sources = new Map<number, string | undefined>();

export async function filesystemOf(path: string): Promise<FilesystemInfo> {
  const [s, fs] = await Promise.all([stat(path), statfs(path)]);
  // Node packs dev as the kernel's new_encode_dev: minor's low 8 bits, major, minor's high bits.
  const dev = s.dev;
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  if (!sources.has(dev)) sources.set(dev, mountSourceOf(await readFile('/proc/self/mountinfo', 'utf8'), path, major, minor));
  return {
    device: sources.get(dev) ?? `${major}:${minor}`,
    bytes: fs.blocks * fs.bsize,
    freeBytes: fs.bavail * fs.bsize,
    inodes: fs.files,
    freeInodes: fs.ffree,
  };
}
