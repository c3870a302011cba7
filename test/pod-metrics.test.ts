// ListMetricDescriptors / ListPodSandboxMetrics / StreamPodSandboxMetrics: cAdvisor's
// names, every metric described, values from the cgroups and the pod's netns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MetricType } from '../src/gen/runtime/v1/api_pb.js';
import { parseNetDev } from '../src/linux/netdev.js';
import { metricDescriptors } from '../src/cri/metrics.js';
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
    config: { metadata: { name: 'busy' }, image: { image }, command: ['sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 60 & sleep 60'], linux: { resources: { memoryLimitInBytes: BigInt(64 << 20) } } },
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

  const streamed = [];
  for await (const batch of runtime.streamPodSandboxMetrics({})) streamed.push(...batch.podSandboxMetrics);
  assert.deepEqual(streamed.map((p) => p.podSandboxId), [podId]);
  assert.deepEqual(streamed[0]!.containerMetrics.map((c) => c.containerId), [containerId]);

  // A stopped pod is not measured.
  await runtime.stopPodSandbox({ podSandboxId: podId });
  assert.deepEqual((await runtime.listPodSandboxMetrics({})).podMetrics, []);
});
