// The counters cAdvisor exports for a cgroup beyond what stats need: CPU split into
// user and system time and CFS throttling, memory cache/mapped/swap/failures/peak, OOM
// kills, processes and threads, page faults, kernel memory, the pids limit. cgroup v1 controllers or the v2 unified hierarchy.
import { join } from 'node:path';
import { cgroupHierarchies, cgroupUsage, readCgroupFile, type CgroupUsage } from './cgroups.js';
import { cgroupDir } from './cgroup-names.js';

export interface CgroupMetrics extends CgroupUsage {
  cpuUserNanos: number;
  cpuSystemNanos: number;
  cfsPeriods: number;
  cfsThrottledPeriods: number;
  cfsThrottledNanos: number;
  memoryCache: number;
  memoryMappedFile: number;
  memorySwap: number;
  memoryFailcnt: number;
  /** Peak usage; 0 where the kernel does not keep one (v2 before 5.19). */
  memoryMaxUsage: number;
  oomKills: number;
  processes: number;
  threads: number;
  /** Page faults of the cgroup itself and of it with its descendants (v2 counts hierarchically only). */
  pgfault: number;
  pgmajfault: number;
  hierarchyPgfault: number;
  hierarchyPgmajfault: number;
  /** Kernel memory charged to the cgroup (kmem on v1, memory.stat kernel on v2). */
  kernelUsage: number;
  /** pids.max; 0 when unlimited ("max"), as cAdvisor reports it. */
  threadsMax: number;
  /** The processes of the cgroup (cgroup.procs), for counting their descriptors. */
  pids: number[];
}

/** USER_HZ: the unit of cpuacct.stat. */
const USER_HZ = 100;

const read = readCgroupFile;
const keyed = (text: string | undefined) =>
  new Map(
    (text ?? '')
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .filter((p) => p.length === 2)
      .map(([k, v]) => [k!, Number(v)]),
  );
const lines = (text: string | undefined) => (text ?? '').split('\n').filter((l) => l.trim() !== '').length;
const pidList = (text: string | undefined) => (text ?? '').split('\n').filter((l) => l.trim() !== '').map(Number);
const num = (text: string | undefined) => (text === undefined || Number.isNaN(Number(text.trim())) ? 0 : Number(text.trim()));

/** Everything about a cgroup's use; undefined when it does not exist (any more). */
export async function cgroupMetrics(cgroupsPath: string): Promise<CgroupMetrics | undefined> {
  const usage = await cgroupUsage(cgroupsPath);
  const path = cgroupDir(cgroupsPath);
  if (!usage) return undefined;
  const hierarchies = await cgroupHierarchies();
  const v1 = (controller: string) => hierarchies.find((h) => h.version === 1 && h.controllers.includes(controller));
  const memory = v1('memory');
  if (memory) {
    const cpuacct = v1('cpuacct');
    const cpu = v1('cpu');
    const pidsController = v1('pids');
    const pids = pidsController ?? memory;
    const acct = keyed(cpuacct && (read(join(cpuacct.mount, path, 'cpuacct.stat'))));
    const cfs = keyed(cpu && (read(join(cpu.mount, path, 'cpu.stat'))));
    const mem = keyed(read(join(memory.mount, path, 'memory.stat')));
    const oom = keyed(read(join(memory.mount, path, 'memory.oom_control')));
    const procs = read(join(pids.mount, path, 'cgroup.procs'));
    const tasks = read(join(pids.mount, path, 'tasks'));
    return {
      ...usage,
      cpuUserNanos: ((acct.get('user') ?? 0) * 1e9) / USER_HZ,
      cpuSystemNanos: ((acct.get('system') ?? 0) * 1e9) / USER_HZ,
      cfsPeriods: cfs.get('nr_periods') ?? 0,
      cfsThrottledPeriods: cfs.get('nr_throttled') ?? 0,
      cfsThrottledNanos: cfs.get('throttled_time') ?? 0,
      memoryCache: mem.get('total_cache') ?? 0,
      memoryMappedFile: mem.get('total_mapped_file') ?? 0,
      memorySwap: mem.get('total_swap') ?? 0,
      memoryFailcnt: num(read(join(memory.mount, path, 'memory.failcnt'))),
      memoryMaxUsage: num(read(join(memory.mount, path, 'memory.max_usage_in_bytes'))),
      oomKills: oom.get('oom_kill') ?? 0,
      processes: lines(procs),
      threads: lines(tasks),
      pgfault: mem.get('pgfault') ?? 0,
      pgmajfault: mem.get('pgmajfault') ?? 0,
      hierarchyPgfault: mem.get('total_pgfault') ?? 0,
      hierarchyPgmajfault: mem.get('total_pgmajfault') ?? 0,
      kernelUsage: num(read(join(memory.mount, path, 'memory.kmem.usage_in_bytes'))),
      threadsMax: pidsController ? num(read(join(pidsController.mount, path, 'pids.max'))) : 0,
      pids: pidList(procs),
    };
  }
  const unified = hierarchies.find((h) => h.version === 2)!;
  const dir = join(unified.mount, path);
  const cpu = keyed(read(join(dir, 'cpu.stat')));
  const mem = keyed(read(join(dir, 'memory.stat')));
  const events = keyed(read(join(dir, 'memory.events')));
  const procs = read(join(dir, 'cgroup.procs'));
  return {
    ...usage,
    cpuUserNanos: (cpu.get('user_usec') ?? 0) * 1000,
    cpuSystemNanos: (cpu.get('system_usec') ?? 0) * 1000,
    cfsPeriods: cpu.get('nr_periods') ?? 0,
    cfsThrottledPeriods: cpu.get('nr_throttled') ?? 0,
    cfsThrottledNanos: (cpu.get('throttled_usec') ?? 0) * 1000,
    memoryCache: mem.get('file') ?? 0,
    memoryMappedFile: mem.get('file_mapped') ?? 0,
    memorySwap: num(read(join(dir, 'memory.swap.current'))),
    memoryFailcnt: events.get('max') ?? 0,
    memoryMaxUsage: num(read(join(dir, 'memory.peak'))),
    oomKills: events.get('oom_kill') ?? 0,
    processes: lines(procs),
    threads: lines(read(join(dir, 'cgroup.threads'))),
    pgfault: mem.get('pgfault') ?? 0,
    pgmajfault: mem.get('pgmajfault') ?? 0,
    hierarchyPgfault: mem.get('pgfault') ?? 0,
    hierarchyPgmajfault: mem.get('pgmajfault') ?? 0,
    // "kernel" since Linux 5.18; before, its larger parts.
    kernelUsage: mem.get('kernel') ?? (mem.get('kernel_stack') ?? 0) + (mem.get('slab') ?? 0) + (mem.get('sock') ?? 0) + (mem.get('percpu') ?? 0),
    threadsMax: num(read(join(dir, 'pids.max'))),
    pids: pidList(procs),
  };
}
