// Cgroup paths for pods and containers, on cgroup v1, v2 and hybrid hosts, with the
// cgroupfs and systemd drivers' naming. berth makes a pod's cgroup parent when the
// kubelet has not (e.g. under crictl) and removes exactly what it made.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, write, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { invalidArgument, failedPrecondition } from '../errors.js';
import type { CgroupDriver } from '../config/config.js';
import { cgroupDir, parseSystemdCgroup, slicePath } from './cgroup-names.js';

export interface CgroupHierarchy {
  /** Mount point, e.g. /sys/fs/cgroup/memory or /sys/fs/cgroup/unified. */
  mount: string;
  version: 1 | 2;
  controllers: string[];
}

let hierarchies: Promise<CgroupHierarchy[]> | undefined;

/** The mounted cgroup hierarchies of this host (read once: they do not change under a running node). */
export function cgroupHierarchies(): Promise<CgroupHierarchy[]> {
  hierarchies ??= readHierarchies();
  return hierarchies;
}

async function readHierarchies(): Promise<CgroupHierarchy[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const found: CgroupHierarchy[] = [];
  for (const line of text.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const [fsType, , superOptions] = after.split(' ');
    const mount = before.split(' ')[4]!;
    if (fsType === 'cgroup2') found.push({ mount, version: 2, controllers: [] });
    else if (fsType === 'cgroup') {
      const controllers = (superOptions ?? '').split(',').filter((o) => o !== 'rw' && o !== 'ro' && !o.startsWith('release_agent') && o !== 'clone_children' && o !== 'noprefix');
      found.push({ mount, version: 1, controllers });
    }
  }
  // One entry per hierarchy even if it is mounted twice.
  return found.filter((h, i) => found.findIndex((o) => o.mount === h.mount) === i);
}

/**
 * The cgroup path a cgroup_parent names. cgroupfs: an absolute path. systemd: a slice
 * name, expanded as systemd nests slices ("kubepods-burstable-pod1.slice" lives in
 * /kubepods.slice/kubepods-burstable.slice/).
 */
export function cgroupParentPath(driver: CgroupDriver, parent: string): string {
  if (driver === 'cgroupfs') {
    if (!parent.startsWith('/')) throw invalidArgument(`cgroup_parent "${parent}" must be an absolute path with the cgroupfs driver`);
    if (parent.split('/').includes('..')) throw invalidArgument(`cgroup_parent "${parent}" may not contain ".."`);
    return parent.replace(/\/+$/, '') || '/';
  }
  if (!/^[\w.@-]+\.slice$/.test(parent)) {
    throw invalidArgument(`cgroup_parent "${parent}" must be a systemd slice name (NAME.slice) with the systemd driver`);
  }
  return slicePath(parent);
}

/**
 * Makes a cgroup in every hierarchy; returns the directories it created (to undo).
 *
 * Synchronously: cgroupfs is the kernel's memory, a mkdir, stat or cpuset copy there takes
 * microseconds, and through libuv's thread pool each was a round trip of futex wake-ups
 * (on a v1 host twelve hierarchies, ~6 of them per hierarchy per cgroup: most of berthd's
 * thread-pool operations per pod and container start). Writes to cgroup.procs are not
 * done here: moving a process waits for an RCU grace period (ms), so they stay off the
 * event loop (moveIntoCgroup).
 */
export async function ensureCgroup(path: string): Promise<string[]> {
  return (await cgroupHierarchies()).flatMap((hierarchy) => ensureIn(hierarchy, path));
}

function ensureIn(hierarchy: CgroupHierarchy, path: string): string[] {
  const created: string[] = [];
  let current = hierarchy.mount;
  for (const part of path.split('/').filter(Boolean)) {
    const parent = current;
    current = join(current, part);
    if (existsSync(current)) continue;
    // Another pod being made at the same time (the kubelet starts pods in parallel)
    // may make a shared ancestor first: then it is that pod's, not this one's.
    try {
      mkdirSync(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw err;
    }
    created.push(current);
    // A new v1 cpuset cgroup has no CPUs or memory nodes: inherit the parent's so
    // that tasks can run in it.
    if (hierarchy.version === 1 && hierarchy.controllers.includes('cpuset')) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        writeFileSync(join(current, file), readFileSync(join(parent, file)));
      }
    }
  }
  return created;
}

/**
 * Removes cgroup directories deepest first; gone ones are fine. With `leaf` (the cgroup
 * path they were made for), only the leaf's own directories must go: the ancestors made
 * with it (e.g. a kubelet's kubepods/besteffort in a hierarchy the kubelet does not
 * populate, such as v1 devices) are shared by whatever was put below them since, so a
 * busy one is left for its last user. Synchronously, as ensureCgroup makes them (a
 * cgroup's rmdir only unlinks it; the kernel frees it later).
 */
export async function removeCgroups(dirs: string[], leaf?: string): Promise<void> {
  removeCgroupsSync(dirs, leaf);
}

function removeCgroupsSync(dirs: string[], leaf?: string): void {
  for (const dir of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') continue;
      if (leaf && (code === 'EBUSY' || code === 'ENOTEMPTY') && !dir.endsWith(leaf)) continue;
      throw failedPrecondition(`cannot remove cgroup ${dir}: ${code === 'EBUSY' ? 'processes or child cgroups are still in it' : (err as Error).message}`);
    }
  }
}

/**
 * Whether containers can be given limits of this controller: on a host with v1
 * hierarchies (v1 or hybrid) runc's v1 manager needs it mounted as v1; on a v2-only
 * host it must be in the root's cgroup.controllers.
 */
export async function controllerAvailable(name: string): Promise<boolean> {
  const all = await cgroupHierarchies();
  const v1 = all.filter((h) => h.version === 1);
  if (v1.length > 0) return v1.some((h) => h.controllers.includes(name));
  const v2 = all.find((h) => h.version === 2);
  if (!v2) return false;
  return (await readFile(join(v2.mount, 'cgroup.controllers'), 'utf8').catch(() => '')).split(/\s+/).includes(name);
}

/**
 * Moves a process into a cgroup of its own. berth's helper processes (conmon, a pod's
 * PID namespace init) go there rather than stay in berthd's cgroup, where a service
 * manager stopping berthd (systemd's default KillMode=control-group) would kill them
 * with it, and they count towards their pod's CPU, memory and pids.
 *
 * Made and joined only in the hierarchies that do that (HELPER_HIERARCHIES): a service
 * manager tracks its units in the v2 hierarchy and v1's name=systemd, the kubelet
 * reads a pod's usage from cpu, cpuacct and memory and limits its pids. Their cpuset,
 * devices, freezer, blkio and the like are berthd's, as containerd's shims stay in
 * containerd's: each hierarchy was a mkdir, a move (the kernel waits an RCU grace period
 * per move, holding the cgroup mutex every other cgroup change on the node waits for)
 * and an rmdir per container and per pod, and cpuset a copy of the parent's CPUs and
 * memory nodes. Removal (removeLeafCgroup) still looks in every hierarchy.
 */
export async function moveIntoCgroup(path: string, pid: number): Promise<void> {
  // A systemd scope is made by systemd around a process it starts (systemd-scope.ts), never by moving one.
  if (parseSystemdCgroup(path)) throw new Error(`cannot move process ${pid} into the systemd scope ${path}: start it there instead`);
  const hierarchies = helperHierarchies(await cgroupHierarchies());
  for (const hierarchy of hierarchies) ensureIn(hierarchy, path);
  const line = Buffer.from(`${pid}\n`);
  await Promise.all(hierarchies.map((hierarchy) => writeSlowly(join(hierarchy.mount, path, 'cgroup.procs'), line)));
}

/** The v1 controllers (and named hierarchy) a helper process's cgroup is made in; v2 always. */
const HELPER_HIERARCHIES = ['name=systemd', 'cpu', 'cpuacct', 'memory', 'pids'];

const helperMounts = new WeakMap<CgroupHierarchy[], CgroupHierarchy[]>();
function helperHierarchies(all: CgroupHierarchy[]): CgroupHierarchy[] {
  let found = helperMounts.get(all);
  if (!found) {
    found = all.filter((h) => h.version === 2 || h.controllers.some((c) => HELPER_HIERARCHIES.includes(c)));
    helperMounts.set(all, found);
  }
  return found;
}

/**
 * Writes a cgroup file whose write can wait (cgroup.procs: an RCU grace period) off the
 * event loop, in one thread-pool round trip: the open and close, which do not wait, are
 * done here (three round trips with fs/promises' writeFile).
 */
function writeSlowly(file: string, data: Buffer): Promise<void> {
  const fd = openSync(file, 'w');
  return new Promise<void>((resolve, reject) => {
    write(fd, data, 0, data.length, null, (err) => {
      closeSync(fd);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Removes a leaf cgroup from every hierarchy, waiting a little for exiting processes. Idempotent. */
export async function removeLeafCgroup(path: string, waitMs = 2000): Promise<void> {
  // A transient scope is systemd's: it goes by itself with its last process.
  if (parseSystemdCgroup(path)) return;
  const dirs = (await cgroupHierarchies()).map((h) => join(h.mount, path));
  const until = Date.now() + waitMs;
  for (let attempt = 0; ; attempt++) {
    try {
      removeCgroupsSync(dirs);
      return;
    } catch (err) {
      if (Date.now() > until) throw err;
      // The process leaving it (conmon after the exit) is usually gone within a few ms.
      await sleep(Math.min(10, 1 << attempt));
    }
  }
}

export interface CgroupUsage {
  /** Total CPU time, nanoseconds. */
  cpuNanos: number;
  memoryUsage: number;
  /** Usage less inactive file cache: what the kubelet evicts on. */
  workingSet: number;
  rss: number;
  pageFaults: number;
  majorPageFaults: number;
}

/**
 * A cgroup file's text, read directly: asked on every stats call (the kubelet polls),
 * and a cgroup file is made by the kernel from memory, never waiting on a disk, so a
 * direct read (open, read, close) costs a few µs where one through the thread pool
 * costs four round trips (measured: ContainerStats spent ~40% of its CPU in them).
 * Also for /proc files, made the same way. Undefined when it cannot be read.
 */
export function readCgroupFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `key value` lines (memory.stat, cpu.stat) as a map. */
function keyedValues(text: string | undefined): Map<string, number> {
  const values = new Map<string, number>();
  if (text === undefined) return values;
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space > 0) values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

/** CPU and memory usage of a cgroup, from v1 controllers or the v2 unified hierarchy. */
export async function cgroupUsage(cgroupsPath: string): Promise<CgroupUsage | undefined> {
  const path = cgroupDir(cgroupsPath);
  const { cpuacct, memory, unified } = usageHierarchies(await cgroupHierarchies());
  if (cpuacct && memory) {
    const usage = readCgroupFile(join(cpuacct, path, 'cpuacct.usage'));
    const memUsage = readCgroupFile(join(memory, path, 'memory.usage_in_bytes'));
    if (usage === undefined || memUsage === undefined) return undefined;
    const mstat = keyedValues(readCgroupFile(join(memory, path, 'memory.stat')));
    const used = Number(memUsage);
    return {
      cpuNanos: Number(usage),
      memoryUsage: used,
      workingSet: Math.max(0, used - (mstat.get('total_inactive_file') ?? 0)),
      rss: mstat.get('total_rss') ?? 0,
      pageFaults: mstat.get('total_pgfault') ?? 0,
      majorPageFaults: mstat.get('total_pgmajfault') ?? 0,
    };
  }
  if (!unified) return undefined;
  const cpu = keyedValues(readCgroupFile(join(unified, path, 'cpu.stat')));
  const current = readCgroupFile(join(unified, path, 'memory.current'));
  if (current === undefined) return undefined;
  const mstat = keyedValues(readCgroupFile(join(unified, path, 'memory.stat')));
  const used = Number(current);
  return {
    cpuNanos: (cpu.get('usage_usec') ?? 0) * 1000,
    memoryUsage: used,
    workingSet: Math.max(0, used - (mstat.get('inactive_file') ?? 0)),
    rss: mstat.get('anon') ?? 0,
    pageFaults: mstat.get('pgfault') ?? 0,
    majorPageFaults: mstat.get('pgmajfault') ?? 0,
  };
}

/** The mount points cgroupUsage reads, found once per hierarchy list (which never changes). */
const usageMounts = new WeakMap<CgroupHierarchy[], { cpuacct?: string; memory?: string; unified?: string }>();
function usageHierarchies(all: CgroupHierarchy[]): { cpuacct?: string; memory?: string; unified?: string } {
  let found = usageMounts.get(all);
  if (!found) {
    const v1 = (controller: string) => all.find((h) => h.version === 1 && h.controllers.includes(controller))?.mount;
    found = { cpuacct: v1('cpuacct'), memory: v1('memory'), unified: all.find((h) => h.version === 2)?.mount };
    usageMounts.set(all, found);
  }
  return found;
}
