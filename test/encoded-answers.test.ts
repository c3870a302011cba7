// The polled calls' cached encodings (src/cri/encoded-answers.ts): each answer is byte for
// byte what encoding its fields gives, also after every change a cached answer depends
// on (pod state and network, container state, exit and resources, image names), and the
// fields stay readable (the Stream* calls build on the List* answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary, type DescMessage } from '@bufbuild/protobuf';
import {
  ContainerStatusResponseSchema,
  ImageStatusResponseSchema,
  ListContainersResponseSchema,
  ListImagesResponseSchema,
  ListPodSandboxResponseSchema,
  PodSandboxStatusResponseSchema,
} from '../src/gen/runtime/v1/api_pb.js';
import { encodingOf, type RpcContext } from '../src/server/grpc-service.js';
import { listPodSandboxHandler, podSandboxStatusHandler } from '../src/cri/sandbox-status.js';
import { containerHandlers } from '../src/cri/container-lifecycle.js';
import { imageStatusHandler, listImagesHandler } from '../src/cri/image-status.js';
import type { SandboxRecord, SandboxSpec } from '../src/pod/sandbox-types.js';
import type { ContainerRecord, ContainerSpec } from '../src/container/container-types.js';
import type { ImageRecord } from '../src/image/image-store.js';

const ctx = { requestId: '1', signal: new AbortController().signal, deadline: undefined } as RpcContext;

/** The answer's bytes (cached) against an encoding of its own fields, made now. */
function assertEncodes(schema: DescMessage, answer: object, fields: object): void {
  const bytes = encodingOf(answer);
  assert.ok(bytes, 'the answer carries its encoding');
  assert.deepEqual(Buffer.from(bytes), Buffer.from(toBinary(schema, create(schema, fields as never))));
}

/** What the list handlers ask of the managers, over records a test holds (the whole list as the candidates of any filter). */
const podListing = (all: () => SandboxRecord[]) => ({ list: all, withLabels: all, checked: async (r: SandboxRecord[]) => r });
const containerListing = (all: () => ContainerRecord[]) => ({ list: all, withLabels: all, ofPodOrPrefix: all, fresh: async (r: ContainerRecord[]) => r });

const podSpec: SandboxSpec = {
  name: 'web', uid: 'u1', namespace: 'default', attempt: 1, hostname: 'web', logDirectory: '/var/log/pods/x', portMappings: [],
  labels: { app: 'web', tier: 'front' }, annotations: { 'kubernetes.io/config.seen': 'now' },
  cgroupParent: '', namespaces: { network: 'pod', pid: 'pod', ipc: 'pod', targetId: '' }, sysctls: {}, runtimeHandler: 'runc',
};

function pod(id: string, createdAt: string): SandboxRecord {
  return { id, spec: podSpec, state: 'ready', createdAt, netns: '/x', network: { name: 'n', ifName: 'eth0', ips: ['10.0.0.2', 'fd00::2'] }, podDir: '/p', cgroupPath: '', cgroupsCreated: [] };
}

test('PodSandboxStatus and ListPodSandbox: cached bytes equal a fresh encoding, before and after the pod changes', async () => {
  const records = [pod('a'.repeat(64), '1000'), pod('b'.repeat(64), '2000')];
  const pods = { getChecked: async (id: string) => records.find((r) => r.id === id)!, ...podListing(() => records) };
  const status = podSandboxStatusHandler(pods as never);
  const list = listPodSandboxHandler(pods as never);
  for (let round = 0; round < 3; round++) {
    const answer = await status({ podSandboxId: records[0]!.id, verbose: false } as never, ctx);
    assertEncodes(PodSandboxStatusResponseSchema, answer, { status: answer.status });
    assert.equal(answer.status?.network?.ip, records[0]!.network?.ips[0] ?? '');
    const listed = await list({} as never, ctx);
    assertEncodes(ListPodSandboxResponseSchema, listed, { items: listed.items });
    assert.deepEqual(listed.items?.map((i) => i.id), [records[1]!.id, records[0]!.id], 'newest first');
    // What a stop does to a pod: not ready, network gone.
    if (round === 0) records[0]!.state = 'notready';
    if (round === 1) records[0]!.network = undefined;
  }
  const after = await status({ podSandboxId: records[0]!.id } as never, ctx);
  assert.equal(after.status?.state, 1, 'NOTREADY');
  assert.equal(after.status?.network?.ip, '');
  const verbose = await status({ podSandboxId: records[0]!.id, verbose: true } as never, ctx);
  assert.equal(encodingOf(verbose), undefined, 'a verbose answer is encoded as usual');
});

const containerSpec = {
  name: 'app', attempt: 0, image: 'busybox', imageId: 'sha256:' + '1'.repeat(64), command: ['sleep'], args: [], workingDir: '', env: [],
  mounts: [{ containerPath: '/data', hostPath: '/srv/data', readonly: true, propagation: 'rslave', selinuxRelabel: false }],
  labels: { 'io.kubernetes.container.name': 'app' }, annotations: { a: 'b' }, logPath: 'app.log', tty: false, stdin: false, runAsUsername: '',
  supplementalGroups: [], readonlyRootfs: false, privileged: false, noNewPrivs: false, capAdd: [], capDrop: [], capAmbient: [], devices: [], pidTargetId: '',
  oomScoreAdj: 0, stopSignal: '', seccomp: { type: 'unconfined' },
  cpuShares: 2, cpuQuota: 0, cpuPeriod: 100000, memoryLimit: 0, memorySwapLimit: 0, cpusetCpus: '', cpusetMems: '', hugepageLimits: [], unified: {},
} as unknown as ContainerSpec;

test('ContainerStatus and ListContainers: cached bytes equal a fresh encoding as the container starts, exits and is resized', async () => {
  const record: ContainerRecord = {
    id: 'c'.repeat(64), podId: 'a'.repeat(64), spec: { ...containerSpec }, state: 'created', createdAt: '1000', startedAt: '0', finishedAt: '0', exitCode: 0,
    reason: '', message: '', logFile: '/var/log/pods/x/app.log', bundle: '/b', runtime: 'runc', pid: 0, cgroupsPath: '/c',
  };
  let imageRef = 'sha256:' + '1'.repeat(64);
  const containers = { get: async () => record, ...containerListing(() => [record]), imageRefOf: () => imageRef };
  const handlers = containerHandlers(containers as never);
  const steps: Array<() => void> = [
    () => Object.assign(record, { state: 'running', startedAt: '2000', pid: 42 }),
    () => (imageRef = 'registry/busybox@sha256:' + '2'.repeat(64)),
    // UpdateContainerResources: the spec's fields changed in place.
    () => Object.assign(record.spec, { cpuShares: 512 }),
    () => Object.assign(record.spec, { memoryLimit: 1 << 26, unified: { 'memory.high': '1' } }),
    () => Object.assign(record, { state: 'exited', finishedAt: '3000', exitCode: 137, reason: 'OOMKilled' }),
  ];
  for (const step of [...steps, () => undefined]) {
    const answer = await handlers.containerStatus({ containerId: record.id } as never, ctx);
    assertEncodes(ContainerStatusResponseSchema, answer, { status: answer.status });
    const listed = await handlers.listContainers({} as never, ctx);
    assertEncodes(ListContainersResponseSchema, listed, { containers: listed.containers });
    step();
  }
  const last = await handlers.containerStatus({ containerId: record.id } as never, ctx);
  assert.deepEqual([last.status?.state, last.status?.exitCode, last.status?.reason, last.status?.resources?.linux?.cpuShares], [2, 137, 'OOMKilled', 512n]);
  assert.equal(last.status?.imageRef, imageRef);
});

test('ImageStatus and ListImages: cached bytes equal a fresh encoding; a renamed image (a new record) answers its new names', async () => {
  const image: ImageRecord = {
    id: 'sha256:' + '3'.repeat(64), repoTags: ['registry/app:1'], repoDigests: ['registry/app@sha256:' + '4'.repeat(64)], manifestDigest: 'sha256:' + '4'.repeat(64),
    size: 12345, layers: [], user: '1000', annotations: { x: 'y' }, createdAt: '2026-01-01T00:00:00Z',
  };
  let current = image;
  const images = { find: () => current, list: () => [current], isPinned: (i: ImageRecord) => i.repoTags.includes('registry/app:2') };
  const status = imageStatusHandler(images as never);
  const list = listImagesHandler(images as never);
  for (let round = 0; round < 2; round++) {
    const answer = await status({ image: { image: 'registry/app:1' } } as never, ctx);
    assertEncodes(ImageStatusResponseSchema, answer, { image: answer.image });
    const listed = await list({} as never, ctx);
    assertEncodes(ListImagesResponseSchema, listed, { images: listed.images });
    current = { ...image, repoTags: ['registry/app:2'] };
  }
  const renamed = await status({ image: { image: 'registry/app:2' } } as never, ctx);
  assert.deepEqual([renamed.image?.repoTags, renamed.image?.pinned], [['registry/app:2'], true]);
});

test('the kept list answers (no filter, or a state only): the same bytes while nothing changed, a fresh encoding after any change', async () => {
  // The managers hand out one array, changed in place, as a worst case for a check by array identity.
  const pods: SandboxRecord[] = [pod('d'.repeat(64), '1000')];
  const ctrs: ContainerRecord[] = [];
  const ctr = (id: string, podId: string): ContainerRecord => ({
    id, podId, spec: { ...containerSpec }, state: 'created', createdAt: '1000', startedAt: '0', finishedAt: '0', exitCode: 0,
    reason: '', message: '', logFile: '/l', bundle: '/b', runtime: 'runc', pid: 0, cgroupsPath: '/c',
  });
  const listPods = listPodSandboxHandler(podListing(() => pods) as never);
  const { listContainers } = containerHandlers({ ...containerListing(() => ctrs), imageRefOf: () => '' } as never);
  const podLists = [{}, { filter: { state: { state: 0 }, labelSelector: {} } }, { filter: { state: { state: 1 }, labelSelector: {} } }];
  const ctrLists = [{}, { filter: { state: { state: 1 }, labelSelector: {} } }, { filter: { state: { state: 2 }, labelSelector: {} } }, { filter: { state: { state: 7 }, labelSelector: {} } }];
  /** Every kept list: a fresh encoding of what it lists, and what it lists is right. */
  const check = async (): Promise<Uint8Array[]> => {
    const out: Uint8Array[] = [];
    for (const request of podLists) {
      const answer = await listPods(request as never, ctx);
      assertEncodes(ListPodSandboxResponseSchema, answer, { items: answer.items });
      const state = (request as { filter?: { state: { state: number } } }).filter?.state.state;
      const want = pods.filter((p) => state === undefined || (p.state === 'ready') === (state === 0)).sort((a, b) => Number(b.createdAt) - Number(a.createdAt));
      assert.deepEqual(answer.items?.map((i) => [i.id, i.state, i.labels]), want.map((p) => [p.id, p.state === 'ready' ? 0 : 1, p.spec.labels]));
      out.push(encodingOf(answer)!);
    }
    for (const request of ctrLists) {
      const answer = await listContainers(request as never, ctx);
      assertEncodes(ListContainersResponseSchema, answer, { containers: answer.containers });
      const state = (request as { filter?: { state: { state: number } } }).filter?.state.state;
      const code = { created: 0, running: 1, exited: 2, unknown: 3 };
      assert.deepEqual(answer.containers?.map((c) => [c.id, c.state]), ctrs.filter((c) => state === undefined || code[c.state] === state).map((c) => [c.id, code[c.state]]));
      out.push(encodingOf(answer)!);
    }
    return out;
  };
  const changes: [string, () => void][] = [
    ['a container created', () => ctrs.push(ctr('e'.repeat(64), pods[0]!.id))],
    ['it starts', () => (ctrs[0]!.state = 'running')],
    ['a second pod, newer', () => pods.push(pod('f'.repeat(64), '2000'))],
    ['a second container', () => ctrs.push(ctr('1'.repeat(64), pods[1]!.id))],
    ['the first exits (as the exit watch records it)', () => Object.assign(ctrs[0]!, { state: 'exited', exitCode: 1, finishedAt: '5000' })],
    ['the first pod stops', () => (pods[0]!.state = 'notready')],
    ['new labels on a pod (a new spec)', () => (pods[1]!.spec = { ...pods[1]!.spec, labels: { app: 'other' } })],
    ['a container given a new image id', () => (ctrs[1]!.spec = { ...ctrs[1]!.spec, imageId: 'sha256:' + '9'.repeat(64) })],
    ['two records swapped (same set, another order)', () => ctrs.reverse()],
    ['a container removed', () => ctrs.splice(0, 1)],
    ['a pod removed', () => pods.splice(0, 1)],
    ['everything removed', () => (pods.splice(0), ctrs.splice(0))],
  ];
  let before = await check();
  for (const [what, change] of changes) {
    // Nothing changed: the kept bytes themselves.
    const again = await check();
    again.forEach((bytes, i) => assert.equal(bytes, before[i], `list ${i} kept while nothing changed (before: ${what})`));
    change();
    before = await check();
  }
  // A filter other than a state is answered fresh each time, and right.
  pods.push(pod('2'.repeat(64), '3000'));
  const byLabel = await listPods({ filter: { labelSelector: { app: 'web' } } } as never, ctx);
  assert.deepEqual(byLabel.items?.map((i) => i.id), ['2'.repeat(64)]);
  assert.deepEqual((await listPods({ filter: { labelSelector: { app: 'none' } } } as never, ctx)).items, []);
});
