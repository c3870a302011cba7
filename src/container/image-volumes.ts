// Image volumes (Kubernetes' `image` volume source; a CRI Mount whose `image` names an
// image): the image's snapshots mounted as a read-only overlay of lower dirs only, which
// the container then binds read-only, whole or at `image_sub_path`. The overlay lives in
// the container's dir under berth's private mount dir, beside its recursive read-only
// trees, so removing the container (or recovery after a crash) unmounts it with them.
import { lstat, mkdir, readlink } from 'node:fs/promises';
import { isAbsolute, join, normalize, posix } from 'node:path';
import { BerthError } from '../errors.js';
import { runCommand } from '../linux/command.js';
import { unmountTree } from '../linux/recursive-readonly.js';

/** The names under a container's private dir: `image-<mount index>` and its empty bottom layer. */
export function imageVolumePaths(containerDir: string, index: number): { target: string; empty: string } {
  return { target: join(containerDir, `image-${index}`), empty: join(containerDir, `image-${index}.empty`) };
}

/**
 * Mounts the layers (top first) read-only at target. overlayfs wants two lower dirs when
 * there is no upper one: an empty dir goes at the bottom, which changes nothing.
 */
export async function mountImageVolume(lowers: string[], paths: { target: string; empty: string }): Promise<void> {
  if (lowers.length === 0) throw new BerthError('FailedPrecondition', 'the image of an image volume has no layers');
  await mkdir(paths.target, { recursive: true, mode: 0o755 });
  await mkdir(paths.empty, { recursive: true, mode: 0o755 });
  await runCommand('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${[...lowers, paths.empty].join(':')}`, paths.target], 'mounting an image volume');
}

export async function unmountImageVolume(paths: { target: string }): Promise<void> {
  await unmountTree(paths.target);
}

/** A subpath must stay inside the image: relative, without `..` reaching above it. */
export function checkSubPath(subPath: string): string | undefined {
  if (subPath === '') return undefined;
  if (isAbsolute(subPath)) return `image_sub_path "${subPath}" must be relative`;
  const normal = normalize(subPath);
  if (normal === '..' || normal.startsWith('../')) return `image_sub_path "${subPath}" leaves the image`;
  return undefined;
}

const MAX_SYMLINKS = 40;

/**
 * The host path of `subPath` inside the image mounted at root, symlinks followed as the
 * container would see them: relative to their directory, absolute ones from the image's
 * root, never above it. NotFound-like failures are InvalidArgument: the pod names a path
 * its image lacks.
 */
export async function resolveInImage(root: string, subPath: string, imageName: string): Promise<string> {
  const pending = posix.normalize(subPath).split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const here = join(root, ...resolved, part);
    const s = await lstat(here).catch(() => undefined);
    if (!s) throw new BerthError('InvalidArgument', `image_sub_path "${subPath}" does not exist in image ${imageName}`);
    if (s.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new BerthError('InvalidArgument', `image_sub_path "${subPath}" in image ${imageName}: too many symbolic links`);
      const target = await readlink(here);
      if (posix.isAbsolute(target)) resolved.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}
