// cAdvisor's optional container metrics, read where the host has them: hugetlb usage per
// page size (the hugetlb controller, v1 or v2), pressure stall information (PSI: the
// {cpu,memory,io}.pressure files of the cgroup in the unified hierarchy — cgroup v2, or
// on a hybrid host the v2 cgroup that runc makes beside the v1 ones), the memory
// reservation (v1 memory.soft_limit_in_bytes, v2 memory.low) and the soft open-files
// limit of a process (/proc/PID/limits, cAdvisor's only ulimit, "max_open_files").
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupHierarchies, readCgroupFile } from './cgroups.js';

export interface HugetlbUsage {
  /** As libcontainer names page sizes: "2MB", "1GB". */
  pageSize: string;
  usage: number;
  /** Peak usage (v1 only; 0 on v2, which keeps none). */
  maxUsage: number;
}

export interface PressureTotals {
  /** Microseconds some (waiting) and all (stalled) tasks were delayed, since the cgroup was made. */
  someMicros: number;
  fullMicros: number;
}

export interface CgroupPressure {
  cpu: PressureTotals;
  memory: PressureTotals;
  io: PressureTotals;
}

const read = readCgroupFile;
const num = (text: string | undefined) => (text === undefined || Number.isNaN(Number(text.trim())) ? undefined : Number(text.trim()));

/** Hugetlb use per page size; undefined without a hugetlb controller (or without the cgroup). */
export async function cgroupHugetlb(path: string): Promise<HugetlbUsage[] | undefined> {
  const hierarchies = await cgroupHierarchies();
  const v1 = hierarchies.find((h) => h.version === 1 && h.controllers.includes('hugetlb'));
  const v2 = v1 ? undefined : hierarchies.find((h) => h.version === 2);
  const dir = v1 ? join(v1.mount, path) : v2 ? join(v2.mount, path) : undefined;
  if (!dir) return undefined;
  // In v2 a cgroup has the controller's files when its parent enabled it for it.
  if (v2 && !(read(join(dir, 'cgroup.controllers')) ?? '').split(/\s+/).includes('hugetlb')) return undefined;
  const files = await readdir(dir).catch(() => undefined);
  if (!files) return undefined;
  const sizes = [...new Set(files.map((f) => /^hugetlb\.([0-9]+[KMG]B)\./.exec(f)?.[1]).filter((s): s is string => s !== undefined))];
  const out: HugetlbUsage[] = [];
  for (const pageSize of sizes) {
    const usage = num(read(join(dir, v1 ? `hugetlb.${pageSize}.usage_in_bytes` : `hugetlb.${pageSize}.current`)));
    if (usage === undefined) continue;
    out.push({ pageSize, usage, maxUsage: v1 ? (num(read(join(dir, `hugetlb.${pageSize}.max_usage_in_bytes`))) ?? 0) : 0 });
  }
  return out;
}

function parsePressure(text: string | undefined): PressureTotals | undefined {
  if (!text) return undefined;
  const total = (kind: string) => Number(new RegExp(`^${kind} .*total=(\\d+)`, 'm').exec(text)?.[1] ?? 'NaN');
  const some = total('some');
  if (Number.isNaN(some)) return undefined;
  const full = total('full');
  return { someMicros: some, fullMicros: Number.isNaN(full) ? 0 : full };
}

/** PSI totals of the cgroup; undefined where it has no v2 cgroup with pressure files. */
export async function cgroupPressure(path: string): Promise<CgroupPressure | undefined> {
  const unified = (await cgroupHierarchies()).find((h) => h.version === 2);
  if (!unified) return undefined;
  const dir = join(unified.mount, path);
  const [cpu, memory, io] = (['cpu', 'memory', 'io'] as const).map((r) => parsePressure(read(join(dir, `${r}.pressure`))));
  if (!cpu || !memory || !io) return undefined;
  return { cpu, memory, io };
}

/** The memory reservation (soft limit) of the cgroup; undefined without one to read. */
export async function cgroupMemoryReservation(path: string): Promise<number | undefined> {
  const hierarchies = await cgroupHierarchies();
  const v1 = hierarchies.find((h) => h.version === 1 && h.controllers.includes('memory'));
  if (v1) return num(read(join(v1.mount, path, 'memory.soft_limit_in_bytes')));
  const v2 = hierarchies.find((h) => h.version === 2);
  if (!v2) return undefined;
  const low = read(join(v2.mount, path, 'memory.low'));
  // "max" would be unlimited: reported as cgroup v1 reports an unlimited soft limit.
  return low?.trim() === 'max' ? Number.MAX_SAFE_INTEGER : num(low);
}

/** The soft RLIMIT_NOFILE of a process (cAdvisor's max_open_files); undefined when it is gone. */
export async function softOpenFilesLimit(pid: number): Promise<number | undefined> {
  const text = read(`/proc/${pid}/limits`);
  const soft = text && /^Max open files\s+(\S+)/m.exec(text)?.[1];
  if (!soft) return undefined;
  return soft === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(soft);
}
