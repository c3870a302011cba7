// What a real kubelet asks of cgroups that crictl-driven tests do not: hugepage limits
// for every page size the kernel has (on hosts without a hugetlb controller too), and
// pod cgroup parents below QoS cgroups that several pods share.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ociResources } from '../src/container/oci-spec.js';
import { ensureCgroup, removeCgroups } from '../src/linux/cgroups.js';
import { isRoot } from './helpers/paths.js';
import { randomBytes } from 'node:crypto';
import type { ContainerResources } from '../src/container/container-types.js';
import { tempDir } from './helpers/tmp.js';

const resources: ContainerResources = {
  cpuShares: 102,
  cpuQuota: 50_000,
  cpuPeriod: 100_000,
  memoryLimit: 64 << 20,
  memorySwapLimit: 0,
  cpusetCpus: '',
  cpusetMems: '',
  // What kubelet v1.37 sends for a pod that asks for no hugepages.
  hugepageLimits: [
    { pageSize: '2MB', limit: 0 },
    { pageSize: '1GB', limit: 0 },
  ],
  unified: {},
};

test('hugepage limits are left out of the OCI resources on a host without a hugetlb controller', () => {
  assert.deepEqual(ociResources(resources).hugepageLimits, resources.hugepageLimits);
  assert.deepEqual(ociResources(resources, { hugetlb: true }).hugepageLimits, resources.hugepageLimits);
  const without = ociResources(resources, { hugetlb: false });
  assert.equal(without.hugepageLimits, undefined);
  assert.deepEqual(without.memory, { limit: 64 << 20, swap: 64 << 20 }, 'the other limits stay');
  assert.deepEqual(without.cpu, { shares: 102, quota: 50_000, period: 100_000 });
});

const exists = (p: string) => stat(p).then(() => true, () => false);

test('removing a pod\'s cgroups keeps the ancestors made with it that another pod now uses', async (t) => {
  // Plain directories behave as cgroups do here: rmdir refuses one that is not empty.
  const root = await tempDir(t, 'cgroups-');
  const qos = join(root, 'kubepods', 'besteffort');
  const podA = join(qos, 'podA');
  const podB = join(qos, 'podB');
  await mkdir(podA, { recursive: true });
  await mkdir(podB);
  // Pod A made kubepods, besteffort and its own; pod B came later and made only its own.
  await removeCgroups([join(root, 'kubepods'), qos, podA], '/kubepods/besteffort/podA');
  assert.equal(await exists(podA), false, 'the pod\'s own cgroup is gone');
  assert.equal(await exists(podB), true, 'the other pod\'s is untouched');
  assert.equal(await exists(qos), true, 'the shared QoS cgroup stays while pod B is in it');

  // A busy leaf is still an error the caller must see.
  await mkdir(join(podB, 'child'));
  await assert.rejects(removeCgroups([podB], '/kubepods/besteffort/podB'), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FailedPrecondition');
    assert.match(err.message, /cannot remove cgroup .*podB/);
    return true;
  });
  // Without a leaf (berth's own helper cgroups), every failure is reported, as before.
  await assert.rejects(removeCgroups([qos]), /cannot remove cgroup/);
});

test('pods made at the same time under one new QoS cgroup both get their cgroups', { skip: !isRoot ? 'needs root' : false }, async () => {
  const top = `/berth-test-race-${randomBytes(3).toString('hex')}`;
  const made: string[][] = [];
  try {
    for (let round = 0; round < 5; round++) {
      // The kubelet starts pods in parallel: both find besteffort missing and make it.
      made.push(...(await Promise.all([ensureCgroup(`${top}/r${round}/besteffort/podA`), ensureCgroup(`${top}/r${round}/besteffort/podB`)])));
    }
    const all = made.flat();
    assert.equal(new Set(all).size, all.length, 'no directory is claimed by both pods');
    assert.ok(all.some((d) => d.endsWith('/r0/besteffort/podA')) && all.some((d) => d.endsWith('/r0/besteffort/podB')));
  } finally {
    await removeCgroups(made.flat());
  }
});
