// ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics: cAdvisor's
// metric names, read from the cgroups of ready pods and of their containers, and the
// pod's network counters from inside its network namespace. Labels are CRI-O's:
// id, name and image (a pod's own metrics are named "POD"), and interface for the
// network. Values are whole numbers (the CRI's UInt64Value): the *_seconds_total
// counters are in nanoseconds, as containerd's and CRI-O's are. Timestamps are 0: the
// values are read at the call, not cached.
import type { MessageInitShape } from '@bufbuild/protobuf';
import { MetricType, type MetricSchema, type PodSandboxMetricsSchema, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { ServerStreamHandler, UnaryHandler } from '../server/grpc-service.js';
import type { ContainerManager } from '../container/container-manager.js';
import type { ContainerRecord } from '../container/container-types.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import { cgroupMetrics, type CgroupMetrics } from '../linux/cgroup-metrics.js';
import { netnsInterfaceCounters, type InterfaceCounters } from '../linux/netdev.js';
import { mapLimit } from '../util/map-limit.js';
import { sendInBatches } from './list-streams.js';

type R = typeof RuntimeService.method;
type Metric = MessageInitShape<typeof MetricSchema>;

const BASE_LABELS = ['id', 'name', 'image'];
const { COUNTER, GAUGE } = MetricType;

interface Def<S> {
  name: string;
  help: string;
  type: MetricType;
  value: (s: S) => number;
}

const cgroupDefs: Def<CgroupMetrics>[] = [
  { name: 'container_cpu_usage_seconds_total', help: 'Cumulative CPU time consumed (nanoseconds).', type: COUNTER, value: (s) => s.cpuNanos },
  { name: 'container_cpu_user_seconds_total', help: 'Cumulative user CPU time consumed (nanoseconds).', type: COUNTER, value: (s) => s.cpuUserNanos },
  { name: 'container_cpu_system_seconds_total', help: 'Cumulative system CPU time consumed (nanoseconds).', type: COUNTER, value: (s) => s.cpuSystemNanos },
  { name: 'container_cpu_cfs_periods_total', help: 'Number of elapsed enforcement period intervals.', type: COUNTER, value: (s) => s.cfsPeriods },
  { name: 'container_cpu_cfs_throttled_periods_total', help: 'Number of throttled period intervals.', type: COUNTER, value: (s) => s.cfsThrottledPeriods },
  { name: 'container_cpu_cfs_throttled_seconds_total', help: 'Total time duration the container has been throttled (nanoseconds).', type: COUNTER, value: (s) => s.cfsThrottledNanos },
  { name: 'container_memory_usage_bytes', help: 'Current memory usage in bytes, including all memory regardless of when it was accessed.', type: GAUGE, value: (s) => s.memoryUsage },
  { name: 'container_memory_working_set_bytes', help: 'Current working set in bytes.', type: GAUGE, value: (s) => s.workingSet },
  { name: 'container_memory_rss', help: 'Size of RSS in bytes.', type: GAUGE, value: (s) => s.rss },
  { name: 'container_memory_cache', help: 'Number of bytes of page cache memory.', type: GAUGE, value: (s) => s.memoryCache },
  { name: 'container_memory_mapped_file', help: 'Size of memory mapped files in bytes.', type: GAUGE, value: (s) => s.memoryMappedFile },
  { name: 'container_memory_swap', help: 'Container swap usage in bytes.', type: GAUGE, value: (s) => s.memorySwap },
  { name: 'container_memory_failcnt', help: 'Number of memory usage hits limits.', type: COUNTER, value: (s) => s.memoryFailcnt },
  { name: 'container_memory_max_usage_bytes', help: 'Maximum memory usage recorded in bytes.', type: GAUGE, value: (s) => s.memoryMaxUsage },
  { name: 'container_oom_events_total', help: 'Count of out of memory events observed for the container.', type: COUNTER, value: (s) => s.oomKills },
  { name: 'container_processes', help: 'Number of processes running inside the container.', type: GAUGE, value: (s) => s.processes },
  { name: 'container_threads', help: 'Number of threads running inside the container.', type: GAUGE, value: (s) => s.threads },
];

const specDefs: Def<ContainerRecord>[] = [
  { name: 'container_spec_cpu_shares', help: 'CPU share of the container.', type: GAUGE, value: (r) => r.spec.cpuShares },
  { name: 'container_spec_cpu_quota', help: 'CPU quota of the container.', type: GAUGE, value: (r) => r.spec.cpuQuota },
  { name: 'container_spec_cpu_period', help: 'CPU period of the container.', type: GAUGE, value: (r) => r.spec.cpuPeriod },
  { name: 'container_spec_memory_limit_bytes', help: 'Memory limit for the container.', type: GAUGE, value: (r) => r.spec.memoryLimit },
  { name: 'container_start_time_seconds', help: 'Start time of the container since unix epoch in seconds.', type: GAUGE, value: (r) => Math.floor(Number(BigInt(r.startedAt) / 1_000_000_000n)) },
];

const networkDefs: Def<InterfaceCounters>[] = [
  { name: 'container_network_receive_bytes_total', help: 'Cumulative count of bytes received.', type: COUNTER, value: (i) => i.rxBytes },
  { name: 'container_network_receive_packets_total', help: 'Cumulative count of packets received.', type: COUNTER, value: (i) => i.rxPackets },
  { name: 'container_network_receive_packets_dropped_total', help: 'Cumulative count of packets dropped while receiving.', type: COUNTER, value: (i) => i.rxDropped },
  { name: 'container_network_receive_errors_total', help: 'Cumulative count of errors encountered while receiving.', type: COUNTER, value: (i) => i.rxErrors },
  { name: 'container_network_transmit_bytes_total', help: 'Cumulative count of bytes transmitted.', type: COUNTER, value: (i) => i.txBytes },
  { name: 'container_network_transmit_packets_total', help: 'Cumulative count of packets transmitted.', type: COUNTER, value: (i) => i.txPackets },
  { name: 'container_network_transmit_packets_dropped_total', help: 'Cumulative count of packets dropped while transmitting.', type: COUNTER, value: (i) => i.txDropped },
  { name: 'container_network_transmit_errors_total', help: 'Cumulative count of errors encountered while transmitting.', type: COUNTER, value: (i) => i.txErrors },
];

/** The descriptors, fixed for berthd's life (the kubelet reads them once). */
export const metricDescriptors = [
  ...cgroupDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  ...specDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  ...networkDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE_LABELS, 'interface'] })),
];

function emit<S>(defs: Def<S>[], source: S, labels: string[]): Metric[] {
  return defs.map((d) => ({ name: d.name, timestamp: 0n, metricType: d.type, labelValues: labels, value: { value: BigInt(Math.max(0, Math.round(d.value(source)))) } }));
}

/** How many pods are measured at once (each reads a few dozen cgroup files and runs one nsenter). */
const POD_CONCURRENCY = 4;

export function metricsHandlers(containers: ContainerManager, pods: SandboxManager): {
  listMetricDescriptors: UnaryHandler<R['listMetricDescriptors']>;
  listPodSandboxMetrics: UnaryHandler<R['listPodSandboxMetrics']>;
  streamPodSandboxMetrics: ServerStreamHandler<R['streamPodSandboxMetrics']>;
} {
  const containerMetrics = async (record: ContainerRecord): Promise<Metric[]> => {
    const labels = [record.id, record.spec.name, record.spec.image];
    const usage = record.state === 'running' ? await cgroupMetrics(record.cgroupsPath) : undefined;
    return [...(usage ? emit(cgroupDefs, usage, labels) : []), ...emit(specDefs, record, labels)];
  };

  const podMetrics = async (pod: SandboxRecord): Promise<MessageInitShape<typeof PodSandboxMetricsSchema>> => {
    const labels = [pod.id, 'POD', ''];
    const metrics: Metric[] = [];
    const usage = pod.cgroupPath ? await cgroupMetrics(pod.cgroupPath) : undefined;
    if (usage) metrics.push(...emit(cgroupDefs, usage, labels));
    // Network counters belong to the pod: its containers share its namespace.
    if (pod.netns) {
      const interfaces = await netnsInterfaceCounters(pod.netns).catch(() => [] as InterfaceCounters[]);
      for (const i of interfaces) metrics.push(...emit(networkDefs, i, [...labels, i.name]));
    }
    const mine = containers.ofPod(pod.id);
    return {
      podSandboxId: pod.id,
      metrics,
      containerMetrics: await Promise.all(mine.map(async (c) => ({ containerId: c.id, metrics: await containerMetrics(c) }))),
    };
  };

  const all = async () => {
    await containers.listFresh();
    const ready = (await pods.listChecked()).filter((p) => p.state === 'ready');
    return mapLimit(ready, POD_CONCURRENCY, podMetrics);
  };

  return {
    listMetricDescriptors: async () => ({ descriptors: metricDescriptors }),
    listPodSandboxMetrics: async () => ({ podMetrics: await all() }),
    streamPodSandboxMetrics: async (_request, ctx, send) => sendInBatches(await all(), ctx, (podSandboxMetrics) => send({ podSandboxMetrics })),
  };
}
