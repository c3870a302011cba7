// XFS on berth-csi's loop devices (Debian's xfsprogs). XFS grows only while mounted, and
// its grow ioctl (XFS_IOC_FSGROWFSDATA) asks for CAP_SYS_ADMIN alone (fs/xfs/xfs_fsops.c,
// xfs_growfs_data), where ext4's online resize asks for CAP_SYS_RESOURCE: so an XFS
// volume grows online, in use, where ext4 cannot.
import { runCommand } from './command.js';

/** mkfs.xfs refuses filesystems smaller than 300 MB (xfsprogs 5.19 and later). */
export const XFS_MIN_BYTES = 300 * 1024 * 1024;

/** Formats a file or device as XFS (quietly, over whatever was there). */
export async function makeXfs(target: string): Promise<void> {
  await runCommand('mkfs.xfs', ['-f', '-q', target], `formatting ${target} as xfs`);
}

/** Grows the mounted XFS at mountPoint to fill its device (a no-op when it already does). */
export async function growXfs(mountPoint: string): Promise<void> {
  await runCommand('xfs_growfs', ['-d', mountPoint], `growing the xfs filesystem at ${mountPoint}`);
}
