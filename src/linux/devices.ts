// Host device nodes as OCI linux.devices entries: a CRI Device (one node, or a directory
// of them) and, for privileged containers, every device under the host's /dev, as
// containerd gives them.
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { invalidArgument } from '../errors.js';

export interface DeviceNode {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** Linux's dev_t encoding (glibc's gnu_dev_major/minor). */
function majorOf(rdev: number): number {
  return Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
function minorOf(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

async function nodeAt(hostPath: string, containerPath: string): Promise<DeviceNode | undefined> {
  const s = await stat(hostPath); // follows symlinks, as /dev/disk/by-id/… are
  if (!s.isCharacterDevice() && !s.isBlockDevice()) return undefined;
  return { path: containerPath, type: s.isCharacterDevice() ? 'c' : 'b', major: majorOf(s.rdev), minor: minorOf(s.rdev), fileMode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
}

/** The device nodes a CRI Device names: the node itself, or every node under a directory. */
export async function devicesFromPath(hostPath: string, containerPath: string): Promise<DeviceNode[]> {
  const s = await stat(hostPath).catch((err: NodeJS.ErrnoException) => {
    throw invalidArgument(`device ${hostPath}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
  });
  if (!s.isDirectory()) {
    const node = await nodeAt(hostPath, containerPath);
    if (!node) throw invalidArgument(`device ${hostPath} is not a character or block device`);
    return [node];
  }
  const nodes: DeviceNode[] = [];
  for (const entry of await readdir(hostPath, { recursive: true })) {
    const full = join(hostPath, entry);
    const node = await nodeAt(full, join(containerPath, relative(hostPath, full))).catch(() => undefined);
    if (node) nodes.push(node);
  }
  return nodes;
}

/** Directories of /dev that are mounts of their own inside a container, or not devices. */
const SKIPPED = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

/** Every device node of the host's /dev (for privileged containers), but the console. */
export async function hostDevices(): Promise<DeviceNode[]> {
  const nodes: DeviceNode[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!(dir === '/dev' && SKIPPED.has(entry.name))) await walk(full);
      } else if ((entry.isCharacterDevice() || entry.isBlockDevice()) && full !== '/dev/console') {
        const node = await nodeAt(full, full).catch(() => undefined);
        if (node) nodes.push(node);
      }
    }
  };
  await walk('/dev');
  return nodes;
}
