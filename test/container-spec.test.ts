// What a container's OCI spec does, observed from inside the container (or in its
// cgroup): users and groups by id and by name, read-only rootfs and bind mounts,
// capabilities, sysctls, devices, limits, PID namespace modes, long log lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { GrpcStatus } from '../src/server/grpc-wire.js';
import type { GrpcCallError } from '../src/server/grpc-client.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ContainerState, NamespaceMode, PodSandboxState, RuntimeService, type ContainerConfigSchema } from '../src/gen/runtime/v1/api_pb.js';
import { openChannel, serviceClient } from '../src/server/grpc-client.js';
import { containerTestSkip as skip, setupContainerTest, waitExited, type Runtime } from './helpers/containers.js';
import { launchBerthd } from './helpers/berthd.js';
import { buildLayer, busyboxEntries, pushImage } from './helpers/image-builder.js';
import { tempDir } from './helpers/tmp.js';
import { run } from './helpers/processes.js';
import { cleanup } from './helpers/scope.js';

type ConfigInit = Omit<Exclude<MessageInitShape<typeof ContainerConfigSchema>, { $typeName: string }>, '$typeName' | 'metadata' | 'image' | 'command' | 'logPath'>;

/** Runs a container to its end; returns its status and its stdout+stderr lines. */
async function runToExit(runtime: Runtime, podId: string, logDir: string, image: string, name: string, script: string, extra: ConfigInit = {}) {
  const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command: ['sh', '-c', script], logPath: `${name}.log`, ...extra } });
  await runtime.startContainer({ containerId });
  const status = await waitExited(runtime, containerId);
  const lines = (await readFile(join(logDir, `${name}.log`), 'utf8')).split('\n').filter(Boolean).map((l) => l.split(' ').slice(3).join(' '));
  return { status, lines, containerId };
}

function capEff(lines: string[]): bigint {
  const line = lines.find((l) => l.startsWith('CapEff:'));
  assert.ok(line, `no CapEff in ${lines.join('|')}`);
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}
const CAP = { CHOWN: 0, NET_ADMIN: 12, NET_RAW: 13, SYS_ADMIN: 21 } as const;
const has = (mask: bigint, cap: number) => (mask >> BigInt(cap)) & 1n;

test('users and groups by id and by name, from the request and the image USER', { skip }, async (t) => {
  const { berthd, runtime, registry, image, podId, logDir } = await setupContainerTest(t);
  const named = `${registry.host}/test/busybox:named`;
  await pushImage(registry, 'test/busybox', 'named', { layers: [buildLayer(busyboxEntries())], config: { Env: ['PATH=/bin'], User: 'app:extra' } });
  assert.equal((await berthd.ctl(['pull', named])).code, 0);
  const ids = 'id -u; id -g; id -G';

  // By name from the request: uid and primary gid from /etc/passwd, groups from /etc/group.
  let run = await runToExit(runtime, podId, logDir, image, 'byname', ids, { linux: { securityContext: { runAsUsername: 'app' } } });
  assert.deepEqual(run.lines, ['1000', '1000', '1000 2000']);
  // By id with a group and supplemental groups.
  run = await runToExit(runtime, podId, logDir, image, 'byid', ids, { linux: { securityContext: { runAsUser: { value: 1000n }, runAsGroup: { value: 3000n }, supplementalGroups: [4000n] } } });
  assert.deepEqual(run.lines, ['1000', '3000', '3000 2000 4000']);
  // The image's USER "app:extra", names resolved in the image.
  run = await runToExit(runtime, podId, logDir, named, 'imageuser', ids);
  assert.deepEqual(run.lines, ['1000', '2000', '2000']);
  // The request's user overrides the image's, group included.
  run = await runToExit(runtime, podId, logDir, named, 'override', ids, { linux: { securityContext: { runAsUser: { value: 0n } } } });
  assert.deepEqual(run.lines, ['0', '0', '0']);
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'ghost' }, image: { image }, command: ['true'], linux: { securityContext: { runAsUsername: 'ghost' } } } }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /user "ghost" is not in the image's \/etc\/passwd/.test(err.details),
  );
});

test('read-only rootfs, read-only and writable bind mounts, masked paths, devices', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setupContainerTest(t);
  const shared = await tempDir(t, 'bind-');
  await writeFile(join(shared, 'from-host'), 'host data\n');

  const ro = await runToExit(runtime, podId, logDir, image, 'rorootfs', 'touch /newfile 2>&1 || echo refused; cat /data/from-host; touch /data/x 2>&1 || echo ro-refused; echo written > /rw/out && echo rw-ok; ls -l /proc/keys | cut -c1', {
    mounts: [
      { containerPath: '/data', hostPath: shared, readonly: true },
      { containerPath: '/rw', hostPath: shared },
    ],
    linux: { securityContext: { readonlyRootfs: true } },
  });
  assert.equal(ro.status.exitCode, 0, ro.lines.join('\n'));
  assert.match(ro.lines[0]!, /Read-only file system/);
  assert.equal(ro.lines[1], 'refused');
  assert.equal(ro.lines[2], 'host data');
  assert.match(ro.lines[3]!, /Read-only file system/);
  assert.deepEqual(ro.lines.slice(4), ['ro-refused', 'rw-ok', 'c'], 'the write went through /rw and /proc/keys is masked (by /dev/null)');
  assert.equal(await readFile(join(shared, 'out'), 'utf8'), 'written\n');
  // A host path that does not exist is made as a directory (containerd's behaviour).
  const made = await runToExit(runtime, podId, logDir, image, 'madedir', 'echo in > /made/file && echo made-ok', {
    mounts: [{ containerPath: '/made', hostPath: join(shared, 'not', 'yet') }],
  });
  assert.deepEqual(made.lines, ['made-ok']);
  assert.equal(await readFile(join(shared, 'not', 'yet', 'file'), 'utf8'), 'in\n');
  const status = (await runtime.containerStatus({ containerId: ro.containerId })).status!;
  assert.deepEqual(status.mounts.map((m) => [m.containerPath, m.readonly]), [['/data', true], ['/rw', false]]);
  const info = JSON.parse((await runtime.containerStatus({ containerId: ro.containerId, verbose: true })).info.info!) as { sandboxID: string; runtimeSpec: { root: { readonly: boolean } } };
  assert.deepEqual([info.sandboxID, info.runtimeSpec.root.readonly], [podId, true], 'verbose status carries the OCI spec');

  // The host's loop-control device under another name, readable but not writable by
  // the devices cgroup (it is not among the devices every container gets).
  const dev = await runToExit(runtime, podId, logDir, image, 'device', 'stat -c "%F %t %T" /dev/lc; : < /dev/lc && echo read-ok; (: > /dev/lc) 2>/dev/null || echo write-refused', {
    devices: [{ containerPath: '/dev/lc', hostPath: '/dev/loop-control', permissions: 'r' }],
  });
  assert.deepEqual(dev.lines, ['character special file a ed', 'read-ok', 'write-refused']);
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'notdev' }, image: { image }, command: ['true'], devices: [{ containerPath: '/dev/x', hostPath: '/etc/hostname', permissions: 'rw' }] } }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /not a character or block device/.test(err.details),
  );
});

test('a recursive read-only mount makes submounts read-only too; a plain read-only one does not; nothing stays mounted', { skip }, async (t) => {
  const { runtime, image, podId, logDir, berthd } = await setupContainerTest(t);
  const shared = await tempDir(t, 'rro-');
  await mkdir(join(shared, 'sub'));
  await run('mount', ['-t', 'tmpfs', '-o', 'nosuid,size=1m', 'rro-test', join(shared, 'sub')]);
  cleanup(t).after(() => run('umount', [join(shared, 'sub')]).catch(() => undefined));
  const probe = 'touch /m/sub/x 2>/dev/null && echo sub-writable || echo sub-readonly; touch /m/top 2>/dev/null && echo top-writable || echo top-readonly';
  const plain = await runToExit(runtime, podId, logDir, image, 'plainro', probe, { mounts: [{ containerPath: '/m', hostPath: shared, readonly: true }] });
  assert.deepEqual(plain.lines, ['sub-writable', 'top-readonly'], 'runc makes only the top of an rbind read-only');
  await writeFile(join(shared, 'file'), 'x');
  const recursive = await runToExit(runtime, podId, logDir, image, 'rro', `${probe}; (echo y > /f) 2>/dev/null && echo file-writable || echo file-readonly`, {
    mounts: [
      { containerPath: '/m', hostPath: shared, readonly: true, recursiveReadOnly: true },
      { containerPath: '/f', hostPath: join(shared, 'file'), readonly: true, recursiveReadOnly: true },
    ],
  });
  assert.deepEqual(recursive.lines, ['sub-readonly', 'top-readonly', 'file-readonly']);
  const status = await runtime.status({});
  assert.ok(status.runtimeHandlers.every((h) => h.features?.recursiveReadOnlyMounts), 'Status says recursive read-only mounts are supported');
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'rrow' }, image: { image }, command: ['true'], mounts: [{ containerPath: '/x', hostPath: shared, recursiveReadOnly: true }] } }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /recursive_read_only needs readonly/.test(err.details),
  );
  // The host's tmpfs keeps its own options, and the container's tree is gone once it is removed.
  await runtime.removeContainer({ containerId: recursive.containerId });
  const table = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  assert.deepEqual(table.filter((l) => l.includes(berthd.dir) && l.includes('/rro/')), []);
  const host = table.find((l) => l.split(' ')[4] === join(shared, 'sub'));
  assert.match(host ?? '', / rw,nosuid/, 'the host submount is still writable');

  // While a container with a recursive read-only mount runs, berth holds no mount of the
  // source on the host: its owner can unmount what is below and remove it (critest does),
  // and the container keeps its read-only copy.
  const { containerId } = await runtime.createContainer({
    podSandboxId: podId,
    config: { metadata: { name: 'rrolive' }, image: { image }, command: ['sleep', '300'], mounts: [{ containerPath: '/m', hostPath: shared, readonly: true, recursiveReadOnly: true }] },
  });
  await runtime.startContainer({ containerId });
  const live = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  assert.deepEqual(live.filter((l) => l.includes(berthd.dir) && l.includes('/rro/')), [], 'no rro tree on the host while the container runs');
  assert.equal((await run('umount', ['-l', join(shared, 'sub')])).code, 0);
  assert.equal((await run('rmdir', [join(shared, 'sub')])).code, 0, 'the source submount dir can be removed');
  const inside = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'touch /m/sub/x 2>/dev/null && echo writable || echo readonly'], timeout: 10n });
  assert.equal(Buffer.from(inside.stdout).toString(), 'readonly\n');
});

test('capabilities: the default set, a drop, an add, ALL, privileged', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setupContainerTest(t);
  const script = 'grep CapEff /proc/self/status; touch /tmp/f; chown 1 /tmp/f 2>&1 && echo chown-ok || echo chown-refused';
  const plain = await runToExit(runtime, podId, logDir, image, 'capdefault', script);
  const dropped = await runToExit(runtime, podId, logDir, image, 'capdrop', script, { linux: { securityContext: { capabilities: { dropCapabilities: ['CHOWN', 'NET_RAW'], addCapabilities: ['NET_ADMIN'] } } } });
  const none = await runToExit(runtime, podId, logDir, image, 'capnone', script, { linux: { securityContext: { capabilities: { dropCapabilities: ['ALL'] } } } });
  const all = await runToExit(runtime, podId, logDir, image, 'capall', script, { linux: { securityContext: { capabilities: { addCapabilities: ['ALL'] } } } });
  const [p, d, n, a] = [plain, dropped, none, all].map((r) => capEff(r.lines));
  assert.deepEqual([has(p!, CAP.CHOWN), has(p!, CAP.NET_RAW), has(p!, CAP.NET_ADMIN), has(p!, CAP.SYS_ADMIN)], [1n, 1n, 0n, 0n]);
  assert.deepEqual([has(d!, CAP.CHOWN), has(d!, CAP.NET_RAW), has(d!, CAP.NET_ADMIN)], [0n, 0n, 1n]);
  assert.equal(n, 0n);
  assert.equal(has(a!, CAP.SYS_ADMIN), 1n);
  assert.equal(plain.lines.at(-1), 'chown-ok');
  const privileged = await runToExit(runtime, podId, logDir, image, 'privileged', 'grep CapEff /proc/self/status; test -c /dev/loop-control && echo host-devices; test -c /dev/lc && echo requested-device; mount -t tmpfs none /tmp && echo mounted', {
    linux: { securityContext: { privileged: true } },
    devices: [{ containerPath: '/dev/lc', hostPath: '/dev/loop-control', permissions: 'r' }],
  });
  assert.equal(has(capEff(privileged.lines), CAP.SYS_ADMIN), 1n);
  assert.deepEqual(privileged.lines.slice(1), ['host-devices', 'requested-device', 'mounted']);
  // Ambient capabilities reach a non-root process, but never re-add a dropped one.
  const ambient = await runToExit(runtime, podId, logDir, image, 'ambient', 'grep CapAmb /proc/self/status', {
    linux: { securityContext: { runAsUser: { value: 1000n }, capabilities: { dropCapabilities: ['NET_RAW'], addAmbientCapabilities: ['NET_BIND_SERVICE', 'NET_RAW'] } } },
  });
  const amb = BigInt(`0x${ambient.lines[0]!.split(/\s+/)[1]}`);
  assert.deepEqual([has(amb, 10), has(amb, CAP.NET_RAW)], [1n, 0n], ambient.lines.join('|'));
  assert.equal(has(p!, CAP.SYS_ADMIN), 0n);
  assert.equal(dropped.lines.at(-1), 'chown-refused', 'CHOWN dropped: chown fails inside');
});

test('pod sysctls, CPU and memory limits and cpuset, seen from inside the container', { skip }, async (t) => {
  const { runtime, image, logDir } = await setupContainerTest(t);
  const hostValues = async () => Promise.all(['net/ipv4/ip_unprivileged_port_start', 'kernel/shm_rmid_forced'].map(async (f) => (await readFile(`/proc/sys/${f}`, 'utf8')).trim()));
  const before = await hostValues();
  const pod = await runtime.runPodSandbox({
    config: {
      metadata: { name: 'tuned', namespace: 'test', uid: 'tuned-uid', attempt: 0 },
      logDirectory: logDir,
      linux: { sysctls: { 'net.ipv4.ip_unprivileged_port_start': '80', 'kernel.shm_rmid_forced': '1' } },
    },
  });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: pod.podSandboxId }).catch(() => undefined));
  const run = await runToExit(
    runtime,
    pod.podSandboxId,
    logDir,
    image,
    'limits',
    'cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus',
    { linux: { resources: { memoryLimitInBytes: 48n << 20n, cpuQuota: 50_000n, cpuPeriod: 100_000n, cpuShares: 256n, cpusetCpus: '0' } } },
  );
  assert.equal(run.status.exitCode, 0, run.lines.join('\n'));
  assert.deepEqual(run.lines, ['80', '1', String(48 << 20), '50000', '100000', '256', '0']);
  assert.deepEqual(await hostValues(), before, "the host's own values are untouched");
  const status = (await runtime.containerStatus({ containerId: run.containerId })).status!;
  assert.equal(status.resources?.linux?.memoryLimitInBytes, 48n << 20n);
  assert.equal(status.resources?.linux?.cpusetCpus, '0');
});

test('PID namespaces: shared by the pod with an init, per container, a target container; the init survives a berthd restart', { skip }, async (t) => {
  const { berthd, runtime, image, logDir } = await setupContainerTest(t);
  const podWith = async (name: string, pid: NamespaceMode) =>
    (await runtime.runPodSandbox({ config: { metadata: { name, namespace: 'test', uid: `${name}-uid`, attempt: 0 }, logDirectory: logDir, linux: { securityContext: { namespaceOptions: { pid } } } } })).podSandboxId;
  const startSleeper = async (podId: string, name: string, extra: ConfigInit = {}) => {
    const { containerId } = await runtime.createContainer({ podSandboxId: podId, config: { metadata: { name }, image: { image }, command: ['sleep', '3600'], logPath: `${name}.log`, ...extra } });
    await runtime.startContainer({ containerId });
    return containerId;
  };
  const processes = async (containerId: string) => {
    const r = await runtime.execSync({ containerId, cmd: ['sh', '-c', 'for p in /proc/[0-9]*; do echo "${p#/proc/} $(cat $p/comm)"; done'], timeout: 10n });
    return Buffer.from(r.stdout).toString().trim().split('\n');
  };

  const shared = await podWith('sharedpid', NamespaceMode.POD);
  const first = await startSleeper(shared, 'first');
  const second = await startSleeper(shared, 'second');
  const seen = await processes(second);
  assert.ok(seen.includes('1 catatonit'), `the pod's init is pid 1: ${seen}`);
  assert.equal(seen.filter((l) => l.endsWith(' sleep')).length, 2, `both containers' processes are visible: ${seen}`);
  // The init gives the pod nothing: even with CAP_SYS_PTRACE its root is a directory
  // holding only catatonit, and it runs as nobody without capabilities.
  const prober = await startSleeper(shared, 'prober', { linux: { securityContext: { capabilities: { addCapabilities: ['SYS_PTRACE'] } } } });
  const probe = await runtime.execSync({ containerId: prober, cmd: ['sh', '-c', 'ls /proc/1/root; grep -E "^(Uid|CapEff):" /proc/1/status'], timeout: 10n });
  assert.deepEqual(Buffer.from(probe.stdout).toString().trim().split('\n').map((l) => l.replace(/\s+/g, ' ')), ['catatonit', 'Uid: 65534 65534 65534 65534', 'CapEff: 0000000000000000']);

  const own = await podWith('ownpid', NamespaceMode.CONTAINER);
  const alone = await startSleeper(own, 'alone');
  assert.deepEqual((await processes(alone)).filter((l) => !l.endsWith(' sh')), ['1 sleep']);
  const debug = await startSleeper(own, 'debug', { linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.TARGET, targetId: alone } } } });
  assert.ok((await processes(debug)).includes('1 sleep'), 'the target container\'s pid 1 is visible');

  // The pod's init outlives berthd; killing it makes the pod not ready after a restart.
  const statusOf = async (id: string, client = runtime) => (await client.podSandboxStatus({ podSandboxId: id, verbose: false })).status!.state;
  await berthd.stop('SIGKILL');
  const again = await launchBerthd(t, berthd.dir, berthd.configPath, berthd.socket);
  const channel = openChannel(again.endpoint);
  cleanup(t).after(() => channel.close());
  const client = serviceClient(RuntimeService, channel);
  assert.equal(await statusOf(shared, client), PodSandboxState.SANDBOX_READY);
  assert.equal((await client.containerStatus({ containerId: first })).status?.state, ContainerState.CONTAINER_RUNNING);
  await client.stopPodSandbox({ podSandboxId: own });
  assert.equal(await statusOf(own, client), PodSandboxState.SANDBOX_NOTREADY);
  // A pod whose init dies is not ready any more (as containerd's pod whose pause died).
  const init = (JSON.parse((await client.podSandboxStatus({ podSandboxId: shared, verbose: true })).info.info!) as { pid: number }).pid;
  assert.ok(init > 0);
  process.kill(init, 'SIGKILL');
  await sleep(300);
  // The listing first: it must see the end itself (a killed init its parent has not
  // reaped yet, a zombie, included), not only after a PodSandboxStatus found it.
  const listed = await client.listPodSandbox({});
  assert.equal(listed.items.find((p) => p.id === shared)?.state, PodSandboxState.SANDBOX_NOTREADY);
  assert.equal(await statusOf(shared, client), PodSandboxState.SANDBOX_NOTREADY);
  await client.removePodSandbox({ podSandboxId: shared });
  const left = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(shared));
  assert.deepEqual(left, [], 'no pin of the removed pod is left');
  await client.removePodSandbox({ podSandboxId: own });
});

test("the containers of a pod share the pod's /dev/shm; other pods do not see it", { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setupContainerTest(t);
  const writer = await runToExit(runtime, podId, logDir, image, 'shmwriter', 'echo shared > /dev/shm/note && grep " /dev/shm " /proc/mounts | cut -d" " -f3,4');
  assert.equal(writer.status.exitCode, 0, writer.lines.join('\n'));
  assert.match(writer.lines[0]!, /^tmpfs rw,nosuid,nodev,noexec/);
  const reader = await runToExit(runtime, podId, logDir, image, 'shmreader', 'cat /dev/shm/note');
  assert.deepEqual(reader.lines, ['shared']);
  const other = await runtime.runPodSandbox({ config: { metadata: { name: 'othershm', namespace: 'test', uid: 'othershm-uid', attempt: 0 }, logDirectory: logDir } });
  const stranger = await runToExit(runtime, other.podSandboxId, logDir, image, 'shmstranger', 'cat /dev/shm/note 2>&1 || echo absent');
  assert.equal(stranger.lines.at(-1), 'absent');
  await runtime.removePodSandbox({ podSandboxId: other.podSandboxId });
});

test('a line longer than conmon\'s buffer is split into P parts and an F end, which join to the line', { skip }, async (t) => {
  const { runtime, image, podId, logDir } = await setupContainerTest(t);
  const run = await runToExit(runtime, podId, logDir, image, 'longline', 'head -c 20000 /dev/zero | tr "\\0" a; echo; echo short');
  const raw = (await readFile(join(logDir, 'longline.log'), 'utf8')).trim().split('\n').map((l) => l.split(' '));
  const tags = raw.map((f) => f[2]);
  assert.ok(tags.length >= 3 && tags.slice(0, -2).every((tag) => tag === 'P'), `partial lines first: ${tags}`);
  assert.deepEqual(tags.slice(-2), ['F', 'F']);
  assert.equal(raw.slice(0, -1).map((f) => f.slice(3).join(' ')).join(''), 'a'.repeat(20000));
  assert.equal(run.lines.at(-1), 'short');
});


test("a pod without a hostname has the node's (kernel, /etc/hostname, /etc/hosts, $HOSTNAME), even with a name longer than a hostname may be; a host-network pod has the node's; an over-long hostname is refused", { skip }, async (t) => {
  const { berthd, runtime, image, podId, logDir } = await setupContainerTest(t);
  const node = hostname();
  const probe = 'hostname; cat /etc/hostname; grep -c "$(hostname)$" /etc/hosts; echo "$HOSTNAME"';
  // critest's pod names are about 73 bytes: as a hostname, sethostname(2) refuses them.
  const longName = `pod-without-hostname-${'x'.repeat(52)}`;
  assert.ok(longName.length > 64);
  const unnamed = await runtime.runPodSandbox({ config: { metadata: { name: longName, namespace: 'test', uid: 'nohost-uid', attempt: 0 }, logDirectory: logDir } });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: unnamed.podSandboxId }).catch(() => undefined));
  const own = await runToExit(runtime, unnamed.podSandboxId, logDir, image, 'nohost', probe);
  assert.deepEqual(own.lines, [node, node, '1', node], "the kernel's hostname, /etc/hostname, the pod's line in /etc/hosts and $HOSTNAME (as containerd sets it)");
  // A host-network pod shares the node's UTS namespace: the node's name, whatever it asked for.
  const hostNet = await runtime.runPodSandbox({
    config: { metadata: { name: 'hostnet', namespace: 'test', uid: 'hostnet-uid', attempt: 0 }, hostname: 'asked-for', logDirectory: logDir, linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } } },
  });
  cleanup(t).after(() => runtime.removePodSandbox({ podSandboxId: hostNet.podSandboxId }).catch(() => undefined));
  const shared = await runToExit(runtime, hostNet.podSandboxId, logDir, image, 'hostnet', 'hostname; cat /etc/hostname; echo "$HOSTNAME"');
  assert.deepEqual(shared.lines, [node, node, node]);
  // A hostname asked for is the container's, and a CRI env variable still wins over HOSTNAME.
  const named = await runToExit(runtime, podId, logDir, image, 'named', probe + '; env | grep -c ^HOSTNAME=');
  assert.deepEqual(named.lines, ['ctr-host', 'ctr-host', '1', 'ctr-host', '1']);
  const overridden = await runToExit(runtime, unnamed.podSandboxId, logDir, image, 'envwins', 'echo "$HOSTNAME"', { envs: [{ key: 'HOSTNAME', value: new TextEncoder().encode('from-cri') }] });
  assert.deepEqual(overridden.lines, ['from-cri']);
  // An explicit hostname too long for the kernel is refused before anything is made.
  const pods = (await runtime.listPodSandbox({})).items.length;
  const pins = await readdir(join(berthd.dir, 'state', 'ns'));
  await assert.rejects(
    runtime.runPodSandbox({ config: { metadata: { name: 'toolong', namespace: 'test', uid: 'toolong-uid', attempt: 0 }, hostname: 'h'.repeat(65), logDirectory: logDir } }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /hostname "h{65}" is 65 bytes; a hostname has at most 64/.test(err.details),
  );
  assert.equal((await runtime.listPodSandbox({})).items.length, pods);
  assert.deepEqual(await readdir(join(berthd.dir, 'state', 'ns')), pins, 'no namespace was pinned');
});

test('run_as_group without a user is refused before anything is made', { skip }, async (t) => {
  const { runtime, image, podId } = await setupContainerTest(t);
  await assert.rejects(
    runtime.createContainer({ podSandboxId: podId, config: { metadata: { name: 'groupless' }, image: { image }, command: ['id'], linux: { securityContext: { runAsGroup: { value: 3000n } } } } }),
    (err: GrpcCallError) => err.code === GrpcStatus.INVALID_ARGUMENT && /^user group is specified without user/.test(err.details),
  );
  assert.deepEqual((await runtime.listContainers({})).containers, []);
});
