// ListMetricDescriptors / ListPodSandboxMetrics / StreamPodSandboxMetrics: cAdvisor's
// names, every metric described, values from the cgroups and the pod's netns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricType } from '../src/gen/runtime/v1/api_pb.js';
import { parseNetDev } from '../src/linux/netdev.js';
import { metricDescriptors } from '../src/cri/metrics.js';
import { parseIoStat, parseV1Blkio } from '../src/linux/cgroup-io.js';
import { mountSourceOf } from '../src/linux/filesystem.js';

/** The names critest v1.37.0 expects (pkg/validate/pod.go), less those it lists as not yet implemented by every runtime. */
const CRITEST_EXPECTED = [
  'container_blkio_device_usage_total', 'container_cpu_cfs_periods_total', 'container_cpu_cfs_throttled_periods_total', 'container_cpu_cfs_throttled_seconds_total',
  'container_cpu_system_seconds_total', 'container_cpu_usage_seconds_total', 'container_cpu_user_seconds_total', 'container_file_descriptors', 'container_fs_inodes_free',
  'container_fs_inodes_total', 'container_fs_limit_bytes', 'container_fs_reads_bytes_total', 'container_fs_reads_total', 'container_fs_usage_bytes',
  'container_fs_writes_bytes_total', 'container_fs_writes_total', 'container_last_seen', 'container_memory_cache', 'container_memory_failcnt',
  'container_memory_failures_total', 'container_memory_kernel_usage', 'container_memory_mapped_file', 'container_memory_max_usage_bytes', 'container_memory_rss',
  'container_memory_swap', 'container_memory_usage_bytes', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total',
  'container_network_receive_errors_total', 'container_network_receive_packets_dropped_total', 'container_network_receive_packets_total',
  'container_network_transmit_bytes_total', 'container_network_transmit_errors_total', 'container_network_transmit_packets_dropped_total',
  'container_network_transmit_packets_total', 'container_oom_events_total', 'container_processes', 'container_sockets', 'container_spec_cpu_period',
  'container_spec_cpu_shares', 'container_spec_memory_limit_bytes', 'container_spec_memory_swap_limit_bytes', 'container_start_time_seconds',
  'container_threads', 'container_threads_max',
];
/** Block I/O accounting that a virtual disk may not report (critest's optional values). */
const OPTIONAL_VALUES = new Set(['container_blkio_device_usage_total', 'container_fs_reads_bytes_total', 'container_fs_reads_total', 'container_fs_writes_bytes_total', 'container_fs_writes_total']);

test('every metric critest expects is described, with help and label keys', () => {
  const described = new Map(metricDescriptors.map((d) => [d.name, d]));
  for (const name of CRITEST_EXPECTED) {
    const d = described.get(name);
    assert.ok(d, `${name} is described`);
    assert.ok(d.help && d.labelKeys.length > 0, `${name} has help and labels`);
  }
  // cAdvisor's label sets.
  assert.deepEqual(described.get('container_blkio_device_usage_total')!.labelKeys, ['id', 'name', 'image', 'device', 'major', 'minor', 'operation']);
  assert.deepEqual(described.get('container_memory_failures_total')!.labelKeys, ['id', 'name', 'image', 'failure_type', 'scope']);
  assert.deepEqual(described.get('container_fs_usage_bytes')!.labelKeys, ['id', 'name', 'image', 'device']);
  assert.deepEqual(described.get('container_sockets')!.labelKeys, ['id', 'name', 'image']);
});

test('block I/O is parsed from cgroup v1 blkio and v2 io.stat', () => {
  const v1 = parseV1Blkio('8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n', '8:0 Read 1\n8:0 Write 2\n8:0 Total 3\nTotal 3\n');
  assert.deepEqual(v1, [{ major: 8, minor: 0, readBytes: 4096, writeBytes: 8192, reads: 1, writes: 2, bytesByOperation: { Read: 4096, Write: 8192, Sync: 0, Async: 12288, Discard: 0, Total: 12288 } }]);
  const v2 = parseIoStat('254:0 rbytes=100 wbytes=200 rios=3 wios=4 dbytes=5 dios=6\n');
  assert.deepEqual(v2, [{ major: 254, minor: 0, readBytes: 100, writeBytes: 200, reads: 3, writes: 4, bytesByOperation: { Read: 100, Write: 200, Discard: 5 } }]);
  assert.deepEqual(parseV1Blkio('Total 0\n', 'Total 0\n'), []);
});

test("a path's filesystem device is the source of the deepest mount on its device", () => {
  const mountinfo = [
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '40 27 0:30 / /run rw - tmpfs tmpfs rw',
    '41 27 254:0 /var/x /srv/x rw - ext4 /dev/vda rw',
  ].join('\n');
  assert.equal(mountSourceOf(mountinfo, '/var/lib/berth/c/upper', 254, 0), '/dev/vda');
  assert.equal(mountSourceOf(mountinfo, '/run/berth/containers/x/upper', 0, 30), 'tmpfs');
  assert.equal(mountSourceOf(mountinfo, '/nowhere', 9, 9), undefined);
});
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';

test('/proc/net/dev is parsed per interface', () => {
  const text = [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    '    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0',
    '  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0',
  ].join('\n');
  assert.deepEqual(parseNetDev(text)[1], { name: 'eth0', rxBytes: 5000, rxPackets: 40, rxErrors: 1, rxDropped: 2, txBytes: 3000, txPackets: 30, txErrors: 3, txDropped: 4 });
  const names = metricDescriptors.map((d) => d.name);
  assert.equal(new Set(names).size, names.length, 'each name once');
  for (const n of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_memory_usage_bytes', 'container_memory_rss', 'container_memory_cache', 'container_network_receive_bytes_total', 'container_processes']) assert.ok(names.includes(n), n);
});

test('pod and container metrics of a running container, and the same by stream', { skip: containerTestSkip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'busy' }, image: { image }, command: ['sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 60 & sleep 60'], linux: { resources: { memoryLimitInBytes: BigInt(64 << 20), memorySwapLimitInBytes: BigInt(64 << 20) } } },
  });
  await runtime.startContainer({ containerId });
  await new Promise((r) => setTimeout(r, 1500));
  const { descriptors } = await runtime.listMetricDescriptors({});
  const described = new Map(descriptors.map((d) => [d.name, d.labelKeys]));
  const { podMetrics } = await runtime.listPodSandboxMetrics({});
  assert.deepEqual(podMetrics.map((p) => p.podSandboxId), [podId]);
  const pod = podMetrics[0]!;
  for (const m of [...pod.metrics, ...pod.containerMetrics.flatMap((c) => c.metrics)]) {
    assert.ok(described.has(m.name), `${m.name} is described`);
    assert.equal(m.labelValues.length, described.get(m.name)!.length, `${m.name}: one value per label key`);
  }
  // The pod's network, from inside its netns.
  const rx = pod.metrics.find((m) => m.name === 'container_network_receive_bytes_total' && m.labelValues[3] === 'eth0');
  assert.ok(rx, 'eth0 counters');
  assert.deepEqual(rx.labelValues.slice(0, 2), [podId, 'POD']);
  assert.equal(rx.metricType, MetricType.COUNTER);
  assert.ok(!pod.metrics.some((m) => m.labelValues[3] === 'lo'), 'lo is not reported');

  const mine = pod.containerMetrics.find((c) => c.containerId === containerId)!;
  const value = (name: string) => mine.metrics.find((m) => m.name === name)?.value?.value;
  assert.deepEqual(mine.metrics.find((m) => m.name === 'container_cpu_usage_seconds_total')?.labelValues, [containerId, 'busy', image]);
  assert.ok(value('container_cpu_usage_seconds_total')! > 0n);
  assert.ok(value('container_memory_working_set_bytes')! > 0n);
  assert.ok(value('container_memory_usage_bytes')! >= value('container_memory_working_set_bytes')!);
  assert.ok(value('container_processes')! >= 2n, `processes: ${value('container_processes')}`);
  assert.equal(value('container_spec_memory_limit_bytes'), BigInt(64 << 20));
  assert.equal(mine.metrics.find((m) => m.name === 'container_memory_working_set_bytes')?.metricType, MetricType.GAUGE);
  // What critest checks: every name it expects has a value somewhere in the pod (block I/O
  // may be unaccounted on a virtual disk), and every described metric that has values has them
  // with one value per label key (checked above).
  const seen = new Set([...pod.metrics, ...mine.metrics].map((m) => m.name));
  for (const name of CRITEST_EXPECTED) if (!OPTIONAL_VALUES.has(name)) assert.ok(seen.has(name), `${name} has a value`);
  // hugetlb needs a hugetlb controller, PSI a v2 cgroup (test/optional-metrics.test.ts covers both).
  for (const d of descriptors) if (!OPTIONAL_VALUES.has(d.name) && !/^container_(hugetlb|pressure)_/.test(d.name)) assert.ok(seen.has(d.name), `${d.name} has a value`);
  assert.ok(value('container_file_descriptors')! >= 3n, `file descriptors: ${value('container_file_descriptors')}`);
  assert.ok(value('container_threads_max')! >= 0n);
  assert.ok(value('container_fs_inodes_total')! > 0n && value('container_fs_limit_bytes')! > 0n);
  assert.equal(value('container_spec_memory_swap_limit_bytes'), BigInt(64 << 20));
  const lastSeen = Number(value('container_last_seen'));
  assert.ok(Math.abs(lastSeen - Date.now() / 1000) < 60, `last seen ${lastSeen}`);
  const failures = mine.metrics.filter((m) => m.name === 'container_memory_failures_total').map((m) => m.labelValues.slice(3).join('/'));
  assert.deepEqual(failures.sort(), ['pgfault/container', 'pgfault/hierarchy', 'pgmajfault/container', 'pgmajfault/hierarchy']);
  assert.ok(mine.metrics.find((m) => m.name === 'container_memory_failures_total' && m.labelValues[3] === 'pgfault')!.value!.value > 0n, 'page faults counted');

  const streamed = [];
  for await (const batch of runtime.streamPodSandboxMetrics({})) streamed.push(...batch.podSandboxMetrics);
  assert.deepEqual(streamed.map((p) => p.podSandboxId), [podId]);
  assert.deepEqual(streamed[0]!.containerMetrics.map((c) => c.containerId), [containerId]);

  // A stopped pod is not measured.
  await runtime.stopPodSandbox({ podSandboxId: podId });
  assert.deepEqual((await runtime.listPodSandboxMetrics({})).podMetrics, []);
});
