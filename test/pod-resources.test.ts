// UpdatePodSandboxResources: recorded for status, and written to the pod's cgroup when
// berth made it (the kubelet resizes its own pod cgroups before it calls).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import { NamespaceMode, RuntimeService } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { cgroupHierarchies } from '../src/linux/cgroups.js';
import { limitWrites, podLimits, sharesToWeight } from '../src/linux/cgroup-limits.js';
import { startBerthd } from './helpers/berthd.js';
import { isRoot } from './helpers/paths.js';
import { cleanup } from './helpers/scope.js';

const none = { cpuShares: 0, cpuQuota: 0, cpuPeriod: 0, memoryLimit: 0, cpusetCpus: '', cpusetMems: '', unified: {} };

test('pod limits are the containers\' plus the overhead; shares convert to weights as runc does', async () => {
  const limits = podLimits({ ...none, cpuShares: 512, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimit: 64 << 20 }, { ...none, cpuShares: 2, cpuQuota: 5_000, cpuPeriod: 50_000, memoryLimit: 16 << 20 });
  assert.deepEqual(limits, { ...none, cpuShares: 514, cpuQuota: 60_000, cpuPeriod: 100_000, memoryLimit: 80 << 20 });
  // Unlimited stays unlimited, whatever the overhead.
  assert.deepEqual(podLimits(none, { ...none, memoryLimit: 1 << 20, cpuShares: 10 }), none);
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(1024), 39);
  assert.equal(sharesToWeight(262_144), 10_000);
  const writes = await limitWrites('/x', { ...none, memoryLimit: 100 });
  assert.equal(writes.length, 1);
  assert.match(writes[0]![0], /\/x\/memory\.(limit_in_bytes|max)$/);
});

test('UpdatePodSandboxResources writes the limits to a cgroup berth made and shows them in verbose status', { skip: !isRoot ? 'needs root' : false }, async (t) => {
  const berthd = await startBerthd(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  const parent = `/berth-test-${randomBytes(4).toString('hex')}`;
  const { podSandboxId } = await runtime.runPodSandbox({
    config: {
      metadata: { name: 'sized', namespace: 'test', uid: 'sized-uid' },
      linux: { cgroupParent: parent, securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } },
    },
  });
  await runtime.updatePodSandboxResources({
    podSandboxId,
    resources: { memoryLimitInBytes: BigInt(64 << 20), cpuQuota: 50_000n, cpuPeriod: 100_000n, cpuShares: 512n },
    overhead: { memoryLimitInBytes: BigInt(16 << 20), cpuShares: 2n },
  });
  const hierarchies = await cgroupHierarchies();
  const memory = hierarchies.find((h) => h.version === 1 && h.controllers.includes('memory'));
  const cpu = hierarchies.find((h) => h.version === 1 && h.controllers.includes('cpu'));
  if (memory && cpu) {
    assert.equal((await readFile(`${memory.mount}${parent}/memory.limit_in_bytes`, 'utf8')).trim(), String(80 << 20));
    assert.equal((await readFile(`${cpu.mount}${parent}/cpu.cfs_quota_us`, 'utf8')).trim(), '50000');
    assert.equal((await readFile(`${cpu.mount}${parent}/cpu.shares`, 'utf8')).trim(), '514');
  } else {
    const unified = hierarchies.find((h) => h.version === 2)!;
    assert.equal((await readFile(`${unified.mount}${parent}/memory.max`, 'utf8')).trim(), String(80 << 20));
    assert.equal((await readFile(`${unified.mount}${parent}/cpu.max`, 'utf8')).trim(), '50000 100000');
  }
  const info = JSON.parse((await runtime.podSandboxStatus({ podSandboxId, verbose: true })).info.info!) as { resources: { resources: { memoryLimit: number }; overhead: { memoryLimit: number }; appliedToCgroup: boolean } };
  assert.equal(info.resources.resources.memoryLimit, 64 << 20);
  assert.equal(info.resources.overhead.memoryLimit, 16 << 20);
  assert.equal(info.resources.appliedToCgroup, true);

  await assert.rejects(runtime.updatePodSandboxResources({ podSandboxId: 'nonexistent' }), { code: GrpcStatus.NOT_FOUND });
  await assert.rejects(runtime.updatePodSandboxResources({}), { code: GrpcStatus.INVALID_ARGUMENT });
  // A pod without a cgroup of berth's: recorded only.
  const plain = await runtime.runPodSandbox({ config: { metadata: { name: 'plain', namespace: 'test', uid: 'plain-uid' }, linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } } } });
  await runtime.updatePodSandboxResources({ podSandboxId: plain.podSandboxId, resources: { memoryLimitInBytes: 1n << 30n } });
  const plainInfo = JSON.parse((await runtime.podSandboxStatus({ podSandboxId: plain.podSandboxId, verbose: true })).info.info!) as { resources: { appliedToCgroup: boolean } };
  assert.equal(plainInfo.resources.appliedToCgroup, false);
  await runtime.removePodSandbox({ podSandboxId });
  await runtime.removePodSandbox({ podSandboxId: plain.podSandboxId });
});
