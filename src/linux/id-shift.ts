// A container rootfs owned by the ids of a user namespace: each file's owner and group
// shifted through the namespace's maps (container id → host id), as CRI-O did before
// idmapped mounts ("chown a copy of the rootfs"). runc 1.1 cannot make idmapped mounts,
// and mount_setattr(2) is a syscall Node cannot make. The rootfs is an overlay mounted
// with metacopy=on, so the chown copies up metadata only: the image's snapshots are
// untouched (other containers share them) and no file data is copied.
import { lchown, lstat, readdir, chmod, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { failedPrecondition, internal } from '../errors.js';
import { mapId, type UserNamespaceSpec } from './namespaces.js';

/** Shifts the ownership of everything under root (root included), symlinks themselves, never what they point to. */
export async function shiftOwnership(root: string, userns: UserNamespaceSpec): Promise<number> {
  let count = 0;
  const shift = async (path: string): Promise<void> => {
    const s = await lstat(path);
    const uid = mapId(userns.uids, s.uid);
    const gid = mapId(userns.gids, s.gid);
    if (uid === undefined || gid === undefined) throw internal(`${path} is owned by ${s.uid}:${s.gid}, which the pod's user namespace does not map`);
    await lchown(path, uid, gid);
    // chown clears set-user-ID and set-group-ID bits, even for root: they are put back.
    if (!s.isSymbolicLink() && (s.mode & 0o6000) !== 0) await chmod(path, s.mode & 0o7777);
    count++;
    if (s.isDirectory()) {
      for (const entry of await readdir(path)) await shift(join(path, entry));
    }
  };
  await shift(root);
  return count;
}

/**
 * runc sets a rootfs up from inside the user namespace, as its root (host uid and gid of
 * container id 0): every directory above the rootfs must let it pass. A precise error
 * instead of runc's "permission denied" when one does not (a state dir under a private
 * directory).
 */
export async function checkReachable(path: string, userns: UserNamespaceSpec): Promise<void> {
  const uid = mapId(userns.uids, 0);
  const gid = mapId(userns.gids, 0);
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const s = await stat(dir);
    const bit = s.uid === uid ? 0o100 : s.gid === gid ? 0o010 : 0o001;
    if ((s.mode & bit) === 0) {
      throw failedPrecondition(`a container in the pod's user namespace cannot reach its rootfs: its root (host uid ${uid}) may not pass ${dir} (mode ${(s.mode & 0o777).toString(8)}); berthd's state dir and the directories above it must be searchable by others (o+x)`);
    }
    if (dir === dirname(dir)) return;
  }
}
