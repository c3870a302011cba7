// Recursive read-only bind mounts (CRI Mount.recursive_read_only) without help from the
// OCI runtime: runc 1.1 makes only the top mount of an rbind read-only, leaving every
// submount writable. berth builds the tree itself on the host — an rbind copy, private,
// with each mount in it remounted read-only (keeping its own nosuid/nodev/noexec) — and
// hands the runtime that copy to bind.
import { mkdir } from 'node:fs/promises';
import { runCommand } from './command.js';
import { mountPoints, mountsBelow, mountTable } from './mount-table.js';

/** Flags a read-only remount must repeat, or the kernel clears them. */
const KEPT_FLAGS = new Set(['nosuid', 'nodev', 'noexec', 'noatime', 'nodiratime', 'relatime', 'strictatime']);

/** Mounts source at target as a recursively read-only tree. */
export async function recursiveReadOnlyBind(source: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true, mode: 0o700 });
  await runCommand('mount', ['--rbind', source, target], `binding ${source} recursively`);
  try {
    // Private first: remounting read-only must not reach the host's own mounts.
    await runCommand('mount', ['--make-rprivate', target], `making ${target} private`);
    for (const entry of mountsBelow(await mountTable(), target)) {
      const kept = entry.options.filter((o) => KEPT_FLAGS.has(o));
      await runCommand('mount', ['-o', ['remount', 'bind', 'ro', ...kept].join(','), entry.point], `making ${entry.point} read-only`);
    }
  } catch (err) {
    await unmountTree(target);
    throw err;
  }
}

/** Unmounts a tree made by recursiveReadOnlyBind (idempotent). */
export async function unmountTree(target: string): Promise<void> {
  if ((await mountPoints()).has(target)) await runCommand('umount', ['-R', target], `unmounting ${target}`);
}
