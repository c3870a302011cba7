// Loop devices and the ext4 filesystems on them: the host half of berth-csi's node-local
// volumes (a sparse file, formatted ext4, attached with losetup, mounted).
import { constants, open } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand } from './command.js';

/** The loop devices a backing file is attached to (losetup -j), e.g. ["/dev/loop3"]. */
export async function loopDevicesOf(file: string): Promise<string[]> {
  const { stdout } = await runCommand('losetup', ['--noheadings', '--output', 'NAME', '--associated', file], `finding the loop devices of ${file}`);
  return stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** Attaches a file to a free loop device (or returns the one it is already on). */
export async function attachLoop(file: string): Promise<string> {
  const existing = await loopDevicesOf(file);
  if (existing[0]) return existing[0];
  const { stdout } = await runCommand('losetup', ['--find', '--show', '--direct-io=off', file], `attaching ${file} to a loop device`);
  return stdout.trim();
}

/** Detaches every loop device the file is attached to; none is fine. */
export async function detachLoops(file: string): Promise<void> {
  for (const device of await loopDevicesOf(file)) {
    await runCommand('losetup', ['--detach', device], `detaching ${device}`);
  }
}

/** Makes a loop device see its backing file's new size (losetup -c). */
export async function refreshLoopSize(device: string): Promise<void> {
  await runCommand('losetup', ['--set-capacity', device], `refreshing the size of ${device}`);
}

/** The size of a block device in bytes. */
export async function blockDeviceSize(device: string): Promise<number> {
  const { stdout } = await runCommand('blockdev', ['--getsize64', device], `reading the size of ${device}`);
  return Number(stdout.trim());
}

/** Formats a file or device as ext4 (quietly, without asking). */
export async function makeExt4(target: string): Promise<void> {
  await runCommand('mkfs.ext4', ['-F', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1', target], `formatting ${target} as ext4`);
}

/** The filesystem type blkid finds on a device or file, or undefined when it holds none. */
export async function filesystemTypeOf(target: string): Promise<string | undefined> {
  try {
    const { stdout } = await runCommand('blkid', ['-p', '-s', 'TYPE', '-o', 'value', target], `probing ${target}`);
    return stdout.trim() || undefined;
  } catch {
    return undefined; // blkid exits 2 when it finds nothing
  }
}

/** Grows the ext4 filesystem on a device (online when mounted) or an image file to fill it. */
export async function growExt4(target: string, offline = false): Promise<void> {
  // e2fsck exits 1 when it corrected something (a snapshot taken of a mounted volume
  // replays its journal here): that is success too.
  if (offline) await runCommand('sh', ['-c', 'e2fsck -f -y "$1" >/dev/null; [ $? -le 1 ]', 'e2fsck', target], `checking ${target} before resizing`);
  await runCommand('resize2fs', [target], `growing the filesystem on ${target}`);
}

/** The size of the ext4 filesystem on a device or file (block count × block size, from its superblock). */
export async function ext4Bytes(target: string): Promise<number> {
  const { stdout } = await runCommand('dumpe2fs', ['-h', target], `reading the ext4 superblock of ${target}`);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(stdout)?.[1] ?? NaN);
  return field('Block count') * field('Block size');
}

/**
 * Waits until nothing holds a block device open exclusively: a filesystem mounted from it
 * in any mount namespace does (a container's copy of a mount outlives the host's unmount
 * until its namespace is torn down, which the kernel finishes a moment after the last
 * process exits). True once free; false if still held after timeoutMs.
 */
export async function waitUntilReleased(device: string, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await (await open(device, constants.O_RDONLY | constants.O_EXCL)).close();
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENXIO') return true;
      if (code !== 'EBUSY') throw err;
    }
    if (Date.now() >= until) return false;
    await sleep(50);
  }
}
