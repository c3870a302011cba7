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

/** Samples closer together than this keep the rate of the last longer window. */
export const MIN_RATE_WINDOW_NS = 1_000_000_000n;

export class UsageSampler {
  readonly #last = new Map<string, { at: bigint; cpu: number; nanoCores?: number }>();

  constructor(
    private readonly read: (cgroupPath: string) => Promise<CgroupUsage | undefined> = cgroupUsage,
    private readonly clock: () => bigint = process.hrtime.bigint,
  ) {}

  /**
   * One sample of a cgroup; `key` ties samples of the same cgroup together. The rate is
   * over at least MIN_RATE_WINDOW_NS: the kubelet asks ListPodSandboxStats and then
   * ListContainerStats milliseconds apart, and a rate over those few ms is mostly 0.
   */
  async sample(key: string, cgroupPath: string): Promise<UsageSample | undefined> {
    const usage = await this.read(cgroupPath);
    if (!usage) return undefined;
    const at = this.clock();
    const previous = this.#last.get(key);
    let nanoCores: number | undefined;
    if (previous && at - previous.at < MIN_RATE_WINDOW_NS && usage.cpuNanos >= previous.cpu) {
      nanoCores = previous.nanoCores;
    } else {
      nanoCores = previous && at > previous.at ? Math.max(0, ((usage.cpuNanos - previous.cpu) * 1e9) / Number(at - previous.at)) : undefined;
      this.#last.set(key, { at, cpu: usage.cpuNanos, nanoCores });
    }
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
