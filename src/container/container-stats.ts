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

export interface LayerUsage {
  bytes: number;
  inodes: number;
  /** When the walk that found these began, nanoseconds since the epoch. */
  timestampNanos: bigint;
}

/** Bytes and inodes of a container's writable layer (a walk of its upper dir). */
export async function writableLayerUsage(upperDir: string): Promise<LayerUsage> {
  const timestampNanos = BigInt(Date.now()) * 1_000_000n;
  return { ...(await diskUsage(upperDir)), timestampNanos };
}

/** How long a writable layer's figure is answered before it is walked again: containerd's stats_collect_period (10 s). */
export const DEFAULT_LAYER_USAGE_MAX_AGE_MS = 10_000;

/**
 * The writable layers' usage, walked at most once per `maxAgeMs` per container. The walk
 * (an lstat of every file in the upper dir) is what made ContainerStats cost several
 * times containerd's; containerd answers from a store its snapshots syncer refreshes every
 * stats_collect_period (10 s) for every snapshot, asked or not. Here a figure older than
 * that is walked again when asked (callers at the same time share one walk), so an idle
 * node walks nothing and no call waits on more than one walk of its own layer.
 * `forget` drops a removed container's figure at once.
 */
export class LayerUsageCache {
  readonly #entries = new Map<string, { at: number; usage?: LayerUsage; walking?: Promise<LayerUsage> }>();

  constructor(
    private readonly maxAgeMs = DEFAULT_LAYER_USAGE_MAX_AGE_MS,
    private readonly walk: (upperDir: string) => Promise<LayerUsage> = writableLayerUsage,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get(id: string, upperDir: string): Promise<LayerUsage> {
    let entry = this.#entries.get(id);
    if (entry?.usage && this.now() - entry.at < this.maxAgeMs) return Promise.resolve(entry.usage);
    if (entry?.walking) return entry.walking;
    if (!entry) {
      entry = { at: 0 };
      this.#entries.set(id, entry);
    }
    const mine = entry;
    const started = this.now();
    mine.walking = this.walk(upperDir).finally(() => (mine.walking = undefined));
    return mine.walking.then((usage) => {
      // Forgotten meanwhile (the container was removed): nothing is kept.
      if (this.#entries.get(id) === mine) {
        mine.usage = usage;
        mine.at = started;
      }
      return usage;
    });
  }

  forget(id: string): void {
    this.#entries.delete(id);
  }

  get size(): number {
    return this.#entries.size;
  }
}
