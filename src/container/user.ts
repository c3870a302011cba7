// Resolving a container's user and groups against the image's /etc/passwd and
// /etc/group, read from its rootfs without following symlinks out of it.
import { lstat, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { invalidArgument } from '../errors.js';
import type { ResolvedUser } from './oci-spec.js';

async function readContainerFile(rootfs: string, path: string): Promise<string> {
  const full = join(rootfs, path);
  // A symlinked /etc/passwd could point at the host's: such a file counts as absent.
  for (const part of ['etc', path.replace(/^\/etc\//, 'etc/')]) {
    const s = await lstat(join(rootfs, part)).catch(() => undefined);
    if (!s || s.isSymbolicLink()) return '';
  }
  return readFile(full, 'utf8').catch(() => '');
}

interface UserRequest {
  runAsUser?: number;
  runAsGroup?: number;
  runAsUsername: string;
  supplementalGroups: number[];
  /** The image's USER ("name", "uid", "name:group", "uid:gid"). */
  imageUser: string;
}

export async function resolveUser(rootfs: string, request: UserRequest): Promise<ResolvedUser> {
  const passwd = (await readContainerFile(rootfs, '/etc/passwd')).split('\n').map((l) => l.split(':'));
  const groups = (await readContainerFile(rootfs, '/etc/group')).split('\n').map((l) => l.split(':'));
  let userPart = request.imageUser.split(':')[0] ?? '';
  let groupPart: string | undefined = request.imageUser.split(":")[1];
  if (request.runAsUser !== undefined) {
    userPart = String(request.runAsUser);
    groupPart = undefined;
  } else if (request.runAsUsername) {
    userPart = request.runAsUsername;
    groupPart = undefined;
  }
  let uid = 0;
  let gid = 0;
  let name: string | undefined;
  if (/^\d+$/.test(userPart)) {
    uid = Number(userPart);
    const entry = passwd.find((p) => p[2] === userPart);
    if (entry) {
      gid = Number(entry[3]);
      name = entry[0];
    }
  } else if (userPart !== '') {
    const entry = passwd.find((p) => p[0] === userPart);
    if (!entry) throw invalidArgument(`user "${userPart}" is not in the image's /etc/passwd`);
    uid = Number(entry[2]);
    gid = Number(entry[3]);
    name = userPart;
  }
  if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = Number(groupPart);
    else {
      const entry = groups.find((g) => g[0] === groupPart);
      if (!entry) throw invalidArgument(`group "${groupPart}" is not in the image's /etc/group`);
      gid = Number(entry[2]);
    }
  }
  if (request.runAsGroup !== undefined) gid = request.runAsGroup;
  // The primary group (as containerd and CRI-O list it too), the user's groups from
  // /etc/group, then the requested supplemental groups.
  const additional = new Set<number>([gid]);
  if (name) for (const g of groups) if ((g[3] ?? '').split(',').includes(name)) additional.add(Number(g[2]));
  for (const g of request.supplementalGroups) additional.add(g);
  return { uid, gid, additionalGids: [...additional] };
}
