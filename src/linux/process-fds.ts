// Open file descriptors and sockets of a set of processes, counted from /proc/PID/fd as
// cAdvisor does for container_file_descriptors and container_sockets. procfs answers
// from memory: read directly, not through the thread pool (a round trip per link).
import { readdirSync, readlinkSync } from 'node:fs';

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
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    fds += names.length;
    for (const name of names) {
      let target = '';
      try {
        target = readlinkSync(`${dir}/${name}`);
      } catch {
        // closed meanwhile
      }
      if (target.startsWith('socket:')) sockets++;
    }
  }
  return { fds, sockets };
}
