// Pinned namespaces: a network, UTS and IPC namespace kept alive by bind mounts on files
// under berth's state dir, made by util-linux's unshare with no process left running
// (the pod needs no pause container for them). Containers and CNI plugins join by path.
import { spawn } from 'node:child_process';
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { internal } from '../errors.js';
import { runCommand, runHelperOperation } from './command.js';
import { unmount } from './mount-calls.js';

export type PinnableNamespace = 'net' | 'uts' | 'ipc';

/** One range of a user namespace's id map: container ids [containerId, +length) are host ids [hostId, +length). */
export interface IdMapping {
  containerId: number;
  hostId: number;
  length: number;
}

export interface UserNamespaceSpec {
  uids: IdMapping[];
  gids: IdMapping[];
}

/** /proc/PID/uid_map's (and gid_map's) text for mappings. */
export function idMapText(mappings: IdMapping[]): string {
  return mappings.map((m) => `${m.containerId} ${m.hostId} ${m.length}\n`).join('');
}

/** The host id a container id maps to, or undefined when it is not mapped. */
export function mapId(mappings: IdMapping[], id: number): number | undefined {
  const m = mappings.find((r) => id >= r.containerId && id < r.containerId + r.length);
  return m ? m.hostId + (id - m.containerId) : undefined;
}

/** unshare(2)'s flag of each namespace berth pins. */
const CLONE_FLAGS: Record<PinnableNamespace, number> = { net: 0x40000000, uts: 0x04000000, ipc: 0x08000000 };

/**
 * Creates and pins new namespaces at the given files and sets the hostname when UTS is
 * new. Where the spawning helper makes its own operations, one child it forks makes them
 * with no exec (unshare(2), sethostname(2), `lo` up by ioctl, a bind mount per pin) and
 * brings a new network namespace's `lo` up too: true then. Otherwise (false) util-linux's
 * `unshare … hostname NAME` makes them and `lo` is the caller's (bringUpLoopback), beside
 * the pod network's ADD.
 * With a user namespace, it is made first (with the mappings) and owns the others.
 */
export async function pinNamespaces(files: Partial<Record<PinnableNamespace, string>>, hostname?: string, userns?: { file: string } & UserNamespaceSpec): Promise<boolean> {
  if (userns) {
    await pinUserOwnedNamespaces(files, hostname, userns);
    return false;
  }
  const pins = (Object.entries(files) as Array<[PinnableNamespace, string | undefined]>).filter((e): e is [PinnableNamespace, string] => e[1] !== undefined);
  if (pins.length === 0) return false;
  // Empty files in the state dir, created directly: nine thread-pool round trips before
  // the child could start otherwise, on the way to every pod's network.
  for (const [, file] of pins) writeFileSync(file, '', { mode: 0o444 });
  const name = files.uts !== undefined && hostname !== undefined && hostname !== '' ? hostname : '';
  const loopback = files.net !== undefined;
  const mask = pins.reduce((m, [kind]) => m | CLONE_FLAGS[kind], 0);
  const operation = runHelperOperation(['pin', String(mask), name, loopback ? '1' : '0', ...pins.flat()], 'creating the pod namespaces');
  // The name as an argument of its own, never as shell text.
  const command = name ? ['hostname', name] : ['true'];
  try {
    await (operation ?? runCommand('unshare', [...pins.map(([kind, file]) => `--${kind}=${file}`), '--', ...command], 'creating the pod namespaces'));
  } catch (err) {
    await unpinNamespaces(Object.values(files));
    throw err;
  }
  return operation !== undefined && loopback;
}

const USERNS_START_TIMEOUT_MS = 5_000;

/**
 * A user namespace with the others it owns: util-linux's unshare makes them in one call
 * (unshare(2) with CLONE_NEWUSER|CLONE_NEWNET|…, so the new user namespace owns the
 * rest) and runs a shell that says it is up, then waits on its stdin. Meanwhile berthd,
 * root of the parent namespace, writes the uid and gid maps (unshare's own --map-users
 * needs newuidmap and /etc/subuid) and bind-mounts the namespaces onto the pin files;
 * then the shell's stdin closes and it exits, leaving only the pins.
 */
async function pinUserOwnedNamespaces(files: Partial<Record<PinnableNamespace, string>>, hostname: string | undefined, userns: { file: string } & UserNamespaceSpec): Promise<void> {
  const kinds = (Object.entries(files) as Array<[PinnableNamespace, string | undefined]>).filter((e): e is [PinnableNamespace, string] => e[1] !== undefined);
  const all = [['user', userns.file] as const, ...kinds];
  const child = spawn('unshare', ['--user', ...kinds.map(([kind]) => `--${kind}`), '--', '/bin/sh', '-c', 'echo up; read -r _'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  child.once('error', (err) => (stderr += err.message));
  try {
    // "up" comes once the shell runs inside the new namespaces.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(internal(`creating the pod's user namespace: unshare did not come up: ${stderr.trim()}`)), USERNS_START_TIMEOUT_MS);
      child.stdout.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(internal(`creating the pod's user namespace: unshare exited (${code}): ${stderr.trim()}`));
      });
    });
    const pid = child.pid!;
    await writeFile(`/proc/${pid}/uid_map`, idMapText(userns.uids));
    await writeFile(`/proc/${pid}/gid_map`, idMapText(userns.gids));
    for (const [kind, file] of all) {
      await writeFile(file, '', { mode: 0o444 });
      await runCommand('mount', ['--bind', `/proc/${pid}/ns/${kind}`, file], 'pinning a pod namespace');
    }
    child.stdin.end();
    await exited;
    // The shell lost its capabilities at exec (its uid was not mapped yet): the hostname
    // is set by nsenter, which becomes the namespace's root (mapped now) on entering it.
    if (files.uts && hostname) await runCommand('nsenter', [`--user=${userns.file}`, `--uts=${files.uts}`, 'hostname', hostname], "setting the pod's hostname");
  } catch (err) {
    child.kill('SIGKILL');
    await unpinNamespaces(all.map(([, file]) => file));
    throw err;
  }
}

/** Unmounts and removes pinned namespace files; missing ones are fine (idempotent). */
export async function unpinNamespaces(files: Array<string | undefined>): Promise<void> {
  const pins = files.filter((file): file is string => file !== undefined);
  const live = pins.filter(isNamespaceFile);
  // Lazy: a process still inside keeps the namespace, but the pin is gone either way.
  // One umount for all of them (it tries each and fails when any failed).
  if (live.length > 0) {
    await unmount(live, true, 'releasing a pod namespace').catch((err: Error) => {
      throw internal(`cannot unmount ${live.join(', ')}: ${err.message}`);
    });
  }
  // Empty files in the state dir: removed directly.
  for (const file of pins) rmSync(file, { force: true });
}

/** True when the file is a live pin (a bind mount of a namespace). */
export async function isPinned(file: string): Promise<boolean> {
  return isNamespaceFile(file);
}

const NSFS_MAGIC = 0x6e736673;

/**
 * True when the path is a namespace file: a pin (a bind mount of one) or
 * /proc/PID/ns/*. A statfs, answered from memory: berth's pin files are plain empty
 * files until a namespace is mounted on them, so this is what a mountinfo read (~140
 * lines here, read and split on every pod stop several times) told.
 */
export function isNamespaceFile(path: string): boolean {
  try {
    return statfsSync(path).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Where a pod's pinned namespaces live. */
export function namespaceFiles(pinDir: string, podId: string): Record<PinnableNamespace | 'pid' | 'user', string> {
  return { net: join(pinDir, `${podId}-net`), uts: join(pinDir, `${podId}-uts`), ipc: join(pinDir, `${podId}-ipc`), pid: join(pinDir, `${podId}-pid`), user: join(pinDir, `${podId}-user`) };
}
