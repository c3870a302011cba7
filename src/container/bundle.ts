// A container's bundle: the one owner of its layout on disk (as podFilePaths is for a
// pod's files) and of what is mounted for it: the overlay rootfs on the image's
// snapshots with a per-container upper dir, and the recursive read-only trees berth
// builds for its mounts in a private dir (so no other mount namespace gets copies).
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { chmod, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mountFilesystem, unmount } from '../linux/mount-calls.js';
import { checkReachable, shiftOwnership } from '../linux/id-shift.js';
import type { UserNamespaceSpec } from '../linux/namespaces.js';
import { mountPoints, preparePrivateDir, removeUnmounted } from '../linux/mount-table.js';
import { recursiveReadOnlyBind, unmountTree } from '../linux/recursive-readonly.js';
import { emptyTrash, trashDirOf } from '../linux/trash.js';
import { imageVolumePaths, mountImageVolume, resolveInImage } from './image-volumes.js';
import type { ContainerMount } from './container-types.js';

export interface BundlePaths {
  dir: string;
  /** The OCI runtime config. */
  config: string;
  rootfs: string;
  /** The container's writable layer (its size is the writable layer's usage). */
  upper: string;
  work: string;
  /** The container's init pid and conmon's pid (conmon writes both). */
  pid: string;
  conmonPid: string;
  /** conmon's control fifo (log reopen, terminal resize). */
  ctl: string;
  /** conmon's marker of a container killed by its memory limit. */
  oom: string;
  /** The log when the kubelet names no log path. */
  consoleLog: string;
}

export function bundlePaths(dir: string): BundlePaths {
  const at = (name: string) => join(dir, name);
  return {
    dir,
    config: at('config.json'),
    rootfs: at('rootfs'),
    upper: at('upper'),
    work: at('work'),
    pid: at('pid'),
    conmonPid: at('conmon.pid'),
    ctl: at('ctl'),
    oom: at('oom'),
    consoleLog: at('console.log'),
  };
}

/** A fresh pid file for one `runc exec` in the bundle (the caller removes it). */
export function execPidFile(dir: string): string {
  return join(dir, `exec-${randomBytes(6).toString('hex')}.pid`);
}

/** What the container manager does with bundles (Bundles; a fake in unit tests). */
export type BundleStore = Pick<Bundles, 'dirOf' | 'prepare' | 'ids' | 'create' | 'mountRootfs' | 'bindSources' | 'unmountTrees' | 'unmount' | 'remove'>;

/** What bindSources asks of the host and the image store. */
export interface MountSources {
  /** Whether a host path is a directory (a file has no submounts). */
  isDirectory(path: string): Promise<boolean>;
  /** The snapshot dirs (top first) of an image an image volume mounts. */
  imageLowerDirs(imageId: string): Promise<string[]>;
}

/** Bundles under <state>/containers, recursive read-only trees under <state>/rro. */
export class Bundles {
  readonly #dir: string;
  readonly #rroDir: string;
  readonly #trash: string;

  constructor(state: string) {
    this.#dir = join(state, 'containers');
    this.#rroDir = join(state, 'rro');
    this.#trash = trashDirOf(state);
  }

  dirOf(id: string): string {
    return join(this.#dir, id);
  }

  /** Makes the private dir the trees are built in (at start-up). */
  async prepare(): Promise<void> {
    await preparePrivateDir(this.#rroDir);
    // What a crash left in the trash (bundles and pod dirs of removed containers and pods).
    emptyTrash(this.#trash);
  }

  /** Ids of every bundle on disk (with or without a record). */
  async ids(): Promise<string[]> {
    return readdir(this.#dir).catch(() => [] as string[]);
  }

  async create(dir: string): Promise<BundlePaths> {
    const paths = bundlePaths(dir);
    // Directories in the state dir: made synchronously (a thread-pool round trip each costs more than the mkdir).
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
    return paths;
  }

  /** Mounts the overlay rootfs: the lower dirs (top first) under the container's upper dir. */
  async mountRootfs(dir: string, lowerDirs: string[], userns?: UserNamespaceSpec): Promise<string> {
    const { upper, work, rootfs } = bundlePaths(dir);
    for (const dir of [upper, work, rootfs]) mkdirSync(dir, { recursive: true, mode: 0o755 });
    // In a user namespace: metacopy, so shifting the owners copies up metadata only.
    const options = `lowerdir=${lowerDirs.join(':')},upperdir=${upper},workdir=${work}${userns ? ',metacopy=on' : ''}`;
    await mountFilesystem('overlay', 'overlay', rootfs, options, 'mounting the container rootfs');
    if (userns) {
      // runc sets the rootfs up as the namespace's root, which the host's root-only
      // bundle dirs would keep out: it may pass through (not list) them.
      await chmod(this.#dir, 0o711);
      await chmod(dir, 0o711);
      await checkReachable(rootfs, userns);
      await shiftOwnership(rootfs, userns);
    }
    return rootfs;
  }

  /**
   * The CRI mounts to bind: image volumes become read-only overlays of their image, and
   * recursive read-only mounts trees, both built in the private rro dir (one at a time:
   * a failure must not race a half-built tree).
   */
  async bindSources(id: string, mounts: ContainerMount[], sources: MountSources): Promise<ContainerMount[]> {
    const result: ContainerMount[] = [];
    for (const [i, m] of mounts.entries()) {
      if (m.image) {
        const paths = imageVolumePaths(join(this.#rroDir, id), i);
        await mountImageVolume(await sources.imageLowerDirs(m.image.imageId), paths);
        result.push({ ...m, hostPath: m.image.subPath ? await resolveInImage(paths.target, m.image.subPath, m.image.image) : paths.target });
        continue;
      }
      if (!m.recursiveReadOnly || !(await sources.isDirectory(m.hostPath))) {
        result.push(m);
        continue;
      }
      const tree = join(this.#rroDir, id, String(i));
      await recursiveReadOnlyBind(m.hostPath, tree);
      result.push({ ...m, hostPath: tree });
    }
    return result;
  }

  /** Unmounts the rootfs and any recursive read-only trees of a container (or of a bundle left by a crash). */
  async unmount(bundle: { id: string; bundle: string }): Promise<void> {
    const { id } = bundle;
    const { rootfs } = bundlePaths(bundle.bundle);
    // umount at once (the usual case: it is mounted); the mount table is read only when
    // that fails, to tell "was not mounted" (done) from a real failure.
    await unmount([rootfs], false, 'unmounting the container rootfs').catch(async (err: Error) => {
      if ((await mountPoints()).has(rootfs)) throw err;
    });
    await this.unmountTrees(id);
  }

  /** Unmounts the host's copies of a container's recursive read-only trees and image volumes (idempotent). */
  async unmountTrees(id: string): Promise<void> {
    const trees = join(this.#rroDir, id);
    for (const tree of await readdir(trees).catch(() => [] as string[])) await unmountTree(join(trees, tree));
  }

  /** Removes the bundle and its rro dir, refusing while anything below is still mounted. */
  async remove(bundle: { id: string; bundle: string }): Promise<void> {
    await removeUnmounted([join(this.#rroDir, bundle.id), bundle.bundle], { trash: this.#trash });
  }
}
