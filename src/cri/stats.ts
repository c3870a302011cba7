// ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats: CPU and
// memory from cgroups (read at each call), the writable layer from the container's
// upper dir (walked at most once per stats_collect_period, as containerd's snapshots
// syncer does), a pod's network counters from inside its network namespace (the
// kubelet's /stats/summary with PodAndContainerStatsFromCRI takes the pod's network
// from there).
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ContainerStatsSchema, CpuUsageSchema, MemoryUsageSchema, NetworkUsageSchema, PodSandboxStatsSchema, RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { UnaryHandler } from '../server/grpc-service.js';
import type { ContainerManager } from '../container/container-manager.js';
import type { ContainerRecord } from '../container/container-types.js';
import { bundlePaths } from '../container/bundle.js';
import { LayerUsageCache, UsageSampler, type UsageSample } from '../container/container-stats.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import { invalidArgument } from '../errors.js';
import { podInterfaceCounters, type InterfaceCounters } from '../linux/netdev.js';
import { filterContainers, filterPods } from './list-filters.js';
import type { EventHub } from '../events/event-hub.js';
import type { ContainerEvent } from '../events/container-events.js';

type Method<K extends keyof typeof RuntimeService.method> = UnaryHandler<(typeof RuntimeService.method)[K]>;

const u64 = (n: number | undefined) => (n === undefined ? undefined : { value: BigInt(Math.round(n)) });

function cpuOf(sample: UsageSample | undefined): MessageInitShape<typeof CpuUsageSchema> | undefined {
  if (!sample) return undefined;
  return { timestamp: sample.timestampNanos, usageCoreNanoSeconds: u64(sample.usage.cpuNanos), usageNanoCores: u64(sample.nanoCores) };
}

function memoryOf(sample: UsageSample | undefined): MessageInitShape<typeof MemoryUsageSchema> | undefined {
  if (!sample) return undefined;
  const m = sample.usage;
  return {
    timestamp: sample.timestampNanos,
    workingSetBytes: u64(m.workingSet),
    usageBytes: u64(m.memoryUsage),
    rssBytes: u64(m.rss),
    pageFaults: u64(m.pageFaults),
    majorPageFaults: u64(m.majorPageFaults),
  };
}

/** The pod's interfaces but lo; eth0 (the CNI default) is the default interface. */
export function networkUsageOf(interfaces: InterfaceCounters[], timestamp: bigint): MessageInitShape<typeof NetworkUsageSchema> | undefined {
  if (interfaces.length === 0) return undefined;
  const usage = (i: InterfaceCounters) => ({ name: i.name, rxBytes: u64(i.rxBytes), rxErrors: u64(i.rxErrors), txBytes: u64(i.txBytes), txErrors: u64(i.txErrors) });
  const main = interfaces.find((i) => i.name === 'eth0') ?? interfaces[0]!;
  return { timestamp, defaultInterface: usage(main), interfaces: interfaces.filter((i) => i !== main).map(usage) };
}

/** The processes a pod's network counters can be read through: its init, then its running containers'. */
export function podNetworkPids(pod: SandboxRecord, containers: readonly ContainerRecord[]): number[] {
  const pids = pod.pidInit ? [pod.pidInit] : [];
  for (const c of containers) if (c.state === 'running' && c.pid > 0) pids.push(c.pid);
  return pids;
}

/**
 * `layers`: the writable layers' figures (shared with the metrics calls); a removed
 * container's goes with its deleted event.
 */
export function statsHandlers(
  containers: ContainerManager,
  pods: SandboxManager,
  events?: Pick<EventHub<ContainerEvent>, 'listen'>,
  layers: LayerUsageCache = new LayerUsageCache(),
): {
  containerStats: Method<'containerStats'>;
  listContainerStats: Method<'listContainerStats'>;
  podSandboxStats: Method<'podSandboxStats'>;
  listPodSandboxStats: Method<'listPodSandboxStats'>;
} {
  const sampler = new UsageSampler();
  // A removed container's (or pod's) last CPU sample goes with it.
  events?.listen((event) => {
    if (event.kind !== 'deleted') return;
    const pod = event.containerId === event.podId;
    sampler.forget(pod ? `pod:${event.podId}` : event.containerId);
    if (!pod) layers.forget(event.containerId);
  });

  const containerStats = async (record: ContainerRecord): Promise<MessageInitShape<typeof ContainerStatsSchema>> => {
    const sample = record.state === 'running' ? await sampler.sample(record.id, record.cgroupsPath) : undefined;
    const { upper } = bundlePaths(record.bundle);
    const layer = await layers.get(record.id, upper);
    return {
      attributes: { id: record.id, metadata: { name: record.spec.name, attempt: record.spec.attempt }, labels: record.spec.labels, annotations: record.spec.annotations },
      cpu: cpuOf(sample),
      memory: memoryOf(sample),
      writableLayer: { timestamp: layer.timestampNanos, fsId: { mountpoint: upper }, usedBytes: u64(layer.bytes), inodesUsed: u64(layer.inodes) },
    };
  };

  const podStats = async (pod: SandboxRecord): Promise<MessageInitShape<typeof PodSandboxStatsSchema>> => {
    const records = containers.ofPod(pod.id);
    const mine = await Promise.all(records.map(containerStats));
    // The pod's own cgroup holds all its containers; without one, their sum is the pod.
    const sample = pod.cgroupPath ? await sampler.sample(`pod:${pod.id}`, pod.cgroupPath) : undefined;
    const sum = (pick: (c: (typeof mine)[number]) => bigint | undefined) => mine.reduce((a, c) => a + (pick(c) ?? 0n), 0n);
    const now = BigInt(Date.now()) * 1_000_000n;
    const network = pod.netns && pod.state === 'ready' ? networkUsageOf(await podInterfaceCounters(pod.netns, podNetworkPids(pod, records)).catch(() => []), now) : undefined;
    return {
      attributes: { id: pod.id, metadata: { name: pod.spec.name, uid: pod.spec.uid, namespace: pod.spec.namespace, attempt: pod.spec.attempt }, labels: pod.spec.labels, annotations: pod.spec.annotations },
      linux: {
        cpu: cpuOf(sample) ?? { timestamp: now, usageCoreNanoSeconds: { value: sum((c) => c.cpu?.usageCoreNanoSeconds?.value) }, usageNanoCores: { value: sum((c) => c.cpu?.usageNanoCores?.value) } },
        memory: memoryOf(sample) ?? {
          timestamp: now,
          workingSetBytes: { value: sum((c) => c.memory?.workingSetBytes?.value) },
          usageBytes: { value: sum((c) => c.memory?.usageBytes?.value) },
          rssBytes: { value: sum((c) => c.memory?.rssBytes?.value) },
        },
        network,
        containers: mine,
      },
    };
  };

  return {
    containerStats: async (request) => {
      if (!request.containerId) throw invalidArgument('ContainerStats: container_id is required');
      return { stats: await containerStats(await containers.get(request.containerId)) };
    },
    listContainerStats: async (request) => {
      const records = filterContainers(await containers.listFresh(), request.filter);
      return { stats: await Promise.all(records.map(containerStats)) };
    },
    podSandboxStats: async (request) => {
      if (!request.podSandboxId) throw invalidArgument('PodSandboxStats: pod_sandbox_id is required');
      return { stats: await podStats(pods.get(request.podSandboxId)) };
    },
    listPodSandboxStats: async (request) => {
      return { stats: await Promise.all(filterPods(pods.list(), request.filter).map(podStats)) };
    },
  };
}
