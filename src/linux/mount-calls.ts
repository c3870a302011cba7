// mount(2) and umount2(2) for berth's own mounts (the pods' /dev/shm, the containers'
// overlay rootfs, the namespace pins), made by a child the spawning helper forks with no
// exec: mount(8) and umount(8) are an exec each, with libmount, libblkid and libselinux to
// load, on the way of every pod and container start and stop. Where the helper cannot
// make them (no perl, an arch whose syscall numbers berth does not know), or a mount's
// data would not fit mount(2)'s one page, the tools run as before.
import { runCommand, runHelperOperation } from './command.js';

/** mount(8)'s option words that are mount(2) flags (MS_*); the other words are the data. */
const FLAGS: Record<string, number> = {
  ro: 0x1,
  nosuid: 0x2,
  nodev: 0x4,
  noexec: 0x8,
  sync: 0x10,
  remount: 0x20,
  dirsync: 0x80,
  noatime: 0x400,
  nodiratime: 0x800,
  bind: 0x1000,
  relatime: 0x200000,
  strictatime: 0x1000000,
};

const MNT_DETACH = 0x2;

/** mount(2) copies at most a page of data; the kernel refuses (or truncates) more. */
const MAX_DATA = 4000;

/** An -o string split into mount(2)'s flags and data (the words that are not flags, in order). */
export function mountFlags(options: string): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const word of options.split(',')) {
    if (!word) continue;
    const flag = FLAGS[word];
    if (flag !== undefined) flags |= flag;
    else data.push(word);
  }
  return { flags, data: data.join(',') };
}

/** `mount -t TYPE -o OPTIONS SOURCE TARGET`. */
export async function mountFilesystem(type: string, source: string, target: string, options: string, doing: string): Promise<void> {
  const { flags, data } = mountFlags(options);
  const call = Buffer.byteLength(data) < MAX_DATA ? runHelperOperation(['mount', source, target, type, String(flags), data], doing) : undefined;
  await (call ?? runCommand('mount', ['-t', type, '-o', options, source, target], doing));
}

/** `umount TARGET…` (`-l`: lazily, MNT_DETACH); tries each and fails when any failed, as umount(8) does. */
export async function unmount(targets: string[], lazy: boolean, doing: string): Promise<void> {
  if (targets.length === 0) return;
  const call = runHelperOperation(['umount', String(lazy ? MNT_DETACH : 0), ...targets], doing);
  await (call ?? runCommand('umount', [...(lazy ? ['-l'] : []), ...targets], doing));
}
