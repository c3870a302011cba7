// Open file descriptors and sockets of a set of processes, counted from /proc/PID/fd as
// cAdvisor does for container_file_descriptors and container_sockets.
import { readdir, readlink } from 'node:fs/promises';

export interface FdCounts {
  fds: number;
  sockets: number;
}

/** A process that is gone (or cannot be read) counts nothing. */
export async function countFds(pids: number[]): Promise<FdCounts> {
  let fds = 0;
  let sockets = 0;
  for (const pid of pids) {
    const dir = `/proc/${pid}/fd`;
    const names = await readdir(dir).catch(() => [] as string[]);
    fds += names.length;
    for (const name of names) {
      const target = await readlink(`${dir}/${name}`).catch(() => '');
      if (target.startsWith('socket:')) sockets++;
    }
  }
  return { fds, sockets };
}
