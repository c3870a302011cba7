// A berthd with a pod network, a registry holding a busybox image, and one pod: what
// every container test starts from.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerState, RuntimeService } from '../../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../../src/server/grpc-client.js';
import { startBerthd } from './berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './image-builder.js';
import { isRoot } from './paths.js';
import { startPodNetwork } from './pod-network.js';
import { DOCKER_REGISTRY, startRegistry } from './registry.js';
import { tempDir } from './tmp.js';
import { cleanup } from './scope.js';

export const containerTestSkip = !isRoot ? 'needs root' : !existsSync('/usr/bin/conmon') || !existsSync('/usr/sbin/runc') ? 'conmon and runc are needed' : !existsSync(DOCKER_REGISTRY) ? 'docker-registry is needed' : false;

export async function setupContainerTest(t: { after(fn: () => unknown): void }, extraToml = '') {
  const registry = await startRegistry(t);
  const image = `${registry.host}/test/busybox:1`;
  await pushImage(registry, 'test/busybox', '1', { layers: [buildLayer(busyboxEntries())], config: { Env: ['PATH=/bin', 'FROM_IMAGE=yes'], WorkingDir: '/tmp' } });
  const net = await startPodNetwork(t);
  const berthd = await startBerthd(t, { cniConfDir: net.confDir, extraToml });
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const runtime = serviceClient(RuntimeService, channel);
  assert.equal((await berthd.ctl(['pull', image])).code, 0);
  const logDir = await tempDir(t, 'podlogs-');
  const pod = await runtime.runPodSandbox({ config: { metadata: { name: 'ctr-pod', namespace: 'test', uid: 'ctr-pod-uid', attempt: 0 }, hostname: 'ctr-host', logDirectory: logDir } });
  // Whatever a failing test leaves running is removed with its pod.
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }, { timeoutMs: 60_000 }).catch(() => undefined));
  return { berthd, runtime, registry, image, podId: pod.podSandboxId, logDir };
}

export type Runtime = Awaited<ReturnType<typeof setupContainerTest>>['runtime'];

export async function waitExited(runtime: Runtime, id: string, ms = 15_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const status = (await runtime.containerStatus({ containerId: id })).status!;
    if (status.state === ContainerState.CONTAINER_EXITED) return status;
    await sleep(100);
  }
  throw new Error(`container ${id} did not exit in ${ms} ms`);
}

