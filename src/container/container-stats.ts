// Container and pod statistics from their cgroups, with CPU nano-cores from the change
// since the previous sample (as cAdvisor and containerd compute it).
import { diskUsage } from '../image/snapshot-store.js';
import { cgroupUsage, type CgroupUsage } from '../linux/cgroups.js';

export interface UsageSample {
  timestampNanos: bigint;
  usage: CgroupUsage;
  /** CPU use per second since the last sample, in nano-cores; undefined on the first. */
  nanoCores?: number;
}

export class UsageSampler {
  readonly #last = new Map<string, { at: bigint; cpu: number }>();

  /** One sample of a cgroup; `key` ties samples of the same cgroup together. */
  async sample(key: string, cgroupPath: string): Promise<UsageSample | undefined> {
    const usage = await cgroupUsage(cgroupPath);
    if (!usage) return undefined;
    const at = process.hrtime.bigint();
    const previous = this.#last.get(key);
    this.#last.set(key, { at, cpu: usage.cpuNanos });
    const nanoCores = previous && at > previous.at ? Math.max(0, ((usage.cpuNanos - previous.cpu) * 1e9) / Number(at - previous.at)) : undefined;
    return { timestampNanos: BigInt(Date.now()) * 1_000_000n, usage, nanoCores };
  }

  forget(key: string): void {
    this.#last.delete(key);
  }
}

/** Bytes and inodes of a container's writable layer. */
export function writableLayerUsage(upperDir: string): Promise<{ bytes: number; inodes: number }> {
  return diskUsage(upperDir);
}
