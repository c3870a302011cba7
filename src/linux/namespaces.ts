// Pinned namespaces: a network, UTS and IPC namespace kept alive by bind mounts on files
// under berth's state dir, made by util-linux's unshare with no process left running
// (the pod needs no pause container for them). Containers and CNI plugins join by path.
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../errors.js';
import { runCommand } from './command.js';
import { mountPoints } from './mount-table.js';

export type PinnableNamespace = 'net' | 'uts' | 'ipc';

/** Creates and pins new namespaces at the given files; sets the hostname when UTS is new. */
export async function pinNamespaces(files: Partial<Record<PinnableNamespace, string>>, hostname?: string): Promise<void> {
  const args: string[] = [];
  for (const [kind, file] of Object.entries(files) as Array<[PinnableNamespace, string | undefined]>) {
    if (!file) continue;
    await writeFile(file, '', { mode: 0o444 });
    args.push(`--${kind}=${file}`);
  }
  if (args.length === 0) return;
  const command = files.uts && hostname ? ['hostname', hostname] : ['true'];
  try {
    await runCommand('unshare', [...args, ...command], 'creating the pod namespaces');
  } catch (err) {
    await unpinNamespaces(Object.values(files));
    throw err;
  }
}

/** Unmounts and removes pinned namespace files; missing ones are fine (idempotent). */
export async function unpinNamespaces(files: Array<string | undefined>): Promise<void> {
  const mounted = await mountPoints();
  for (const file of files) {
    if (!file) continue;
    if (mounted.has(file)) {
      // Lazy: a process still inside keeps the namespace, but the pin is gone either way.
      await runCommand('umount', ['-l', file], 'releasing a pod namespace').catch((err: Error) => {
        throw internal(`cannot unmount ${file}: ${err.message}`);
      });
    }
    await rm(file, { force: true });
  }
}

/** True when the file is a live pin (a bind mount of a namespace). */
export async function isPinned(file: string): Promise<boolean> {
  return (await mountPoints()).has(file);
}

/** Where a pod's pinned namespaces live. */
export function namespaceFiles(pinDir: string, podId: string): Record<PinnableNamespace | 'pid', string> {
  return { net: join(pinDir, `${podId}-net`), uts: join(pinDir, `${podId}-uts`), ipc: join(pinDir, `${podId}-ipc`), pid: join(pinDir, `${podId}-pid`) };
}
