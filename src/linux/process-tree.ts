// Ending a process together with everything it started, from the host's /proc. runc
// starts an exec'd process as the leader of a new session (nsexec calls setsid), so its
// children are found by session and process group even after a parent died and they
// were re-parented to the container's init; children that left the session while
// their parent lived are found as descendants. No pid is reused while a process still
// has it as its session or group id, so a leader that is gone names its leftovers safely.
import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  session: number;
  zombie: boolean;
}

/** /proc/<pid>/stat: the command may hold spaces and parentheses, so fields are read after its last ')'. */
function parseStat(pid: number, text: string): ProcStat | undefined {
  const end = text.lastIndexOf(')');
  if (end < 0) return undefined;
  const [state, ppid, pgrp, session] = text.slice(end + 2).split(' ');
  return { pid, ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session), zombie: state === 'Z' || state === 'X' };
}

async function processStats(): Promise<ProcStat[]> {
  const stats = await Promise.all(
    (await readdir('/proc'))
      .filter((e) => /^\d+$/.test(e))
      .map(async (e) => parseStat(Number(e), await readFile(`/proc/${e}/stat`, 'utf8').catch(() => ''))),
  );
  return stats.filter((s): s is ProcStat => s !== undefined);
}

/** The live processes of leader's session or group, the leader, and every descendant of those. */
function treeOf(leader: number, stats: ProcStat[]): ProcStat[] {
  const members = new Set(stats.filter((s) => s.pid === leader || s.session === leader || s.pgrp === leader).map((s) => s.pid));
  for (let grown = true; grown; ) {
    grown = false;
    for (const s of stats) {
      if (!members.has(s.pid) && members.has(s.ppid)) {
        members.add(s.pid);
        grown = true;
      }
    }
  }
  return stats.filter((s) => members.has(s.pid) && !s.zombie);
}

/** True while the process runs (a zombie has ended). */
export async function isRunning(pid: number): Promise<boolean> {
  const stat = parseStat(pid, await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''));
  return stat !== undefined && !stat.zombie;
}

/**
 * SIGKILLs a session leader and everything it started, again and again until nothing of
 * it is left (a process may fork while its tree is read). Returns how many were killed.
 */
export async function killProcessTree(leader: number, rounds = 50): Promise<number> {
  if (!(leader > 1)) return 0;
  let killed = 0;
  for (let round = 0; round < rounds; round++) {
    const tree = treeOf(leader, await processStats());
    if (tree.length === 0) return killed;
    for (const { pid } of tree) {
      try {
        process.kill(pid, 'SIGKILL');
        killed++;
      } catch {
        // already gone
      }
    }
    await sleep(10);
  }
  return killed;
}

/** A process's start time (clock ticks after boot, /proc/<pid>/stat field 22), undefined once it is gone. */
export function processStartTime(pid: number): string | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const end = text.lastIndexOf(')');
  // Fields after the command start with the 3rd (state): the 22nd is the 20th of them.
  return end < 0 ? undefined : text.slice(end + 2).split(' ')[19];
}
