// The sandbox and container managers' own logic, without root, runc or CNI: host
// operations, the bundle store, the OCI runtime and the network are fakes given through
// the managers' seams, state lives in temporary directories. Name reservations and the
// kubelet's retry, undo on failure, teardown order, kill escalation, resource updates.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createJsonLogger } from '../src/util/logger.js';
import { defaultConfig, type BerthConfig } from '../src/config/config.js';
import { BerthError } from '../src/errors.js';
import { SandboxManager, type PodContainers } from '../src/pod/sandbox-manager.js';
import type { PodHost } from '../src/pod/pod-host.js';
import type { PodContext, SandboxSpec } from '../src/pod/sandbox-types.js';
import { ContainerManager } from '../src/container/container-manager.js';
import type { ContainerHost } from '../src/container/container-host.js';
import { bundlePaths, type BundleStore } from '../src/container/bundle.js';
import type { ContainerRuntime, CreateOptions } from '../src/container/oci-runtime.js';
import type { ContainerResources, ContainerSpec } from '../src/container/container-types.js';
import type { ImageRecord } from '../src/image/image-store.js';
import type { ContainerEventKind } from '../src/events/container-events.js';

const log = createJsonLogger({ level: 'silent' });

async function dirs(t: TestContext): Promise<{ root: string; state: string }> {
  const base = await mkdtemp(join(tmpdir(), 'berth-managers-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  return { root: join(base, 'root'), state: join(base, 'state') };
}

function code(expected: string, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.code, expected);
    if (message) assert.match(err.message, message);
    return true;
  };
}

// ---- the sandbox manager ------------------------------------------------------------

/** A PodHost that records each call; `fail` makes one operation throw. */
function fakePodHost(calls: string[], fail: Partial<Record<keyof PodHost, Error>> = {}): PodHost {
  const op =
    <A extends unknown[], R>(name: keyof PodHost, result: R) =>
    async (...args: A): Promise<R> => {
      calls.push(name);
      if (fail[name]) throw fail[name];
      void args;
      return result;
    };
  return {
    preparePrivateDir: op('preparePrivateDir', undefined),
    prepareInfraRoot: op('prepareInfraRoot', undefined),
    pinNamespaces: op('pinNamespaces', undefined),
    unpinNamespaces: op('unpinNamespaces', undefined),
    isPinned: op('isPinned', true),
    startPidNamespace: op('startPidNamespace', 4242),
    stopPidNamespace: op('stopPidNamespace', undefined),
    inPinnedNamespace: op('inPinnedNamespace', true),
    ensureCgroup: op('ensureCgroup', ['/sys/fs/cgroup/made']),
    moveIntoCgroup: op('moveIntoCgroup', undefined),
    removeCgroups: op('removeCgroups', undefined),
    removeLeafCgroup: op('removeLeafCgroup', undefined),
    applyCgroupLimits: op('applyCgroupLimits', undefined),
    bringUpLoopback: op('bringUpLoopback', undefined),
    mountPodShm: op('mountPodShm', undefined),
    unmountPodShm: op('unmountPodShm', undefined),
    writePodFiles: op('writePodFiles', undefined),
    removeUnmounted: op('removeUnmounted', undefined),
  };
}

function fakeCni(calls: string[], fail: { add?: Error } = {}) {
  const list = { cniVersion: '1.0.0', name: 'test-net', plugins: [] } as never;
  return {
    network: async () => list,
    add: async () => {
      calls.push('cni.add');
      if (fail.add) throw fail.add;
      return { ips: [{ address: '10.88.0.7/16' }] } as never;
    },
    del: async () => {
      calls.push('cni.del');
    },
    cachedAttachment: async () => undefined,
  };
}

function podSpec(extra: Partial<SandboxSpec> = {}): SandboxSpec {
  return {
    name: 'web', uid: 'u1', namespace: 'default', attempt: 0, hostname: 'web', logDirectory: '', portMappings: [], labels: {}, annotations: {},
    cgroupParent: '', namespaces: { network: 'pod', pid: 'pod', ipc: 'pod', targetId: '' }, sysctls: {}, runtimeHandler: 'runc',
    ...extra,
  };
}

async function sandboxManager(t: TestContext, options: { calls?: string[]; fail?: Partial<Record<keyof PodHost, Error>>; cniFail?: { add?: Error }; events?: string[] } = {}) {
  const { root, state } = await dirs(t);
  const calls = options.calls ?? [];
  const pods = new SandboxManager({
    root,
    state,
    cgroupDriver: 'cgroupfs',
    cni: fakeCni(calls, options.cniFail),
    log,
    host: fakePodHost(calls, options.fail),
    events: { publish: (kind: ContainerEventKind, id: string) => options.events?.push(`${kind}:${id.slice(0, 4)}`) },
  });
  const containers: string[] = [];
  const podContainers: PodContainers = {
    stopPodContainers: async (id) => void containers.push(`stop:${id.slice(0, 4)}`),
    removePodContainers: async (id) => void containers.push(`remove:${id.slice(0, 4)}`),
  };
  pods.attachContainers(podContainers);
  await pods.recover();
  return { pods, calls, containers };
}

test('a pod is made step by step and recorded ready; its context is what containers get', async (t) => {
  const events: string[] = [];
  const { pods, calls } = await sandboxManager(t, { events });
  const id = await pods.run(podSpec({ cgroupParent: '/kubepods/pod1', sysctls: { 'kernel.shm_rmid_forced': '1' } }), new AbortController().signal);
  assert.equal(pods.get(id).state, 'ready');
  assert.deepEqual(pods.get(id).network?.ips, ['10.88.0.7']);
  for (const step of ['pinNamespaces', 'ensureCgroup', 'bringUpLoopback', 'cni.add', 'startPidNamespace', 'moveIntoCgroup', 'mountPodShm', 'writePodFiles']) {
    assert.ok(calls.includes(step), `${step} in ${calls.join(' ')}`);
  }
  assert.ok(calls.indexOf('pinNamespaces') < calls.indexOf('cni.add'), 'namespaces before the network');
  assert.deepEqual(events, [`created:${id.slice(0, 4)}`, `started:${id.slice(0, 4)}`]);
  const context: PodContext = pods.forContainer(id);
  assert.equal(context.cgroupParent, '/kubepods/pod1');
  assert.deepEqual(context.sysctls, { 'kernel.shm_rmid_forced': '1' });
  assert.ok(context.namespaces.network?.endsWith(`${id}-net`));
  assert.ok(context.namespaces.pid?.endsWith(`${id}-pid`));
  assert.ok(context.files.shm, 'its own IPC namespace: the pod /dev/shm');
  const hostIpc = await pods.run(podSpec({ name: 'other', namespaces: { network: 'node', pid: 'container', ipc: 'node', targetId: '' } }), new AbortController().signal);
  assert.deepEqual(pods.forContainer(hostIpc).namespaces, { network: undefined, uts: undefined, ipc: undefined, pid: undefined });
  assert.equal(pods.forContainer(hostIpc).files.shm, undefined);
});

test("a pod's name is reserved; the kubelet's retry gets the pod a caller gave up on; a retry joins a creation in flight", async (t) => {
  const { pods } = await sandboxManager(t);
  const first = await pods.run(podSpec(), new AbortController().signal);
  await assert.rejects(pods.run(podSpec(), new AbortController().signal), code('AlreadyExists', /reserved for pod/));
  assert.notEqual(await pods.run(podSpec({ attempt: 1 }), new AbortController().signal), first, 'another attempt is another pod');

  const gaveUp = new AbortController();
  gaveUp.abort();
  const abandoned = await pods.run(podSpec({ name: 'slow' }), gaveUp.signal);
  assert.equal(await pods.run(podSpec({ name: 'slow' }), new AbortController().signal), abandoned, 'the retry claims it');
  await assert.rejects(pods.run(podSpec({ name: 'slow' }), new AbortController().signal), code('AlreadyExists'));

  const [a, b] = await Promise.all([pods.run(podSpec({ name: 'twice' }), new AbortController().signal), pods.run(podSpec({ name: 'twice' }), new AbortController().signal)]);
  assert.equal(a, b, 'an overlapping retry waits for the same creation');
});

test('a failed step undoes every step before it, and frees the name', async (t) => {
  const calls: string[] = [];
  const { pods } = await sandboxManager(t, { calls, cniFail: { add: new Error('no IP addresses left') } });
  await assert.rejects(pods.run(podSpec({ cgroupParent: '/kubepods/pod1' }), new AbortController().signal), /no IP addresses left/);
  assert.deepEqual(pods.list(), []);
  for (const undo of ['cni.del', 'stopPidNamespace', 'unpinNamespaces', 'unmountPodShm', 'removeCgroups', 'removeUnmounted']) {
    assert.ok(calls.includes(undo), `${undo} in ${calls.join(' ')}`);
  }
  // The name is free again: the next attempt is a new creation (which fails the same way).
  await assert.rejects(pods.run(podSpec({ cgroupParent: '/kubepods/pod1' }), new AbortController().signal), /no IP addresses left/);
});

test('stop and remove take the containers first, then the pod, and publish what happened', async (t) => {
  const events: string[] = [];
  const { pods, calls, containers } = await sandboxManager(t, { events });
  const id = await pods.run(podSpec(), new AbortController().signal);
  const short = id.slice(0, 4);
  calls.length = 0;
  await pods.stop(id);
  assert.deepEqual(containers, [`stop:${short}`]);
  assert.ok(calls.indexOf('cni.del') >= 0 && calls.includes('stopPidNamespace') && calls.includes('unpinNamespaces'));
  assert.equal(pods.get(id).state, 'notready');
  assert.throws(() => pods.forContainer(id), code('FailedPrecondition', /is not ready/));
  await pods.remove(id);
  assert.deepEqual(containers, [`stop:${short}`, `remove:${short}`]);
  assert.deepEqual(events.slice(2), [`stopped:${short}`, `deleted:${short}`]);
  assert.equal(pods.find(id), undefined);
  await pods.remove(id); // idempotent
});

test("a sandbox manager's containers are set once, and needed", async (t) => {
  const { root, state } = await dirs(t);
  const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni: fakeCni([]), log, host: fakePodHost([]) });
  await pods.recover();
  const id = await pods.run(podSpec(), new AbortController().signal);
  await assert.rejects(pods.stop(id), code('Internal', /no containers/));
  const none: PodContainers = { stopPodContainers: async () => undefined, removePodContainers: async () => undefined };
  pods.attachContainers(none);
  assert.throws(() => pods.attachContainers(none), code('Internal', /already/));
});

test('pods by label: the rarest pair of a selector finds its candidates, made, removed and recovered alike; a listing checks only the pods it lists', async (t) => {
  const { root, state } = await dirs(t);
  const make = async () => {
    const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni: fakeCni([]), log, host: fakePodHost([]) });
    pods.attachContainers({ stopPodContainers: async () => undefined, removePodContainers: async () => undefined });
    await pods.recover();
    return pods;
  };
  const pods = await make();
  const uid = 'io.kubernetes.pod.uid';
  const a = await pods.run(podSpec({ name: 'a', labels: { [uid]: 'ua', app: 'web' } }), new AbortController().signal);
  const b = await pods.run(podSpec({ name: 'b', labels: { [uid]: 'ub', app: 'web' } }), new AbortController().signal);
  const ids = (records: { id: string }[]) => records.map((r) => r.id).sort();
  assert.deepEqual(ids(pods.withLabels({ [uid]: 'ua' })), [a]);
  assert.deepEqual(ids(pods.withLabels({ app: 'web', [uid]: 'ub' })), [b], 'the rarest pair: one candidate');
  assert.deepEqual(ids(pods.withLabels({ app: 'web' })), [a, b].sort());
  assert.deepEqual(ids(pods.withLabels({ app: 'none', [uid]: 'ua' })), []);
  assert.deepEqual(ids(pods.withLabels({})), [a, b].sort(), 'no selector: every pod');
  assert.deepEqual(ids(await pods.checked(pods.withLabels({ [uid]: 'ub' }))), [b]);
  await pods.stop(a);
  await pods.remove(a);
  assert.deepEqual(ids(pods.withLabels({ app: 'web' })), [b], 'a removed pod leaves the index');
  // A restart: the recovered pods are indexed as they load.
  const again = await make();
  assert.deepEqual(ids(again.withLabels({ [uid]: 'ub' })), [b]);
  assert.deepEqual(ids(again.withLabels({ [uid]: 'ua' })), []);
});

test('recovery undoes a creation a crash interrupted and loads the pods of an older berthd', async (t) => {
  const { root, state } = await dirs(t);
  await mkdir(join(root, 'pods'), { recursive: true });
  const record = (id: string, extra: object) => ({
    id, spec: podSpec({ name: id }), createdAt: '1', podDir: join(state, 'pods', id), cgroupPath: '', cgroupsCreated: [], ...extra,
  });
  // Half made: recorded as creating, its network recorded before ADD.
  await writeFile(join(root, 'pods', 'half.json'), JSON.stringify(record('half', { state: 'creating', netns: join(state, 'ns', 'half-net'), network: { name: 'test-net', ifName: 'eth0', ips: [] } })));
  // An older berthd's ready pod: the raw CRI config in its record, no parsed bandwidth.
  const oldSpec = podSpec({ name: 'old', annotations: { 'kubernetes.io/ingress-bandwidth': '1M' } });
  await writeFile(join(root, 'pods', 'old.json'), JSON.stringify(record('old', { state: 'ready', spec: oldSpec, criConfig: { metadata: { name: 'old' } } })));
  const calls: string[] = [];
  const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni: fakeCni(calls), log, host: fakePodHost(calls) });
  pods.attachContainers({ stopPodContainers: async () => undefined, removePodContainers: async () => undefined });
  await pods.recover();
  assert.equal(pods.find('half'), undefined, 'the interrupted creation is gone');
  assert.ok(calls.includes('cni.del') && calls.includes('unpinNamespaces') && calls.includes('removeUnmounted'), calls.join(' '));
  const loaded = pods.get('old');
  assert.equal(loaded.state, 'ready');
  assert.equal((loaded as unknown as { criConfig?: unknown }).criConfig, undefined, 'the raw CRI config is dropped');
  await assert.rejects(pods.run(podSpec({ name: 'old' }), new AbortController().signal), code('AlreadyExists'), "the old pod's name stays reserved");
});

test("a pod's init is found in its namespace once, then held: status and listings read only its state; its end makes the pod NOTREADY", async (t) => {
  const { root, state } = await dirs(t);
  const calls: string[] = [];
  let alive = true;
  let inNamespace = true;
  const held: string[] = [];
  const host: PodHost = {
    ...fakePodHost(calls),
    startPidNamespace: async () => 4242,
    inPinnedNamespace: async () => (calls.push('inPinnedNamespace'), inNamespace),
    holdInit: async (pid) => {
      calls.push('holdInit');
      if (!inNamespace) return undefined;
      held.push(`open ${pid}`);
      return { alive: () => (calls.push('alive'), alive), watched: false, close: () => void held.push(`close ${pid}`) };
    },
  };
  const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni: fakeCni(calls), log, host });
  pods.attachContainers({ stopPodContainers: async () => undefined, removePodContainers: async () => undefined });
  await pods.recover();
  const id = await pods.run(podSpec(), new AbortController().signal);
  const count = (name: string) => calls.filter((c) => c === name).length;
  await pods.listChecked();
  assert.equal(count('holdInit'), 1, 'the first check finds the init in its namespace');
  for (let i = 0; i < 5; i++) await pods.listChecked();
  await pods.getChecked(id);
  assert.equal(count('holdInit'), 1, 'later checks use the handle');
  assert.equal(count('alive'), 6, 'one state read per check');
  assert.equal(count('inPinnedNamespace'), 0);
  // The init gone (or a zombie): the next listing finds it at once, and the handle is let go.
  alive = false;
  assert.equal((await pods.listChecked()).find((p) => p.id === id)?.state, 'notready');
  assert.deepEqual(held, ['open 4242', 'close 4242']);
  assert.equal((await pods.getChecked(id)).state, 'notready');
});

test('a pod whose init is not in its namespace any more is NOTREADY at its first check', async (t) => {
  const { root, state } = await dirs(t);
  const calls: string[] = [];
  const host: PodHost = { ...fakePodHost(calls), startPidNamespace: async () => 4242, holdInit: async () => undefined };
  const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni: fakeCni(calls), log, host });
  pods.attachContainers({ stopPodContainers: async () => undefined, removePodContainers: async () => undefined });
  await pods.recover();
  const id = await pods.run(podSpec(), new AbortController().signal);
  assert.equal((await pods.getChecked(id)).state, 'notready');
});

test("recovery releases the network attachment of a pod whose record a host crash lost, and keeps those of pods it knows", async (t) => {
  const { root, state } = await dirs(t);
  await mkdir(join(root, 'pods'), { recursive: true });
  await writeFile(join(root, 'pods', 'kept.json'), JSON.stringify({ id: 'kept', spec: podSpec({ name: 'kept' }), state: 'notready', createdAt: '1', podDir: join(state, 'pods', 'kept'), cgroupPath: '', cgroupsCreated: [] }));
  const list = { cniVersion: '1.0.0', name: 'test-net', plugins: [] } as never;
  const entry = (containerId: string) => ({ kind: 'berthCniCacheV1', networkName: 'test-net', containerId, ifName: 'eth0', netns: join(state, 'ns', `${containerId}-net`), cniVersion: '1.0.0', args: [['K8S_POD_NAME', containerId]], capabilityArgs: {}, config: list, result: {} }) as never;
  const released: string[] = [];
  const cni = {
    ...fakeCni([]),
    cachedAttachments: async () => [entry('kept'), entry('lost')],
    del: async (config: unknown, attachment: { containerId: string; netns: string; ifName: string }) => {
      assert.equal(config, list, 'DEL with the config the pod was added with');
      released.push(`${attachment.containerId}:${attachment.ifName}:${attachment.netns.endsWith('lost-net')}`);
    },
  };
  const pods = new SandboxManager({ root, state, cgroupDriver: 'cgroupfs', cni, log, host: fakePodHost([]) });
  pods.attachContainers({ stopPodContainers: async () => undefined, removePodContainers: async () => undefined });
  await pods.recover();
  assert.deepEqual(released, ['lost:eth0:true']);
  assert.equal(pods.get('kept').state, 'notready');
});

// ---- the container manager ----------------------------------------------------------

const noResources: ContainerResources = { cpuShares: 0, cpuQuota: 0, cpuPeriod: 0, memoryLimit: 0, memorySwapLimit: 0, cpusetCpus: '', cpusetMems: '', hugepageLimits: [], unified: {} };

function containerSpec(extra: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    ...noResources,
    name: 'app', attempt: 0, image: 'busybox', imageId: '', command: ['sleep', '1000'], args: [], workingDir: '', env: [], mounts: [], labels: {}, annotations: {},
    logPath: '', tty: false, stdin: false, runAsUsername: '', supplementalGroups: [], readonlyRootfs: false, privileged: false, noNewPrivs: false,
    capAdd: [], capDrop: [], capAmbient: [], devices: [], pidTargetId: '', oomScoreAdj: 0, stopSignal: '', seccomp: { type: 'unconfined' },
    ...extra,
  };
}

/** An OCI runtime that records calls; exits are written as conmon would write them. */
class FakeRuntime implements ContainerRuntime {
  readonly options = { name: 'runc', path: '/bin/false' };
  readonly globalArgs: string[] = [];
  readonly calls: string[] = [];
  exitDir = '';
  failCreate: Error | undefined;
  /** Signals the container dies of (the rest it ignores). */
  diesOf = new Set(['SIGKILL']);

  async create(opts: CreateOptions): Promise<number> {
    this.calls.push('create');
    if (this.failCreate) throw this.failCreate;
    this.exitDir = opts.exitDir;
    await writeFile(bundlePaths(opts.bundle).conmonPid, '999\n');
    // As OciRuntime: the monitor step runs once conmon's pid file is there, before create resolves.
    await opts.monitorStarted?.();
    return 1234;
  }
  async start(): Promise<void> {
    this.calls.push('start');
  }
  async kill(id: string, signal: string): Promise<void> {
    this.calls.push(`kill ${signal}`);
    if (this.diesOf.has(signal) && this.calls.includes('start')) await writeFile(join(this.exitDir, id), signal === 'SIGKILL' ? '137' : '143');
  }
  async delete(): Promise<void> {
    this.calls.push('delete');
  }
  async update(_id: string, resources: Record<string, unknown>): Promise<void> {
    this.calls.push(`update ${JSON.stringify(resources)}`);
  }
  async exec(): Promise<{ exitCode: number; stdout: Buffer; stderr: Buffer; timedOut: boolean }> {
    this.calls.push('exec');
    return { exitCode: 0, stdout: Buffer.from('ok'), stderr: Buffer.alloc(0), timedOut: false };
  }
}

function fakeBundles(state: string, calls: string[]): BundleStore {
  return {
    dirOf: (id) => join(state, 'containers', id),
    prepare: async () => undefined,
    ids: async () => [],
    create: async (dir) => {
      await mkdir(dir, { recursive: true });
      return bundlePaths(dir);
    },
    mountRootfs: async (dir) => {
      calls.push('mountRootfs');
      await mkdir(join(dir, 'rootfs'), { recursive: true });
      return join(dir, 'rootfs');
    },
    bindSources: async (_id, mounts) => mounts,
    unmountTrees: async () => void calls.push('unmountTrees'),
    unmount: async () => void calls.push('unmount'),
    remove: async (bundle) => {
      calls.push('removeBundle');
      await rm(bundle.bundle, { recursive: true, force: true });
    },
  };
}

function fakeContainerHost(calls: string[]): ContainerHost {
  return {
    criu: async () => ({ usable: false, detail: 'fake host' }),
    prepareMountSources: async () => undefined,
    devices: async () => [],
    hostCapabilities: async () => ['CAP_CHOWN'],
    ownOomScoreAdj: async () => 0,
    hugetlbAvailable: async () => false,
    moveIntoCgroup: async (path) => void calls.push(`moveIntoCgroup ${path}`),
    removeLeafCgroup: async (path) => void calls.push(`removeLeafCgroup ${path}`),
    isDirectory: async () => true,
  };
}

const image: ImageRecord = { id: 'sha256:img', repoTags: ['docker.io/library/busybox:latest'], repoDigests: [], layers: [], size: 0, user: '' } as unknown as ImageRecord;

async function containerManager(t: TestContext) {
  const { root, state } = await dirs(t);
  const config: BerthConfig = { ...defaultConfig(), root, state };
  const calls: string[] = [];
  const runtime = new FakeRuntime();
  const pod: PodContext = {
    id: 'pod1', hostname: 'web', namespaces: {}, pidMode: 'container', files: { hostname: '/h', hosts: '/hs', resolvConf: '/r' },
    cgroupParent: '/kubepods/pod1', sysctls: {}, logDirectory: '', runtimeHandler: 'runc',
  };
  const containers = new ContainerManager({
    config,
    log,
    images: {
      get: (name) => {
        if (name !== 'busybox') throw new BerthError('NotFound', `image "${name}" not found`);
        return image;
      },
      find: () => image,
      chainIds: () => ['sha256:chain1'],
      forContainer: async () => ({ lowerDirs: ['/snap/1'], config: { Cmd: ['sh'], StopSignal: 'SIGQUIT' } }),
    },
    pods: { forContainer: () => pod },
    host: fakeContainerHost(calls),
    bundles: fakeBundles(state, calls),
    runtimes: { runc: runtime },
    killWaitMs: 300,
  });
  await containers.recover();
  t.after(() => containers.close());
  return { containers, runtime, calls };
}

test('a container is created in named steps; its name is reserved until it is removed', async (t) => {
  const { containers, runtime, calls } = await containerManager(t);
  const id = await containers.create('pod1', containerSpec());
  const record = containers.find(id)!;
  assert.equal(record.state, 'created');
  assert.equal(record.cgroupsPath, `/kubepods/pod1/berth-${id}`);
  assert.equal(record.spec.stopSignal, 'SIGQUIT', "the image's stop signal when the request names none");
  assert.deepEqual(runtime.calls, ['create']);
  assert.ok(calls.includes(`moveIntoCgroup /kubepods/pod1/berth-conmon-${id}`), 'conmon leaves berthd\'s cgroup');
  const oci = (await containers.runtimeSpecOf(record)) as { process: { args: string[] } };
  assert.deepEqual(oci.process.args, ['sleep', '1000']);
  await assert.rejects(containers.create('pod1', containerSpec()), code('AlreadyExists', /app_pod1_0/));
  await assert.rejects(containers.create('pod1', containerSpec({ name: 'x', image: 'missing' })), code('NotFound'));
  await containers.remove(id);
  assert.equal(containers.find(id), undefined);
  assert.ok(calls.includes('unmount') && calls.includes('removeBundle'));
  assert.notEqual(await containers.create('pod1', containerSpec()), id, 'the name is free again');
});

test("a pod's containers and containers by label come from indexes kept as containers are made and removed", async (t) => {
  const { containers } = await containerManager(t);
  const uid = 'io.kubernetes.pod.uid';
  const one = await containers.create('pod1', containerSpec({ name: 'one', labels: { [uid]: 'u1', tier: 'a' } }));
  const two = await containers.create('pod1', containerSpec({ name: 'two', labels: { [uid]: 'u1', tier: 'b' } }));
  const ids = (records: { id: string }[]) => records.map((r) => r.id);
  assert.deepEqual(ids(containers.ofPod('pod1')), [one, two], 'in the order made');
  assert.deepEqual(ids(containers.ofPodOrPrefix('pod1')), [one, two]);
  assert.deepEqual(ids(containers.ofPodOrPrefix('po')), [one, two], 'a prefix of the pod id: found by a scan');
  assert.deepEqual(ids(containers.ofPodOrPrefix('pod2')), []);
  assert.deepEqual(ids(containers.withLabels({ [uid]: 'u1', tier: 'b' })), [two]);
  assert.deepEqual(ids(containers.withLabels({ [uid]: 'u1' })), [one, two]);
  assert.deepEqual(ids(containers.withLabels({})), [one, two]);
  await containers.remove(one);
  assert.deepEqual([ids(containers.ofPod('pod1')), ids(containers.withLabels({ [uid]: 'u1' })), ids(containers.withLabels({ tier: 'a' }))], [[two], [two], []]);
  assert.deepEqual(ids(await containers.fresh(containers.ofPod('pod1'))), [two]);
});

test('a failed create undoes what it made and frees the name', async (t) => {
  const { containers, runtime, calls } = await containerManager(t);
  runtime.failCreate = new Error('runc: no such file');
  await assert.rejects(containers.create('pod1', containerSpec()), /no such file/);
  assert.deepEqual(containers.list(), []);
  assert.deepEqual(runtime.calls, ['create', 'delete']);
  for (const undo of ['unmount', 'removeBundle']) assert.ok(calls.includes(undo), undo);
  assert.ok(calls.some((c) => c.startsWith('removeLeafCgroup /kubepods/pod1/berth-conmon-')));
  runtime.failCreate = undefined;
  assert.ok(await containers.create('pod1', containerSpec()), 'the name was freed');
});

test('stop escalates: the stop signal, then SIGKILL after the timeout', async (t) => {
  const { containers, runtime } = await containerManager(t);
  const id = await containers.create('pod1', containerSpec({ stopSignal: 'SIGUSR1' }));
  await containers.start(id);
  assert.equal(containers.find(id)!.state, 'running');
  const started = Date.now();
  await containers.stop(id, 1);
  assert.ok(Date.now() - started >= 900, 'waited the timeout before SIGKILL');
  assert.deepEqual(runtime.calls.filter((c) => c.startsWith('kill')), ['kill SIGUSR1', 'kill SIGKILL']);
  const record = await containers.get(id);
  assert.equal(record.state, 'exited');
  assert.equal(record.exitCode, 137);
  assert.equal(record.reason, 'Error');

  // A container that obeys its stop signal gets no SIGKILL.
  runtime.calls.length = 0;
  runtime.diesOf.add('SIGTERM');
  const polite = await containers.create('pod1', containerSpec({ name: 'polite', stopSignal: 'SIGTERM' }));
  await containers.start(polite);
  await containers.stop(polite, 5);
  assert.deepEqual(runtime.calls.filter((c) => c.startsWith('kill')), ['kill SIGTERM']);
  assert.equal((await containers.get(polite)).exitCode, 143);
  await containers.stop(polite, 5); // idempotent: nothing more is sent
  assert.deepEqual(runtime.calls.filter((c) => c.startsWith('kill')), ['kill SIGTERM']);
});

test('a container stopped before it started is dropped by the runtime and reported exited', async (t) => {
  const { containers, runtime } = await containerManager(t);
  const id = await containers.create('pod1', containerSpec());
  await containers.stop(id, 10);
  assert.deepEqual(runtime.calls, ['create', 'kill SIGKILL', 'delete']);
  const record = await containers.get(id);
  assert.equal(record.state, 'exited');
  assert.equal(record.exitCode, 137);
  assert.equal(record.message, 'stopped before it started');
});

test('resource updates merge with what the container has and go to the runtime', async (t) => {
  const { containers, runtime } = await containerManager(t);
  const id = await containers.create('pod1', containerSpec({ cpuShares: 512, memoryLimit: 1 << 20 }));
  await containers.updateResources(id, { ...noResources, cpuQuota: 50_000 });
  assert.deepEqual(runtime.calls.at(-1), `update ${JSON.stringify({ cpu: { shares: 512, quota: 50000 }, memory: { limit: 1 << 20, swap: 1 << 20 } })}`);
  assert.equal(containers.find(id)!.spec.cpuQuota, 50_000);
  await assert.rejects(containers.updateResources(id, { ...noResources, hugepageLimits: [{ pageSize: '2MB', limit: 1 }] }), code('InvalidArgument', /hugepage limits cannot be changed/));
});

test('exec needs a running container', async (t) => {
  const { containers } = await containerManager(t);
  const id = await containers.create('pod1', containerSpec());
  await assert.rejects(containers.execSync(id, ['true'], 0), code('FailedPrecondition', /is not running \(created\)/));
  await containers.start(id);
  assert.equal((await containers.execSync(id, ['true'], 0)).stdout.toString(), 'ok');
});
