// GetContainerEvents against a real berthd: the events the kubelet's evented PLEG
// reads (with the pod's status and every container status of the pod), a STOPPED for
// an exit without any List or Status call, exits that happened while berthd was down,
// and the Stream* list RPCs beside their List* twins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerEventType, ContainerState, PodSandboxState, RuntimeService, ImageService, type ContainerEventResponse } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { launchBerthd } from './helpers/berthd.js';
import { containerTestSkip, setupContainerTest } from './helpers/containers.js';
import { cleanup } from './helpers/scope.js';

const skip = containerTestSkip;
const { CONTAINER_CREATED_EVENT: CREATED, CONTAINER_STARTED_EVENT: STARTED, CONTAINER_STOPPED_EVENT: STOPPED, CONTAINER_DELETED_EVENT: DELETED } = ContainerEventType;

/** Reads a GetContainerEvents stream into a list, with a way to wait for an event. */
function collect(stream: AsyncIterable<ContainerEventResponse>) {
  const seen: ContainerEventResponse[] = [];
  let error: Error | undefined;
  const done = (async () => {
    try {
      for await (const event of stream) seen.push(event);
    } catch (err) {
      error = err as Error;
    }
  })();
  return {
    seen,
    done,
    get error() {
      return error;
    },
    async waitFor(match: (e: ContainerEventResponse) => boolean, ms = 10_000): Promise<ContainerEventResponse> {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        const found = seen.find(match);
        if (found) return found;
        if (error) throw error;
        await sleep(20);
      }
      throw new Error(`no such event in ${ms} ms; saw ${seen.map((e) => `${ContainerEventType[e.containerEventType]}:${e.containerId.slice(0, 8)}`).join(', ')}`);
    },
  };
}

test('container and pod events stream with pod status and container statuses; an exit is STOPPED at once', { skip }, async (t) => {
  const { runtime, image, podId, berthd } = await setupContainerTest(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const watcher = serviceClient(RuntimeService, channel);
  const events = collect(watcher.getContainerEvents({}));
  // The stream is open once an event of ours arrives: a second pod proves it.
  const other = await runtime.runPodSandbox({ config: { metadata: { name: 'ev-pod', namespace: 'test', uid: 'ev-pod-uid' } } });
  const podCreated = await events.waitFor((e) => e.containerId === other.podSandboxId && e.containerEventType === CREATED);
  assert.equal(podCreated.podSandboxStatus?.id, other.podSandboxId);
  assert.equal(podCreated.podSandboxStatus?.metadata?.uid, 'ev-pod-uid');
  await events.waitFor((e) => e.containerId === other.podSandboxId && e.containerEventType === STARTED);

  const started = Date.now();
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'brief' }, image: { image }, command: ['sh', '-c', 'sleep 1; exit 4'] } });
  const created = await events.waitFor((e) => e.containerId === containerId && e.containerEventType === CREATED);
  assert.equal(created.podSandboxStatus?.id, podId);
  assert.equal(created.podSandboxStatus?.state, PodSandboxState.SANDBOX_READY);
  assert.equal(created.podSandboxStatus?.metadata?.name, 'ctr-pod');
  assert.deepEqual(created.containersStatuses.map((c) => [c.id, c.state]), [[containerId, ContainerState.CONTAINER_CREATED]]);
  assert.ok(created.createdAt >= BigInt(started - 1000) * 1_000_000n);
  await runtime.startContainer({ containerId });
  const running = await events.waitFor((e) => e.containerId === containerId && e.containerEventType === STARTED);
  assert.equal(running.containersStatuses[0]?.state, ContainerState.CONTAINER_RUNNING);
  // No List or Status call from here: berthd sees the exit file appear.
  const exitAt = Date.now() + 1000;
  const stopped = await events.waitFor((e) => e.containerId === containerId && e.containerEventType === STOPPED, 8000);
  // The exit-dir watch, not the 5 s sweep, tells berthd.
  assert.ok(Date.now() - exitAt < 2000, `STOPPED came ${Date.now() - exitAt} ms after the exit`);
  const status = stopped.containersStatuses.find((c) => c.id === containerId)!;
  assert.equal(status.state, ContainerState.CONTAINER_EXITED);
  assert.equal(status.exitCode, 4);
  assert.equal(status.reason, 'Error');
  assert.equal(events.seen.filter((e) => e.containerId === containerId && e.containerEventType === STOPPED).length, 1, 'one STOPPED per exit');

  await runtime.removeContainer({ containerId });
  const deleted = await events.waitFor((e) => e.containerId === containerId && e.containerEventType === DELETED);
  assert.equal(deleted.podSandboxStatus?.id, podId);
  assert.deepEqual(deleted.containersStatuses, [], 'the removed container is gone from the pod');

  await runtime.stopPodSandbox({ podSandboxId: other.podSandboxId });
  const podStopped = await events.waitFor((e) => e.containerId === other.podSandboxId && e.containerEventType === STOPPED);
  assert.equal(podStopped.podSandboxStatus?.state, PodSandboxState.SANDBOX_NOTREADY);
  await runtime.removePodSandbox({ podSandboxId: other.podSandboxId });
  const podDeleted = await events.waitFor((e) => e.containerId === other.podSandboxId && e.containerEventType === DELETED);
  assert.equal(podDeleted.podSandboxStatus?.metadata?.uid, 'ev-pod-uid', 'the last status of the removed pod');

  // berthd stopping ends the stream with UNAVAILABLE, as containerd's does.
  await berthd.stop();
  await events.done;
  assert.match(String(events.error), /UNAVAILABLE|closed by the server|14/);
});

test('an exit while berthd was down is sent as STOPPED to the client that subscribes after the restart', { skip }, async (t) => {
  const { runtime, image, podId, berthd } = await setupContainerTest(t);
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'outlives' }, image: { image }, command: ['sh', '-c', 'sleep 2; exit 7'] } });
  await runtime.startContainer({ containerId });
  assert.equal(await berthd.stop('SIGTERM'), 0);
  await sleep(3000);
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const client = serviceClient(RuntimeService, channel);
  const events = collect(client.getContainerEvents({}));
  const stopped = await events.waitFor((e) => e.containerId === containerId && e.containerEventType === STOPPED);
  const status = stopped.containersStatuses.find((c) => c.id === containerId)!;
  assert.deepEqual([status.state, status.exitCode], [ContainerState.CONTAINER_EXITED, 7]);
  assert.equal(stopped.podSandboxStatus?.id, podId);
});

test('Stream* RPCs send what their List* twins answer, with the same filters', { skip }, async (t) => {
  const { runtime, image, podId, berthd } = await setupContainerTest(t);
  const channel = openChannel(berthd.endpoint);
  cleanup(t).after(() => channel.close());
  const images = serviceClient(ImageService, channel);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: `s${i}` }, image: { image }, command: ['sleep', '30'], labels: { n: String(i % 2) } } });
    ids.push(containerId);
  }
  await runtime.startContainer({ containerId: ids[0]! });
  const drain = async <T>(stream: AsyncIterable<T>) => {
    const out: T[] = [];
    for await (const m of stream) out.push(m);
    return out;
  };
  const sorted = (xs: string[]) => [...xs].sort();

  const streamed = await drain(runtime.streamContainers({}));
  assert.ok(streamed.every((m) => m.containers.length > 0), 'no empty batches');
  assert.deepEqual(sorted(streamed.flatMap((m) => m.containers.map((c) => c.id))), sorted((await runtime.listContainers({})).containers.map((c) => c.id)));
  const labelled = await drain(runtime.streamContainers({ filter: { labelSelector: { n: '0' } } }));
  assert.deepEqual(sorted(labelled.flatMap((m) => m.containers.map((c) => c.id))), sorted([ids[0]!, ids[2]!]));
  const running = await drain(runtime.streamContainers({ filter: { state: { state: ContainerState.CONTAINER_RUNNING } } }));
  assert.deepEqual(running.flatMap((m) => m.containers.map((c) => c.id)), [ids[0]]);
  assert.deepEqual(await drain(runtime.streamContainers({ filter: { id: 'nonexistent' } })), [], 'nothing at all for no match');

  const pods = await drain(runtime.streamPodSandboxes({ filter: { id: podId } }));
  assert.deepEqual(pods.flatMap((m) => m.podSandboxes.map((p) => [p.id, p.state])), [[podId, PodSandboxState.SANDBOX_READY]]);
  const notReady = await drain(runtime.streamPodSandboxes({ filter: { state: { state: PodSandboxState.SANDBOX_NOTREADY } } }));
  assert.deepEqual(notReady, []);

  const stats = await drain(runtime.streamContainerStats({ filter: { id: ids[0]! } }));
  const one = stats.flatMap((m) => m.containerStats);
  assert.equal(one.length, 1);
  assert.equal(one[0]!.attributes?.id, ids[0]);
  assert.ok((one[0]!.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n);
  const podStats = (await drain(runtime.streamPodSandboxStats({}))).flatMap((m) => m.podSandboxStats);
  assert.deepEqual(podStats.map((s) => s.attributes?.id), [podId]);
  assert.equal(podStats[0]!.linux?.containers.length, 3);

  const streamedImages = (await drain(images.streamImages({}))).flatMap((m) => m.images);
  assert.deepEqual(sorted(streamedImages.map((i) => i.id)), sorted((await images.listImages({})).images.map((i) => i.id)));
  assert.equal((await drain(images.streamImages({ filter: { image: { image } } }))).flatMap((m) => m.images).length, 1);
});
