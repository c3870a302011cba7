// The filesystems berth-csi formats its mount volumes with, and how each one is made,
// mounted and grown. ext4 grows offline (e2fsck + resize2fs) or online with
// CAP_SYS_RESOURCE; XFS grows only online (xfs_growfs), with CAP_SYS_ADMIN.
import { blockDeviceSize, ext4Bytes, growExt4, makeExt4 } from '../linux/loop-device.js';
import { XFS_MIN_BYTES, growXfs, makeXfs } from '../linux/xfs.js';
import { runCommand } from '../linux/command.js';

export type FsType = 'ext4' | 'xfs';
export const FS_TYPES: readonly FsType[] = ['ext4', 'xfs'];
export const DEFAULT_FS_TYPE: FsType = 'ext4';

export function isFsType(name: string | undefined): name is FsType {
  return name !== undefined && (FS_TYPES as readonly string[]).includes(name);
}

const MiB = 1024 * 1024;

/** The smallest volume each filesystem can be made on. */
export function minBytesOf(fsType: FsType | undefined): number {
  return fsType === 'xfs' ? XFS_MIN_BYTES : 16 * MiB;
}

export async function makeFilesystem(fsType: FsType, target: string): Promise<void> {
  if (fsType === 'xfs') await makeXfs(target);
  else await makeExt4(target);
}

/**
 * Mounts a volume's device at path, growing its filesystem to the device first (ext4,
 * offline: needs no CAP_SYS_RESOURCE) or right after (XFS, online). XFS is mounted with
 * nouuid: a clone or snapshot copy carries its source's UUID, and both may be mounted.
 */
export async function mountFilesystem(fsType: FsType, device: string, path: string, flags: string[], what: string, grow = true): Promise<void> {
  let growing: unknown;
  if (grow && fsType === 'ext4' && (await ext4Bytes(device)) < (await blockDeviceSize(device))) {
    // Mounted at its old size all the same when growing fails: the volume stays usable.
    growing = await growExt4(device, true).then(() => undefined, (err: unknown) => err);
  }
  const options = [...flags, ...(fsType === 'xfs' ? ['nouuid'] : [])];
  await runCommand('mount', ['-t', fsType, ...(options.length > 0 ? ['-o', options.join(',')] : []), device, path], `mounting ${what} at ${path}`);
  if (growing) throw growing;
  // (A read-only mount cannot be grown; it is at its next read-write stage.)
  if (grow && fsType === 'xfs' && !flags.includes('ro')) await growXfs(path);
}

/**
 * Grows a mounted filesystem to its device's size, online. Throws PermissionDenied-worded
 * errors as the tools report them (resize2fs without CAP_SYS_RESOURCE: "Permission denied").
 */
export async function growMounted(fsType: FsType, device: string, mountPoint: string): Promise<void> {
  if (fsType === 'xfs') await growXfs(mountPoint);
  else await growExt4(device);
}
