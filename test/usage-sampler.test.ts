// CPU nano-cores from the change between samples, over a window of at least a second:
// the kubelet (PodAndContainerStatsFromCRI) asks for pod and container stats a few ms
// apart, and a rate over those few ms read 0 for a container that was using CPU.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageSampler } from '../src/container/container-stats.js';
import type { CgroupUsage } from '../src/linux/cgroups.js';

test('nano-cores: undefined first, then over the last window of a second or more; quick samples keep that rate', async () => {
  let now = 0n;
  let cpu = 0;
  const usage = (): CgroupUsage => ({ cpuNanos: cpu, memoryUsage: 1, workingSet: 1, rss: 1, pageFaults: 0, majorPageFaults: 0 });
  const sampler = new UsageSampler(async () => usage(), () => now);
  assert.equal((await sampler.sample('c', '/x'))!.nanoCores, undefined);
  now = 2_000_000_000n;
  cpu = 1e9; // half a core over 2 s
  assert.equal((await sampler.sample('c', '/x'))!.nanoCores, 5e8);
  now += 5_000_000n;
  cpu += 100; // 5 ms later: not a window of its own
  const quick = (await sampler.sample('c', '/x'))!;
  assert.equal(quick.nanoCores, 5e8);
  assert.equal(quick.usage.cpuNanos, 1e9 + 100, 'the usage itself is always fresh');
  now = 3_500_000_000n;
  cpu = 2.5e9; // 1.5 s of CPU in the 1.5 s since the last window began: one core
  assert.equal((await sampler.sample('c', '/x'))!.nanoCores, 1e9);
  // Another key has its own windows; a counter that went back (a new cgroup) starts over.
  assert.equal((await sampler.sample('other', '/y'))!.nanoCores, undefined);
  now += 1_000_000n;
  cpu = 10;
  assert.equal((await sampler.sample('c', '/x'))!.nanoCores, 0);
});
