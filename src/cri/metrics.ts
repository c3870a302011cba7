// ListMetricDescriptors, ListPodSandboxMetrics, StreamPodSandboxMetrics: cAdvisor's
// metric names (every one critest v1.37.0 expects of all runtimes), read from the cgroups
// of ready pods and of their containers, their processes' /proc/PID/fd, the containers'
// writable layers and the filesystem under them, and the pod's network counters from
// inside its network namespace. Labels are CRI-O's id, name and image (a pod's own
// metrics are named "POD"), plus cAdvisor's extra label of each metric (interface,
// device, major/minor/operation, failure_type/scope). Values are whole numbers (the CRI's
// UInt64Value): the *_seconds_total counters are in nanoseconds, as containerd's and
// CRI-O's are. Timestamps are 0: the values are read at the call, not cached.
import { join } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { MetricType, type MetricSchema, type PodSandboxMetricsSchema, type RuntimeService } from '../gen/runtime/v1/api_pb.js';
import type { ServerStreamHandler, UnaryHandler } from '../server/grpc-service.js';
import type { ContainerManager } from '../container/container-manager.js';
import type { ContainerRecord } from '../container/container-types.js';
import type { SandboxManager } from '../pod/sandbox-manager.js';
import type { SandboxRecord } from '../pod/sandbox-types.js';
import { cgroupMetrics, type CgroupMetrics } from '../linux/cgroup-metrics.js';
import { cgroupHugetlb, cgroupMemoryReservation, cgroupPressure, softOpenFilesLimit, type CgroupPressure, type HugetlbUsage } from '../linux/cgroup-extra-metrics.js';
import { podInterfaceCounters, type InterfaceCounters } from '../linux/netdev.js';
import { cgroupIo, type DeviceIo } from '../linux/cgroup-io.js';
import { countFds, type FdCounts } from '../linux/process-fds.js';
import { filesystemOf, type FilesystemInfo } from '../linux/filesystem.js';
import { LayerUsageCache } from '../container/container-stats.js';
import { podNetworkPids } from './stats.js';
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
  { name: 'container_threads_max', help: 'Maximum number of threads allowed inside the container, infinity if value is zero.', type: GAUGE, value: (s) => s.threadsMax },
  { name: 'container_memory_kernel_usage', help: 'Size of kernel memory allocated in bytes.', type: GAUGE, value: (s) => s.kernelUsage },
  { name: 'container_last_seen', help: 'Last time a container was seen by the exporter.', type: GAUGE, value: () => Math.floor(Date.now() / 1000) },
];

/** container_memory_failures_total: one series per failure type and scope, as cAdvisor's. */
const failureSeries: Array<{ labels: [string, string]; value: (s: CgroupMetrics) => number }> = [
  { labels: ['pgfault', 'container'], value: (s) => s.pgfault },
  { labels: ['pgmajfault', 'container'], value: (s) => s.pgmajfault },
  { labels: ['pgfault', 'hierarchy'], value: (s) => s.hierarchyPgfault },
  { labels: ['pgmajfault', 'hierarchy'], value: (s) => s.hierarchyPgmajfault },
];
const FAILURES = { name: 'container_memory_failures_total', help: 'Cumulative count of memory allocation failures.', labelKeys: [...BASE_LABELS, 'failure_type', 'scope'] };

const processDefs: Def<FdCounts>[] = [
  { name: 'container_file_descriptors', help: 'Number of open file descriptors for the container.', type: GAUGE, value: (c) => c.fds },
  { name: 'container_sockets', help: 'Number of open sockets for the container.', type: GAUGE, value: (c) => c.sockets },
];

/** The writable layer and the filesystem it is on (labelled with its device, as cAdvisor's). */
interface LayerFs extends FilesystemInfo {
  usedBytes: number;
}
const fsDefs: Def<LayerFs>[] = [
  { name: 'container_fs_usage_bytes', help: 'Number of bytes that are consumed by the container on this filesystem.', type: GAUGE, value: (f) => f.usedBytes },
  { name: 'container_fs_limit_bytes', help: 'Number of bytes that can be consumed by the container on this filesystem.', type: GAUGE, value: (f) => f.bytes },
  { name: 'container_fs_inodes_total', help: 'Number of available Inodes.', type: GAUGE, value: (f) => f.inodes },
  { name: 'container_fs_inodes_free', help: 'Number of available Inodes free.', type: GAUGE, value: (f) => f.freeInodes },
];

const ioDefs: Def<DeviceIo>[] = [
  { name: 'container_fs_reads_bytes_total', help: 'Cumulative count of bytes read.', type: COUNTER, value: (d) => d.readBytes },
  { name: 'container_fs_reads_total', help: 'Cumulative count of reads completed.', type: COUNTER, value: (d) => d.reads },
  { name: 'container_fs_writes_bytes_total', help: 'Cumulative count of bytes written.', type: COUNTER, value: (d) => d.writeBytes },
  { name: 'container_fs_writes_total', help: 'Cumulative count of writes completed.', type: COUNTER, value: (d) => d.writes },
];
const BLKIO = { name: 'container_blkio_device_usage_total', help: 'Blkio device bytes usage.', labelKeys: [...BASE_LABELS, 'device', 'major', 'minor', 'operation'] };

const specDefs: Def<ContainerRecord>[] = [
  { name: 'container_spec_cpu_shares', help: 'CPU share of the container.', type: GAUGE, value: (r) => r.spec.cpuShares },
  { name: 'container_spec_cpu_quota', help: 'CPU quota of the container.', type: GAUGE, value: (r) => r.spec.cpuQuota },
  { name: 'container_spec_cpu_period', help: 'CPU period of the container.', type: GAUGE, value: (r) => r.spec.cpuPeriod },
  { name: 'container_spec_memory_limit_bytes', help: 'Memory limit for the container.', type: GAUGE, value: (r) => r.spec.memoryLimit },
  // The CRI's swap limit is memory plus swap, as cgroup v1's memsw and cAdvisor's figure.
  { name: 'container_spec_memory_swap_limit_bytes', help: 'Memory swap limit for the container.', type: GAUGE, value: (r) => r.spec.memorySwapLimit ?? 0 },
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

// cAdvisor's optional metrics (critest lists them as not implemented by every runtime):
// each is sent where the host has it (see linux/cgroup-extra-metrics.ts).
const HUGETLB = [
  { name: 'container_hugetlb_usage_bytes', help: 'Current hugepage usage in bytes.', labelKeys: [...BASE_LABELS, 'pagesize'], value: (h: HugetlbUsage) => h.usage },
  { name: 'container_hugetlb_max_usage_bytes', help: 'Maximum hugepage usage recorded in bytes.', labelKeys: [...BASE_LABELS, 'pagesize'], value: (h: HugetlbUsage) => h.maxUsage },
];
/** PSI totals: "waiting" is some, "stalled" is full, as cAdvisor names them (nanoseconds, as every *_seconds_total here). */
const pressureDefs: Def<CgroupPressure>[] = (['cpu', 'memory', 'io'] as const).flatMap((r) => [
  { name: `container_pressure_${r}_waiting_seconds_total`, help: `Total time duration tasks in the container have waited due to ${r} congestion (nanoseconds).`, type: COUNTER, value: (p: CgroupPressure) => p[r].someMicros * 1000 },
  { name: `container_pressure_${r}_stalled_seconds_total`, help: `Total time duration no tasks in the container could make progress due to ${r} congestion (nanoseconds).`, type: COUNTER, value: (p: CgroupPressure) => p[r].fullMicros * 1000 },
]);
const ULIMITS = { name: 'container_ulimits_soft', help: 'Soft ulimit values for the container root process. Unlimited if -1, except priority and nice', labelKeys: [...BASE_LABELS, 'ulimit'] };
const RESERVATION = { name: 'container_spec_memory_reservation_limit_bytes', help: 'Memory reservation limit for the container.', labelKeys: BASE_LABELS };

/** The optional metrics of a cgroup (pod or container) that the host has. */
async function optionalCgroupMetrics(cgroupPath: string, labels: string[]): Promise<Metric[]> {
  const [hugetlb, pressure] = await Promise.all([cgroupHugetlb(cgroupPath).catch(() => undefined), cgroupPressure(cgroupPath).catch(() => undefined)]);
  const out: Metric[] = [];
  for (const h of hugetlb ?? []) for (const d of HUGETLB) out.push(metric(d.name, GAUGE, [...labels, h.pageSize], d.value(h)));
  if (pressure) out.push(...emit(pressureDefs, pressure, labels));
  return out;
}

/** A running container's memory reservation and its init's soft open-files limit. */
async function optionalContainerMetrics(record: ContainerRecord, labels: string[]): Promise<Metric[]> {
  const out: Metric[] = [];
  const reservation = await cgroupMemoryReservation(record.cgroupsPath).catch(() => undefined);
  if (reservation !== undefined) out.push(metric(RESERVATION.name, GAUGE, labels, reservation));
  const nofile = record.pid > 0 ? await softOpenFilesLimit(record.pid) : undefined;
  if (nofile !== undefined) out.push(metric(ULIMITS.name, GAUGE, [...labels, 'max_open_files'], nofile));
  return out;
}

/** The descriptors, fixed for berthd's life (the kubelet reads them once). */
export const metricDescriptors = [
  ...cgroupDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  FAILURES,
  ...processDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  ...fsDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE_LABELS, 'device'] })),
  ...ioDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE_LABELS, 'device'] })),
  BLKIO,
  ...specDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  ...networkDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: [...BASE_LABELS, 'interface'] })),
  ...HUGETLB.map((d) => ({ name: d.name, help: d.help, labelKeys: d.labelKeys })),
  ...pressureDefs.map((d) => ({ name: d.name, help: d.help, labelKeys: BASE_LABELS })),
  ULIMITS,
  RESERVATION,
];

function emit<S>(defs: Def<S>[], source: S, labels: string[]): Metric[] {
  return defs.map((d) => metric(d.name, d.type, labels, d.value(source)));
}

const metric = (name: string, type: MetricType, labels: string[], value: number): Metric => ({ name, timestamp: 0n, metricType: type, labelValues: labels, value: { value: BigInt(Math.max(0, Math.round(value))) } });

/** What a cgroup's processes use beyond the cgroup's own counters: failures, descriptors, block I/O. */
async function cgroupExtras(usage: CgroupMetrics, cgroupPath: string, labels: string[]): Promise<Metric[]> {
  const out = failureSeries.map((f) => metric(FAILURES.name, COUNTER, [...labels, ...f.labels], f.value(usage)));
  out.push(...emit(processDefs, await countFds(usage.pids), labels));
  for (const d of await cgroupIo(cgroupPath).catch(() => [] as DeviceIo[])) {
    out.push(...emit(ioDefs, d, [...labels, d.device]));
    for (const [op, bytes] of Object.entries(d.bytesByOperation)) out.push(metric(BLKIO.name, COUNTER, [...labels, d.device, String(d.major), String(d.minor), op], bytes));
  }
  return out;
}

/** The container's writable layer: its bytes, and the size and inodes of the filesystem under it. */
async function layerFs(record: ContainerRecord, layers: LayerUsageCache): Promise<LayerFs | undefined> {
  const upper = join(record.bundle, 'upper');
  try {
    const [fs, used] = await Promise.all([filesystemOf(upper), layers.get(record.id, upper)]);
    return { ...fs, usedBytes: used.bytes };
  } catch {
    return undefined;
  }
}

/** How many pods are measured at once (each reads a few dozen cgroup files, and runs one nsenter when no process is in its network namespace). */
const POD_CONCURRENCY = 4;

/** `layers`: the writable layers' figures, shared with the stats calls (cri/stats.ts). */
export function metricsHandlers(containers: ContainerManager, pods: SandboxManager, layers: LayerUsageCache = new LayerUsageCache()): {
  listMetricDescriptors: UnaryHandler<R['listMetricDescriptors']>;
  listPodSandboxMetrics: UnaryHandler<R['listPodSandboxMetrics']>;
  streamPodSandboxMetrics: ServerStreamHandler<R['streamPodSandboxMetrics']>;
} {
  const containerMetrics = async (record: ContainerRecord): Promise<Metric[]> => {
    const labels = [record.id, record.spec.name, record.spec.image];
    const usage = record.state === 'running' ? await cgroupMetrics(record.cgroupsPath) : undefined;
    const layer = await layerFs(record, layers);
    return [
      ...(usage ? [...emit(cgroupDefs, usage, labels), ...(await cgroupExtras(usage, record.cgroupsPath, labels)), ...(await optionalCgroupMetrics(record.cgroupsPath, labels)), ...(await optionalContainerMetrics(record, labels))] : []),
      ...(layer ? emit(fsDefs, layer, [...labels, layer.device]) : []),
      ...emit(specDefs, record, labels),
    ];
  };

  const podMetrics = async (pod: SandboxRecord): Promise<MessageInitShape<typeof PodSandboxMetricsSchema>> => {
    const labels = [pod.id, 'POD', ''];
    const metrics: Metric[] = [];
    const usage = pod.cgroupPath ? await cgroupMetrics(pod.cgroupPath) : undefined;
    if (usage) metrics.push(...emit(cgroupDefs, usage, labels), ...(await cgroupExtras(usage, pod.cgroupPath, labels)), ...(await optionalCgroupMetrics(pod.cgroupPath, labels)));
    // Network counters belong to the pod: its containers share its namespace.
    const mine = containers.ofPod(pod.id);
    if (pod.netns) {
      const interfaces = await podInterfaceCounters(pod.netns, podNetworkPids(pod, mine)).catch(() => [] as InterfaceCounters[]);
      for (const i of interfaces) metrics.push(...emit(networkDefs, i, [...labels, i.name]));
    }
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
