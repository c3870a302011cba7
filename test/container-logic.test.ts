// The container layer's decisions as pure functions, without root or runc: the OCI spec
// from a container spec, its pod's typed context and its image; env and args; resource
// merges; the bundle layout; exit files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOciSpec, mergedEnv, mergeResources, processArgs, type OciSpecInput } from '../src/container/oci-spec.js';
import { bundlePaths } from '../src/container/bundle.js';
import { readExit } from '../src/container/exit-watcher.js';
import { cgroupDir, containerCgroup, monitorCgroup, podInitCgroup, slicePath } from '../src/linux/cgroup-names.js';
import type { ContainerResources, ContainerSpec } from '../src/container/container-types.js';
import type { PodContext } from '../src/pod/sandbox-types.js';

const noResources: ContainerResources = { cpuShares: 0, cpuQuota: 0, cpuPeriod: 0, memoryLimit: 0, memorySwapLimit: 0, cpusetCpus: '', cpusetMems: '', hugepageLimits: [], unified: {} };

function spec(extra: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    ...noResources,
    name: 'c', attempt: 0, image: 'busybox', imageId: 'sha256:x', command: [], args: [], workingDir: '', env: [], mounts: [], labels: {}, annotations: {},
    logPath: '', tty: false, stdin: false, runAsUsername: '', supplementalGroups: [], readonlyRootfs: false, privileged: false, noNewPrivs: false,
    capAdd: [], capDrop: [], capAmbient: [], devices: [], pidTargetId: '', oomScoreAdj: 0, stopSignal: '', seccomp: { type: 'unconfined' },
    ...extra,
  };
}

function pod(extra: Partial<PodContext> = {}): PodContext {
  return {
    id: 'pod1', hostname: 'web-0',
    namespaces: { network: '/run/berth/ns/pod1-net', uts: '/run/berth/ns/pod1-uts', ipc: '/run/berth/ns/pod1-ipc' },
    pidMode: 'container',
    files: { hostname: '/p/hostname', hosts: '/p/hosts', resolvConf: '/p/resolv.conf', shm: '/p/shm' },
    cgroupParent: '', sysctls: { 'net.ipv4.ip_forward': '1' }, logDirectory: '', runtimeHandler: 'runc',
    ...extra,
  };
}

function input(extra: Partial<OciSpecInput> = {}): OciSpecInput {
  return { id: 'c1', spec: spec(), pod: pod(), image: {}, user: { uid: 0, gid: 0, additionalGids: [] }, rootfs: '/b/rootfs', cgroupsPath: '/berth/berth-c1', minOomScoreAdj: -1000, devices: [], hostCapabilities: ['CAP_CHOWN', 'CAP_SYS_ADMIN'], ...extra };
}

type Oci = { process: { args: string[]; env: string[]; cwd: string; oomScoreAdj: number; capabilities: { bounding: string[] } }; hostname?: string; mounts: Array<{ destination: string; source: string }>; linux: { namespaces: Array<{ type: string; path?: string }>; sysctl: Record<string, string>; cgroupsPath: string } };

test('args: command over entrypoint, args over cmd', () => {
  const image = { Entrypoint: ['/ep'], Cmd: ['default'] };
  const cases: Array<[Partial<ContainerSpec>, string[]]> = [
    [{}, ['/ep', 'default']],
    [{ args: ['a'] }, ['/ep', 'a']],
    [{ command: ['/cmd'] }, ['/cmd']],
    [{ command: ['/cmd'], args: ['a'] }, ['/cmd', 'a']],
  ];
  for (const [extra, want] of cases) assert.deepEqual(processArgs(spec(extra), image), want, JSON.stringify(extra));
});

test("env: HOSTNAME the pod's, under the image's, under the request's; PATH by default; TERM with a tty", () => {
  const cases: Array<[Partial<ContainerSpec>, string[] | null, boolean, string[]]> = [
    [{}, null, false, ['HOSTNAME=web-0', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']],
    [{}, ['PATH=/x', 'A=1'], true, ['HOSTNAME=web-0', 'PATH=/x', 'A=1', 'TERM=xterm']],
    [{ env: [['A', '2'], ['HOSTNAME', 'mine']] }, ['A=1', 'EMPTY'], false, ['HOSTNAME=mine', 'A=2', 'EMPTY=', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']],
  ];
  for (const [extra, env, tty, want] of cases) assert.deepEqual(mergedEnv(spec(extra), { Env: env }, tty, 'web-0'), want);
});

test("the OCI spec takes what it needs from the pod's typed context", () => {
  const oci = buildOciSpec(input()) as unknown as Oci;
  assert.deepEqual(oci.linux.namespaces, [
    { type: 'mount' },
    { type: 'network', path: '/run/berth/ns/pod1-net' },
    { type: 'uts', path: '/run/berth/ns/pod1-uts' },
    { type: 'ipc', path: '/run/berth/ns/pod1-ipc' },
  ]);
  assert.equal(oci.hostname, 'web-0');
  const source = (destination: string) => oci.mounts.find((m) => m.destination === destination)?.source;
  assert.equal(source('/dev/shm'), '/p/shm');
  assert.equal(source('/etc/hosts'), '/p/hosts');
  assert.equal(source('/etc/resolv.conf'), '/p/resolv.conf');
  assert.equal(source('/etc/hostname'), '/p/hostname');
  assert.deepEqual(oci.linux.sysctl, { 'net.ipv4.ip_forward': '1' });
  assert.equal(oci.linux.cgroupsPath, '/berth/berth-c1');

  // The host's network (and with it UTS) and IPC: no namespaces to join, no hostname, the host's /dev/shm.
  const host = buildOciSpec(input({ pod: pod({ namespaces: {}, files: { hostname: '/p/hostname', hosts: '/p/hosts', resolvConf: '/p/resolv.conf' } }) })) as unknown as Oci;
  assert.deepEqual(host.linux.namespaces, [{ type: 'mount' }]);
  assert.equal(host.hostname, undefined);
  assert.equal(host.mounts.find((m) => m.destination === '/dev/shm')?.source, '/dev/shm');
  assert.ok(host.process.env.includes('HOSTNAME=web-0'), 'HOSTNAME is set even on the host network');

  const joined = buildOciSpec(input({ pidNamespace: { path: '/proc/42/ns/pid' } })) as unknown as Oci;
  assert.deepEqual(joined.linux.namespaces.at(-1), { type: 'pid', path: '/proc/42/ns/pid' });
});

test('the OCI spec: oom_score_adj clamped, working dir, capabilities', () => {
  const oci = buildOciSpec(input({ spec: spec({ oomScoreAdj: -999, capAdd: ['sys_admin'], capDrop: ['CHOWN'] }), minOomScoreAdj: -500, image: { WorkingDir: '/srv' } })) as unknown as Oci;
  assert.equal(oci.process.oomScoreAdj, -500);
  assert.equal(oci.process.cwd, '/srv');
  assert.ok(oci.process.capabilities.bounding.includes('CAP_SYS_ADMIN'));
  assert.ok(!oci.process.capabilities.bounding.includes('CAP_CHOWN'));
  const privileged = buildOciSpec(input({ spec: spec({ privileged: true }) })) as unknown as Oci;
  assert.deepEqual(privileged.process.capabilities.bounding, ['CAP_CHOWN', 'CAP_SYS_ADMIN']);
});

test('resource merges: unset keeps the current value; a new memory limit without swap means no swap', () => {
  const current = { ...noResources, cpuShares: 512, memoryLimit: 100, memorySwapLimit: 200, cpusetCpus: '0', unified: { 'memory.high': '1' } };
  const cases: Array<[Partial<ContainerResources>, Partial<ContainerResources>]> = [
    [{}, { cpuShares: 512, memoryLimit: 100, memorySwapLimit: 200, cpusetCpus: '0', unified: { 'memory.high': '1' } }],
    [{ cpuShares: 1024 }, { cpuShares: 1024, memoryLimit: 100, memorySwapLimit: 200 }],
    [{ memoryLimit: 300 }, { memoryLimit: 300, memorySwapLimit: 0 }],
    [{ memoryLimit: 300, memorySwapLimit: 600 }, { memoryLimit: 300, memorySwapLimit: 600 }],
    [{ cpusetCpus: '1-2', unified: { 'cpu.weight': '5' } }, { cpusetCpus: '1-2', unified: { 'cpu.weight': '5' } }],
  ];
  for (const [update, want] of cases) {
    const merged = mergeResources(current, { ...noResources, ...update });
    for (const [key, value] of Object.entries(want)) assert.deepEqual(merged[key as keyof ContainerResources], value, `${JSON.stringify(update)}: ${key}`);
  }
  // A record of an older berthd may lack the newer fields.
  assert.deepEqual(mergeResources({ cpuShares: 2, cpuQuota: 0, cpuPeriod: 0, memoryLimit: 0, memorySwapLimit: 0 }, noResources), { ...noResources, cpuShares: 2 });
});

test('one owner of the bundle layout and of the cgroup names', () => {
  const paths = bundlePaths('/run/berth/containers/c1');
  assert.equal(paths.config, '/run/berth/containers/c1/config.json');
  assert.equal(paths.upper, '/run/berth/containers/c1/upper');
  assert.equal(paths.conmonPid, '/run/berth/containers/c1/conmon.pid');
  assert.equal(paths.oom, '/run/berth/containers/c1/oom');
  assert.equal(containerCgroup('', 'c1'), '/berth/berth-c1');
  assert.equal(containerCgroup('/kubepods/pod1', 'c1'), '/kubepods/pod1/berth-c1');
  assert.equal(monitorCgroup('/kubepods/pod1/berth-c1', 'c1'), '/kubepods/pod1/berth-conmon-c1');
  assert.equal(podInitCgroup('', 'p1'), '/berth/berth-init-p1');
  // The systemd driver: runc's SLICE:PREFIX:NAME, in the pod's slice (berth.slice for none).
  const pod = '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice';
  assert.equal(containerCgroup(pod, 'c1', 'systemd'), 'kubepods-besteffort-pod1.slice:berth:c1');
  assert.equal(containerCgroup('', 'c1', 'systemd'), 'berth.slice:berth:c1');
  assert.equal(monitorCgroup('kubepods-besteffort-pod1.slice:berth:c1', 'c1'), 'kubepods-besteffort-pod1.slice:berth-conmon:c1');
  assert.equal(podInitCgroup(pod, 'p1', 'systemd'), 'kubepods-besteffort-pod1.slice:berth-init:p1');
  assert.equal(cgroupDir('kubepods-besteffort-pod1.slice:berth:c1'), `${pod}/berth-c1.scope`);
  assert.equal(cgroupDir('/kubepods/pod1/berth-c1'), '/kubepods/pod1/berth-c1');
  assert.equal(slicePath('-.slice'), '/');
});

test("exit files: the code, conmon's oom marker, an empty file only after its grace", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-exit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const exit = join(dir, 'exit');
  const oom = join(dir, 'oom');
  assert.equal(await readExit(exit, oom), undefined, 'no file: still running');
  await writeFile(exit, '');
  assert.equal(await readExit(exit, oom), undefined, 'empty and fresh: not yet an exit');
  const old = new Date(Date.now() - 10_000);
  await utimes(exit, old, old);
  assert.equal((await readExit(exit, oom))?.code, -1, 'empty for long: taken as it is');
  await writeFile(exit, '137');
  assert.deepEqual(await readExit(exit, oom).then((e) => e && { code: e.code, oomKilled: e.oomKilled }), { code: 137, oomKilled: false });
  await writeFile(oom, '');
  assert.equal((await readExit(exit, oom))?.oomKilled, true);
  assert.match((await readExit(exit, oom))!.finishedAt, /^\d{19}$/);
});
