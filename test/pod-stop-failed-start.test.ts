// StopPodSandbox and RemovePodSandbox succeed whatever state the pod's containers are
// in: one whose start failed (left `created`) is stopped and deleted by force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerState, PodSandboxState } from '../src/gen/runtime/v1/api_pb.js';
import { join } from 'node:path';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { run } from './helpers/processes.js';

test('a pod whose container failed to start stops and is removed', { skip: containerTestSkip }, async (t) => {
  const { runtime, image, podId, berthd } = await setupContainerTest(t);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'broken' }, image: { image }, command: ['sleep', '60'] } });
  // The container's init dies between create and start: the start fails, as a failed
  // start hook or a runtime error would make it.
  const state = JSON.parse((await run('/usr/sbin/runc', [`--root=${join(berthd.dir, 'state', 'runtime', 'runc')}`, 'state', containerId])).stdout) as { pid: number };
  process.kill(state.pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 200));
  await assert.rejects(runtime.startContainer({ containerId }));
  const never = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'never-started' }, image: { image }, command: ['sleep', '60'] } });
  const started = Date.now();
  await runtime.stopPodSandbox({ podSandboxId: podId });
  const took = Date.now() - started;
  assert.equal((await runtime.podSandboxStatus({ podSandboxId: podId })).status?.state, PodSandboxState.SANDBOX_NOTREADY);
  for (const id of [containerId, never.containerId]) assert.equal((await runtime.containerStatus({ containerId: id })).status?.state, ContainerState.CONTAINER_EXITED, id);
  await runtime.removePodSandbox({ podSandboxId: podId });
  assert.deepEqual((await runtime.listContainers({})).containers, []);
  process.stdout.write(`# stop took ${took} ms\n`);
});
