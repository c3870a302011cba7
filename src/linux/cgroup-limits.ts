// Writes CPU and memory limits to a cgroup berth made itself (a pod's cgroup parent
// when no kubelet made it), on cgroup v1 controllers or the v2 unified hierarchy.
// What is 0 or empty is left as it is.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, invalidArgument } from '../errors.js';
import { cgroupHierarchies } from './cgroups.js';

export interface CgroupLimits {
  cpuShares: number;
  cpuQuota: number;
  cpuPeriod: number;
  memoryLimit: number;
  cpusetCpus: string;
  cpusetMems: string;
  /** cgroup v2 files, written as given. */
  unified: Record<string, string>;
}

const DEFAULT_PERIOD = 100_000;

/** cgroup v1 shares (2…262144) as a v2 weight (1…10000), the conversion runc uses. */
export function sharesToWeight(shares: number): number {
  return shares <= 0 ? 0 : 1 + Math.floor(((Math.min(Math.max(shares, 2), 262_144) - 2) * 9999) / 262_142);
}

/** The files and values a set of limits means on a host; the order is the order to write them. */
export async function limitWrites(path: string, limits: CgroupLimits): Promise<Array<[file: string, value: string]>> {
  const hierarchies = await cgroupHierarchies();
  const v1 = (controller: string) => hierarchies.find((h) => h.version === 1 && h.controllers.includes(controller));
  const unified = hierarchies.find((h) => h.version === 2);
  const writes: Array<[string, string]> = [];
  const period = limits.cpuPeriod || DEFAULT_PERIOD;
  const cpu = v1('cpu');
  const memory = v1('memory');
  const cpuset = v1('cpuset');
  if (cpu || memory) {
    if (cpu && limits.cpuShares > 0) writes.push([join(cpu.mount, path, 'cpu.shares'), String(limits.cpuShares)]);
    if (cpu && (limits.cpuQuota > 0 || limits.cpuPeriod > 0)) {
      writes.push([join(cpu.mount, path, 'cpu.cfs_period_us'), String(period)]);
      if (limits.cpuQuota > 0) writes.push([join(cpu.mount, path, 'cpu.cfs_quota_us'), String(limits.cpuQuota)]);
    }
    if (memory && limits.memoryLimit > 0) writes.push([join(memory.mount, path, 'memory.limit_in_bytes'), String(limits.memoryLimit)]);
    if (cpuset && limits.cpusetCpus) writes.push([join(cpuset.mount, path, 'cpuset.cpus'), limits.cpusetCpus]);
    if (cpuset && limits.cpusetMems) writes.push([join(cpuset.mount, path, 'cpuset.mems'), limits.cpusetMems]);
  } else if (unified) {
    const dir = join(unified.mount, path);
    if (limits.cpuShares > 0) writes.push([join(dir, 'cpu.weight'), String(sharesToWeight(limits.cpuShares))]);
    if (limits.cpuQuota > 0 || limits.cpuPeriod > 0) writes.push([join(dir, 'cpu.max'), `${limits.cpuQuota > 0 ? limits.cpuQuota : 'max'} ${period}`]);
    if (limits.memoryLimit > 0) writes.push([join(dir, 'memory.max'), String(limits.memoryLimit)]);
    if (limits.cpusetCpus) writes.push([join(dir, 'cpuset.cpus'), limits.cpusetCpus]);
    if (limits.cpusetMems) writes.push([join(dir, 'cpuset.mems'), limits.cpusetMems]);
    for (const [file, value] of Object.entries(limits.unified)) {
      if (file.includes('/') || file.startsWith('.')) throw invalidArgument(`unified cgroup key "${file}" is not a file name`);
      writes.push([join(dir, file), value]);
    }
  }
  return writes;
}

/** Writes the limits; a value the kernel refuses (a memory limit below the usage…) is an error naming it. */
export async function applyCgroupLimits(path: string, limits: CgroupLimits): Promise<void> {
  for (const [file, value] of await limitWrites(path, limits)) {
    try {
      await writeFile(file, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new BerthError(code === 'EBUSY' || code === 'EINVAL' ? 'FailedPrecondition' : 'Internal', `cannot write ${value} to ${file}: ${(err as Error).message}`);
    }
  }
}

/** A pod's limits: what its containers may use plus the pod's overhead (0: unlimited). */
export function podLimits(resources: CgroupLimits, overhead: CgroupLimits): CgroupLimits {
  const period = resources.cpuPeriod || DEFAULT_PERIOD;
  const overheadQuota = overhead.cpuQuota > 0 ? Math.round((overhead.cpuQuota * period) / (overhead.cpuPeriod || DEFAULT_PERIOD)) : 0;
  return {
    cpuShares: resources.cpuShares > 0 ? resources.cpuShares + overhead.cpuShares : 0,
    cpuQuota: resources.cpuQuota > 0 ? resources.cpuQuota + overheadQuota : 0,
    cpuPeriod: resources.cpuQuota > 0 ? period : 0,
    memoryLimit: resources.memoryLimit > 0 ? resources.memoryLimit + overhead.memoryLimit : 0,
    cpusetCpus: resources.cpusetCpus,
    cpusetMems: resources.cpusetMems,
    unified: resources.unified,
  };
}
