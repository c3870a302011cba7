// cAdvisor's optional metrics: described always, sent where the host has them — PSI
// (cgroup v2 pressure files: on this hybrid host, the v2 cgroup runc makes beside the v1
// ones), the memory reservation, the init's soft open-files limit; hugetlb only with a
// hugetlb controller (none on a hybrid host without it mounted: then none is sent).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { metricDescriptors } from '../src/cri/metrics.js';
import { cgroupHierarchies } from '../src/linux/cgroups.js';
import { cgroupHugetlb } from '../src/linux/cgroup-extra-metrics.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';

const OPTIONAL = [
  'container_hugetlb_usage_bytes', 'container_hugetlb_max_usage_bytes',
  'container_pressure_cpu_stalled_seconds_total', 'container_pressure_cpu_waiting_seconds_total', 'container_pressure_io_stalled_seconds_total',
  'container_pressure_io_waiting_seconds_total', 'container_pressure_memory_stalled_seconds_total', 'container_pressure_memory_waiting_seconds_total',
  'container_spec_memory_reservation_limit_bytes', 'container_ulimits_soft',
];

test("cAdvisor's optional metrics are described with cAdvisor's labels", () => {
  const described = new Map(metricDescriptors.map((d) => [d.name, d.labelKeys]));
  for (const name of OPTIONAL) assert.ok(described.has(name), name);
  assert.deepEqual(described.get('container_hugetlb_usage_bytes'), ['id', 'name', 'image', 'pagesize']);
  assert.deepEqual(described.get('container_ulimits_soft'), ['id', 'name', 'image', 'ulimit']);
  assert.deepEqual(described.get('container_pressure_io_stalled_seconds_total'), ['id', 'name', 'image']);
});

test('a running container has the optional metrics this host can give, with the values the kernel holds', { skip: containerTestSkip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    // A soft open-files limit of its own, set by the shell before it becomes the sleep.
    config: { metadata: { name: 'optional-metrics' }, image: { image }, command: ['sh', '-c', 'ulimit -n 777 && exec sleep 600'], linux: { resources: { memoryLimitInBytes: 64n << 20n } } },
  });
  await runtime.startContainer({ containerId });
  await new Promise((r) => setTimeout(r, 300));
  const { podMetrics } = await runtime.listPodSandboxMetrics({});
  const mine = podMetrics.find((p) => p.podSandboxId === podId)!.containerMetrics.find((c) => c.containerId === containerId)!.metrics;
  const named = (name: string) => mine.filter((m) => m.name === name);

  const ulimit = named('container_ulimits_soft');
  assert.deepEqual(ulimit.map((m) => [m.labelValues.at(-1), m.value?.value]), [['max_open_files', 777n]]);

  const hierarchies = await cgroupHierarchies();
  const memory = hierarchies.find((h) => h.version === 1 && h.controllers.includes('memory')) ?? hierarchies.find((h) => h.version === 2)!;
  const status = await runtime.containerStatus({ containerId, verbose: true });
  const cgroupsPath = (JSON.parse(status.info.info ?? '{}') as { runtimeSpec?: { linux?: { cgroupsPath?: string } } }).runtimeSpec?.linux?.cgroupsPath;
  const reservation = named('container_spec_memory_reservation_limit_bytes');
  assert.equal(reservation.length, 1);
  if (cgroupsPath) {
    const file = join(memory.mount, cgroupsPath, memory.version === 1 ? 'memory.soft_limit_in_bytes' : 'memory.low');
    assert.equal(reservation[0]!.value?.value, BigInt((await readFile(file, 'utf8')).trim()), `the value of ${file}`);
  }

  const unified = hierarchies.find((h) => h.version === 2);
  const pressureFile = unified && cgroupsPath ? join(unified.mount, cgroupsPath, 'cpu.pressure') : undefined;
  const pressure = mine.filter((m) => m.name.startsWith('container_pressure_'));
  if (pressureFile && existsSync(pressureFile)) {
    assert.equal(pressure.length, 6, 'PSI for cpu, memory and io, waiting and stalled');
    const some = Number(/^some .*total=(\d+)/m.exec(await readFile(pressureFile, 'utf8'))![1]);
    const sent = Number(pressure.find((m) => m.name === 'container_pressure_cpu_waiting_seconds_total')!.value!.value) / 1000;
    assert.ok(sent <= some, `cpu waiting ${sent} µs is no more than the kernel's total read after it (${some} µs)`);
  } else {
    console.log(`no PSI on this host for the container's cgroup (${pressureFile ?? 'no cgroup v2 hierarchy'}): none sent`);
    assert.equal(pressure.length, 0);
  }

  const hugetlb = named('container_hugetlb_usage_bytes');
  if (hierarchies.some((h) => h.version === 1 && h.controllers.includes('hugetlb'))) {
    assert.ok(hugetlb.length > 0, 'one series per page size');
  } else {
    console.log('no hugetlb controller on this host: no hugetlb metrics are sent');
    assert.equal(hugetlb.length, 0);
    if (cgroupsPath) assert.equal(await cgroupHugetlb(cgroupsPath), undefined);
  }
});
